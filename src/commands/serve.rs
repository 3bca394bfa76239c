//! `quire serve`: loads the configuration (flags over environment over file)
//! and hands over to `system`, which runs everything until a stop signal. A
//! listen address another process holds is explained here, where the flags
//! are known: where the address came from, and how to choose another.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{load_config, runtime};
use crate::cli::{ConfigArgs, ListenArgs};
use crate::clock::SharedClock;
use crate::config::{ListenFlag, ListenOrigins, Overrides};
use crate::net::BindError;
use crate::net::SocketName;

pub fn run(
    config: &ConfigArgs,
    mode: Option<String>,
    data_dir: Option<PathBuf>,
    drafts: bool,
    listen: ListenArgs,
    clock: SharedClock,
) -> anyhow::Result<ExitCode> {
    let ListenArgs {
        http,
        https,
        metrics,
    } = listen;
    let config = load_config(
        config,
        Overrides {
            mode,
            data_dir,
            drafts,
            http,
            https,
            metrics,
            ..Default::default()
        },
    )?;
    let origins = config.listen.origins.clone();
    runtime()?
        .block_on(crate::system::serve(config, clock))
        .map_err(|e| explain_taken_address(e, &origins))?;
    Ok(ExitCode::SUCCESS)
}

/// An address another process holds, with where it was chosen and how to
/// choose another; any other error as it is.
fn explain_taken_address(e: anyhow::Error, origins: &ListenOrigins) -> anyhow::Error {
    let Some(taken) = e
        .chain()
        .find_map(|cause| cause.downcast_ref::<BindError>())
        .filter(|bind| bind.source.kind() == std::io::ErrorKind::AddrInUse)
    else {
        return e;
    };
    let (origin, flag) = match taken.name {
        SocketName::Http => (&origins.http, Some(ListenFlag::Http)),
        SocketName::Https => (&origins.https, Some(ListenFlag::Https)),
        SocketName::Metrics => (&origins.metrics, Some(ListenFlag::Metrics)),
        SocketName::LocalCa => (&origins.local_ca, None),
        SocketName::Control => return e,
    };
    let (addr, name) = (taken.addr, taken.name);
    let elsewhere = match flag {
        Some(flag) => format!(
            "`quire serve {} {}`, {}={} or [listen] {name} in the config file",
            flag.flag(),
            another_port(addr),
            flag.var(),
            another_port(addr)
        ),
        None => format!("[listen] {name} in the config file"),
    };
    let message = match origin {
        None => format!(
            "{addr} is quire's default {name} address, and another process already has it; choose a free one with {elsewhere}"
        ),
        Some(origin) => format!(
            "{addr}, the {name} address set by {origin}, is taken by another process; stop that process, or choose a free address with {elsewhere}"
        ),
    };
    e.context(message)
}

/// An example of a different address: the same host, the next port.
fn another_port(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Origin;

    fn taken(name: SocketName, addr: &str, kind: std::io::ErrorKind) -> anyhow::Error {
        anyhow::Error::new(BindError {
            name,
            addr: addr.parse().unwrap(),
            source: kind.into(),
        })
        .context("starting the server")
    }

    fn explained(e: anyhow::Error, origins: &ListenOrigins) -> String {
        explain_taken_address(e, origins).to_string()
    }

    #[test]
    fn a_taken_default_port_names_the_flag_the_variable_and_the_key() {
        let e = taken(
            SocketName::Http,
            "127.0.0.1:8080",
            std::io::ErrorKind::AddrInUse,
        );
        assert_eq!(
            explained(e, &ListenOrigins::default()),
            "127.0.0.1:8080 is quire's default http address, and another process already has it; choose a free one with `quire serve --http 127.0.0.1:8081`, QUIRE_HTTP=127.0.0.1:8081 or [listen] http in the config file"
        );
        let e = taken(
            SocketName::Metrics,
            "127.0.0.1:9100",
            std::io::ErrorKind::AddrInUse,
        );
        assert!(
            explained(e, &ListenOrigins::default()).contains(
                "`quire serve --metrics 127.0.0.1:9101`, QUIRE_METRICS=127.0.0.1:9101 or [listen] metrics"
            )
        );
        let e = taken(
            SocketName::LocalCa,
            "127.0.0.1:8444",
            std::io::ErrorKind::AddrInUse,
        );
        assert!(
            explained(e, &ListenOrigins::default())
                .ends_with("choose a free one with [listen] local_ca in the config file")
        );
    }

    #[test]
    fn a_taken_chosen_port_names_where_it_was_chosen() {
        let origins = ListenOrigins {
            https: Some(Origin::Line {
                file: Some(PathBuf::from("quire.toml")),
                line: 7,
            }),
            http: Some(Origin::Env("QUIRE_HTTP")),
            ..ListenOrigins::default()
        };
        let e = taken(SocketName::Https, "[::]:443", std::io::ErrorKind::AddrInUse);
        let said = explained(e, &origins);
        assert!(
            said.starts_with("[::]:443, the https address set by quire.toml:7, is taken"),
            "{said}"
        );
        let e = taken(
            SocketName::Http,
            "127.0.0.1:8081",
            std::io::ErrorKind::AddrInUse,
        );
        assert!(explained(e, &origins).contains("set by QUIRE_HTTP"));
    }

    #[test]
    fn other_failures_are_left_as_they_are() {
        let e = taken(
            SocketName::Http,
            "0.0.0.0:80",
            std::io::ErrorKind::PermissionDenied,
        );
        assert_eq!(
            explained(e, &ListenOrigins::default()),
            "starting the server"
        );
        assert_eq!(
            explained(anyhow::anyhow!("no content"), &ListenOrigins::default()),
            "no content"
        );
    }
}
