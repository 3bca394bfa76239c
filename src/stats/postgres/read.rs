//! Reading the shared tables: the report of the whole cluster (a day is its
//! daily rows plus the hours not rolled up yet, read in one snapshot so a
//! roll-up in between cannot count an hour twice), each node's own totals,
//! the day's salts (decided once: the first node's offer wins), and a copy
//! in the layout of a single node's store, for `quire backup`.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use tokio_postgres::IsolationLevel;

use super::{PgStats, counts_at, metric_code, metric_of};
use crate::stats::privacy::{Salt, random_salt};
use crate::stats::report::{Ranked, Report};
use crate::stats::schema::{self, Counts, Day, Hour, Meta, Metric, SCHEMA_VERSION, Series};
use crate::stats::store::{Batch, MemoryStore, StatsStore, StatsStoreError};

/// The salts of `days`: for a day without one yet, this node's (`ours`)
/// or a new one is offered, and whichever was decided first is returned.
pub(super) async fn decide_salts(
    pg: &PgStats,
    days: &[Day],
    ours: &[(Day, Salt)],
) -> Result<Vec<(Day, Salt)>, StatsStoreError> {
    let client = pg.cluster.client().await?;
    let offered: Vec<(i32, Vec<u8>)> = days
        .iter()
        .map(|day| {
            let salt = ours
                .iter()
                .find(|(d, _)| d == day)
                .map_or_else(random_salt, |(_, salt)| *salt);
            (day.0 as i32, salt.to_vec())
        })
        .collect();
    let day_numbers: Vec<i32> = offered.iter().map(|(day, _)| *day).collect();
    let salts: Vec<&[u8]> = offered.iter().map(|(_, salt)| salt.as_slice()).collect();
    client
        .execute(
            "INSERT INTO quire_stats_salts (day, salt)
             SELECT * FROM unnest($1::integer[], $2::bytea[]) ON CONFLICT DO NOTHING",
            &[&day_numbers, &salts],
        )
        .await?;
    let rows = client
        .query(
            "SELECT day, salt FROM quire_stats_salts WHERE day = ANY($1) ORDER BY day",
            &[&day_numbers],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let salt: Vec<u8> = row.get(1);
            let salt: Salt = salt
                .try_into()
                .map_err(|_| StatsStoreError::Corrupt("a shared salt is not 16 bytes".into()))?;
            Ok((Day(row.get::<_, i32>(0) as u32), salt))
        })
        .collect()
}

/// The hours a report takes from the hourly table: those of `from..=to`
/// not rolled up yet, as of the transaction's snapshot.
async fn hours(tx: &Transaction<'_>, from: Day, to: Day) -> Result<(i32, i32), StatsStoreError> {
    let aggregated_until: Option<i32> = tx
        .query_one("SELECT aggregated_until FROM quire_stats_meta", &[])
        .await?
        .get(0);
    let first = (aggregated_until.unwrap_or(0) as u32).max(from.first_hour().0);
    Ok((first as i32, to.next().first_hour().0 as i32))
}

/// A part of a query: rows of `metric` from both tables over the range.
const BOTH: &str = "SELECT day AS d, name, views, visitors, feed_fetches, feed_readers, bot_views, not_found, dropped
     FROM quire_stats_daily WHERE metric = $5 AND day >= $1 AND day <= $2
     UNION ALL
     SELECT hour / 24, name, views, visitors, feed_fetches, feed_readers, bot_views, not_found, dropped
     FROM quire_stats_hourly WHERE metric = $5 AND hour >= $3 AND hour < $4";

const SUMS: &str = "sum(views)::bigint, sum(visitors)::bigint, sum(feed_fetches)::bigint, \
     sum(feed_readers)::bigint, sum(bot_views)::bigint, sum(not_found)::bigint, sum(dropped)::bigint";

