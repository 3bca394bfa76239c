//! Reading statistics without cookies or personal data. The stages, one file
//! each: `recorder` (the request path, memory only), `privacy` (visitor keys,
//! salts, bots, referrers), `flush` (memory to store), `maintain` (roll-up,
//! forgetting, pruning), `report` (queries and tables), over `schema` (the
//! layout) and `store` (the engine: sled, or memory when sled is unusable).
//!
//! [`Stats`] ties them together for a running server: it owns the store, runs
//! the flusher and maintenance tasks on the injected clock, and never lets a
//! statistics failure reach the site. What the store cannot take at shutdown
//! waits in the `outbox` for the next start.

pub mod command;
pub mod dump;
pub mod flush;
pub mod maintain;
pub mod outbox;
pub mod privacy;
pub mod recorder;
pub mod report;
pub mod schema;
pub mod store;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::shutdown::Shutdown;
pub use flush::Flushed;
pub use maintain::{Maintained, Retention};
use outbox::{Found, Outbox, Parcel, Seal};
pub use recorder::{Hit, HitKind, Recorder, RecorderSettings};
pub use report::Report;
use schema::{Day, Hour};
pub use store::{MemoryStore, SledStore, StatsStore, StatsStoreError, Waiting};

/// Views held in memory between flushes, at most (about 100 bytes each);
/// also the most kept for a store that fails.
const BUFFER_CAPACITY: usize = 200_000;

/// The longest wait between attempts to write to a failing store: once the
/// disk has room again, statistics are written within this long.
pub const RETRY_CAP: Duration = Duration::from_secs(60);

/// The wait before attempt `failures + 1`: 1 s, doubling, up to [`RETRY_CAP`].
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(RETRY_CAP)
}

/// Views the store could not take at shutdown, kept in the outbox.
#[derive(Debug)]
pub struct Kept {
    pub views: u64,
    /// Views that did not fit in the outbox, kept there as a dropped count.
    pub folded: u64,
    pub outbox: PathBuf,
    pub error: StatsStoreError,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; the last {} statistics views were kept in {} and are added to the store at the next start",
            self.error,
            self.views,
            self.outbox.display()
        )?;
        if self.folded > 0 {
            write!(
                f,
                " ({} more did not fit and are counted as dropped)",
                self.folded
            )?;
        }
        Ok(())
    }
}

/// Views lost at shutdown: the store could not take them, nor the outbox.
#[derive(Debug, thiserror::Error)]
#[error("the last {views} statistics views were not saved: {error}; {why}")]
pub struct Unsaved {
    pub views: u64,
    pub error: StatsStoreError,
    pub why: String,
}

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
}

struct Attached {
    store: Box<dyn StatsStore>,
    /// False when the disk store was unusable and counting is in memory.
    persistent: bool,
}

