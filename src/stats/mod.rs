//! Reading statistics without cookies or personal data. The stages, one file
//! each: `recorder` (the request path, memory only), `privacy` (visitor keys,
//! salts, bots, referrers), `flush` (memory to store, bounded by `caps`),
//! `maintain` (roll-up, forgetting, pruning), `report` (queries and tables),
//! over `schema` (the layout) and `store` (the engine: sled, or memory when
//! sled is unusable). `backend` is the seam a running server writes through:
//! any `store` is a backend, and another engine can be one.
//!
//! [`Stats`] ties them together for a running server: it owns the backend,
//! keeps what a failed flush could not write and tries again (`tasks` runs
//! the flusher and maintenance on the injected clock), and never lets a
//! statistics failure reach the site. What the backend cannot take at
//! shutdown waits in the `outbox` (a `parcel`) for the next start (`kept`).

pub mod backend;
pub mod caps;
pub mod command;
pub mod dump;
pub mod flush;
pub mod kept;
pub mod maintain;
pub mod outbox;
pub mod parcel;
pub mod postgres;
pub mod privacy;
pub mod recorder;
pub mod report;
pub mod schema;
pub mod shared_salts;
pub mod store;
pub mod tasks;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::datadir::DataDir;
pub use backend::{Drained, Sealed, StatsBackend};
pub use flush::Flushed;
use kept::Carryover;
pub use kept::{Kept, Unsaved};
pub use maintain::{Maintained, Retention};
pub use recorder::{Hit, HitKind, Recorder, RecorderSettings};
pub use report::Report;
use schema::Day;
pub use store::{MemoryStore, SledStore, StatsStore, StatsStoreError, Waiting};

/// Views held in memory between flushes, at most (about 100 bytes each);
/// also the most kept for a store that fails.
const BUFFER_CAPACITY: usize = 200_000;

/// The longest wait between attempts to write to a failing store: once the
/// disk has room again, statistics are written within this long.
pub const RETRY_CAP: Duration = Duration::from_secs(60);

/// What `/ready` and the dashboard say about the statistics store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Views reach the durable store.
    Writing,
    /// The store failed; views wait in memory and writing is retried.
    Retrying(String),
    /// Views do not reach a durable store (kept in memory only, or the store
    /// is not attached yet).
    Unwritable(String),
}

/// The statistics of a running server. Cheap to clone.
#[derive(Clone)]
pub struct Stats {
    shared: Arc<Shared>,
}

struct Shared {
    recorder: Recorder,
    /// Empty while the quire this process replaces still holds the store
    /// (an upgrade); views wait in memory meanwhile.
    store: OnceLock<Attached>,
    /// Serialises writers (flusher, maintenance), and keeps the views a
    /// failed flush could not write, to try again.
    unwritten: Mutex<Unwritten>,
    clock: SharedClock,
    retention: Retention,
    flush_every: Duration,
    /// Where the outbox is reserved once a durable store is attached.
    outbox: Option<PathBuf>,
    /// Why the last flush failed; cleared by one that works.
    last_flush_error: Mutex<Option<String>>,
    flushed: AtomicU64,
    /// Views dropped because the store failed so long that what it could
    /// not take outgrew the buffer; since start.
    overflowed: AtomicU64,
    /// Views a failed flush left waiting, as of the last flush; read without
    /// waiting for a flush in progress.
    waiting: AtomicU64,
    /// The sequence number of the next drained batch.
    next_batch: AtomicU64,
    /// Where this node stands with the salts of a backend shared by
    /// several nodes.
    salt_check: Mutex<shared_salts::SaltCheck>,
}

struct Attached {
    store: Box<dyn StatsBackend>,
    /// False when the disk store was unusable and counting is in memory.
    persistent: bool,
}

#[derive(Default)]
struct Unwritten {
    views: Vec<recorder::View>,
    /// The batches `views` were drained in, each named when drained.
    batches: Vec<Sealed>,
    carryover: Carryover,
}

impl Unwritten {
    fn is_empty(&self) -> bool {
        self.views.is_empty() && self.batches.iter().all(|b| b.dropped == 0)
    }

    /// Drops the `excess` oldest views; the batches they came from lose them.
    fn trim(&mut self, excess: usize) {
        self.views.drain(..excess);
        let mut left = excess;
        for batch in &mut self.batches {
            let taken = batch.views.min(left);
            batch.views -= taken;
            left -= taken;
        }
        self.batches.retain(|b| b.views > 0 || b.dropped > 0);
    }
}

/// Settings for [`Stats::new`], taken from the config by [`Stats::open`].
#[derive(Debug, Clone)]
pub struct StatsSettings {
    pub recorder: RecorderSettings,
    pub flush_every: Duration,
    pub retention: Retention,
    /// Where to keep what the store cannot take at shutdown; `None` drops it.
    pub outbox: Option<PathBuf>,
}

