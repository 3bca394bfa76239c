//! `quire backup FILE` and `quire restore FILE`: the whole data directory in
//! one tar archive (certificates, accounts, the local CA, and a logical dump
//! of the statistics), and back. A running server makes the backup itself,
//! through the control socket, since it holds the statistics store open; a
//! restore needs the server stopped and refuses to overwrite existing state.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::acme::backup::archive;
use crate::acme::store::write_private_file;
use crate::config::Config;
use crate::stats::{StatsStore, dump};

/// The statistics inside an archive.
const STATS_DUMP: &str = "stats.dump";

/// Writes the archive of `data` to `file`, with `stats` dumped into it.
pub fn write_archive(
    data: &Path,
    stats: Option<&dyn StatsStore>,
    file: &Path,
) -> anyhow::Result<String> {
    let dumped = stats
        .map(dump::export)
        .transpose()
        .context("dumping the statistics")?;
    let extra: Vec<(&str, &[u8])> = dumped
        .as_deref()
        .map(|d| vec![(STATS_DUMP, d)])
        .unwrap_or_default();
    let bytes = archive(data, &extra)?;
    write_private_file(file, &bytes).with_context(|| format!("writing {}", file.display()))?;
    Ok(format!(
        "wrote {} ({} KiB{})",
        file.display(),
        bytes.len().div_ceil(1024),
        if dumped.is_some() {
            ", statistics included"
        } else {
            ", no statistics"
        }
    ))
}

fn absolute(file: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(file))
}

/// `quire backup FILE`.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<String> {
    let file = absolute(file)?;
    let request = format!("backup {}", file.display());
    if let Some(reply) = crate::control::request(&config.paths.data, &request).await? {
        let message = crate::control::into_result(&reply)?;
        return Ok(format!("{message} (made by the running server)"));
    }
    let data = config.paths.data.clone();
    if !data.is_dir() {
        anyhow::bail!(
            "{} does not exist: nothing to back up (check [paths] data or --data-dir)",
            data.display()
        );
    }
    tokio::task::spawn_blocking(move || {
        let stats = match data.join("stats").is_dir() {
            true => Some(crate::stats::open_disk_store(&data)?),
            false => None,
        };
        write_archive(&data, stats.as_ref().map(|s| s as &dyn StatsStore), &file)
    })
    .await
    .context("the backup panicked")?
}

/// `quire restore FILE`: into a data directory without certificate or
/// statistics state, with no server running.
pub async fn restore(config: &Config, file: &Path) -> anyhow::Result<String> {
    let data = config.paths.data.clone();
    if crate::control::request(&data, "ping").await?.is_some() {
        anyhow::bail!(
            "a server is running on {}; stop it first (e.g. `systemctl stop quire`), then restore",
            data.display()
        );
    }
    for state in ["certs", "acme", "local-ca", "stats"] {
        if data.join(state).exists() {
            anyhow::bail!(
                "{} already exists; a restore never overwrites state. Move the data directory aside (e.g. `mv {} {}.old`) and run the restore again",
                data.join(state).display(),
                data.display(),
                data.display()
            );
        }
    }
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::acme::backup::restore(&file, &data)
            .with_context(|| format!("restoring {}", file.display()))?;
        let dump_path = data.join(STATS_DUMP);
        let imported = match std::fs::read(&dump_path) {
            Ok(bytes) => {
                let store = crate::stats::open_disk_store(&data)?;
                let entries = dump::import(&store, &bytes)?;
                std::fs::remove_file(&dump_path)
                    .with_context(|| format!("removing {}", dump_path.display()))?;
                format!(", statistics ({entries} records)")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dump_path.display())),
        };
        Ok(format!(
            "restored {} into {}{imported}",
            file.display(),
            data.display()
        ))
    })
    .await
    .context("the restore panicked")?
}
