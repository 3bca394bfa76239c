//! Where certificates, account keys and renewal status live: a small key-value
//! [`Storage`] trait (get/put/list/delete by path-like key, plus a named lock),
//! implemented on the file system by [`FileStore`]. Keeping the ACME code on the
//! trait lets several nodes share one store later without touching it.
//!
//! Files are written with [`crate::datadir`]'s private writes (atomic, 0600 in
//! 0700 directories): the store holds private keys.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::datadir::{self, create_private_dir, write_private_file};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("`{0}` is not a valid storage key (relative, no `..` or empty parts)")]
    BadKey(String),
    #[error(
        "{action} {path}: {source}; check that the data directory is writable by quire and the disk is not full"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is locked by another quire process; stop it, or wait for it to finish")]
    Locked(PathBuf),
}

/// Storage for certificates and accounts. Keys look like relative paths:
/// `certs/example.com/fullchain.pem`.
pub trait Storage: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replaces the value atomically.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Keys directly under `prefix` (a "directory"), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// An exclusive lock on `name`, across processes, held until dropped.
    /// Fails at once with [`StorageError::Locked`] if someone else holds it.
    fn lock(&self, name: &str) -> Result<StoreLock, StorageError>;
}

/// A held lock; dropping it releases the lock.
pub struct StoreLock {
    _file: File,
}

/// [`Storage`] in a directory (the data dir).
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        action,
        path,
        source,
    }
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        FileStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind `key`.
    pub fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let valid = !key.is_empty()
            && !key.starts_with('/')
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !valid {
            return Err(StorageError::BadKey(key.to_string()));
        }
        Ok(self.root.join(key))
    }
}

impl Storage for FileStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let path = self.path(key)?;
        write_private_file(&path, value).map_err(io("writing", &path))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let dir = self.path(prefix)?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("listing", &dir)(e)),
        };
        let mut keys: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .map(|name| format!("{}/{name}", prefix.trim_end_matches('/')))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting", &path)(e)),
        }
    }

    fn lock(&self, name: &str) -> Result<StoreLock, StorageError> {
        let path = self.path(&format!("{}/{name}.lock", datadir::LOCKS))?;
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(io("creating", dir))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io("opening", &path))?;
        // SAFETY: flock on a descriptor we own; it is released when the file closes.
        let held = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if held != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Err(StorageError::Locked(path)),
                _ => Err(io("locking", &path)(e)),
            };
        }
        Ok(StoreLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn put_get_list_delete_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("data"));
        assert_eq!(store.get("certs/a/x.pem").unwrap(), None);
        store.put("certs/a/x.pem", b"one").unwrap();
        store.put("certs/a/x.pem", b"two").unwrap();
        store.put("certs/a/y.pem", b"three").unwrap();
        assert_eq!(store.get("certs/a/x.pem").unwrap().unwrap(), b"two");
        assert_eq!(
            store.list("certs/a").unwrap(),
            vec!["certs/a/x.pem", "certs/a/y.pem"]
        );
        assert_eq!(mode(&dir.path().join("data/certs/a/x.pem")), 0o600);
        assert_eq!(mode(&dir.path().join("data/certs/a")), 0o700);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        store.delete("certs/a/x.pem").unwrap();
        store.delete("certs/a/x.pem").unwrap();
        assert_eq!(store.list("certs/a").unwrap(), vec!["certs/a/y.pem"]);
        assert_eq!(store.list("nothing/here").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn keys_cannot_escape_the_root() {
        let store = FileStore::new("/tmp/unused");
        for key in ["../x", "/etc/passwd", "a/../../b", "a//b", ""] {
            assert!(
                matches!(store.get(key), Err(StorageError::BadKey(_))),
                "{key}"
            );
        }
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let held = store.lock("certs").unwrap();
        assert!(matches!(store.lock("certs"), Err(StorageError::Locked(_))));
        assert!(store.lock("other").is_ok());
        drop(held);
        assert!(store.lock("certs").is_ok());
    }
}