pub(super) async fn report(
    pg: &PgStats,
    from: Day,
    to: Day,
    top: usize,
) -> Result<Report, StatsStoreError> {
    let mut client = pg.cluster.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let (first_hour, end_hour) = hours(&tx, from, to).await?;
    let (from_day, to_day) = (from.0 as i32, to.0 as i32);
    let site = metric_code(Metric::Site);
    let rows = tx
        .query(
            &format!("SELECT d, {SUMS} FROM ({BOTH}) s GROUP BY d"),
            &[&from_day, &to_day, &first_hour, &end_hour, &site],
        )
        .await?;
    let per_day: BTreeMap<u32, Counts> = rows
        .iter()
        .map(|row| (row.get::<_, i32>(0) as u32, counts_at(row, 1)))
        .collect();
    let days: Vec<(Day, Counts)> = (from.0..=to.0)
        .map(|d| (Day(d), per_day.get(&d).copied().unwrap_or_default()))
        .collect();
    let mut total = Counts::default();
    for (_, counts) in &days {
        total.add(counts);
    }
    let mut rankings = Vec::new();
    for metric in [Metric::Page, Metric::Referrer, Metric::NotFound] {
        if top == 0 {
            rankings.push(Vec::new());
            continue;
        }
        let rows = tx
            .query(
                &format!(
                    "SELECT name, sum(views)::bigint, sum(visitors)::bigint FROM ({BOTH}) s
                     GROUP BY name ORDER BY 2 DESC, name COLLATE \"C\" LIMIT $6"
                ),
                &[
                    &from_day,
                    &to_day,
                    &first_hour,
                    &end_hour,
                    &metric_code(metric),
                    &(top.min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        rankings.push(
            rows.iter()
                .map(|row| Ranked {
                    name: row.get(0),
                    views: row.get::<_, i64>(1).max(0) as u64,
                    visitors: row.get::<_, i64>(2).max(0) as u64,
                })
                .collect(),
        );
    }
    tx.commit().await?;
    let [pages, referrers, not_found]: [Vec<Ranked>; 3] = rankings
        .try_into()
        .map_err(|_| StatsStoreError::Corrupt("rankings".into()))?;
    Ok(Report {
        from,
        to,
        days,
        total,
        pages,
        referrers,
        not_found,
    })
}

/// Each node's totals over `from..=to`: what it served, and the visitors
/// it saw first (the cluster's visitors add up over the nodes).
pub(super) async fn by_node(
    pg: &PgStats,
    from: Day,
    to: Day,
) -> Result<Vec<(String, Counts)>, StatsStoreError> {
    let rows = pg
        .cluster
        .client()
        .await?
        .query(
            &format!(
                "SELECT node, {SUMS} FROM quire_stats_node_daily WHERE day >= $1 AND day <= $2
                 GROUP BY node ORDER BY node COLLATE \"C\""
            ),
            &[&(from.0 as i32), &(to.0 as i32)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), counts_at(row, 1)))
        .collect())
}

/// The counters in the layout of a single node's store (`schema`), so that
/// a backup restores on one node as the statistics the cluster had. Seen
/// sets and salts are left out: they are never kept past their day.
pub(super) async fn export(pg: &PgStats) -> Result<Vec<u8>, StatsStoreError> {
    let mut client = pg.cluster.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let copy = MemoryStore::default();
    let mut batch = Batch::default();
    for (table, period) in [("quire_stats_hourly", "hour"), ("quire_stats_daily", "day")] {
        let rows = tx
            .query(
                &format!(
                    "SELECT {period}, metric, name, views, visitors, feed_fetches, feed_readers, bot_views, not_found, dropped FROM {table}"
                ),
                &[],
            )
            .await?;
        for row in rows {
            let at = row.get::<_, i32>(0) as u32;
            let series = Series {
                metric: metric_of(row.get(1))?,
                name: row.get(2),
            };
            let key = match period {
                "hour" => schema::hourly_key(Hour(at), &series),
                _ => schema::daily_key(Day(at), &series),
            };
            batch.put(key, counts_at(&row, 3).encode());
        }
    }
    let aggregated_until: Option<i32> = tx
        .query_one("SELECT aggregated_until FROM quire_stats_meta", &[])
        .await?
        .get(0);
    tx.commit().await?;
    if let Some(hour) = aggregated_until {
        Meta::AggregatedUntil.write(&mut batch, hour as u32);
    }
    Meta::SchemaVersion.write(&mut batch, SCHEMA_VERSION);
    copy.apply(batch)?;
    crate::stats::dump::export(&copy)
}
