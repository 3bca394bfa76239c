//! Where certificates, account keys and renewal status live: a small async
//! key-value [`Storage`] trait (get/put/list/delete by path-like key, plus
//! named [`Lease`]s), implemented on the file system by [`FileStore`]. Keeping
//! the ACME code on the trait lets several nodes share one store later without
//! touching it: writes present a lease's token, so a holder that lost its
//! lease cannot overwrite what the new holder wrote.
//!
//! Files are written with [`crate::datadir`]'s private writes (atomic, 0600 in
//! 0700 directories): the store holds private keys. Every file operation runs
//! on tokio's blocking pool, never on the async executor.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lease::{Lease, LeaseSlot, LeaseToken};
use crate::clock::SharedClock;
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
    Locked(String),
    #[error(
        "the lease `{name}` expired at {expires}; it must be renewed before writing (was the clock moved, or the process paused?)"
    )]
    LeaseExpired {
        name: String,
        expires: DateTime<Utc>,
    },
    #[error(
        "the lease `{name}` is no longer ours (we hold token {presented}, the store has {current}); another process took it over, so this one stops writing"
    )]
    LeaseLost {
        name: String,
        presented: LeaseToken,
        current: String,
    },
    #[error(
        "no lease on the certificates is held yet; the data directory belongs to another process"
    )]
    NoLease,
    #[error("the storage task stopped before finishing: {0}")]
    Interrupted(#[source] tokio::task::JoinError),
    #[error(
        "the shared store is unreachable ({0}); this node keeps serving the certificate it holds, and orders nothing until PostgreSQL answers again"
    )]
    Unavailable(#[source] crate::cluster::ClusterError),
    #[error("the shared store refused the request: {0}")]
    Shared(#[source] crate::cluster::ClusterError),
    #[error("`{name}` is held by node {holder} until {until}; it is that node's turn")]
    Held {
        name: String,
        holder: String,
        until: DateTime<Utc>,
    },
    #[error("`{key}` is {size} bytes, more than the shared store takes (1 MiB)")]
    TooLarge { key: String, size: usize },
}

/// What a [`Storage`] call returns: boxed, so that the trait stays usable as
/// `dyn Storage`.
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Storage for certificates and accounts, safe for concurrent use: the data
/// directory's [`FileStore`], or a cluster's
/// [`PgStore`](super::pg_store::PgStore). Keys look
/// like relative paths: `certs/example.com/fullchain.pem`.
///
/// Writes (`put`, `delete`) present a [`Lease`]: the store refuses them with
/// [`StorageError::LeaseLost`] when another holder has taken the lease since,
/// and with [`StorageError::LeaseExpired`] when its time-to-live has passed
/// without a renewal. Reads need no lease.
pub trait Storage: Send + Sync + 'static {
    /// `None` when nothing is stored under `key`.
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>>;
    /// Replaces the value atomically.
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], lease: &'a Lease) -> StorageFuture<'a, ()>;
    /// Keys directly under `prefix` (a "directory"), sorted.
    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>>;
    /// Deleting a missing key is not an error.
    fn delete<'a>(&'a self, key: &'a str, lease: &'a Lease) -> StorageFuture<'a, ()>;
    /// Takes the lease `name` for `ttl`, with a token greater than any given
    /// before. Fails at once with [`StorageError::Locked`] (a process on
    /// this machine) or [`StorageError::Held`] (a node of the cluster) if
    /// someone else holds it. Dropping every copy of the lease gives up what the engine
    /// holds for it; otherwise it ends when its time-to-live runs out.
    fn acquire<'a>(&'a self, name: &'a str, ttl: Duration) -> StorageFuture<'a, Lease>;
    /// Extends `lease` by its time-to-live from now. Succeeds, even past
    /// expiry, as long as nobody has taken the lease since; fails with
    /// [`StorageError::LeaseLost`] otherwise.
    fn renew<'a>(&'a self, lease: &'a Lease) -> StorageFuture<'a, Lease>;
}

