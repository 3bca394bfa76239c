//! Adding views to the shared tables, one transaction per flush or parcel:
//! the batch's (node, sequence) or the parcel's seal first, so a retry of
//! one already added adds nothing; then the seen-set, where the first
//! sighting wins across nodes; then the counters, added by upsert. Every
//! statement takes its rows in one order (sorted keys), so two nodes flushing
//! at once wait for each other rather than deadlock. The caps of `caps` are
//! applied to what is committed, as a flush into sled applies them to what
//! is stored.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use super::{PgStats, ROWS_PER_STATEMENT, STATEMENT_TIMEOUT, metric_code};
use crate::stats::Flushed;
use crate::stats::backend::{Drained, Merged};
use crate::stats::caps::{MAX_REFERRERS_PER_VISITOR, MAX_VISITORS_PER_DAY};
use crate::stats::outbox::Seal;
use crate::stats::parcel::Parcel;
use crate::stats::recorder::{View, ViewKind};
use crate::stats::schema::{self, Counts, DAILY, Day, HOURLY, Hour, Metric, Series};
use crate::stats::store::StatsStoreError;

/// Adds the batches of `drained` this node has not added before.
pub(super) async fn flush(
    pg: &PgStats,
    drained: &Drained<'_>,
    now: DateTime<Utc>,
) -> Result<Flushed, StatsStoreError> {
    if drained.batches.is_empty() {
        return Ok(Flushed::default());
    }
    let mut client = pg.cluster.client().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(STATEMENT_TIMEOUT).await?;
    let mut fresh = HashSet::new();
    let seqs: Vec<i64> = drained.batches.iter().map(|b| b.seq as i64).collect();
    for chunk in seqs.chunks(ROWS_PER_STATEMENT) {
        let rows = tx
            .query(
                "INSERT INTO quire_stats_batches (node, seq) SELECT $1::text, unnest($2::bigint[])
                 ON CONFLICT DO NOTHING RETURNING seq",
                &[&pg.node(), &chunk],
            )
            .await?;
        fresh.extend(rows.iter().map(|row| row.get::<_, i64>(0) as u64));
    }
    let mut groups: HashMap<&View, u64> = HashMap::new();
    let mut dropped = 0;
    for (batch, views) in drained.split() {
        if fresh.contains(&batch.seq) {
            dropped += batch.dropped;
            for view in views {
                *groups.entry(view).or_default() += 1;
            }
        }
    }
    let records = add(&tx, pg.node(), groups.into_iter().collect(), dropped, now).await?;
    tx.commit().await?;
    Ok(Flushed {
        views: drained.views.len(),
        records,
    })
}

/// Adds `parcel` unless a parcel with its seal was added before.
pub(super) async fn merge(
    pg: &PgStats,
    parcel: &Parcel,
    seal: &Seal,
    now: DateTime<Utc>,
) -> Result<Merged, StatsStoreError> {
    let mut client = pg.cluster.client().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(STATEMENT_TIMEOUT).await?;
    let new = tx
        .query_opt(
            "INSERT INTO quire_stats_parcels (seal, node) VALUES ($1, $2)
             ON CONFLICT DO NOTHING RETURNING seal",
            &[&&seal[..], &pg.node()],
        )
        .await?;
    if new.is_none() {
        return Ok(Merged::AlreadyAdded);
    }
    let groups = parcel.views.iter().map(|(view, n)| (view, *n)).collect();
    let records = add(&tx, pg.node(), groups, parcel.dropped, now).await?;
    tx.commit().await?;
    Ok(Merged::Added(Flushed {
        views: parcel.count() as usize,
        records,
    }))
}

/// A row of the seen-set.
type SeenKey = (Day, u64, Metric, String);

/// Where a first sighting is counted: the bucket, and whether as a visitor
/// or a feed reader.
struct Credit {
    hour: Hour,
    series: Series,
    feed: bool,
}