#[derive(Default)]
struct Unwritten {
    views: Vec<recorder::View>,
    dropped: u64,
    /// What the last run left in the outbox, until the store has it.
    pending: Option<(Parcel, Seal)>,
    /// Reserved while a durable store is attached.
    outbox: Option<Outbox>,
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
        store: Box<dyn StatsStore>,
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
            }),
        }
    }

    /// Migrates `store`, adopts the salts it kept, and makes it the store.
    /// `persistent`: whether it keeps what it is given across a restart.
    fn attach(
        &self,
        store: Box<dyn StatsStore>,
        persistent: bool,
    ) -> Result<bool, StatsStoreError> {
        for step in schema::migrate(store.as_ref(), schema::MIGRATIONS, schema::SCHEMA_VERSION)? {
            tracing::info!("statistics store migrated: {step}");
        }
        self.shared
            .recorder
            .salts()
            .adopt(flush::stored_salts(store.as_ref())?);
        let _ = self.shared.store.set(Attached { store, persistent });
        if persistent {
            self.open_outbox();
        }
        Ok(persistent)
    }

    /// Reserves the outbox, and adds to the store what the last run left
    /// in it (or, while the store fails, keeps it for the flusher to add).
    fn open_outbox(&self) {
        let Some(path) = &self.shared.outbox else {
            return;
        };
        let outbox = match Outbox::reserve(path) {
            Ok(outbox) => outbox,
            Err(e) => return tracing::error!("{e}"),
        };
        let mut unwritten = self.writer();
        match outbox.read() {
            Ok(Found::Empty) => unwritten.outbox = Some(outbox),
            Ok(Found::Parcel(parcel, seal)) => {
                tracing::info!(
                    "{} holds {} statistics views kept at the last shutdown, when the store could not take them; adding them to the store",
                    path.display(),
                    parcel.count()
                );
                self.shared.recorder.salts().adopt(parcel.salts.clone());
                unwritten.pending = Some((parcel, seal));
                unwritten.outbox = Some(outbox);
                drop(unwritten);
                if let Err(e) = self.flush_now() {
                    tracing::error!(
                        "{e}; the views kept in {} stay there and are added when the store works again",
                        path.display()
                    );
                }
            }
            Ok(Found::Damaged(why)) => {
                let (moved, fresh) = outbox.set_aside();
                match moved {
                    Ok(aside) => tracing::error!(
                        "the statistics outbox {} is damaged ({why}); it was not added to the store, and was moved to {} for inspection: remove that file once you no longer need it",
                        path.display(),
                        aside.display()
                    ),
                    Err(e) => tracing::error!(
                        "the statistics outbox {} is damaged ({why}) and was not added to the store; {e}",
                        path.display()
                    ),
                }
                match fresh {
                    Ok(fresh) => unwritten.outbox = Some(fresh),
                    Err(e) => tracing::error!("{e}"),
                }
            }
            // Left alone, not written over: the next start reads it again.
            Err(e) => tracing::error!("{e}; it is read again at the next start"),
        }
    }

    /// Adds what the last run left in the outbox to the store, once: the
    /// batch records the parcel's seal, so a parcel the store already took
    /// (the process stopped before emptying the outbox) is not added again.
    fn merge_pending(&self, unwritten: &mut Unwritten) -> Result<(), StatsStoreError> {
        let Some((parcel, seal)) = &unwritten.pending else {
            return Ok(());
        };
        let store = self.store();
        let path = self
            .shared
            .outbox
            .as_deref()
            .unwrap_or(Path::new("the outbox"));
        if store.get(schema::OUTBOX_MERGED)?.as_deref() == Some(&seal[..]) {
            tracing::info!(
                "the store already has the views of {}; emptying it",
                path.display()
            );
        } else {
            let groups = parcel.views.iter().map(|(view, n)| (view, *n)).collect();
            let (mut batch, flushed) = flush::prepare(
                store,
                groups,
                parcel.dropped,
                &self.shared.recorder.salts().current(),
                self.shared.clock.now(),
            )?;
            batch.put(schema::OUTBOX_MERGED.to_vec(), seal.to_vec());
            store.apply(batch)?;
            self.shared
                .flushed
                .fetch_add(flushed.views as u64, Ordering::Relaxed);
            tracing::info!(
                "recovered {} statistics views from {} into the store{}",
                flushed.views,
                path.display(),
                match parcel.dropped {
                    0 => String::new(),
                    n => format!(" ({n} more had been dropped and are counted as dropped)"),
                }
            );
        }
        unwritten.pending = None;
        if let Some(outbox) = &unwritten.outbox
            && let Err(e) = outbox.clear()
        {
            tracing::warn!("{e}; the store has its views and will not add them twice");
        }
        Ok(())
    }

    pub fn recorder(&self) -> &Recorder {
        &self.shared.recorder
    }

    /// The store, or [`Waiting`] before one is attached.
    pub fn store(&self) -> &dyn StatsStore {
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

    /// Writes what the recorder holds. Blocking: call it off the runtime.
    /// When the store fails, the views are kept (up to the buffer size) and
    /// written by a later flush, which first reopens the store if it must.
    pub fn flush_now(&self) -> Result<Flushed, StatsStoreError> {
        let shared = &*self.shared;
        let mut unwritten = self.writer();
        let (views, dropped) = shared.recorder.drain();
        unwritten.views.extend(views);
        unwritten.dropped += dropped;
        let capacity = shared.recorder.capacity();
        let excess = unwritten.views.len().saturating_sub(capacity);
        if excess > 0 {
            if shared.overflowed.load(Ordering::Relaxed) == 0 {
                tracing::error!(
                    "the statistics store has failed for so long that {capacity} views wait for it; older views are dropped (counted as dropped) until it works again"
                );
            }
            unwritten.views.drain(..excess);
            unwritten.dropped += excess as u64;
            shared
                .overflowed
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        if unwritten.views.is_empty() && unwritten.dropped == 0 && unwritten.pending.is_none() {
            return Ok(Flushed::default());
        }
        let outcome = (|| {
            self.store().recover()?;
            self.merge_pending(&mut unwritten)?;
            flush::flush(
                self.store(),
                &unwritten.views,
                unwritten.dropped,
                &shared.recorder.salts().current(),
                shared.clock.now(),
            )
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
                *unwritten = Unwritten {
                    outbox: unwritten.outbox.take(),
                    ..Unwritten::default()
                };
                shared.waiting.store(0, Ordering::Relaxed);
                Ok(flushed)
            }
            Err(e) => {
                *last_error = Some(e.to_string());
                let pending = unwritten.pending.as_ref().map_or(0, |(p, _)| p.count());
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
        let (pending, pending_dropped) = match &unwritten.pending {
            Some((parcel, _)) => (parcel.views.clone(), parcel.dropped),
            None => (Vec::new(), 0),
        };
        let parcel = Parcel::new(
            unwritten
                .views
                .iter()
                .map(|view| (view.clone(), 1))
                .chain(pending),
            unwritten.dropped + pending_dropped,
            self.shared.recorder.salts().current(),
        );
        let views = parcel.count();
        // Only an attached durable store reserves the outbox: a successor
        // still waiting for its predecessor leaves it to that process.
        let Some(outbox) = &unwritten.outbox else {
            return Err(Unsaved {
                views,
                error,
                why: "there is no outbox to keep them in (the log at start says why)".into(),
            });
        };
        match outbox.put(&parcel) {
            Ok((_, folded)) => Ok(Some(Kept {
                views: views - folded,
                folded,
                outbox: outbox.path().to_path_buf(),
                error,
            })),
            Err(e) => Err(Unsaved {
                views,
                error,
                why: e.to_string(),
            }),
        }
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
        let done = maintain::maintain(self.store(), now, &shared.retention)?;
        let settle = chrono::Duration::from_std(shared.retention.settle).unwrap_or_default();
        shared.recorder.salts().forget_before(Day::of(now - settle));
        Ok(done)
    }

    /// The last `days` days, today included. Blocking.
    pub fn report(&self, days: u32, top: usize) -> Result<Report, StatsStoreError> {
        let today = Day::of(self.shared.clock.now());
        report::report(self.store(), today.minus(days.max(1) - 1), today, top)
    }

    /// Flushes every `flush_every`, or sooner when a buffer is half full,
    /// until shutdown; the last flush is the caller's, once the listeners
    /// have drained. A failed flush is retried after 1 s, 2 s, 4 s... up to
    /// [`RETRY_CAP`], whatever the buffers do, until one works.
    ///
    /// Each wait counts from when the previous attempt started (the first
    /// from this call), so moving an injected clock is enough to drive it.
    pub fn run_flusher(
        self,
        shutdown: Shutdown,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let clock = self.shared.clock.clone();
        // A wait past what a date can hold (a huge flush_every) means never,
        // not a panic.
        let after = |from: chrono::DateTime<chrono::Utc>, wait: Duration| {
            chrono::Duration::from_std(wait)
                .ok()
                .and_then(|wait| from.checked_add_signed(wait))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        };
        let mut next = after(clock.now(), self.shared.flush_every);
        async move {
            let mut failures: u32 = 0;
            loop {
                let filling = async {
                    if failures == 0 {
                        self.shared.recorder.filling().await
                    } else {
                        std::future::pending().await
                    }
                };
                tokio::select! {
                    () = clock.sleep_until(next) => {}
                    () = filling => {}
                    () = shutdown.wait() => return Ok(()),
                }
                let started = clock.now();
                let stats = self.clone();
                match tokio::task::spawn_blocking(move || stats.flush_now()).await? {
                    Ok(flushed) if failures > 0 => {
                        tracing::info!(
                            "statistics are being written again, after {failures} failed attempts; the {} views kept meanwhile are saved",
                            flushed.views
                        );
                        failures = 0;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let retry = retry_delay(failures).as_secs();
                        if failures == 1 {
                            tracing::error!(
                                "{e}; views are kept in memory and the flush is retried (in {retry}s, then less often, up to every {}s)",
                                RETRY_CAP.as_secs()
                            );
                        } else {
                            tracing::warn!(
                                "statistics flush attempt {failures} failed: {e}; next in {retry}s"
                            );
                        }
                    }
                }
                let wait = match failures {
                    0 => self.shared.flush_every,
                    n => retry_delay(n),
                };
                next = after(started, wait);
            }
        }
    }

    /// Runs maintenance now, then once an hour, just after each hour settles.
    pub async fn run_maintenance(self, shutdown: Shutdown) -> anyhow::Result<()> {
        loop {
            // The next run follows from when this one started: if the clock
            // passes another hour meanwhile, the next run comes at once.
            let started = self.shared.clock.now();
            let stats = self.clone();
            match tokio::task::spawn_blocking(move || stats.maintain_now()).await? {
                Ok(done) if done != Maintained::default() => {
                    tracing::debug!(?done, "statistics maintenance")
                }
                Ok(_) => {}
                Err(e) => tracing::error!("statistics maintenance failed: {e}; retrying next hour"),
            }
            let settle =
                chrono::Duration::from_std(self.shared.retention.settle).unwrap_or_default();
            let settled_hour = Hour::of(started - settle);
            let next = Hour(settled_hour.0 + 1).start() + settle;
            tokio::select! {
                () = self.shared.clock.sleep_until(next) => {}
                () = shutdown.wait() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::store::testing::Crashing;
    use super::*;

    fn settings() -> StatsSettings {
        StatsSettings {
            recorder: RecorderSettings {
                site: "example.org".into(),
                own_hosts: vec![],
                respect_opt_out: true,
                capacity: 1000,
            },
            flush_every: Duration::from_secs(10),
            retention: Retention {
                hourly_days: 14,
                daily_days: 730,
                settle: Duration::from_secs(80),
            },
            outbox: None,
        }
    }

    /// A clock that stays on one day, however long the test takes.
    fn noon() -> SharedClock {
        use chrono::TimeZone;
        crate::clock::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap())
    }

    fn record(stats: &Stats, client: &str) {
        stats.recorder().record(&Hit {
            kind: HitKind::Page,
            path: "/",
            client: client.parse::<IpAddr>().unwrap(),
            user_agent: b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            referer: None,
            opted_out: false,
        })
    }

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
    fn retries_wait_1_2_4_seconds_and_so_on_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
    }

    /// Polls `done` until it holds; the flusher runs on other threads.
    async fn until(what: &str, done: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("never: {what}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_flusher_retries_a_failing_store_with_backoff_and_recovers_by_itself() {
        let clock = crate::clock::ManualClock::new(
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 5, 1, 12, 0, 0).unwrap(),
        );
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), settings(), clock.clone()).unwrap();
        let shutdown = Shutdown::new();
        let flusher = tokio::spawn(stats.clone().run_flusher(shutdown.clone()));
        let reopened = || store.reopen_attempts();
        record(&stats, "192.0.2.1");
        store.fail_after(0);

        clock.advance(chrono::Duration::seconds(10));
        until("the first flush fails", || {
            matches!(stats.health(), StoreHealth::Retrying(_))
        })
        .await;
        let StoreHealth::Retrying(why) = stats.health() else {
            unreachable!()
        };
        assert!(why.contains("1 views wait in memory"), "{why}");
        let first = reopened();

        clock.advance(chrono::Duration::seconds(1));
        until("the retry after 1 s", || reopened() > first).await;

        store.free_space();
        record(&stats, "192.0.2.2");
        clock.advance(chrono::Duration::seconds(2));
        until("the retry after 2 s works", || {
            stats.health() == StoreHealth::Writing
        })
        .await;
        let total = stats.report(1, 10).unwrap().total;
        assert_eq!((total.views, total.visitors), (2, 2), "nothing lost");
        assert_eq!(reopened(), first + 2, "one attempt per retry, none between");
        shutdown.trigger();
        flusher.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_flush_interval_too_long_for_a_date_means_never_not_a_panic() {
        let stats = Stats::new(
            Box::new(MemoryStore::default()),
            StatsSettings {
                flush_every: Duration::MAX,
                ..settings()
            },
            noon(),
        )
        .unwrap();
        let shutdown = Shutdown::new();
        let flusher = tokio::spawn(stats.run_flusher(shutdown.clone()));
        shutdown.trigger();
        flusher.await.unwrap().unwrap();
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

    /// Settings whose outbox is under `dir`.
    fn with_outbox(dir: &Path) -> StatsSettings {
        StatsSettings {
            outbox: Some(DataDir::new(dir).stats_outbox()),
            ..settings()
        }
    }

    fn totals(stats: &Stats) -> (u64, u64, u64) {
        let total = stats.report(1, 10).unwrap().total;
        (total.views, total.visitors, total.dropped)
    }

    #[test]
    fn views_the_store_cannot_take_at_shutdown_wait_in_the_outbox_and_are_added_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.1");
        record(&stats, "192.0.2.1");
        record(&stats, "192.0.2.2");
        store.fail_after(0);
        let kept = stats.flush_at_exit().unwrap().expect("kept, not saved");
        assert_eq!((kept.views, kept.folded), (3, 0));
        assert!(kept.to_string().contains("next start"), "{kept}");
        drop(stats);
        let outbox = std::fs::read(DataDir::new(dir.path()).stats_outbox()).unwrap();

        // The next start, with room on the disk again.
        store.free_space();
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        assert_eq!(totals(&stats), (3, 2, 0), "nothing lost");
        assert_eq!(stats.flush_at_exit().unwrap().map(|k| k.views), None);
        drop(stats);

        // Stopped after the store took the parcel, before the outbox was
        // emptied: the parcel is seen again, and not added twice.
        std::fs::write(DataDir::new(dir.path()).stats_outbox(), &outbox).unwrap();
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        assert_eq!(totals(&stats), (3, 2, 0), "added once");
        let emptied = std::fs::read(DataDir::new(dir.path()).stats_outbox()).unwrap();
        assert!(emptied.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_parcel_like_one_already_added_is_added_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        // Two runs end alike: the same reader, the same hour, a full disk.
        for run in 1..=2 {
            let stats =
                Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
            record(&stats, "192.0.2.1");
            store.fail_after(0);
            assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 1, "{run}");
            drop(stats);
            store.free_space();
        }
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        assert_eq!(
            totals(&stats),
            (2, 1, 0),
            "the second parcel is not the first"
        );
    }

    #[test]
    fn the_outbox_outlives_a_flush_that_worked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.1");
        assert_eq!(stats.flush_now().unwrap().views, 1);
        record(&stats, "192.0.2.2");
        store.fail_after(0);
        let kept = stats.flush_at_exit().unwrap().expect("kept, not saved");
        assert_eq!(kept.views, 1);
    }

    #[test]
    fn an_outbox_found_while_the_store_still_fails_is_kept_until_it_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.1");
        store.fail_after(0);
        assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 1);
        drop(stats);

        // Still full at the next start: the parcel waits, and is reported.
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        let StoreHealth::Retrying(why) = stats.health() else {
            panic!("not writing: {:?}", stats.health())
        };
        assert!(why.contains("1 views wait"), "{why}");
        record(&stats, "192.0.2.2");
        // And stopped again before the disk had room: both are kept.
        assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 2);
        drop(stats);

        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.3");
        store.free_space();
        assert_eq!(stats.flush_now().unwrap().views, 1);
        assert_eq!(totals(&stats), (3, 3, 0));
        assert_eq!(stats.health(), StoreHealth::Writing);
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
