//! The one interface statistics keep to their storage engine: an ordered
//! key-value store with atomic, durable batches ([`StatsStore`]). Two engines
//! implement it: sled on disk ([`SledStore`]), and memory ([`MemoryStore`]),
//! which keeps counting when the disk store cannot be opened. Everything above
//! this file is engine-agnostic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// What went wrong in the statistics store; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StatsStoreError {
    #[error(
        "cannot open the statistics store at {path}: {source}; {hint}. The site is served anyway, and statistics are counted in memory until the next restart"
    )]
    Open {
        path: PathBuf,
        source: Cause,
        hint: &'static str,
    },
    #[error(
        "the statistics store failed: {0}; check the disk (space, permissions) under data/stats"
    )]
    Engine(#[source] Cause),
    /// The statistics tables a cluster shares in PostgreSQL failed (the
    /// engine is unreachable, or a query failed).
    #[error("the shared statistics in PostgreSQL: {0}")]
    Shared(#[source] Cause),
    #[error(
        "the statistics store holds a bad record ({0}); move data/stats aside and restart to start a new store"
    )]
    Corrupt(String),
    #[error(
        "the statistics store was written by a newer quire (schema {found}, this binary knows {supported}); run the newer quire, or move data/stats aside to start over"
    )]
    NewerSchema { found: u32, supported: u32 },
    #[error("no migration from statistics schema {from}; this quire cannot read that store")]
    NoMigration { from: u32 },
    #[error(
        "the statistics store is still open in the quire process this one replaces; views are kept in memory and written once it has exited"
    )]
    Waiting,
}

/// What an engine reported, kept whole so that its cause chain is printed;
/// a plain message (`"...".into()`) when the failure is quire's own finding.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Writes applied together or not at all. Later writes to a key replace
/// earlier ones, and [`Batch::pending`] reads them back before they land.
#[derive(Debug, Default)]
pub struct Batch {
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Batch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// `Some(write)` when the batch already writes `key`.
    pub fn pending(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|v| v.as_deref())
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// An ordered key-value store with atomic, durable batches.
pub trait StatsStore: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StatsStoreError>;
    /// Up to `limit` entries with `start <= key < end`, in key order.
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StatsStoreError>;
    /// Applies every write of `batch` atomically; when it returns, they are
    /// on disk (for engines that have one).
    fn apply(&self, batch: Batch) -> Result<(), StatsStoreError>;
    /// Where the data lives, for messages.
    fn describe(&self) -> String;
    /// Bytes on disk, for engines that have a disk, as last measured. Read
    /// on the request path (`/metrics`): never waits on the disk or a lock.
    fn size_on_disk(&self) -> Option<u64> {
        None
    }
    /// Makes the store usable again after an operation failed, for engines
    /// that stay broken until then. Called before retrying.
    fn recover(&self) -> Result<(), StatsStoreError> {
        Ok(())
    }
}

/// A shared store is a store: the server and a test (or a bench) can hold
/// the same one.
impl<S: StatsStore + ?Sized> StatsStore for std::sync::Arc<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StatsStoreError> {
        (**self).get(key)
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StatsStoreError> {
        (**self).range(start, end, limit)
    }

    fn apply(&self, batch: Batch) -> Result<(), StatsStoreError> {
        (**self).apply(batch)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }

    fn size_on_disk(&self) -> Option<u64> {
        (**self).size_on_disk()
    }

    fn recover(&self) -> Result<(), StatsStoreError> {
        (**self).recover()
    }
}

/// The store of a server whose predecessor still holds the real one (an
/// upgrade in progress): every operation says so.
pub struct Waiting;

impl StatsStore for Waiting {
    fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StatsStoreError> {
        Err(StatsStoreError::Waiting)
    }

    fn range(&self, _: &[u8], _: &[u8], _: usize) -> Result<Entries, StatsStoreError> {
        Err(StatsStoreError::Waiting)
    }

