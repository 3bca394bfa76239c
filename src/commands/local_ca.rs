//! `quire local-ca`: only the in-process ACME CA, to try other ACME clients
//! (certbot, lego) against it, until SIGINT/SIGTERM; the work is in
//! `acme::commands::serve_local_ca`.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use super::runtime;
use crate::acme::commands::{StandaloneCa, serve_local_ca};
use crate::acme::local_ca::ValidationTarget;
use crate::cli::LocalCaArgs;
use crate::clock::SharedClock;

pub fn run(args: LocalCaArgs, clock: SharedClock) -> anyhow::Result<ExitCode> {
    // Validation connects to the ports on this machine.
    let loopback = Ipv4Addr::LOCALHOST;
    let ca = StandaloneCa {
        data: args.data_dir,
        listen: args.listen,
        validation: ValidationTarget {
            http: (loopback, args.http_port).into(),
            tls: (loopback, args.tls_port).into(),
        },
        lifetime: args.lifetime,
        domains: args.domains,
    };
    runtime()?.block_on(serve_local_ca(ca, clock))?;
    Ok(ExitCode::SUCCESS)
}