/// The lease in `slot`, renewed first if `now` is past its renewal time.
pub async fn keep_lease(
    storage: &dyn Storage,
    slot: &LeaseSlot,
    now: DateTime<Utc>,
) -> Result<Lease, StorageError> {
    let lease = slot.current().ok_or(StorageError::NoLease)?;
    if now < lease.renew_at() {
        return Ok(lease);
    }
    let renewed = storage.renew(&lease).await?;
    slot.fill(renewed.clone());
    Ok(renewed)
}

/// [`Storage`] in a directory (the data dir). Leases are a lock file held
/// with `flock` for exclusion between processes, beside a record of the
/// current token and expiry that every write is checked against; time is the
/// injected clock's.
#[derive(Clone)]
pub struct FileStore {
    root: PathBuf,
    clock: SharedClock,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.root)
            .finish()
    }
}

/// The current holder of a lease, in `locks/<name>.lease`.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    token: LeaseToken,
    expires: DateTime<Utc>,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        action,
        path,
        source,
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StorageError::Interrupted(e)),
    }
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>, clock: SharedClock) -> FileStore {
        FileStore {
            root: root.into(),
            clock,
        }
    }

    /// The file behind `key`.
    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
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

    /// The lock file and the record of lease `name`.
    fn lease_paths(&self, name: &str) -> Result<(PathBuf, PathBuf), StorageError> {
        Ok((
            self.path(&format!("{}/{name}.lock", datadir::LOCKS))?,
            self.path(&format!("{}/{name}.lease", datadir::LOCKS))?,
        ))
    }
}

fn read_record(path: &Path) -> Result<Option<LeaseRecord>, StorageError> {
    match fs::read(path) {
        // A torn record (a crash mid-write) counts as none: the next holder
        // starts the tokens again, and its flock still keeps others out.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", path)(e)),
    }
}

fn write_record(path: &Path, record: &LeaseRecord) -> Result<(), StorageError> {
    let json = serde_json::to_vec(record).expect("a lease record serializes");
    write_private_file(path, &json).map_err(io("writing", path))
}

/// Refuses a write under `lease` unless it is the current, unexpired one.
fn check_lease(record_path: &Path, lease: &Lease, now: DateTime<Utc>) -> Result<(), StorageError> {
    let record = read_record(record_path)?;
    match record {
        Some(record) if record.token == lease.token() => {
            if now >= record.expires {
                return Err(StorageError::LeaseExpired {
                    name: lease.name().to_string(),
                    expires: record.expires,
                });
            }
            Ok(())
        }
        other => Err(StorageError::LeaseLost {
            name: lease.name().to_string(),
            presented: lease.token(),
            current: other.map_or_else(|| "none".to_string(), |r| r.token.to_string()),
        }),
    }
}

/// Takes an exclusive `flock` on `path`, held while the file stays open.
fn flock(path: &Path) -> Result<File, StorageError> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(io("creating", dir))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io("opening", path))?;
    // SAFETY: flock on a descriptor we own; it is released when the file closes.
    let held = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if held != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Err(StorageError::Locked(path.display().to_string())),
            _ => Err(io("locking", path)(e)),
        };
    }
    Ok(file)
}

