//! Maintenance of the shared tables, by one node at a time: whoever holds
//! the `stats-maintenance` lease (by the database's clock) rolls finished
//! hours up into days, forgets the salts and seen-sets of days that are
//! over, and prunes what is past retention; the others skip their run. Each
//! roll-up of a day is one transaction that checks the lease's fencing token
//! and moves the watermark with the sums, so a node that lost the lease
//! mid-run cannot add a day twice; deletions go in bounded chunks.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use super::write::{Caps, Table, row, upsert};
use super::{PgStats, STATEMENT_TIMEOUT, counts_at, metric_of};
use crate::cluster::ClusterError;
use crate::cluster::lease::{self, DbLease};
use crate::stats::maintain::{Maintained, Retention};
use crate::stats::schema::{Counts, DAILY, Day, Hour, Series};
use crate::stats::store::StatsStoreError;

const LEASE: &str = "stats-maintenance";
/// Long enough for a run; renewed before each step.
const LEASE_TTL: Duration = Duration::from_secs(300);
/// Rows one deletion removes at most.
const DELETE_CHUNK: i64 = 10_000;
/// How long a batch's (node, sequence) is remembered: longer than a node
/// keeps retrying a flush in memory through an outage of the engine.
const BATCHES_KEPT: &str = "7 days";
/// How long an outbox parcel's seal is remembered: a node may be down for
/// a long while before it starts again and sends it.
const PARCELS_KEPT: &str = "90 days";

pub(super) async fn maintain(
    pg: &PgStats,
    now: DateTime<Utc>,
    retention: &Retention,
) -> Result<Maintained, StatsStoreError> {
    let lease = match lease::acquire(&pg.cluster, LEASE, LEASE_TTL).await {
        Ok(lease) => lease,
        Err(ClusterError::Held { holder, .. }) => {
            tracing::debug!("statistics maintenance is running on node {holder}; skipped here");
            return Ok(Maintained::default());
        }
        Err(e) => return Err(e.into()),
    };
    let done = holding(pg, lease.clone(), now, retention).await;
    if let Err(e) = lease::release(&pg.cluster, &lease).await {
        tracing::debug!("releasing the {LEASE} lease: {e}; it expires by itself");
    }
    done
}

async fn holding(
    pg: &PgStats,
    mut lease: DbLease,
    now: DateTime<Utc>,
    retention: &Retention,
) -> Result<Maintained, StatsStoreError> {
    let settled = now - chrono::Duration::from_std(retention.settle).unwrap_or_default();
    let mut done = Maintained::default();
    loop {
        lease = lease::renew(&pg.cluster, &lease).await?;
        match roll_up_a_day(pg, &lease, Hour::of(settled)).await? {
            Some(hours) => done.hours_rolled_up += hours,
            None => break,
        }
    }

    let today = Day::of(settled);
    let mut client = pg.cluster.client().await?;
    let tx = begin(&mut client, &lease).await?;
    let old: Option<i32> = tx
        .query_one(
            "SELECT remembered_from FROM quire_stats_meta FOR UPDATE",
            &[],
        )
        .await?
        .get(0);
    let forgotten = match old {
        Some(from) if from >= today.0 as i32 => 0,
        _ => {
            tx.execute(
                "UPDATE quire_stats_meta SET remembered_from = $1",
                &[&(today.0 as i32)],
            )
            .await?;
            old.map_or(0, |from| today.0 - from as u32)
        }
    };
    tx.commit().await?;
    drop(client);
    done.days_forgotten = forgotten as u32;
    let today = today.0 as i32;
    done.records_pruned += delete(pg, &lease, "quire_stats_salts", "day", today).await?;
    done.records_pruned += delete(pg, &lease, "quire_stats_seen", "day", today).await?;

    let aggregated_until: Option<i32> = pg
        .cluster
        .client()
        .await?
        .query_one("SELECT aggregated_until FROM quire_stats_meta", &[])
        .await?
        .get(0);
    let hourly_cutoff = Hour::of(now)
        .0
        .saturating_sub(retention.hourly_days * 24)
        .min(aggregated_until.unwrap_or(0) as u32);
    let daily_cutoff = Day::of(now).minus(retention.daily_days).0 as i32;
    done.records_pruned += delete(
        pg,
        &lease,
        "quire_stats_hourly",
        "hour",
        hourly_cutoff as i32,
    )
    .await?;
    done.records_pruned += delete(pg, &lease, "quire_stats_daily", "day", daily_cutoff).await?;
    done.records_pruned +=
        delete(pg, &lease, "quire_stats_node_daily", "day", daily_cutoff).await?;
    let client = pg.cluster.client().await?;
    for (table, kept) in [
        ("quire_stats_batches", BATCHES_KEPT),
        ("quire_stats_parcels", PARCELS_KEPT),
    ] {
        done.records_pruned += client
            .execute(
                &format!("DELETE FROM {table} WHERE at < now() - interval '{kept}'"),
                &[],
            )
            .await? as usize;
    }
    Ok(done)
}

