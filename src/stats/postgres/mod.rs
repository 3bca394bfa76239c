//! Statistics shared by the nodes of a cluster, in PostgreSQL: [`PgStats`]
//! implements the [`StatsBackend`] seam on real tables (the `stats` schema
//! [`AREA`]), through the cluster's pool. Counters are added with upserts
//! (`views = views + excluded.views`: commutative, so concurrent nodes need
//! no serializable retries); the day's seen-set lets the first sighting win
//! (`ON CONFLICT DO NOTHING RETURNING`), so a reader seen by two nodes is one
//! visitor; each flushed batch is recorded as (node, sequence) and each
//! outbox parcel by its seal, in the transaction that adds it, so a retry
//! after a lost reply is not counted twice. Salts and seen-sets are never
//! kept past their day. The salts live in an unlogged table, so they never
//! spread into replicas and WAL archives; the seen-set is logged, so that a
//! crash of the engine (which empties unlogged tables) does not count the
//! day's readers again, and what it spreads is worthless: visitor keys
//! are hashes keyed by the day's salt, which never leaves the primary and
//! is deleted with its day. A crash loses the salts, and each node offers
//! the one it holds again at its next check: they all hold the same.
//!
//! The caps of `caps` hold across the cluster approximately: each flush
//! reads what is committed and admits against it, so nodes flushing the same
//! bucket at the same moment may each admit up to the room they saw (at
//! most the number of nodes times the cap, in the worst case).
//!
//! `write` adds flushes and parcels, `maintain` rolls up, forgets and prunes
//! under a lease (one node at a time), `read` reports and decides salts.
//! The trait is blocking: each call runs its queries on the runtime captured
//! at start, from the blocking thread its caller runs it on, and is bounded
//! by the pool's wait and a statement timeout.

mod maintain;
mod read;
mod write;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::backend::{Drained, Merged, StatsBackend};
use super::maintain::{Maintained, Retention};
use super::outbox::Seal;
use super::parcel::Parcel;
use super::privacy::Salt;
use super::report::Report;
use super::schema::{Counts, Day, Metric};
use super::store::StatsStoreError;
use super::{Flushed, Stats, StatsSettings};
use crate::cluster::{Area, Cluster, ClusterError};
use crate::config::Config;