/// Adds `groups` (each distinct view, with how often) and `dropped` (to
/// the hour of `now`); returns how many counter records that touched.
async fn add(
    tx: &Transaction<'_>,
    node: &str,
    mut groups: Vec<(&View, u64)>,
    dropped: u64,
    now: DateTime<Utc>,
) -> Result<usize, StatsStoreError> {
    // Shared: a roll-up (which takes it for update) waits for this flush,
    // and this flush for it, so no view lands in an hour being rolled up.
    let meta = tx
        .query_one(
            "SELECT aggregated_until, remembered_from FROM quire_stats_meta FOR SHARE",
            &[],
        )
        .await?;
    let aggregated_until = meta.get::<_, Option<i32>>(0).map(|h| Hour(h as u32));
    let remembered_from = meta.get::<_, Option<i32>>(1).map(|d| Day(d as u32));
    // Oldest first, so a visitor is counted in the hour first seen.
    groups.sort_by_key(|(view, _)| view.hour);
    let tracked = tracked_visitors(tx, &groups, remembered_from).await?;
    let mut stored_referrers = stored_referrers(tx, &groups, &tracked).await?;

    // The seen rows each view consults; the first consultation of a row is
    // the one credited if the row turns out new.
    let mut consulted: BTreeMap<SeenKey, Credit> = BTreeMap::new();
    let mut consult = |key: SeenKey, hour: Hour, series: &Series, feed: bool| {
        consulted.entry(key).or_insert_with(|| Credit {
            hour,
            series: series.clone(),
            feed,
        });
    };
    for (view, _) in &groups {
        let day = view.hour.day();
        let Some(visitor) = view.visitor.filter(|v| tracked.contains(&(day, *v))) else {
            continue;
        };
        let site = Series::site();
        match view.kind {
            ViewKind::Page => {
                consult(
                    (day, visitor, Metric::Site, String::new()),
                    view.hour,
                    &site,
                    false,
                );
                let page = Series::new(Metric::Page, &view.path);
                let key = (day, visitor, Metric::Page, view.path.to_string());
                consult(key, view.hour, &page, false);
                if let Some(host) = view.referrer.as_deref() {
                    let series = Series::new(Metric::Referrer, host);
                    let remembered = stored_referrers.entry((day, visitor)).or_default();
                    let named = (day, visitor, Metric::Referrer, host.to_string());
                    let known = remembered.names.contains(host);
                    let key = if known || remembered.named < MAX_REFERRERS_PER_VISITOR {
                        if !known {
                            remembered.names.insert(host.to_string());
                            remembered.named += 1;
                        }
                        named
                    } else {
                        (day, visitor, Metric::Referrer, schema::OTHER.to_string())
                    };
                    consult(key, view.hour, &series, false);
                }
            }
            ViewKind::Feed => consult(
                (day, visitor, Metric::FeedReader, String::new()),
                view.hour,
                &site,
                true,
            ),
            ViewKind::NotFound | ViewKind::Bot => {}
        }
    }
    let first = first_sightings(tx, consulted.keys()).await?;

    let mut deltas: HashMap<(Hour, Series), Counts> = HashMap::new();
    for (view, n) in &groups {
        let n = *n;
        let mut site = Counts::default();
        match view.kind {
            ViewKind::Page => {
                site.views = n;
                let views = Counts {
                    views: n,
                    ..Counts::default()
                };
                let page = Series::new(Metric::Page, &view.path);
                deltas.entry((view.hour, page)).or_default().add(&views);
                if let Some(host) = view.referrer.as_deref() {
                    let series = Series::new(Metric::Referrer, host);
                    deltas.entry((view.hour, series)).or_default().add(&views);
                }
            }
            ViewKind::Feed => site.feed_fetches = n,
            ViewKind::NotFound => {
                site.not_found = n;
                let missing = Counts {
                    views: n,
                    ..Counts::default()
                };
                let series = Series::new(Metric::NotFound, &view.path);
                deltas.entry((view.hour, series)).or_default().add(&missing);
            }
            ViewKind::Bot => site.bot_views = n,
        }
        deltas
            .entry((view.hour, Series::site()))
            .or_default()
            .add(&site);
    }
    for (key, credit) in &consulted {
        if first.contains(key) {
            let counts = deltas
                .entry((credit.hour, credit.series.clone()))
                .or_default();
            match credit.feed {
                true => counts.feed_readers += 1,
                false => counts.visitors += 1,
            }
        }
    }
    if dropped > 0 {
        let lost = Counts {
            dropped,
            ..Counts::default()
        };
        deltas
            .entry((Hour::of(now), Series::site()))
            .or_default()
            .add(&lost);
    }
    let records = deltas.len();

    let mut per_node: BTreeMap<i32, Counts> = BTreeMap::new();
    for ((hour, series), counts) in &deltas {
        if series.metric == Metric::Site {
            per_node.entry(hour.day().0 as i32).or_default().add(counts);
        }
    }
    // Busiest first, so what a full bucket turns away is the long tail.
    let mut deltas: Vec<((Hour, Series), Counts)> = deltas.into_iter().collect();
    deltas.sort_by(|(a, x), (b, y)| y.views.cmp(&x.views).then_with(|| a.cmp(b)));
    let late: Vec<u32> = deltas
        .iter()
        .map(|((hour, _), _)| hour.day().0)
        .filter(|day| aggregated_until.is_some_and(|until| Day(*day).first_hour() < until))
        .collect();
    let hours: Vec<u32> = deltas.iter().map(|((hour, _), _)| hour.0).collect();
    let mut hourly_caps = Caps::read(tx, HOURLY, &hours).await?;
    let mut daily_caps = Caps::read(tx, DAILY, &late).await?;
    let mut hourly: BTreeMap<Row, Counts> = BTreeMap::new();
    let mut daily: BTreeMap<Row, Counts> = BTreeMap::new();
    for ((hour, series), delta) in deltas {
        let admitted = hourly_caps.admit(hour.0, &series);
        hourly
            .entry(row(hour.0, &admitted))
            .or_default()
            .add(&delta);
        if aggregated_until.is_some_and(|until| hour < until) {
            let admitted = daily_caps.admit(hour.day().0, &series);
            daily
                .entry(row(hour.day().0, &admitted))
                .or_default()
                .add(&delta);
        }
    }
    upsert(tx, Table::Hourly, &hourly).await?;
    upsert(tx, Table::Daily, &daily).await?;
    upsert_node(tx, node, &per_node).await?;
    Ok(records)
}

