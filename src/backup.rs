//! What `quire backup FILE` and `quire restore FILE` write and read: the whole
//! data directory in one tar archive (certificates, accounts, the local CA,
//! and a logical dump of the statistics), and back. The running server writes
//! it through the control socket, since it holds the statistics store open;
//! the commands (`commands::backup`) decide who does the work.

use std::path::Path;

use anyhow::Context;

use crate::acme::backup::archive;
use crate::datadir::{DataDir, write_private_file};
use crate::stats::{StatsBackend, dump};

/// The statistics inside an archive.
const STATS_DUMP: &str = "stats.dump";

/// Writes the archive of `data` to `file`, with `stats` dumped into it.
pub fn write_archive(
    data: &Path,
    stats: Option<&dyn StatsBackend>,
    file: &Path,
) -> anyhow::Result<String> {
    check_target(file)?;
    let dumped = stats
        .map(|stats| stats.export())
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

/// Refuses a target the archive must not replace. The archive is renamed
/// into place, which would swap a device node, a FIFO or a symbolic link for
/// a regular file (a server running as root replaced /dev/full); a relative
/// path would land in the server's working directory, not the caller's.
fn check_target(file: &Path) -> anyhow::Result<()> {
    let what_to_do = "give the path of a regular file, or of a new file in an existing directory";
    if !file.is_absolute() {
        anyhow::bail!(
            "`{}` is a relative path; the server does not share your working directory, so {what_to_do}, as an absolute path",
            file.display()
        );
    }
    match std::fs::symlink_metadata(file) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => {
            let kind = if meta.is_symlink() {
                "a symbolic link"
            } else if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file (a device, FIFO or socket)"
            };
            anyhow::bail!(
                "{} is {kind}; nothing was written; {what_to_do}",
                file.display()
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = file.parent().unwrap_or(Path::new("/"));
            if dir.is_dir() {
                Ok(())
            } else {
                anyhow::bail!(
                    "the directory {} does not exist; create it first, or {what_to_do}",
                    dir.display()
                )
            }
        }
        Err(e) => Err(e).with_context(|| format!("checking {}", file.display())),
    }
}

/// Writes the archive of `data`, a directory no server is running on, to
/// `file`; the statistics store is opened only if there is one.
pub fn write_archive_offline(data: &Path, file: &Path) -> anyhow::Result<String> {
    let stats = match DataDir::new(data).stats().is_dir() {
        true => Some(crate::stats::open_disk_store(data)?),
        false => None,
    };
    write_archive(data, stats.as_ref().map(|s| s as &dyn StatsBackend), file)
}

/// Unpacks the archive `file` into `data` and imports the statistics it
/// holds; the caller has made sure no server runs there and no state exists.
pub fn restore_archive(file: &Path, data: &Path) -> anyhow::Result<String> {
    crate::acme::backup::restore(file, data)
        .with_context(|| format!("restoring {}", file.display()))?;
    let dump_path = data.join(STATS_DUMP);
    let imported = match std::fs::read(&dump_path) {
        Ok(bytes) => {
            let store = crate::stats::open_disk_store(data)?;
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
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;
    use std::path::PathBuf;

    use super::*;

    /// A data directory worth archiving, and a place to put archives.
    fn dirs() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("certs")).unwrap();
        std::fs::write(data.join("certs/privkey.pem"), "key").unwrap();
        (dir, data)
    }

    fn refused(data: &Path, file: &Path, says: &str) {
        let e = write_archive(data, None, file).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }

    #[test]
    fn a_regular_file_or_a_new_one_is_written() {
        let (dir, data) = dirs();
        let file = dir.path().join("saved.tar");
        write_archive(&data, None, &file).unwrap();
        std::fs::write(&file, "older").unwrap();
        write_archive(&data, None, &file).unwrap();
        assert!(std::fs::read(&file).unwrap().len() > 1024);
    }

    #[test]
    fn fifos_sockets_directories_and_links_are_refused_and_left_alone() {
        let (dir, data) = dirs();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        refused(&data, &fifo, "is not a regular file");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );

        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        refused(&data, &socket, "is not a regular file");
        assert!(
            std::fs::symlink_metadata(&socket)
                .unwrap()
                .file_type()
                .is_socket()
        );

        refused(&data, dir.path(), "is a directory");

        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "precious").unwrap();
        let link = dir.path().join("link.tar");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        refused(&data, &link, "is a symbolic link");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn a_relative_path_is_refused_and_nothing_is_written() {
        let (_dir, data) = dirs();
        let name = format!("quire-backup-test-{}.tar", std::process::id());
        let relative = Path::new(&name);
        let result = write_archive(&data, None, relative);
        let written = relative.exists();
        let _ = std::fs::remove_file(relative);
        let e = result.unwrap_err().to_string();
        assert!(e.contains("is a relative path"), "{e}");
        assert!(!written, "wrote {name} in the working directory");
    }

    #[test]
    fn a_missing_directory_is_refused_not_created() {
        let (dir, data) = dirs();
        let file = dir.path().join("no/such/dir/saved.tar");
        refused(&data, &file, "does not exist; create it first");
        assert!(!dir.path().join("no").exists());
    }
}
