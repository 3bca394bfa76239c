//! The environment's layer: which variables quire reads, and how a flag wins
//! over a variable, which wins over the file. The environment is passed in as
//! a function, so tests and reloads choose what it holds.

use std::collections::HashMap;
use std::path::PathBuf;

use super::problem::Origin;
use super::types::Overrides;

pub const CONFIG_VAR: &str = "QUIRE_CONFIG";
pub const DATA_DIR_VAR: &str = "QUIRE_DATA_DIR";
/// `MODE` is an alias of `QUIRE_MODE`, which wins when both are set.
pub const MODE_VARS: [&str; 2] = ["QUIRE_MODE", "MODE"];

/// A `[listen]` address that `serve` also takes as a flag and a variable,
/// so a taken default port needs no config file to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenFlag {
    Http,
    Https,
    Metrics,
}

impl ListenFlag {
    pub fn flag(self) -> &'static str {
        match self {
            ListenFlag::Http => "--http",
            ListenFlag::Https => "--https",
            ListenFlag::Metrics => "--metrics",
        }
    }

    pub fn var(self) -> &'static str {
        match self {
            ListenFlag::Http => "QUIRE_HTTP",
            ListenFlag::Https => "QUIRE_HTTPS",
            ListenFlag::Metrics => "QUIRE_METRICS",
        }
    }

    /// The key in the file, as problems name it.
    pub fn key(self) -> &'static str {
        match self {
            ListenFlag::Http => "listen.http",
            ListenFlag::Https => "listen.https",
            ListenFlag::Metrics => "listen.metrics",
        }
    }

    fn given(self, overrides: &Overrides) -> Option<&String> {
        match self {
            ListenFlag::Http => overrides.http.as_ref(),
            ListenFlag::Https => overrides.https.as_ref(),
            ListenFlag::Metrics => overrides.metrics.as_ref(),
        }
    }
}

/// The process environment, for [`Config::load`](super::Config::load); an
/// empty variable counts as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads no environment at all; for tests.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// A fixed environment; for tests.
pub fn env_from(map: HashMap<&'static str, &'static str>) -> impl Fn(&str) -> Option<String> {
    move |name| map.get(name).map(|v| v.to_string())
}

/// The config file: `--config`, else `QUIRE_CONFIG`.
pub(super) fn config_file(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    overrides
        .config_file
        .clone()
        .or_else(|| env(CONFIG_VAR).map(PathBuf::from))
}

/// The mode named outside the file, and where: `--mode`, else a variable.
pub(super) fn mode(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(Origin, String)> {
    overrides
        .mode
        .clone()
        .map(|m| (Origin::Flag("--mode"), m))
        .or_else(|| {
            MODE_VARS
                .into_iter()
                .find_map(|name| env(name).map(|m| (Origin::Env(name), m)))
        })
}

/// The address named outside the file, and where: the flag, else the variable.
pub(super) fn listen(
    which: ListenFlag,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(Origin, String)> {
    which
        .given(overrides)
        .map(|a| (Origin::Flag(which.flag()), a.clone()))
        .or_else(|| env(which.var()).map(|a| (Origin::Env(which.var()), a)))
}

/// The data directory named outside the file: `--data-dir`, else `QUIRE_DATA_DIR`.
pub(super) fn data_dir(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    overrides
        .data_dir
        .clone()
        .or_else(|| env(DATA_DIR_VAR).map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_quire_mode_then_its_alias() {
        let both = env_from(HashMap::from([("QUIRE_MODE", "off"), ("MODE", "manual")]));
        let alias = env_from(HashMap::from([("MODE", "manual")]));
        let flag = Overrides {
            mode: Some("acme".into()),
            ..Overrides::default()
        };
        let none = Overrides::default();
        assert_eq!(
            mode(&flag, &both),
            Some((Origin::Flag("--mode"), "acme".into()))
        );
        assert_eq!(
            mode(&none, &both),
            Some((Origin::Env("QUIRE_MODE"), "off".into()))
        );
        assert_eq!(
            mode(&none, &alias),
            Some((Origin::Env("MODE"), "manual".into()))
        );
        assert_eq!(mode(&none, &no_env), None);
    }

    #[test]
    fn a_listen_flag_wins_over_its_variable() {
        let env = env_from(HashMap::from([
            ("QUIRE_HTTP", "127.0.0.1:8081"),
            ("QUIRE_METRICS", "127.0.0.1:9101"),
        ]));
        let flags = Overrides {
            http: Some("127.0.0.1:8082".into()),
            ..Overrides::default()
        };
        assert_eq!(
            listen(ListenFlag::Http, &flags, &env),
            Some((Origin::Flag("--http"), "127.0.0.1:8082".into()))
        );
        assert_eq!(
            listen(ListenFlag::Metrics, &flags, &env),
            Some((Origin::Env("QUIRE_METRICS"), "127.0.0.1:9101".into()))
        );
        assert_eq!(listen(ListenFlag::Https, &flags, &env), None);
    }

    #[test]
    fn flags_name_the_file_and_data_dir_before_the_environment() {
        let env = env_from(HashMap::from([
            ("QUIRE_CONFIG", "/etc/quire.toml"),
            ("QUIRE_DATA_DIR", "/srv/data"),
        ]));
        let none = Overrides::default();
        assert_eq!(config_file(&none, &env), Some("/etc/quire.toml".into()));
        assert_eq!(data_dir(&none, &env), Some("/srv/data".into()));
        let flags = Overrides {
            config_file: Some("here.toml".into()),
            data_dir: Some("here".into()),
            ..Overrides::default()
        };
        assert_eq!(config_file(&flags, &env), Some("here.toml".into()));
        assert_eq!(data_dir(&flags, &env), Some("here".into()));
    }
}