/// The visitors told apart on each day: all of them, until a day has
/// [`MAX_VISITORS_PER_DAY`]; then those it knows, and no new ones.
async fn tracked_visitors(
    tx: &Transaction<'_>,
    groups: &[(&View, u64)],
    remembered_from: Option<Day>,
) -> Result<HashSet<(Day, u64)>, StatsStoreError> {
    let mut by_day: BTreeMap<Day, Vec<u64>> = BTreeMap::new();
    let mut tracked = HashSet::new();
    for (view, _) in groups {
        let day = view.hour.day();
        if let Some(visitor) = view.visitor
            && remembered_from.is_none_or(|from| day >= from)
            && tracked.insert((day, visitor))
        {
            by_day.entry(day).or_default().push(visitor);
        }
    }
    for (day, candidates) in by_day {
        let counted: i64 = tx
            .query_one(
                "SELECT coalesce(sum(visitors), 0)::bigint FROM quire_stats_hourly
                 WHERE metric = 0 AND hour >= $1 AND hour < $2",
                &[
                    &(day.first_hour().0 as i32),
                    &(day.next().first_hour().0 as i32),
                ],
            )
            .await?
            .get(0);
        let room = MAX_VISITORS_PER_DAY.saturating_sub(counted.max(0) as u64) as usize;
        if candidates.len() <= room {
            continue;
        }
        let mut known = HashSet::new();
        for chunk in candidates.chunks(ROWS_PER_STATEMENT) {
            let chunk: Vec<i64> = chunk.iter().map(|v| *v as i64).collect();
            let rows = tx
                .query(
                    "SELECT visitor FROM quire_stats_seen
                     WHERE day = $1 AND metric = 0 AND name = '' AND visitor = ANY($2)",
                    &[&(day.0 as i32), &chunk],
                )
                .await?;
            known.extend(rows.iter().map(|row| row.get::<_, i64>(0) as u64));
        }
        let mut new = 0;
        for visitor in candidates {
            if !known.contains(&visitor) {
                if new < room {
                    new += 1;
                } else {
                    tracked.remove(&(day, visitor));
                }
            }
        }
    }
    Ok(tracked)
}

/// The referrers the seen-set remembers for a visitor on a day.
#[derive(Default)]
struct Remembered {
    names: HashSet<String>,
    /// Besides [`schema::OTHER`].
    named: u64,
}

