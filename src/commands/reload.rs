//! `quire reload`: has the running server read its configuration again (as
//! SIGHUP does). The file is checked here first, so a broken one is reported
//! without the server being asked.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::{ask_running_server, load_config};
use crate::cli::ConfigArgs;
use crate::config::Overrides;
use crate::control::protocol::Request;

pub fn run(config: &ConfigArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = load_config(config, Overrides::data_dir(data_dir))
        .context("not reloading: the running server keeps its configuration")?;
    println!(
        "{}",
        ask_running_server(&config, Request::Reload, "nothing to reload")?
    );
    Ok(ExitCode::SUCCESS)
}