/// A transaction that holds `lease`'s fence until it ends.
async fn begin<'c>(
    client: &'c mut deadpool_postgres::Object,
    lease: &DbLease,
) -> Result<Transaction<'c>, StatsStoreError> {
    let tx = client.transaction().await?;
    tx.batch_execute(STATEMENT_TIMEOUT).await?;
    lease::check_fence(&tx, &lease.name, lease.token).await?;
    Ok(tx)
}

/// Adds the next finished hours (up to the end of their day) into their
/// day; `None` when there are none.
async fn roll_up_a_day(
    pg: &PgStats,
    lease: &DbLease,
    finished: Hour,
) -> Result<Option<u32>, StatsStoreError> {
    let mut client = pg.cluster.client().await?;
    let tx = begin(&mut client, lease).await?;
    // For update: flushes (which take it shared) wait, so no view
    // lands in these hours while they are summed.
    let watermark: Option<i32> = tx
        .query_one(
            "SELECT aggregated_until FROM quire_stats_meta FOR UPDATE",
            &[],
        )
        .await?
        .get(0);
    let from = match watermark {
        Some(hour) => Hour(hour as u32),
        None => {
            let first: Option<i32> = tx
                .query_one("SELECT min(hour) FROM quire_stats_hourly", &[])
                .await?
                .get(0);
            Hour(first.map_or(finished.0, |h| (h as u32).min(finished.0)))
        }
    };
    let until = Hour(from.day().next().first_hour().0.min(finished.0));
    if until <= from {
        if watermark.is_none() {
            tx.execute(
                "UPDATE quire_stats_meta SET aggregated_until = $1",
                &[&(from.0 as i32)],
            )
            .await?;
        }
        tx.commit().await?;
        return Ok(None);
    }
    let rows = tx
        .query(
            "SELECT metric, name, sum(views)::bigint, sum(visitors)::bigint,
                sum(feed_fetches)::bigint, sum(feed_readers)::bigint, sum(bot_views)::bigint,
                sum(not_found)::bigint, sum(dropped)::bigint
             FROM quire_stats_hourly WHERE hour >= $1 AND hour < $2 GROUP BY metric, name",
            &[&(from.0 as i32), &(until.0 as i32)],
        )
        .await?;
    let mut sums: Vec<(Series, Counts)> = Vec::with_capacity(rows.len());
    for row in &rows {
        let series = Series {
            metric: metric_of(row.get(0))?,
            name: row.get(1),
        };
        sums.push((series, counts_at(row, 2)));
    }
    // Busiest first: a day keeps its top names, the rest go to "(other)".
    sums.sort_by(|(a, x), (b, y)| y.views.cmp(&x.views).then_with(|| a.cmp(b)));
    let day = from.day();
    let mut caps = Caps::read(&tx, DAILY, &[day.0]).await?;
    let mut daily = BTreeMap::new();
    for (series, counts) in sums {
        let admitted = caps.admit(day.0, &series);
        daily
            .entry(row(day.0, &admitted))
            .or_insert_with(Counts::default)
            .add(&counts);
    }
    upsert(&tx, Table::Daily, &daily).await?;
    tx.execute(
        "UPDATE quire_stats_meta SET aggregated_until = $1",
        &[&(until.0 as i32)],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(until.0 - from.0))
}

/// Deletes the rows of `table` whose `column` is below `until`, a chunk
/// per fenced transaction.
async fn delete(
    pg: &PgStats,
    lease: &DbLease,
    table: &'static str,
    column: &'static str,
    until: i32,
) -> Result<usize, StatsStoreError> {
    let sql = format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM {table} WHERE {column} < $1 LIMIT $2))"
    );
    let mut deleted = 0;
    loop {
        let mut client = pg.cluster.client().await?;
        let tx = begin(&mut client, lease).await?;
        let chunk = tx.execute(&sql, &[&until, &DELETE_CHUNK]).await?;
        tx.commit().await?;
        deleted += chunk as usize;
        if chunk == 0 {
            return Ok(deleted);
        }
    }
}