/// What the seen-set remembers of the referrers of the tracked visitors
/// that come from one in `groups`: at most the cap (and OTHER) each.
async fn stored_referrers(
    tx: &Transaction<'_>,
    groups: &[(&View, u64)],
    tracked: &HashSet<(Day, u64)>,
) -> Result<HashMap<(Day, u64), Remembered>, StatsStoreError> {
    let mut asked: Vec<(Day, u64)> = groups
        .iter()
        .filter(|(view, _)| view.referrer.is_some())
        .filter_map(|(view, _)| Some((view.hour.day(), view.visitor?)))
        .filter(|key| tracked.contains(key))
        .collect();
    asked.sort();
    asked.dedup();
    let mut remembered: HashMap<(Day, u64), Remembered> = HashMap::new();
    for chunk in asked.chunks(ROWS_PER_STATEMENT) {
        let days: Vec<i32> = chunk.iter().map(|(day, _)| day.0 as i32).collect();
        let visitors: Vec<i64> = chunk.iter().map(|(_, v)| *v as i64).collect();
        let rows = tx
            .query(
                "SELECT s.day, s.visitor, s.name FROM quire_stats_seen s
                 JOIN unnest($1::integer[], $2::bigint[]) AS a(day, visitor)
                   ON s.day = a.day AND s.visitor = a.visitor
                 WHERE s.metric = 2",
                &[&days, &visitors],
            )
            .await?;
        for row in rows {
            let key = (
                Day(row.get::<_, i32>(0) as u32),
                row.get::<_, i64>(1) as u64,
            );
            let name: String = row.get(2);
            let entry = remembered.entry(key).or_default();
            entry.named += u64::from(name != schema::OTHER);
            entry.names.insert(name);
        }
    }
    Ok(remembered)
}

/// Inserts the seen rows `keys` (sorted); returns the ones that were new:
/// the first sighting wins, whichever node it was.
async fn first_sightings<'k>(
    tx: &Transaction<'_>,
    keys: impl Iterator<Item = &'k SeenKey>,
) -> Result<HashSet<SeenKey>, StatsStoreError> {
    let keys: Vec<&SeenKey> = keys.collect();
    let mut new = HashSet::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let days: Vec<i32> = chunk.iter().map(|k| k.0.0 as i32).collect();
        let visitors: Vec<i64> = chunk.iter().map(|k| k.1 as i64).collect();
        let metrics: Vec<i16> = chunk.iter().map(|k| metric_code(k.2)).collect();
        let names: Vec<&str> = chunk.iter().map(|k| k.3.as_str()).collect();
        let rows = tx
            .query(
                "INSERT INTO quire_stats_seen (day, visitor, metric, name)
                 SELECT * FROM unnest($1::integer[], $2::bigint[], $3::smallint[], $4::text[])
                 ON CONFLICT DO NOTHING RETURNING day, visitor, metric, name",
                &[&days, &visitors, &metrics, &names],
            )
            .await?;
        for row in rows {
            new.insert((
                Day(row.get::<_, i32>(0) as u32),
                row.get::<_, i64>(1) as u64,
                super::metric_of(row.get(2))?,
                row.get(3),
            ));
        }
    }
    Ok(new)
}

/// A counter row's key: period (hour or day), metric, name.
pub(super) type Row = (i32, i16, String);

pub(super) fn row(period: u32, series: &Series) -> Row {
    (
        period as i32,
        metric_code(series.metric),
        series.name.clone(),
    )
}

/// Admits names into buckets up to [`schema::name_cap`], against the names
/// the buckets had when read, and those admitted since.
pub(super) struct Caps {
    prefix: u8,
    known: HashSet<(u32, Metric, String)>,
    names: HashMap<(u32, Metric), usize>,
}

impl Caps {
    /// Reads the capped names of `prefix`'s buckets `periods`.
    pub(super) async fn read(
        tx: &Transaction<'_>,
        prefix: u8,
        periods: &[u32],
    ) -> Result<Caps, StatsStoreError> {
        let mut caps = Caps {
            prefix,
            known: HashSet::new(),
            names: HashMap::new(),
        };
        let mut periods: Vec<i32> = periods.iter().map(|p| *p as i32).collect();
        periods.sort_unstable();
        periods.dedup();
        if periods.is_empty() {
            return Ok(caps);
        }
        let query = match prefix {
            DAILY => {
                "SELECT day, metric, name FROM quire_stats_daily WHERE day = ANY($1) AND metric IN (1, 2, 3)"
            }
            _ => {
                "SELECT hour, metric, name FROM quire_stats_hourly WHERE hour = ANY($1) AND metric IN (1, 2, 3)"
            }
        };
        for row in tx.query(query, &[&periods]).await? {
            let period = row.get::<_, i32>(0) as u32;
            let metric = super::metric_of(row.get(1))?;
            let name: String = row.get(2);
            if name != schema::OTHER {
                *caps.names.entry((period, metric)).or_default() += 1;
            }
            caps.known.insert((period, metric, name));
        }
        Ok(caps)
    }

