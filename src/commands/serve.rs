//! `quire serve`: loads the configuration (flags over environment over file)
//! and hands over to `system`, which runs everything until a stop signal.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{load_config, runtime};
use crate::cli::ConfigArgs;
use crate::clock::SharedClock;
use crate::config::Overrides;

pub fn run(
    config: &ConfigArgs,
    mode: Option<String>,
    data_dir: Option<PathBuf>,
    drafts: bool,
    clock: SharedClock,
) -> anyhow::Result<ExitCode> {
    let config = load_config(
        config,
        Overrides {
            mode,
            data_dir,
            drafts,
            ..Default::default()
        },
    )?;
    runtime()?.block_on(crate::system::serve(config, clock))?;
    Ok(ExitCode::SUCCESS)
}