impl StatsSettings {
    pub fn from_config(config: &Config) -> StatsSettings {
        let site = config.canonical_domain().as_str().to_string();
        let flush_every = config.stats.flush_every;
        StatsSettings {
            recorder: RecorderSettings {
                own_hosts: config
                    .domains
                    .iter()
                    .filter_map(crate::names::SiteName::host)
                    .map(|d| d.as_str().to_string())
                    .collect(),
                site,
                respect_opt_out: config.stats.respect_dnt,
                capacity: BUFFER_CAPACITY,
            },
            flush_every,
            retention: Retention {
                hourly_days: config.stats.hourly_retention_days,
                daily_days: config.stats.daily_retention_days,
                settle: flush_every * 2 + Duration::from_secs(60),
            },
            outbox: Some(DataDir::new(&config.paths.data).stats_outbox()),
        }
    }
}

/// The first batch number of this process: the wall clock in nanoseconds
/// (not the injected clock: what matters is that a restarted node never
/// reuses a number an earlier run of it sent, within the days a shared
/// backend remembers them).
fn first_batch_number() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64)
}

/// Opens the sled store under `data/stats`.
pub fn open_disk_store(data: &Path) -> Result<SledStore, StatsStoreError> {
    SledStore::open(&DataDir::new(data).stats())
}

impl Stats {
    /// The server's statistics: on disk, or, when the disk store cannot be
    /// used, in memory with the reason logged. Never fails.
    pub fn open(config: &Config, clock: SharedClock) -> Stats {
        let stats = Stats::unattached(StatsSettings::from_config(config), clock, Vec::new());
        stats.attach_opened(open_disk_store(&config.paths.data));
        stats
    }

    /// Statistics whose store is still held by the quire this process
    /// replaces: views are counted with that process's `salts` (so a reader
    /// stays one visitor across the upgrade) and kept in memory until
    /// [`Stats::attach_opened`].
    pub fn awaiting_store(
        settings: StatsSettings,
        clock: SharedClock,
        salts: Vec<(Day, privacy::Salt)>,
    ) -> Stats {
        Stats::unattached(settings, clock, salts)
    }

    /// Starts writing to the `opened` disk store; when it could not be
    /// opened or used, counts in memory and logs why. Returns whether the
    /// disk store is in use.
    pub fn attach_opened(&self, opened: Result<SledStore, StatsStoreError>) -> bool {
        let attached = opened
            .and_then(|store| self.attach(Box::new(store), true))
            .or_else(|e| {
                tracing::error!("{e}");
                self.attach(Box::new(MemoryStore::default()), false)
            });
        attached.unwrap_or(false)
    }

    /// Statistics over `store`, brought to the current schema first.
    pub fn new(
        store: Box<dyn StatsBackend>,
        settings: StatsSettings,
        clock: SharedClock,
    ) -> Result<Stats, StatsStoreError> {
        let stats = Stats::unattached(settings, clock, Vec::new());
        stats.attach(store, true)?;
        Ok(stats)
    }

    fn unattached(
        settings: StatsSettings,
        clock: SharedClock,
        salts: Vec<(Day, privacy::Salt)>,
    ) -> Stats {
        let recorder = Recorder::new(
            settings.recorder,
            Arc::new(privacy::Salts::from_stored(salts)),
            clock.clone(),
        );
        Stats {
            shared: Arc::new(Shared {
                recorder,
                store: OnceLock::new(),
                unwritten: Mutex::new(Unwritten::default()),
                clock,
                retention: settings.retention,
                flush_every: settings.flush_every,
                outbox: settings.outbox,
                last_flush_error: Mutex::new(None),
                flushed: AtomicU64::new(0),
                overflowed: AtomicU64::new(0),
                waiting: AtomicU64::new(0),
                next_batch: AtomicU64::new(first_batch_number()),
                salt_check: Mutex::new(Default::default()),
            }),
        }
    }

    /// Migrates `store`, adopts the salts it kept, and makes it the store.
    /// `persistent`: whether it keeps what it is given across a restart.
    fn attach(
        &self,
        store: Box<dyn StatsBackend>,
        persistent: bool,
    ) -> Result<bool, StatsStoreError> {
        for step in store.migrate()? {
            tracing::info!("statistics store migrated: {step}");
        }
        self.shared.recorder.salts().adopt(store.salts()?);
        let _ = self.shared.store.set(Attached { store, persistent });
        if persistent && let Some(path) = &self.shared.outbox {
            self.open_outbox(path);
        }
        Ok(persistent)
    }