    /// The series to add to in bucket `period`: `series` when the bucket has
    /// it or room for it, else the metric's [`schema::OTHER`].
    pub(super) fn admit(&mut self, period: u32, series: &Series) -> Series {
        let Some(cap) = schema::name_cap(self.prefix, series.metric) else {
            return series.clone();
        };
        let key = (period, series.metric, series.name.clone());
        if series.name == schema::OTHER || self.known.contains(&key) {
            return series.clone();
        }
        let names = self.names.entry((period, series.metric)).or_default();
        if *names < cap {
            *names += 1;
            self.known.insert(key);
            series.clone()
        } else {
            Series::new(series.metric, schema::OTHER)
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Table {
    Hourly,
    Daily,
}

/// Adds `rows` to the counters of `table`, in key order.
pub(super) async fn upsert(
    tx: &Transaction<'_>,
    table: Table,
    rows: &BTreeMap<Row, Counts>,
) -> Result<(), StatsStoreError> {
    let (name, period) = match table {
        Table::Hourly => ("quire_stats_hourly", "hour"),
        Table::Daily => ("quire_stats_daily", "day"),
    };
    let sql = format!(
        "INSERT INTO {name} AS t ({period}, metric, name, {COUNTERS})
         SELECT * FROM unnest($1::integer[], $2::smallint[], $3::text[], $4::bigint[],
             $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
         ON CONFLICT ({period}, metric, name) DO UPDATE SET {ADDED}"
    );
    let rows: Vec<(&Row, &Counts)> = rows.iter().collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let periods: Vec<i32> = chunk.iter().map(|(k, _)| k.0).collect();
        let metrics: Vec<i16> = chunk.iter().map(|(k, _)| k.1).collect();
        let names: Vec<&str> = chunk.iter().map(|(k, _)| k.2.as_str()).collect();
        let [a, b, c, d, e, f, g] = columns(chunk.iter().map(|(_, c)| *c));
        tx.execute(
            &sql,
            &[&periods, &metrics, &names, &a, &b, &c, &d, &e, &f, &g],
        )
        .await?;
    }
    Ok(())
}

/// Adds `per_day` to `node`'s own totals.
async fn upsert_node(
    tx: &Transaction<'_>,
    node: &str,
    per_day: &BTreeMap<i32, Counts>,
) -> Result<(), StatsStoreError> {
    if per_day.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO quire_stats_node_daily AS t (node, day, {COUNTERS})
         SELECT $1::text, * FROM unnest($2::integer[], $3::bigint[], $4::bigint[], $5::bigint[],
             $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
         ON CONFLICT (node, day) DO UPDATE SET {ADDED}"
    );
    let days: Vec<i32> = per_day.keys().copied().collect();
    let [a, b, c, d, e, f, g] = columns(per_day.values());
    tx.execute(&sql, &[&node, &days, &a, &b, &c, &d, &e, &f, &g])
        .await?;
    Ok(())
}

const COUNTERS: &str = "views, visitors, feed_fetches, feed_readers, bot_views, not_found, dropped";
const ADDED: &str = "views = t.views + excluded.views, visitors = t.visitors + excluded.visitors, \
     feed_fetches = t.feed_fetches + excluded.feed_fetches, \
     feed_readers = t.feed_readers + excluded.feed_readers, \
     bot_views = t.bot_views + excluded.bot_views, not_found = t.not_found + excluded.not_found, \
     dropped = t.dropped + excluded.dropped";

/// The seven counters of `counts`, as columns.
fn columns<'c>(counts: impl Iterator<Item = &'c Counts>) -> [Vec<i64>; 7] {
    let mut columns: [Vec<i64>; 7] = Default::default();
    for c in counts {
        let fields = [
            c.views,
            c.visitors,
            c.feed_fetches,
            c.feed_readers,
            c.bot_views,
            c.not_found,
            c.dropped,
        ];
        for (column, value) in columns.iter_mut().zip(fields) {
            column.push(value.min(i64::MAX as u64) as i64);
        }
    }
    columns
}
