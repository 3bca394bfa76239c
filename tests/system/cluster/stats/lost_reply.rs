//! Views whose write committed while its reply was lost, the engine then
//! staying out of reach until shutdown, wait in the outbox and are counted
//! once: a node's [`PgStats`] behind a link the test cuts, through a flush
//! and then an outbox parcel whose commits go unheard.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use chrono::{DateTime, Utc};
use quire::clock::{ManualClock, SharedClock};
use quire::stats::backend::Merged;
use quire::stats::outbox::Seal;
use quire::stats::parcel::Parcel;
use quire::stats::postgres::PgStats;
use quire::stats::privacy::Salt;
use quire::stats::schema::Day;
use quire::stats::{
    Drained, Flushed, Maintained, Report, Retention, Stats, StatsBackend, StatsSettings,
    StatsStoreError,
};

use super::{cluster, config, noon, read, today};
use crate::support::*;

/// The link between a node and [`PgStats`]: up, losing the reply of the
/// next write after its commit (then down, as an engine stopping just after
/// a commit), or down.
const UP: u8 = 0;
const LOSES_REPLY: u8 = 1;
const DOWN: u8 = 2;

/// [`PgStats`] behind a link the test cuts ([`UP`], [`LOSES_REPLY`],
/// [`DOWN`]), for the writes (flushes and parcels) that may be retried.
struct Unreliable {
    pg: PgStats,
    link: Arc<AtomicU8>,
}

impl Unreliable {
    fn write<T>(
        &self,
        write: impl FnOnce() -> Result<T, StatsStoreError>,
    ) -> Result<T, StatsStoreError> {
        match self.link.load(Ordering::SeqCst) {
            UP => write(),
            LOSES_REPLY => {
                write()?;
                self.link.store(DOWN, Ordering::SeqCst);
                Err(StatsStoreError::Shared("the reply was lost".into()))
            }
            _ => Err(StatsStoreError::Shared("the engine is down".into())),
        }
    }
}

impl StatsBackend for Unreliable {
    fn describe(&self) -> String {
        self.pg.describe()
    }
    fn size_on_disk(&self) -> Option<u64> {
        None
    }
    fn recover(&self) -> Result<(), StatsStoreError> {
        self.pg.recover()
    }
    fn migrate(&self) -> Result<Vec<&'static str>, StatsStoreError> {
        self.pg.migrate()
    }
    fn salts(&self) -> Result<Vec<(Day, Salt)>, StatsStoreError> {
        self.pg.salts()
    }
    fn flush(
        &self,
        drained: &Drained<'_>,
        salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Flushed, StatsStoreError> {
        self.write(|| self.pg.flush(drained, salts, now))
    }
    fn merge(
        &self,
        parcel: &Parcel,
        seal: &Seal,
        salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Merged, StatsStoreError> {
        self.write(|| self.pg.merge(parcel, seal, salts, now))
    }
    fn maintain(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
    ) -> Result<Maintained, StatsStoreError> {
        self.pg.maintain(now, retention)
    }
    fn report(&self, from: Day, to: Day, top: usize) -> Result<Report, StatsStoreError> {
        self.pg.report(from, to, top)
    }
    fn export(&self) -> Result<Vec<u8>, StatsStoreError> {
        self.pg.export()
    }
}

#[test]
fn views_whose_write_committed_unheard_before_an_outage_are_counted_once() {
    let pg = Postgres::shared();
    let db = "stats_lost_reply";
    let url = pg.database(db);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock: SharedClock = ManualClock::new(noon());
    let data = tempfile::tempdir().unwrap();
    let settings = StatsSettings::from_config(&config(&url, "a", data.path()));
    let link = Arc::new(AtomicU8::new(UP));
    // A run of node a, over the unreliable link; attaching adds what the
    // outbox holds.
    let run = || {
        let pg = runtime.block_on(async {
            PgStats::new(
                cluster(&url, "a", &clock),
                tokio::runtime::Handle::current(),
            )
        });
        let backend = Unreliable {
            pg,
            link: link.clone(),
        };
        Stats::new(Box::new(backend), settings.clone(), clock.clone()).unwrap()
    };
    let stored = || {
        pg.sql(
            db,
            "SELECT coalesce(sum(views), 0) FROM quire_stats_hourly WHERE metric = 0",
        )
    };

    // A flush commits, its reply is lost, and the engine stays down until
    // shutdown: its views and those drained since go to the outbox.
    let stats = run();
    for reader in 1..=3 {
        read(&stats, &format!("192.0.2.{reader}"));
    }
    link.store(LOSES_REPLY, Ordering::SeqCst);
    assert!(stats.flush_now().is_err());
    for reader in 4..=5 {
        read(&stats, &format!("192.0.2.{reader}"));
    }
    assert!(stats.flush_now().is_err());
    assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 5);
    drop(stats);
    assert_eq!(stored(), "3", "the lost reply's flush committed");

    // The next start merges the outbox, which commits unheard again; the
    // parcel goes back to the outbox with a view drained since.
    link.store(LOSES_REPLY, Ordering::SeqCst);
    let stats = run();
    assert_eq!(stored(), "5", "the batch already added is not added again");
    read(&stats, "192.0.2.6");
    assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 6);
    drop(stats);

    // The engine answers again: only the view never added is added.
    link.store(UP, Ordering::SeqCst);
    let stats = run();
    assert_eq!(stored(), "6", "the parcel already added is not added again");
    assert_eq!(today(&stats), (6, 6));
    drop(stats);
    drop(runtime);
}
