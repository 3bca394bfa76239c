//! `quire backup FILE` and `quire restore FILE`. A running server makes the
//! backup itself, since it holds the statistics store open; a restore needs
//! the server stopped and refuses to overwrite existing state.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::{load_config, runtime};
use crate::cli::ConfigArgs;
use crate::config::{Config, Overrides};
use crate::control::client;
use crate::control::protocol::Request;
use crate::datadir::DataDir;

pub fn backup(
    file: &Path,
    config: &ConfigArgs,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config, Overrides::data_dir(data_dir))?;
    println!("{}", runtime()?.block_on(write(&config, file))?);
    Ok(ExitCode::SUCCESS)
}

pub fn restore(
    file: &Path,
    config: &ConfigArgs,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config, Overrides::data_dir(data_dir))?;
    println!("{}", runtime()?.block_on(read(&config, file))?);
    Ok(ExitCode::SUCCESS)
}

async fn write(config: &Config, file: &Path) -> anyhow::Result<String> {
    // The server does not share this working directory.
    let file = std::env::current_dir()
        .context("reading the current directory")?
        .join(file);
    let request = Request::Backup { file: file.clone() };
    if let Some(message) = client::ask_if_running(&config.paths.data, &request).await? {
        return Ok(format!("{message} (made by the running server)"));
    }
    let data = config.paths.data.clone();
    if !data.is_dir() {
        anyhow::bail!(
            "{} does not exist: nothing to back up (check [paths] data or --data-dir)",
            data.display()
        );
    }
    tokio::task::spawn_blocking(move || crate::backup::write_archive_offline(&data, &file))
        .await
        .context("the backup panicked")?
}

/// Into a data directory without certificate or statistics state, with no
/// server running.
async fn read(config: &Config, file: &Path) -> anyhow::Result<String> {
    let data = config.paths.data.clone();
    if client::ask_if_running(&data, &Request::Ping)
        .await?
        .is_some()
    {
        anyhow::bail!(
            "a server is running on {}; stop it first (e.g. `systemctl stop quire`), then restore",
            data.display()
        );
    }
    for state in DataDir::new(&data).state() {
        if state.exists() {
            anyhow::bail!(
                "{} already exists; a restore never overwrites state. Move the data directory aside (e.g. `mv {} {}.old`) and run the restore again",
                state.display(),
                data.display(),
                data.display()
            );
        }
    }
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || crate::backup::restore_archive(&file, &data))
        .await
        .context("the restore panicked")?
}