impl Storage for FileStore {
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let path = self.path(key)?;
            blocking(move || match fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io("reading", &path)(e)),
            })
            .await
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], lease: &'a Lease) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            let (_, record) = self.lease_paths(lease.name())?;
            let (value, lease, now) = (value.to_vec(), lease.clone(), self.clock.now());
            blocking(move || {
                check_lease(&record, &lease, now)?;
                write_private_file(&path, &value).map_err(io("writing", &path))
            })
            .await
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        Box::pin(async move {
            let dir = self.path(prefix)?;
            let prefix = prefix.trim_end_matches('/').to_string();
            blocking(move || {
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(io("listing", &dir)(e)),
                };
                let mut keys: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| !name.starts_with('.'))
                    .map(|name| format!("{prefix}/{name}"))
                    .collect();
                keys.sort();
                Ok(keys)
            })
            .await
        })
    }

    fn delete<'a>(&'a self, key: &'a str, lease: &'a Lease) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            let (_, record) = self.lease_paths(lease.name())?;
            let (lease, now) = (lease.clone(), self.clock.now());
            blocking(move || {
                check_lease(&record, &lease, now)?;
                match fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io("deleting", &path)(e)),
                }
            })
            .await
        })
    }

    fn acquire<'a>(&'a self, name: &'a str, ttl: Duration) -> StorageFuture<'a, Lease> {
        Box::pin(async move {
            let (lock, record_path) = self.lease_paths(name)?;
            let (name, now) = (name.to_string(), self.clock.now());
            blocking(move || {
                let held = flock(&lock)?;
                let token = read_record(&record_path)?.map_or(1, |r| r.token + 1);
                let expires = now + ttl;
                write_record(&record_path, &LeaseRecord { token, expires })?;
                Ok(Lease::new(name, token, ttl, expires, Some(Arc::new(held))))
            })
            .await
        })
    }

    fn renew<'a>(&'a self, lease: &'a Lease) -> StorageFuture<'a, Lease> {
        Box::pin(async move {
            let (_, record_path) = self.lease_paths(lease.name())?;
            let (lease, now) = (lease.clone(), self.clock.now());
            blocking(move || {
                let current = read_record(&record_path)?;
                if current.as_ref().map(|r| r.token) != Some(lease.token()) {
                    return Err(StorageError::LeaseLost {
                        name: lease.name().to_string(),
                        presented: lease.token(),
                        current: current.map_or_else(|| "none".into(), |r| r.token.to_string()),
                    });
                }
                let expires = now + lease.ttl();
                write_record(
                    &record_path,
                    &LeaseRecord {
                        token: lease.token(),
                        expires,
                    },
                )?;
                Ok(lease.renewed(expires))
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    const TTL: Duration = Duration::from_secs(600);

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn store(root: &Path) -> (FileStore, Arc<ManualClock>) {
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        (FileStore::new(root, clock.clone()), clock)
    }

    #[tokio::test]
    async fn put_get_list_delete_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(&dir.path().join("data"));
        let lease = store.acquire("certs", TTL).await.unwrap();
        assert_eq!(store.get("certs/a/x.pem").await.unwrap(), None);
        store.put("certs/a/x.pem", b"one", &lease).await.unwrap();
        store.put("certs/a/x.pem", b"two", &lease).await.unwrap();
        store.put("certs/a/y.pem", b"three", &lease).await.unwrap();
        assert_eq!(store.get("certs/a/x.pem").await.unwrap().unwrap(), b"two");
        assert_eq!(
            store.list("certs/a").await.unwrap(),
            vec!["certs/a/x.pem", "certs/a/y.pem"]
        );
        assert_eq!(mode(&dir.path().join("data/certs/a/x.pem")), 0o600);
        assert_eq!(mode(&dir.path().join("data/certs/a")), 0o700);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        store.delete("certs/a/x.pem", &lease).await.unwrap();
        store.delete("certs/a/x.pem", &lease).await.unwrap();
        assert_eq!(store.list("certs/a").await.unwrap(), vec!["certs/a/y.pem"]);
        assert_eq!(
            store.list("nothing/here").await.unwrap(),
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let (store, _) = store(Path::new("/tmp/unused"));
        for key in ["../x", "/etc/passwd", "a/../../b", "a//b", ""] {
            assert!(
                matches!(store.get(key).await, Err(StorageError::BadKey(_))),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn a_lease_is_exclusive_until_dropped_and_tokens_grow() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(dir.path());
        let held = store.acquire("certs", TTL).await.unwrap();
        let copy = held.clone();
        assert!(matches!(
            store.acquire("certs", TTL).await,
            Err(StorageError::Locked(_))
        ));
        assert!(store.acquire("other", TTL).await.is_ok());
        drop(held);
        assert!(
            matches!(
                store.acquire("certs", TTL).await,
                Err(StorageError::Locked(_))
            ),
            "a copy still holds it"
        );
        let first = copy.token();
        drop(copy);
        let next = store.acquire("certs", TTL).await.unwrap();
        assert!(next.token() > first);
    }

    #[tokio::test]
    async fn a_write_under_an_expired_lease_is_refused_until_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        let lease = store.acquire("certs", TTL).await.unwrap();
        clock.advance(chrono::Duration::seconds(599));
        store.put("certs/a", b"in time", &lease).await.unwrap();
        clock.advance(chrono::Duration::seconds(1));
        assert!(matches!(
            store.put("certs/a", b"late", &lease).await,
            Err(StorageError::LeaseExpired { .. })
        ));
        assert!(matches!(
            store.delete("certs/a", &lease).await,
            Err(StorageError::LeaseExpired { .. })
        ));
        assert_eq!(store.get("certs/a").await.unwrap().unwrap(), b"in time");
        // Nobody took it meanwhile, so it may still be renewed.
        let renewed = store.renew(&lease).await.unwrap();
        assert_eq!(renewed.expires(), clock.now() + TTL);
        store.put("certs/a", b"renewed", &renewed).await.unwrap();
        // The record is the store's: the old copy's expiry no longer matters.
        store.put("certs/a", b"same token", &lease).await.unwrap();
    }

    #[tokio::test]
    async fn a_stale_or_foreign_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(dir.path());
        let first = store.acquire("certs", TTL).await.unwrap();
        // As if another holder had taken the lease since: the record moves on.
        let (_, record) = store.lease_paths("certs").unwrap();
        write_record(
            &record,
            &LeaseRecord {
                token: first.token() + 1,
                expires: first.expires(),
            },
        )
        .unwrap();
        assert!(matches!(
            store.put("certs/a", b"x", &first).await,
            Err(StorageError::LeaseLost { .. })
        ));
        assert!(matches!(
            store.renew(&first).await,
            Err(StorageError::LeaseLost { .. })
        ));
        // A record that is gone (say, a restored data directory) refuses too.
        let other = store.acquire("other", TTL).await.unwrap();
        fs::remove_file(store.lease_paths("other").unwrap().1).unwrap();
        assert!(matches!(
            store.put("certs/a", b"x", &other).await,
            Err(StorageError::LeaseLost { .. })
        ));
        assert_eq!(store.get("certs/a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_slot_renews_on_the_clock_and_keeps_writes_going() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let store = FileStore::new(dir.path(), clock.clone());
        let slot = LeaseSlot::default();
        assert!(matches!(
            keep_lease(&store, &slot, clock.now()).await,
            Err(StorageError::NoLease)
        ));
        slot.fill(
            store
                .acquire("certificates", Duration::from_secs(300))
                .await
                .unwrap(),
        );
        let first = slot.current().unwrap();
        assert_eq!(
            first.renew_at(),
            clock.now() + chrono::Duration::seconds(200)
        );

        // Before its renewal time the lease is kept as it is...
        clock.advance(chrono::Duration::seconds(199));
        let kept = keep_lease(&store, &slot, clock.now()).await.unwrap();
        assert_eq!(kept.expires(), first.expires());
        // ...at it, it is renewed for a full time-to-live from now.
        clock.advance(chrono::Duration::seconds(1));
        let kept = keep_lease(&store, &slot, clock.now()).await.unwrap();
        assert_eq!(kept.expires(), clock.now() + chrono::Duration::seconds(300));
        assert_eq!(kept.token(), first.token());
        assert_eq!(slot.current().unwrap().expires(), kept.expires());

        // A long pause: writes are refused until the holder renews.
        clock.advance(chrono::Duration::hours(17));
        let stale = slot.current().unwrap();
        assert!(matches!(
            store.put("certs/x", b"x", &stale).await,
            Err(StorageError::LeaseExpired { .. })
        ));
        let kept = keep_lease(&store, &slot, clock.now()).await.unwrap();
        store.put("certs/x", b"x", &kept).await.unwrap();
    }
}
