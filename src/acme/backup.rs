//! Backup archives of the data directory (certificates, accounts, the local
//! CA; statistics aside, they have their own store): written after each new
//! certificate to `data/backup/`, and restored at boot when the certificate
//! state is gone but a backup is still there.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::datadir::{DataDir, create_private_dir, write_private_file};

const KEEP: usize = 5;

fn backup_dir(data: &Path) -> PathBuf {
    DataDir::new(data).backup()
}

/// A tar of `data` (what a backup keeps, see [`DataDir::backup_skips`]) with `extra`
/// files (name, contents) added at its root.
pub fn archive(data: &Path, extra: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.mode(tar::HeaderMode::Complete);
    for entry in walkdir::WalkDir::new(data).min_depth(1).sort_by_file_name() {
        let entry = entry.with_context(|| format!("reading {}", data.display()))?;
        let relative = entry.path().strip_prefix(data).expect("inside data");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str());
        if top.is_some_and(|t| DataDir::backup_skips().contains(&t))
            || entry.file_name().to_string_lossy().starts_with('.')
        {
            continue;
        }
        if entry.file_type().is_file() {
            archive
                .append_path_with_name(entry.path(), relative)
                .with_context(|| format!("archiving {}", entry.path().display()))?;
        }
    }
    for (name, contents) in extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        header.set_cksum();
        archive
            .append_data(&mut header, name, *contents)
            .with_context(|| format!("archiving {name}"))?;
    }
    archive.into_inner().context("finishing the backup archive")
}

/// Writes `data/backup/quire-<time>.tar` and keeps the newest few.
pub fn write(data: &Path, now: DateTime<Utc>) -> anyhow::Result<PathBuf> {
    let dir = backup_dir(data);
    create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = archive(data, &[])?;
    let path = dir.join(format!("quire-{}.tar", now.format("%Y%m%dT%H%M%SZ")));
    write_private_file(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    let mut existing = archives(data)?;
    while existing.len() > KEEP {
        let _ = std::fs::remove_file(existing.remove(0));
    }
    Ok(path)
}

/// Backup archives, oldest first.
pub fn archives(data: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = backup_dir(data);
    let mut found: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tar"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    found.sort();
    Ok(found)
}

/// Unpacks `archive` into `data`; files already there are kept.
pub fn restore(archive: &Path, data: &Path) -> anyhow::Result<()> {
    create_private_dir(data).with_context(|| format!("creating {}", data.display()))?;
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut tar = tar::Archive::new(file);
    tar.set_preserve_permissions(true);
    for entry in tar.entries().context("reading the backup archive")? {
        let mut entry = entry.context("reading the backup archive")?;
        let path = entry
            .path()
            .context("a path in the backup archive")?
            .into_owned();
        let target = data.join(&path);
        if target.exists() {
            continue;
        }
        if let Some(parent) = target.parent() {
            create_private_dir(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        // unpack_in refuses paths that would leave `data`.
        entry
            .unpack_in(data)
            .with_context(|| format!("restoring {}", path.display()))?;
    }
    Ok(())
}

/// At boot: if no certificate state exists but a backup does, restores the
/// newest backup. Returns the archive used.
pub fn restore_if_missing(data: &Path) -> anyhow::Result<Option<PathBuf>> {
    let dir = DataDir::new(data);
    if dir.certs_root().exists() || dir.acme().exists() {
        return Ok(None);
    }
    let Some(newest) = archives(data)?.pop() else {
        return Ok(None);
    };
    restore(&newest, data)?;
    Ok(Some(newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_state_comes_back_from_the_newest_backup() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_private_file(&data.join("certs/a/fullchain.pem"), b"chain").unwrap();
        write_private_file(&data.join("acme/ca/account.json"), b"{}").unwrap();
        write_private_file(&data.join("stats/db"), b"big").unwrap();
        write_private_file(&data.join("stats-outbox"), b"reserved").unwrap();
        write_private_file(&data.join("stats-outbox.damaged"), b"kept").unwrap();
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let first = write(&data, now).unwrap();
        write_private_file(&data.join("certs/a/fullchain.pem"), b"chain 2").unwrap();
        write(&data, now + chrono::Duration::hours(1)).unwrap();
        assert_eq!(archives(&data).unwrap().len(), 2);
        assert_eq!(restore_if_missing(&data).unwrap(), None, "state present");

        std::fs::remove_dir_all(data.join("certs")).unwrap();
        std::fs::remove_dir_all(data.join("acme")).unwrap();
        let used = restore_if_missing(&data).unwrap().unwrap();
        assert_ne!(used, first);
        assert_eq!(
            std::fs::read(data.join("certs/a/fullchain.pem")).unwrap(),
            b"chain 2"
        );
        assert_eq!(
            std::fs::read(data.join("acme/ca/account.json")).unwrap(),
            b"{}"
        );
        let listing = tar::Archive::new(File::open(&used).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect::<Vec<_>>();
        assert!(
            !listing.iter().any(|p| p.starts_with("stats")),
            "{listing:?}"
        );
    }

    #[test]
    fn old_backups_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        write_private_file(&dir.path().join("certs/x"), b"x").unwrap();
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        for h in 0..8 {
            write(dir.path(), now + chrono::Duration::hours(h)).unwrap();
        }
        assert_eq!(archives(dir.path()).unwrap().len(), KEEP);
    }
}