    fn apply(&self, _: Batch) -> Result<(), StatsStoreError> {
        Err(StatsStoreError::Waiting)
    }

    fn describe(&self) -> String {
        "no store yet (the quire process being replaced still has it open)".into()
    }
}

/// Reads `key` as the batch would leave it.
pub fn read_through(
    store: &dyn StatsStore,
    batch: &Batch,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StatsStoreError> {
    match batch.pending(key) {
        Some(write) => Ok(write.map(<[u8]>::to_vec)),
        None => store.get(key),
    }
}

/// Statistics on disk, in sled.
pub struct SledStore {
    /// `None` between closing a failed database and opening it again.
    db: RwLock<Option<sled::Db>>,
    path: PathBuf,
    /// Set by any failed operation. Once sled has seen an I/O error (a full
    /// disk) it fails every later write until it is reopened, even after
    /// space is freed: [`StatsStore::recover`] reopens it.
    failed: AtomicBool,
    /// Bytes on disk, measured after each write and reopening (off the
    /// runtime, by whoever writes); [`UNMEASURED`] when unknown.
    size: AtomicU64,
}

/// How long a reopening waits for the lock its own dropped handle still
/// holds; seen to take a few milliseconds, under load.
const OWN_LOCK_RELEASE: Duration = Duration::from_secs(2);

/// [`SledStore::size`] when the last measurement failed.
const UNMEASURED: u64 = u64::MAX;

impl SledStore {
    /// Opens (or creates) the store in `dir`, a private directory.
    pub fn open(dir: &Path) -> Result<SledStore, StatsStoreError> {
        let db = open_sled(dir)?;
        Ok(SledStore {
            size: AtomicU64::new(measure(&db)),
            db: RwLock::new(Some(db)),
            path: dir.to_path_buf(),
            failed: AtomicBool::new(false),
        })
    }

    fn with_db<T>(
        &self,
        use_db: impl FnOnce(&sled::Db) -> sled::Result<T>,
    ) -> Result<T, StatsStoreError> {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        let Some(db) = db.as_ref() else {
            return Err(StatsStoreError::Engine(
                "it was closed after a failure and could not be opened again".into(),
            ));
        };
        use_db(db).map_err(|e| {
            self.failed.store(true, Ordering::Relaxed);
            StatsStoreError::Engine(e.into())
        })
    }

    /// Marks the store failed, as an I/O error would.
    #[cfg(test)]
    pub fn break_for_test(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// What `db` takes on disk, or [`UNMEASURED`]; reads the directory.
fn measure(db: &sled::Db) -> u64 {
    db.size_on_disk().unwrap_or(UNMEASURED)
}

fn open_sled(dir: &Path) -> Result<sled::Db, StatsStoreError> {
    open_sled_within(dir, Duration::ZERO)
}

/// Like [`open_sled`], but waits up to `patience` for the directory's lock,
/// for when this process has just dropped its own handle: sled's background
/// flusher lets go of the lock a moment after the handle is dropped.
fn open_sled_within(dir: &Path, patience: Duration) -> Result<sled::Db, StatsStoreError> {
    let open_error = |source: Cause, hint| StatsStoreError::Open {
        path: dir.to_path_buf(),
        source,
        hint,
    };
    crate::datadir::create_private_dir(dir).map_err(|e| {
        open_error(
            e.into(),
            "check that the data directory exists and belongs to the user running quire",
        )
    })?;
    let started = std::time::Instant::now();
    let opened = loop {
        let opened = sled::Config::new()
            .path(dir)
            // A blog's statistics are small; sled's default cache is 1 GiB.
            .cache_capacity(64 * 1024 * 1024)
            .open();
        match opened {
            Err(e) if is_locked(&e) && started.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => break opened,
        }
    };
    opened.map_err(|e| {
        let hint = match &e {
            sled::Error::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => {
                "the disk is full; free some space and restart"
            }
            e if is_locked(e) => {
                "another process (probably another quire) has it open; stop that process, or give this one its own [paths] data"
            }
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                "the directory is not writable by this user; fix its owner or permissions"
            }
            _ => {
                "the store looks damaged; move it aside (e.g. `mv data/stats data/stats.broken`) and restart to begin a new one"
            }
        };
        open_error(e.into(), hint)
    })
}

/// sled reports a taken directory lock as an I/O error, sometimes only in
/// its message.
fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
        || e.to_string().contains("lock")
}

impl StatsStore for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StatsStoreError> {
        self.with_db(|db| Ok(db.get(key)?.map(|v| v.to_vec())))
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StatsStoreError> {
        self.with_db(|db| {
            db.range(start..end)
                .take(limit)
                .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect()
        })
    }

    fn apply(&self, batch: Batch) -> Result<(), StatsStoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.writes {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.with_db(|db| {
            db.apply_batch(sled_batch)?;
            // sled only syncs on its own timer; a flushed batch must survive a crash.
            db.flush()?;
            self.size.store(measure(db), Ordering::Relaxed);
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("sled at {}", self.path.display())
    }

    fn size_on_disk(&self) -> Option<u64> {
        Some(self.size.load(Ordering::Relaxed)).filter(|&size| size != UNMEASURED)
    }

    fn recover(&self) -> Result<(), StatsStoreError> {
        if !self.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        // The old handle holds the directory's lock until it is dropped.
        drop(db.take());
        let reopened = open_sled_within(&self.path, OWN_LOCK_RELEASE)?;
        self.size.store(measure(&reopened), Ordering::Relaxed);
        *db = Some(reopened);
        self.failed.store(false, Ordering::Relaxed);
        Ok(())
    }
}

/// Statistics in memory: lost at exit, used when the disk store is unusable
/// (and by tests).
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StatsStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StatsStoreError> {
        Ok(self.entries().get(key).cloned())
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StatsStoreError> {
        Ok(self
            .entries()
            .range(start.to_vec()..end.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, batch: Batch) -> Result<(), StatsStoreError> {
        let mut entries = self.entries();
        for (key, value) in batch.writes {
            match value {
                Some(value) => entries.insert(key, value),
                None => entries.remove(&key),
            };
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "memory (not saved; see the error logged at start)".into()
    }
}

#[cfg(test)]
pub mod testing {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A memory store whose writes start failing after a set number
    /// succeed: a crash, or a full disk, at any chosen point. Like sled, it
    /// keeps failing after the disk has room again, until it is recovered
    /// ([`StatsStore::recover`]).
    pub struct Crashing {
        pub inner: MemoryStore,
        writes_left: AtomicUsize,
        /// A write failed and the store was not recovered since.
        broken: AtomicBool,
        /// Calls to [`StatsStore::recover`], made before every write attempt;
        /// each counted once its outcome is decided, so a test that acts on
        /// the count (frees space) cannot change the attempt it saw.
        reopened: AtomicUsize,
    }

    impl Default for Crashing {
        fn default() -> Crashing {
            Crashing {
                inner: MemoryStore::default(),
                writes_left: AtomicUsize::new(usize::MAX),
                broken: AtomicBool::new(false),
                reopened: AtomicUsize::new(0),
            }
        }
    }

    impl Crashing {
        pub fn fail_after(&self, writes: usize) {
            self.writes_left.store(writes, Ordering::SeqCst);
        }

        /// The disk has room again; the store itself stays broken until recovered.
        pub fn free_space(&self) {
            self.fail_after(usize::MAX);
        }

        pub fn reopen_attempts(&self) -> usize {
            self.reopened.load(Ordering::SeqCst)
        }
    }

    impl StatsStore for Crashing {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StatsStoreError> {
            self.inner.get(key)
        }

        fn range(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Entries, StatsStoreError> {
            self.inner.range(start, end, limit)
        }

        fn apply(&self, batch: Batch) -> Result<(), StatsStoreError> {
            let left = self.writes_left.load(Ordering::SeqCst);
            if left == 0 || self.broken.load(Ordering::SeqCst) {
                self.broken.store(true, Ordering::SeqCst);
                return Err(StatsStoreError::Engine("simulated failure".into()));
            }
            self.writes_left
                .store(left.saturating_sub(1), Ordering::SeqCst);
            self.inner.apply(batch)
        }

        fn describe(&self) -> String {
            "crashing".into()
        }

        fn recover(&self) -> Result<(), StatsStoreError> {
            let full = self.writes_left.load(Ordering::SeqCst) == 0;
            if !full {
                self.broken.store(false, Ordering::SeqCst);
            }
            self.reopened.fetch_add(1, Ordering::SeqCst);
            match full {
                true => Err(StatsStoreError::Engine(
                    "simulated failure to reopen".into(),
                )),
                false => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn StatsStore) {
        let mut batch = Batch::default();
        batch.put(b"a1".to_vec(), b"x".to_vec());
        batch.put(b"a2".to_vec(), b"y".to_vec());
        batch.put(b"b1".to_vec(), b"z".to_vec());
        assert_eq!(
            read_through(store, &batch, b"a2").unwrap(),
            Some(b"y".to_vec())
        );
        store.apply(batch).unwrap();
        let mut batch = Batch::default();
        batch.delete(b"a1".to_vec());
        assert_eq!(read_through(store, &batch, b"a1").unwrap(), None);
        store.apply(batch).unwrap();
        let keys: Vec<Vec<u8>> = store
            .range(b"a", b"b", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"a2".to_vec()]);
        assert_eq!(store.range(b"a", b"c", 1).unwrap().len(), 1);
    }

    #[test]
    fn both_engines_behave_alike() {
        exercise(&MemoryStore::default());
        let dir = tempfile::tempdir().unwrap();
        exercise(&SledStore::open(&dir.path().join("stats")).unwrap());
    }

    #[test]
    fn a_failed_sled_store_is_reopened_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("stats")).unwrap();
        let mut batch = Batch::default();
        batch.put(b"k".to_vec(), b"before".to_vec());
        store.apply(batch).unwrap();
        store.break_for_test();
        store
            .recover()
            .expect("the lock was released and the store reopened");
        assert_eq!(store.get(b"k").unwrap(), Some(b"before".to_vec()));
        let mut batch = Batch::default();
        batch.put(b"k".to_vec(), b"after".to_vec());
        store.apply(batch).unwrap();
        store.recover().unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(b"after".to_vec()));
    }

    #[test]
    fn the_size_on_disk_is_answered_while_the_store_is_being_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SledStore::open(&dir.path().join("stats")).unwrap());
        let mut batch = Batch::default();
        batch.put(b"k".to_vec(), vec![7; 4096]);
        store.apply(batch).unwrap();
        // What recover() holds while sled reopens, for as long as that takes.
        let reopening = store.db.write().unwrap();
        let (answer, answered) = std::sync::mpsc::channel();
        let scrape = std::thread::spawn({
            let store = store.clone();
            move || answer.send(store.size_on_disk())
        });
        // A bound for a broken build only: a working one answers at once.
        let size = answered.recv_timeout(std::time::Duration::from_secs(30));
        drop(reopening);
        scrape.join().unwrap().ok();
        assert!(size.expect("answered without waiting").unwrap() > 0);
    }

    #[test]
    fn a_store_in_use_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        let _first = SledStore::open(&path).unwrap();
        let error = SledStore::open(&path).err().expect("locked").to_string();
        assert!(error.contains("another process"), "{error}");
        assert!(error.contains("counted in memory"), "{error}");
    }

    #[test]
    fn a_damaged_store_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("conf"), b"\xff\xfe garbage").unwrap();
        std::fs::write(path.join("db"), vec![0xA5u8; 4096]).unwrap();
        let error = SledStore::open(&path).err().expect("damaged").to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(
            error.contains("move it aside") || error.contains("mv "),
            "{error}"
        );
    }
}
