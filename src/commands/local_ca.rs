//! `quire local-ca`: only the in-process ACME CA, to try other ACME clients
//! (certbot, lego) against it, until SIGINT/SIGTERM.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::runtime;
use crate::acme::local_ca::{self, LocalCa, LocalCaSettings, ValidationTarget};
use crate::cli::LocalCaArgs;
use crate::clock::SharedClock;
use crate::datadir::DataDir;
use crate::net::{self, Listeners, SocketName};

pub fn run(args: LocalCaArgs, clock: SharedClock) -> anyhow::Result<ExitCode> {
    // Validation connects to the ports on this machine.
    let loopback = Ipv4Addr::LOCALHOST;
    let validation = ValidationTarget {
        http: (loopback, args.http_port).into(),
        tls: (loopback, args.tls_port).into(),
    };
    runtime()?.block_on(serve(args, validation, clock))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    args: LocalCaArgs,
    validation: ValidationTarget,
    clock: SharedClock,
) -> anyhow::Result<()> {
    let data = DataDir::new(&args.data_dir);
    data.create()
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let socket = Arc::new(net::bind(args.listen, SocketName::LocalCa).await?);
    let ca = LocalCa::open(LocalCaSettings {
        dir: data.local_ca(),
        domains: args.domains.iter().map(|d| d.to_string()).collect(),
        lifetimes: local_ca::Lifetimes {
            classic: args.lifetime,
            tlsserver: args.tlsserver_lifetime,
            shortlived: args.shortlived_lifetime,
        },
        validation,
        clock,
    })?;
    let base = url::Url::parse(&format!("https://{}", socket.local_addr()?))?;
    let directory = local_ca::directory_url(&base);
    tracing::info!(
        "local CA at {directory}; its root is {}; validating http-01 on {} and tls-alpn-01 on {}",
        ca.root_pem_path().display(),
        validation.http,
        validation.tls
    );
    let limits = net::live_limits(crate::config::Limits::default());
    let mut listeners = Listeners::new(
        limits,
        crate::metrics::Metrics::new(),
        net::Cores::current(),
    );
    let tls = ca.server_config();
    listeners.add(
        SocketName::LocalCa,
        socket,
        Some(tls.into()),
        net::App::Router(ca.router(base)),
    );
    let running = listeners.start();
    crate::shutdown::os_signal().await;
    running.stop().await;
    Ok(())
}