/// The tables of the statistics, as the cluster migrates them.
pub const AREA: Area = Area {
    name: "stats",
    steps: &["CREATE TABLE quire_stats_hourly (
        hour integer NOT NULL,
        metric smallint NOT NULL,
        name text NOT NULL,
        views bigint NOT NULL,
        visitors bigint NOT NULL,
        feed_fetches bigint NOT NULL,
        feed_readers bigint NOT NULL,
        bot_views bigint NOT NULL,
        not_found bigint NOT NULL,
        dropped bigint NOT NULL,
        PRIMARY KEY (hour, metric, name)
    );
    CREATE TABLE quire_stats_daily (
        day integer NOT NULL,
        metric smallint NOT NULL,
        name text NOT NULL,
        views bigint NOT NULL,
        visitors bigint NOT NULL,
        feed_fetches bigint NOT NULL,
        feed_readers bigint NOT NULL,
        bot_views bigint NOT NULL,
        not_found bigint NOT NULL,
        dropped bigint NOT NULL,
        PRIMARY KEY (day, metric, name)
    );
    CREATE TABLE quire_stats_node_daily (
        node text NOT NULL,
        day integer NOT NULL,
        views bigint NOT NULL,
        visitors bigint NOT NULL,
        feed_fetches bigint NOT NULL,
        feed_readers bigint NOT NULL,
        bot_views bigint NOT NULL,
        not_found bigint NOT NULL,
        dropped bigint NOT NULL,
        PRIMARY KEY (node, day)
    );
    CREATE TABLE quire_stats_seen (
        day integer NOT NULL,
        visitor bigint NOT NULL,
        metric smallint NOT NULL,
        name text NOT NULL,
        PRIMARY KEY (day, visitor, metric, name)
    );
    CREATE UNLOGGED TABLE quire_stats_salts (
        day integer PRIMARY KEY,
        salt bytea NOT NULL CHECK (length(salt) = 16)
    );
    CREATE TABLE quire_stats_batches (
        node text NOT NULL,
        seq bigint NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (node, seq)
    );
    CREATE TABLE quire_stats_parcels (
        seal bytea PRIMARY KEY,
        node text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE quire_stats_meta (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        aggregated_until integer,
        remembered_from integer
    );
    INSERT INTO quire_stats_meta DEFAULT VALUES;"],
};

/// Rows one statement writes at most.
const ROWS_PER_STATEMENT: usize = 1000;

/// The longest one statement may run (a lock held by a stalled node
/// included), so that a call never hangs the flusher.
const STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = '20s'";

/// How long to wait at start for today's shared salt before the first
/// reader, when the engine is not known to be down.
const FIRST_SALTS_WAIT: Duration = Duration::from_secs(2);

/// Statistics in the PostgreSQL a cluster shares.
pub struct PgStats {
    cluster: Cluster,
    runtime: tokio::runtime::Handle,
}

impl PgStats {
    /// Runs on `runtime`, which must outlive it.
    pub fn new(cluster: Cluster, runtime: tokio::runtime::Handle) -> PgStats {
        PgStats { cluster, runtime }
    }

    fn node(&self) -> &str {
        self.cluster.node().as_str()
    }

    /// Runs `work` on the captured runtime; from a blocking thread only.
    fn block<T>(
        &self,
        work: impl Future<Output = Result<T, StatsStoreError>>,
    ) -> Result<T, StatsStoreError> {
        self.runtime.block_on(work)
    }
}

impl Stats {
    /// The statistics of a node of a cluster: in the shared tables, with
    /// this node's outbox under its own data directory. Never fails; waits
    /// briefly for today's shared salt so the first readers are counted
    /// with it (not when the engine is known to be down).
    pub async fn open_shared(
        config: &Config,
        cluster: &Cluster,
        clock: crate::clock::SharedClock,
    ) -> Stats {
        let backend = PgStats::new(cluster.clone(), tokio::runtime::Handle::current());
        let stats = Stats::unattached(StatsSettings::from_config(config), clock, Vec::new());
        let today = Day::of(stats.shared.clock.now());
        if !matches!(
            *cluster.health().borrow(),
            crate::cluster::EngineHealth::Down { .. }
        ) {
            let first = tokio::time::timeout(
                FIRST_SALTS_WAIT,
                read::decide_salts(&backend, &[today, today.next()], &[]),
            )
            .await;
            if let Ok(Ok(salts)) = first {
                stats.recorder().salts().settle(&salts);
            }
        }
        let attaching = stats.clone();
        // Attaching may add what the outbox kept, a blocking call.
        let attached =
            tokio::task::spawn_blocking(move || attaching.attach(Box::new(backend), true)).await;
        match attached {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("attaching the shared statistics failed: {e}"),
        }
        stats
    }
}

impl StatsBackend for PgStats {
    fn describe(&self) -> String {
        format!(
            "the cluster's shared PostgreSQL {} (node {})",
            self.cluster.target(),
            self.node()
        )
    }

    fn size_on_disk(&self) -> Option<u64> {
        None
    }

    fn recover(&self) -> Result<(), StatsStoreError> {
        Ok(())
    }

    /// The cluster migrates the tables ([`AREA`]) at each connection.
    fn migrate(&self) -> Result<Vec<&'static str>, StatsStoreError> {
        Ok(Vec::new())
    }

    /// The shared salts are taken on by [`Stats::check_salts`], never here:
    /// attaching must not wait on the engine.
    fn salts(&self) -> Result<Vec<(Day, Salt)>, StatsStoreError> {
        Ok(Vec::new())
    }

    fn flush(
        &self,
        drained: &Drained<'_>,
        _salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Flushed, StatsStoreError> {
        self.block(write::flush(self, drained, now))
    }

    fn merge(
        &self,
        parcel: &Parcel,
        seal: &Seal,
        _salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Merged, StatsStoreError> {
        self.block(write::merge(self, parcel, seal, now))
    }

    fn maintain(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
    ) -> Result<Maintained, StatsStoreError> {
        self.block(maintain::maintain(self, now, retention))
    }

    fn report(&self, from: Day, to: Day, top: usize) -> Result<Report, StatsStoreError> {
        self.block(read::report(self, from, to, top))
    }

    fn export(&self) -> Result<Vec<u8>, StatsStoreError> {
        self.block(read::export(self))
    }

    fn shared_salts(
        &self,
        days: &[Day],
        ours: &[(Day, Salt)],
    ) -> Result<Option<Vec<(Day, Salt)>>, StatsStoreError> {
        self.block(read::decide_salts(self, days, ours)).map(Some)
    }

    fn report_by_node(
        &self,
        from: Day,
        to: Day,
    ) -> Result<Option<Vec<(String, Counts)>>, StatsStoreError> {
        self.block(read::by_node(self, from, to)).map(Some)
    }
}

impl From<ClusterError> for StatsStoreError {
    fn from(e: ClusterError) -> StatsStoreError {
        StatsStoreError::Shared(e.into())
    }
}

impl From<tokio_postgres::Error> for StatsStoreError {
    fn from(e: tokio_postgres::Error) -> StatsStoreError {
        ClusterError::Query(e).into()
    }
}

/// How a metric is stored.
fn metric_code(metric: Metric) -> i16 {
    match metric {
        Metric::Site => 0,
        Metric::Page => 1,
        Metric::Referrer => 2,
        Metric::NotFound => 3,
        Metric::FeedReader => 4,
    }
}

fn metric_of(code: i16) -> Result<Metric, StatsStoreError> {
    Ok(match code {
        0 => Metric::Site,
        1 => Metric::Page,
        2 => Metric::Referrer,
        3 => Metric::NotFound,
        4 => Metric::FeedReader,
        _ => {
            return Err(StatsStoreError::Corrupt(format!(
                "metric {code} in the shared statistics"
            )));
        }
    })
}

/// The counters of a row whose columns from `first` on are the seven
/// counters, in the order of [`Counts`].
fn counts_at(row: &tokio_postgres::Row, first: usize) -> Counts {
    let at = |i: usize| row.get::<_, i64>(first + i).max(0) as u64;
    Counts {
        views: at(0),
        visitors: at(1),
        feed_fetches: at(2),
        feed_readers: at(3),
        bot_views: at(4),
        not_found: at(5),
        dropped: at(6),
    }
}
