//! The data directory: its layout (DESIGN.md's "Data directory" is the
//! contract, so every name under it is spelled here and nowhere else) and the
//! private writes everything under it uses: directories 0700, files 0600,
//! written to a temporary name, fsynced and renamed, so a crash leaves either
//! the old or the new content, never a torn file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Storage key prefixes as well as directory names: the certificate store
/// keeps its keys relative to the data directory.
pub const CERTS: &str = "certs";
pub const ACME: &str = "acme";
pub const LOCKS: &str = "locks";
const LOCAL_CA: &str = "local-ca";
const STATS: &str = "stats";
const STATS_OUTBOX: &str = "stats-outbox";
/// Beside the outbox, whatever directory that is in.
pub const STATS_OUTBOX_DAMAGED: &str = "stats-outbox.damaged";
const BACKUP: &str = "backup";
const CONTROL_SOCKET: &str = "control.sock";
const SITE: &str = "site";
const SERVED_URLS: &str = "served-urls";

/// What a backup leaves out: statistics (the outbox is merged into the store
/// at the next start; `quire backup` dumps the store), earlier backups,
/// runtime files.
const BACKUP_SKIPS: [&str; 6] = [
    STATS,
    STATS_OUTBOX,
    STATS_OUTBOX_DAMAGED,
    BACKUP,
    LOCKS,
    CONTROL_SOCKET,
];

/// The data directory (`[paths] data`), by the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory itself, 0700.
    pub fn create(&self) -> std::io::Result<()> {
        create_private_dir(&self.root)
    }

    /// All certificates, one directory per primary domain.
    pub fn certs_root(&self) -> PathBuf {
        self.root.join(CERTS)
    }

    /// `fullchain.pem`, `privkey.pem` and `archive/` of `domain`.
    pub fn certs(&self, domain: &str) -> PathBuf {
        self.certs_root().join(domain)
    }

    /// ACME accounts, one directory per CA.
    pub fn acme(&self) -> PathBuf {
        self.root.join(ACME)
    }

    /// The local CA's root and intermediate, kept across restarts.
    pub fn local_ca(&self) -> PathBuf {
        self.root.join(LOCAL_CA)
    }

    /// The statistics store (sled).
    pub fn stats(&self) -> PathBuf {
        self.root.join(STATS)
    }

    /// Views not yet in the store, merged at the next start.
    pub fn stats_outbox(&self) -> PathBuf {
        self.root.join(STATS_OUTBOX)
    }

    /// Backup archives.
    pub fn backup(&self) -> PathBuf {
        self.root.join(BACKUP)
    }

    /// The running server's control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join(CONTROL_SOCKET)
    }

    /// The URLs the last build of `quire serve` served, which `quire check`
    /// compares a new build with.
    pub fn served_urls(&self) -> PathBuf {
        self.root.join(SITE).join(SERVED_URLS)
    }

    /// State a restore must not overwrite: any of these existing means the
    /// directory is in use.
    pub fn state(&self) -> [PathBuf; 4] {
        [
            self.certs_root(),
            self.acme(),
            self.local_ca(),
            self.stats(),
        ]
    }

    /// Top-level names a backup archive leaves out.
    pub fn backup_skips() -> &'static [&'static str] {
        &BACKUP_SKIPS
    }
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `value` to `path` atomically with mode 0600: temporary file, fsync,
/// rename, fsync of the directory.
pub fn write_private_file(path: &Path, value: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(value)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The paths DESIGN.md promises operators (and their backups and scripts).
    #[test]
    fn the_layout_is_the_documented_one() {
        let data = DataDir::new("/srv/quire/data");
        let expect = |path: PathBuf, want: &str| assert_eq!(path, Path::new(want));
        expect(
            data.certs("example.com"),
            "/srv/quire/data/certs/example.com",
        );
        expect(data.acme(), "/srv/quire/data/acme");
        expect(data.local_ca(), "/srv/quire/data/local-ca");
        expect(data.stats(), "/srv/quire/data/stats");
        expect(data.stats_outbox(), "/srv/quire/data/stats-outbox");
        expect(data.backup(), "/srv/quire/data/backup");
        expect(data.control_socket(), "/srv/quire/data/control.sock");
        expect(data.served_urls(), "/srv/quire/data/site/served-urls");
    }

    #[test]
    fn backups_skip_statistics_earlier_backups_and_runtime_files() {
        let data = DataDir::new("/d");
        for skipped in [
            data.stats(),
            data.stats_outbox(),
            data.stats_outbox().with_file_name(STATS_OUTBOX_DAMAGED),
            data.backup(),
            data.root().join(LOCKS),
            data.control_socket(),
        ] {
            let name = skipped.strip_prefix("/d").unwrap().to_str().unwrap();
            assert!(DataDir::backup_skips().contains(&name), "{name}");
        }
        for kept in [data.certs_root(), data.acme(), data.local_ca()] {
            let name = kept.strip_prefix("/d").unwrap().to_str().unwrap();
            assert!(!DataDir::backup_skips().contains(&name), "{name}");
        }
    }

    #[test]
    fn private_writes_are_0600_in_0700_directories_and_replace_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        let file = data.certs("a").join("x.pem");
        write_private_file(&file, b"one").unwrap();
        write_private_file(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&data.certs("a")), 0o700);
        assert_eq!(mode(data.root()), 0o700);
        let leftovers: Vec<_> = fs::read_dir(data.certs("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["x.pem"]);
    }
}
