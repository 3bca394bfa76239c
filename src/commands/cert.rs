//! `quire cert status` and `quire cert renew [--dry-run]`; the work is in
//! `acme::commands` (renewal asks the running server first).

use std::process::ExitCode;

use super::{load_config, runtime};
use crate::cli::CertCommand;
use crate::clock::SharedClock;
use crate::config::Overrides;

pub fn run(command: CertCommand, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let (config, mode, data_dir) = match &command {
        CertCommand::Status {
            config,
            mode,
            data_dir,
        }
        | CertCommand::Renew {
            config,
            mode,
            data_dir,
            ..
        } => (config, mode, data_dir),
    };
    let config = load_config(
        config,
        Overrides {
            mode: mode.clone(),
            data_dir: data_dir.clone(),
            ..Default::default()
        },
    )?;
    match command {
        CertCommand::Status { .. } => {
            print!(
                "{}",
                runtime()?.block_on(crate::acme::commands::status(&config, clock))?
            );
        }
        CertCommand::Renew { dry_run, .. } => {
            let message =
                runtime()?.block_on(crate::acme::commands::renew(&config, dry_run, clock))?;
            println!("{message}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
