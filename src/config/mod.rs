//! One validated [`Config`], merged from built-in defaults, the TOML file, the
//! environment and command-line flags (in rising precedence). Every problem names
//! the key, where it came from ([`Origin`]) and the fix, and all of them are
//! reported at once.
//!
//! `types` is what the rest of quire reads (`post_url` the permalink pattern,
//! `dns` the `[tls.dns]` table and its secret); `raw` is the file as written;
//! `values` parses one value and knows every range; `defaults` holds every
//! default; `env` the environment's layer; `validate` puts them together one
//! section at a time; `problem` is what goes wrong, and `words` says a key
//! TOML's types refuse in the operator's words.

mod defaults;
mod dns;
mod env;
mod post_url;
mod problem;
mod raw;
mod types;
mod validate;
mod values;
mod words;

#[cfg(test)]
mod dns_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use dns::{
    DnsServer, DnsUpdateSettings, DnsValueError, SecretSource, TSIG_SECRET_VAR, TsigAlgorithm,
    TsigKey, TsigKeyName,
};
pub use env::{ListenFlag, env_from, no_env, process_env};
pub use post_url::{BadPostUrl, PostUrl};
pub use problem::{ConfigError, ConfigProblem, Origin};
pub use types::{
    AlertConfig, BadNodeName, BadProfileName, Challenge, ClusterConfig, Config,
    ExternalAccountBinding, IssuerConfig, Limits, Listen, ListenOrigins, MetricsConfig, Mode,
    NodeName, Overrides, Paths, PostgresTarget, ProfileName, SiteConfig, StatsConfig, TlsConfig,
    UnknownMode,
};
pub use values::{ValueError, local_ca_lifetime};

impl Config {
    /// Loads the configuration: the file from `--config` or `QUIRE_CONFIG` (if any),
    /// then the environment (read through `env`), then the flags.
    pub fn load(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = env::config_file(overrides, env);
        let text = match &path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?,
            None => String::new(),
        };
        Config::from_parts(path.as_deref(), &text, overrides, env)
    }

    /// Merges the file text (may be empty) with the environment and flags.
    pub fn from_parts(
        path: Option<&Path>,
        text: &str,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        validate::config(path, text, overrides, env)
    }
}
