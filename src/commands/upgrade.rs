//! `quire upgrade`: has the running server hand its sockets to the binary now
//! installed at its path (as SIGUSR2 does), and waits until that one serves.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{ask_running_server, load_config};
use crate::cli::ConfigArgs;
use crate::config::Overrides;
use crate::control::protocol::Request;

pub fn run(config: &ConfigArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = load_config(config, Overrides::data_dir(data_dir))?;
    println!(
        "{}",
        ask_running_server(&config, Request::Upgrade, "nothing to upgrade")?
    );
    Ok(ExitCode::SUCCESS)
}