    /// Reserves the outbox, and adds to the store what the last run left
    /// in it (or, while the store fails, keeps it for the flusher to add).
    fn open_outbox(&self, path: &Path) {
        let carryover = Carryover::open(path);
        if let Some(salts) = carryover.pending_salts() {
            self.shared.recorder.salts().adopt(salts.to_vec());
        }
        let pending = carryover.has_pending();
        self.writer().carryover = carryover;
        if pending && let Err(e) = self.flush_now() {
            tracing::error!(
                "{e}; the views kept in {} stay there and are added when the store works again",
                path.display()
            );
        }
    }

    pub fn recorder(&self) -> &Recorder {
        &self.shared.recorder
    }

    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// The store, or [`Waiting`] before one is attached.
    pub fn store(&self) -> &dyn StatsBackend {
        match self.shared.store.get() {
            Some(attached) => attached.store.as_ref(),
            None => &Waiting,
        }
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Unwritten> {
        self.shared
            .unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Names the batch of `views` views just drained (and `dropped` more),
    /// if there is one.
    fn seal(&self, unwritten: &mut Unwritten, views: usize, dropped: u64) {
        if views == 0 && dropped == 0 {
            return;
        }
        let seq = self.shared.next_batch.fetch_add(1, Ordering::Relaxed);
        unwritten.batches.push(Sealed {
            seq,
            views,
            dropped,
        });
    }

    /// Writes what the recorder holds. Blocking: call it off the runtime.
    /// When the store fails, the views are kept (up to the buffer size) and
    /// written by a later flush, which first reopens the store if it must.
    pub fn flush_now(&self) -> Result<Flushed, StatsStoreError> {
        let shared = &*self.shared;
        let mut unwritten = self.writer();
        let (views, dropped) = shared.recorder.drain();
        self.seal(&mut unwritten, views.len(), dropped);
        unwritten.views.extend(views);
        let capacity = shared.recorder.capacity();
        let excess = unwritten.views.len().saturating_sub(capacity);
        if excess > 0 {
            if shared.overflowed.load(Ordering::Relaxed) == 0 {
                tracing::error!(
                    "the statistics store has failed for so long that {capacity} views wait for it; older views are dropped (counted as dropped) until it works again"
                );
            }
            // Should the oldest batch have been added after all (its reply
            // lost), its trimmed views are counted as dropped as well.
            unwritten.trim(excess);
            self.seal(&mut unwritten, 0, excess as u64);
            shared
                .overflowed
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        if unwritten.is_empty() && !unwritten.carryover.has_pending() {
            return Ok(Flushed::default());
        }
        let salts = shared.recorder.salts().current();
        let now = shared.clock.now();
        let outcome = (|| {
            self.store().recover()?;
            let merged = unwritten.carryover.merge(self.store(), &salts, now)?;
            shared.flushed.fetch_add(merged, Ordering::Relaxed);
            let drained = Drained {
                views: &unwritten.views,
                batches: &unwritten.batches,
            };
            self.store().flush(&drained, &salts, now)
        })();
        let mut last_error = shared
            .last_flush_error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(flushed) => {
                *last_error = None;
                shared
                    .flushed
                    .fetch_add(flushed.views as u64, Ordering::Relaxed);
                // The outbox stays reserved for the shutdown to come.
                unwritten.views = Vec::new();
                unwritten.batches = Vec::new();
                shared.waiting.store(0, Ordering::Relaxed);
                Ok(flushed)
            }
            Err(e) => {
                *last_error = Some(e.to_string());
                let pending = unwritten.carryover.pending();
                shared
                    .waiting
                    .store(unwritten.views.len() as u64 + pending, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The last flush, at shutdown. What the store cannot take is written
    /// into the outbox reserved at start, and added at the next start.
    /// Returns `None` when the store took everything.
    pub fn flush_at_exit(&self) -> Result<Option<Kept>, Unsaved> {
        let error = match self.flush_now() {
            Ok(_) => return Ok(None),
            Err(error) => error,
        };
        let unwritten = self.writer();
        let salts = self.shared.recorder.salts().current();
        let drained = Drained {
            views: &unwritten.views,
            batches: &unwritten.batches,
        };
        unwritten.carryover.keep(&drained, salts, error).map(Some)
    }

    /// Whether the store is still held by the process this one replaces.
    pub fn is_awaiting_store(&self) -> bool {
        self.shared.store.get().is_none()
    }

    /// Whether views reach a durable store, and if not, why.
    pub fn health(&self) -> StoreHealth {
        if self.shared.store.get().is_none() {
            return StoreHealth::Unwritable(StatsStoreError::Waiting.to_string());
        }
        if self.shared.store.get().is_some_and(|a| !a.persistent) {
            return StoreHealth::Unwritable(
                "statistics are counted in memory: the disk store could not be opened (the log at start says why)"
                    .into(),
            );
        }
        let last_error = self
            .shared
            .last_flush_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match last_error {
            None => StoreHealth::Writing,
            Some(e) => {
                let waiting = self.shared.waiting.load(Ordering::Relaxed);
                let dropped = self.shared.overflowed.load(Ordering::Relaxed);
                StoreHealth::Retrying(format!(
                    "the last flush failed: {e}. {waiting} views wait in memory and are written when it works again (retried with backoff, up to every {}s){}",
                    RETRY_CAP.as_secs(),
                    if dropped > 0 {
                        format!("; {dropped} were dropped because the buffer was full")
                    } else {
                        String::new()
                    }
                ))
            }
        }
    }

    /// Views written to the store since start.
    pub fn flushed(&self) -> u64 {
        self.shared.flushed.load(Ordering::Relaxed)
    }

    /// Views dropped since start: by the recorder under overload, and from
    /// the buffer when the store failed for too long.
    pub fn dropped(&self) -> u64 {
        self.shared.recorder.totals().1 + self.shared.overflowed.load(Ordering::Relaxed)
    }

    /// Rolls up, forgets and prunes as of now. Blocking.
    pub fn maintain_now(&self) -> Result<Maintained, StatsStoreError> {
        let shared = &*self.shared;
        let _writer = self.writer();
        self.store().recover()?;
        let now = shared.clock.now();
        let done = self.store().maintain(now, &shared.retention)?;
        let settle = chrono::Duration::from_std(shared.retention.settle).unwrap_or_default();
        shared.recorder.salts().forget_before(Day::of(now - settle));
        Ok(done)
    }

    /// The last `days` days, today included. Blocking.
    pub fn report(&self, days: u32, top: usize) -> Result<Report, StatsStoreError> {
        let today = Day::of(self.shared.clock.now());
        self.store()
            .report(today.minus(days.max(1) - 1), today, top)
    }
}

/// What the tests of the running statistics share.
#[cfg(test)]
pub mod fixtures;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::fixtures::{noon, record, settings};
    use super::store::testing::Crashing;
    use super::*;

    #[test]
    fn views_a_failed_flush_could_not_write_are_written_later() {
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), settings(), noon()).unwrap();
        record(&stats, "192.0.2.1");
        store.fail_after(0);
        assert!(stats.flush_now().is_err(), "the disk is full");
        record(&stats, "192.0.2.2");
        assert!(stats.flush_now().is_err());
        store.free_space();
        assert_eq!(stats.flush_now().unwrap().views, 2);
        let total = stats.report(1, 10).unwrap().total;
        assert_eq!((total.views, total.visitors), (2, 2));
        assert_eq!(stats.flush_now().unwrap().views, 0, "written once");
    }

    #[test]
    fn a_store_failing_too_long_drops_the_oldest_views_and_counts_them() {
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), settings(), noon()).unwrap();
        store.fail_after(0);
        let kept = settings().recorder.capacity as u64;
        let mut round = 0;
        while stats.recorder().totals().0 < kept + 200 {
            for i in 0..50 {
                record(&stats, &format!("192.0.{}.{i}", round % 250));
            }
            assert!(stats.flush_now().is_err());
            round += 1;
        }
        let (recorded, shed) = stats.recorder().totals();
        assert_eq!(stats.dropped(), shed + recorded - kept);
        store.free_space();
        assert_eq!(stats.flush_now().unwrap().views as u64, kept);
        let total = stats.report(1, 10).unwrap().total;
        assert_eq!((total.views, total.dropped), (kept, shed + recorded - kept));
    }

    #[test]
    fn a_successor_counts_with_the_handed_salts_and_writes_once_the_store_is_free() {
        let clock = noon();
        // The process being replaced counts one reader, and exits.
        let disk = Arc::new(MemoryStore::default());
        let old = Stats::new(Box::new(disk.clone()), settings(), clock.clone()).unwrap();
        record(&old, "192.0.2.1");
        let salts = old.recorder().salts().current();
        assert_eq!(old.flush_now().unwrap().views, 1);
        drop(old);

        // The successor counts the same reader before it has the store.
        let new = Stats::awaiting_store(settings(), clock, salts);
        record(&new, "192.0.2.1");
        assert!(matches!(new.flush_now(), Err(StatsStoreError::Waiting)));
        assert!(new.is_awaiting_store());
        assert!(
            matches!(new.health(), StoreHealth::Unwritable(_)),
            "not writable before the store"
        );
        assert!(new.attach(Box::new(disk), true).unwrap());
        assert_eq!(
            new.flush_now().unwrap().views,
            1,
            "the waiting view is written"
        );
        let total = new.report(1, 10).unwrap().total;
        assert_eq!((total.views, total.visitors), (2, 1), "still one reader");
        assert_eq!(new.health(), StoreHealth::Writing);
        assert!(!new.is_awaiting_store());
    }
}
