//! Moving buffered views into the store: one atomic, durable batch per flush.
//! Counters are added per hourly bucket; a visitor is counted in the bucket
//! where they were first seen that day (the day's seen-set, kept beside the
//! salt, says who was). Views for an hour that maintenance has already rolled
//! up are added to the daily bucket too, so a late flush is never lost.
//!
//! Whatever clients send is bounded here: each bucket keeps a capped number
//! of distinct names per metric ([`Caps`]; the rest add up under
//! [`schema::OTHER`]), each day tracks a capped number of visitors
//! ([`MAX_VISITORS_PER_DAY`]), and each visitor a capped number of referrers
//! in the seen-set ([`MAX_REFERRERS_PER_VISITOR`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::privacy::Salt;
use super::recorder::{View, ViewKind};
use super::schema::{self, Counts, DAILY, Day, HOURLY, Hour, Meta, Metric, Series};
use super::store::{Batch, StatsStore, StatsStoreError, read_through};

/// Distinct visitors told apart in one day, at most. Each costs a few
/// records until the day is forgotten; a flood of made-up User-Agents would
/// otherwise add them without end. Beyond it, views still count, as views.
pub const MAX_VISITORS_PER_DAY: u64 = 100_000;

/// Referrers one visitor is remembered for in one day, at most. A reader
/// comes from a handful of sites a day; a client that sends a new referrer
/// with every request would otherwise add a seen record for each. Beyond it
/// the visitor is remembered once more, under [`schema::OTHER`].
pub const MAX_REFERRERS_PER_VISITOR: u64 = 16;

/// Admits names into buckets up to [`schema::name_cap`], counting each
/// bucket's names once per flush or roll-up (from the store, then as added).
pub struct Caps<'s> {
    store: &'s dyn StatsStore,
    names: HashMap<(u8, u32, Metric), usize>,
}

impl<'s> Caps<'s> {
    pub fn new(store: &'s dyn StatsStore) -> Caps<'s> {
        Caps {
            store,
            names: HashMap::new(),
        }
    }

    /// The series to add to in bucket `period` of `prefix`: `series` when
    /// the bucket has it or has room for it, else the metric's [`schema::OTHER`].
    pub fn admit(
        &mut self,
        batch: &Batch,
        prefix: u8,
        period: u32,
        series: &Series,
    ) -> Result<Series, StatsStoreError> {
        let Some(cap) = schema::name_cap(prefix, series.metric) else {
            return Ok(series.clone());
        };
        if series.name == schema::OTHER {
            return Ok(series.clone());
        }
        let key = bucket_key(prefix, period, series);
        if read_through(self.store, batch, &key)?.is_some() {
            return Ok(series.clone());
        }
        let names = match self.names.entry((prefix, period, series.metric)) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let (start, end) = schema::metric_range(prefix, period, series.metric);
                let other = bucket_key(prefix, period, &Series::new(series.metric, schema::OTHER));
                entry.insert(names_up_to(self.store, &start, &end, &other, cap)?)
            }
        };
        if *names < cap {
            *names += 1;
            Ok(series.clone())
        } else {
            Ok(Series::new(series.metric, schema::OTHER))
        }
    }
}

/// The names stored in `start..end` besides [`schema::OTHER`] (stored under
/// `other`), counted as far as `cap`: one more than the cap is read, so that
/// (other) among them does not hide a name.
fn names_up_to(
    store: &dyn StatsStore,
    start: &[u8],
    end: &[u8],
    other: &[u8],
    cap: usize,
) -> Result<usize, StatsStoreError> {
    Ok(store
        .range(start, end, cap + 1)?
        .into_iter()
        .filter(|(key, _)| key != other)
        .count())
}

fn bucket_key(prefix: u8, period: u32, series: &Series) -> Vec<u8> {
    if prefix == DAILY {
        schema::daily_key(Day(period), series)
    } else {
        schema::hourly_key(Hour(period), series)
    }
}

/// Visitors counted so far on `day`: the site's visitors over its hours.
fn visitors_of(store: &dyn StatsStore, batch: &Batch, day: Day) -> Result<u64, StatsStoreError> {
    let mut visitors = 0;
    for hour in day.first_hour().0..day.next().first_hour().0 {
        if let Some(bytes) = read_through(
            store,
            batch,
            &schema::hourly_key(Hour(hour), &Series::site()),
        )? {
            visitors += Counts::decode(&bytes).map_or(0, |c| c.visitors);
        }
    }
    Ok(visitors)
}

/// The day's seen-set, as one flush reads and extends it.
struct Seen<'s> {
    store: &'s dyn StatsStore,
    /// Keys this flush has already looked up or added.
    in_batch: HashSet<Vec<u8>>,
    /// Referrers remembered per (day, visitor), from the store, then as added.
    referrers: HashMap<(Day, u64), u64>,
}

impl<'s> Seen<'s> {
    fn new(store: &'s dyn StatsStore) -> Seen<'s> {
        Seen {
            store,
            in_batch: HashSet::new(),
            referrers: HashMap::new(),
        }
    }

    /// True when `visitor` had not been counted for `series` on `day`; a
    /// referrer past [`MAX_REFERRERS_PER_VISITOR`] is looked up (and
    /// remembered) as [`schema::OTHER`].
    fn first_sighting(
        &mut self,
        day: Day,
        visitor: u64,
        series: &Series,
        batch: &mut Batch,
    ) -> Result<bool, StatsStoreError> {
        let key = schema::seen_key(day, visitor, series);
        if self.in_batch.contains(&key) {
            return Ok(false);
        }
        if self.store.get(&key)?.is_some() {
            self.in_batch.insert(key);
            return Ok(false);
        }
        if series.metric == Metric::Referrer && series.name != schema::OTHER {
            let remembered = match self.referrers.entry((day, visitor)) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(stored_referrers(self.store, day, visitor)?)
                }
            };
            if *remembered >= MAX_REFERRERS_PER_VISITOR {
                let other = Series::new(Metric::Referrer, schema::OTHER);
                return self.first_sighting(day, visitor, &other, batch);
            }
            *remembered += 1;
        }
        batch.put(key.clone(), Vec::new());
        self.in_batch.insert(key);
        Ok(true)
    }
}

/// Named referrers the store remembers for `visitor` on `day`, counted
/// up to the cap.
fn stored_referrers(
    store: &dyn StatsStore,
    day: Day,
    visitor: u64,
) -> Result<u64, StatsStoreError> {
    let (start, end) = schema::seen_range(day, visitor, Metric::Referrer);
    let other = schema::seen_key(day, visitor, &Series::new(Metric::Referrer, schema::OTHER));
    let cap = MAX_REFERRERS_PER_VISITOR as usize;
    Ok(names_up_to(store, &start, &end, &other, cap)? as u64)
}

/// What a flush wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub views: usize,
    pub records: usize,
}

/// Writes `views` (and `dropped`, charged to the current hour) in one batch,
/// along with the salts still in use.
pub fn flush(
    store: &dyn StatsStore,
    views: &[View],
    dropped: u64,
    salts: &[(Day, Salt)],
    now: DateTime<Utc>,
) -> Result<Flushed, StatsStoreError> {
    // Identical views (same hour, kind, path, referrer and visitor) are
    // counted together: a busy reader costs one pass, not one per view.
    let mut groups: HashMap<&View, u64> = HashMap::new();
    for view in views {
        *groups.entry(view).or_default() += 1;
    }
    let (batch, flushed) = prepare(store, groups.into_iter().collect(), dropped, salts, now)?;
    store.apply(batch)?;
    Ok(flushed)
}

/// The batch that adds `groups` (each distinct view, with how many times it
/// was recorded) and `dropped`, and keeps `salts`; not yet applied.
pub fn prepare(
    store: &dyn StatsStore,
    mut groups: Vec<(&View, u64)>,
    dropped: u64,
    salts: &[(Day, Salt)],
    now: DateTime<Utc>,
) -> Result<(Batch, Flushed), StatsStoreError> {
    let views: u64 = groups.iter().map(|(_, n)| n).sum();
    let aggregated_until = Meta::AggregatedUntil.read(store)?.map(Hour);
    let remembered_from = Meta::RememberedFrom.read(store)?.map(Day);
    let mut deltas: HashMap<(Hour, Series), Counts> = HashMap::new();
    let mut batch = Batch::default();
    let mut seen = Seen::new(store);

    // Oldest first, so a visitor is counted in the hour first seen.
    groups.sort_by_key(|(view, _)| view.hour);
    let mut visitors_by_day: HashMap<Day, u64> = HashMap::new();
    for (view, n) in groups {
        let day = view.hour.day();
        // Once a day's seen-set is forgotten, its visitors can no longer be
        // told apart; late views still count, as views.
        let visitor = view
            .visitor
            .filter(|_| remembered_from.is_none_or(|from| day >= from));
        let visitor = match visitor {
            Some(visitor) => {
                let key = schema::seen_key(day, visitor, &Series::site());
                let known = batch.pending(&key).is_some() || store.get(&key)?.is_some();
                let counted = match visitors_by_day.entry(day) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(visitors_of(store, &batch, day)?)
                    }
                };
                if known || *counted < MAX_VISITORS_PER_DAY {
                    *counted += u64::from(!known);
                    Some(visitor)
                } else {
                    None
                }
            }
            None => None,
        };
        let mut site = Counts::default();
        match view.kind {
            ViewKind::Page => {
                site.views = n;
                let mut page = Counts {
                    views: n,
                    ..Counts::default()
                };
                let page_series = Series::new(Metric::Page, &view.path);
                let mut referrer = view.referrer.as_deref().map(|host| {
                    (
                        Series::new(Metric::Referrer, host),
                        Counts {
                            views: n,
                            ..Counts::default()
                        },
                    )
                });
                if let Some(visitor) = visitor {
                    if seen.first_sighting(day, visitor, &Series::site(), &mut batch)? {
                        site.visitors = 1;
                    }
                    if seen.first_sighting(day, visitor, &page_series, &mut batch)? {
                        page.visitors = 1;
                    }
                    if let Some((series, counts)) = referrer.as_mut()
                        && seen.first_sighting(day, visitor, series, &mut batch)?
                    {
                        counts.visitors = 1;
                    }
                }
                deltas
                    .entry((view.hour, page_series))
                    .or_default()
                    .add(&page);
                if let Some((series, counts)) = referrer {
                    deltas.entry((view.hour, series)).or_default().add(&counts);
                }
            }
            ViewKind::Feed => {
                site.feed_fetches = n;
                if let Some(visitor) = visitor {
                    let readers = Series::new(Metric::FeedReader, "");
                    if seen.first_sighting(day, visitor, &readers, &mut batch)? {
                        site.feed_readers = 1;
                    }
                }
            }
            ViewKind::NotFound => {
                site.not_found = n;
                let missing = Counts {
                    views: n,
                    ..Counts::default()
                };
                deltas
                    .entry((view.hour, Series::new(Metric::NotFound, &view.path)))
                    .or_default()
                    .add(&missing);
            }
            ViewKind::Bot => site.bot_views = n,
        }
        deltas
            .entry((view.hour, Series::site()))
            .or_default()
            .add(&site);
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
    let mut caps = Caps::new(store);
    // Busiest first, so what a full bucket turns away is the long tail.
    let mut deltas: Vec<((Hour, Series), Counts)> = deltas.into_iter().collect();
    deltas.sort_by(|(a, x), (b, y)| y.views.cmp(&x.views).then_with(|| a.cmp(b)));
    for ((hour, series), delta) in deltas {
        let admitted = caps.admit(&batch, HOURLY, hour.0, &series)?;
        add_counts(
            store,
            &mut batch,
            schema::hourly_key(hour, &admitted),
            &delta,
        )?;
        if aggregated_until.is_some_and(|until| hour < until) {
            let admitted = caps.admit(&batch, DAILY, hour.day().0, &series)?;
            add_counts(
                store,
                &mut batch,
                schema::daily_key(hour.day(), &admitted),
                &delta,
            )?;
        }
    }
    for (day, salt) in salts {
        if remembered_from.is_none_or(|from| *day >= from) {
            batch.put(schema::salt_key(*day), salt.to_vec());
        }
    }
    let flushed = Flushed {
        views: views as usize,
        records,
    };
    Ok((batch, flushed))
}

/// Adds `delta` to the counters stored under `key`.
pub fn add_counts(
    store: &dyn StatsStore,
    batch: &mut Batch,
    key: Vec<u8>,
    delta: &Counts,
) -> Result<(), StatsStoreError> {
    let mut counts = match read_through(store, batch, &key)? {
        Some(bytes) => Counts::decode(&bytes).ok_or_else(|| {
            StatsStoreError::Corrupt(format!("counters under {}", String::from_utf8_lossy(&key)))
        })?,
        None => Counts::default(),
    };
    counts.add(delta);
    batch.put(key, counts.encode());
    Ok(())
}

/// The salts of days not yet forgotten, to keep visitor keys stable across a restart.
pub fn stored_salts(store: &dyn StatsStore) -> Result<Vec<(Day, Salt)>, StatsStoreError> {
    let entries = store.range(
        &schema::bucket_start(schema::SALT, 0),
        &schema::bucket_start(schema::SALT, u32::MAX),
        1000,
    )?;
    Ok(entries
        .into_iter()
        .filter_map(|(key, value)| Some((schema::parse_salt_key(&key)?, value.try_into().ok()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::stats::maintain::{Retention, maintain};
    use crate::stats::store::MemoryStore;

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
    }

    fn view(kind: ViewKind, path: &str, referrer: Option<&str>, visitor: Option<u64>) -> View {
        View {
            hour: Hour::of(noon()),
            kind,
            path: path.into(),
            referrer: referrer.map(Into::into),
            visitor,
        }
    }

    /// (name, views) of `metric` in bucket `period` of `prefix`.
    fn names(
        store: &dyn StatsStore,
        prefix: u8,
        period: u32,
        metric: Metric,
    ) -> Vec<(String, u64)> {
        let (start, end) = schema::metric_range(prefix, period, metric);
        store
            .range(&start, &end, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(key, value)| {
                let (_, series) = schema::parse_bucket_key(&key).unwrap();
                (series.name, Counts::decode(&value).unwrap().views)
            })
            .collect()
    }

    fn other(names: &[(String, u64)]) -> u64 {
        names
            .iter()
            .find(|(name, _)| name == schema::OTHER)
            .map_or(0, |(_, views)| *views)
    }

    #[test]
    fn junk_404s_and_referrers_fold_into_other_past_the_cap_of_an_hour() {
        let store = MemoryStore::default();
        let hour = Hour::of(noon()).0;
        // The real 404 is asked for most: it keeps its row.
        let mut views = vec![view(ViewKind::NotFound, "/old-post/", None, None); 5];
        for i in 0..300 {
            views.push(view(ViewKind::NotFound, &format!("/junk/{i}"), None, None));
            views.push(view(
                ViewKind::Page,
                "/",
                Some(&format!("spam{i}.example")),
                Some(i),
            ));
        }
        flush(&store, &views, 0, &[], noon()).unwrap();
        // A later flush finds the buckets full too.
        let late = [
            view(ViewKind::NotFound, "/junk/new", None, None),
            view(ViewKind::NotFound, "/old-post/", None, None),
        ];
        flush(&store, &late, 0, &[], noon()).unwrap();

        let missing = names(&store, HOURLY, hour, Metric::NotFound);
        let cap = schema::name_cap(HOURLY, Metric::NotFound).unwrap();
        assert_eq!(missing.len(), cap + 1, "the cap, and (other)");
        assert!(missing.contains(&("/old-post/".to_string(), 6)));
        assert_eq!(
            missing.iter().map(|(_, v)| v).sum::<u64>(),
            307,
            "nothing lost"
        );
        assert_eq!(other(&missing), 307 - 6 - (cap as u64 - 1));
        let referrers = names(&store, HOURLY, hour, Metric::Referrer);
        let cap = schema::name_cap(HOURLY, Metric::Referrer).unwrap();
        assert_eq!(referrers.len(), cap + 1);
        assert_eq!(other(&referrers), 300 - cap as u64);
    }

    #[test]
    fn a_day_keeps_its_busiest_names_and_folds_the_rest() {
        let store = MemoryStore::default();
        let first = Day::of(noon()).first_hour();
        for h in 0..24 {
            let at = Hour(first.0 + h).start();
            let mut views = vec![view(ViewKind::NotFound, "/wp-login.php", None, None); 2];
            for i in 0..99 {
                views.push(view(
                    ViewKind::NotFound,
                    &format!("/junk/{h}/{i}"),
                    None,
                    None,
                ));
            }
            for view in &mut views {
                view.hour = Hour::of(at);
            }
            flush(&store, &views, 0, &[], at).unwrap();
        }
        let retention = Retention {
            hourly_days: 14,
            daily_days: 730,
            settle: std::time::Duration::from_secs(80),
        };
        maintain(&store, noon() + chrono::Duration::days(1), &retention).unwrap();
        let day = names(&store, DAILY, Day::of(noon()).0, Metric::NotFound);
        let cap = schema::name_cap(DAILY, Metric::NotFound).unwrap();
        assert_eq!(day.len(), cap + 1);
        assert!(day.contains(&("/wp-login.php".to_string(), 48)));
        assert_eq!(day.iter().map(|(_, v)| v).sum::<u64>(), 24 * 101);
    }

    #[test]
    fn a_flood_of_unique_referrers_from_one_visitor_keeps_the_seen_set_bounded() {
        let store = MemoryStore::default();
        let seen = |store: &MemoryStore| {
            store
                .range(
                    &schema::bucket_start(schema::SEEN, 0),
                    &schema::bucket_start(schema::SEEN, u32::MAX),
                    usize::MAX,
                )
                .unwrap()
                .len()
        };
        // A real reader arrives from two sites: each counts them once.
        let reader = [
            view(ViewKind::Page, "/", Some("news.example"), Some(1)),
            view(ViewKind::Page, "/", Some("news.example"), Some(1)),
            view(ViewKind::Page, "/", Some("mail.example"), Some(1)),
        ];
        flush(&store, &reader, 0, &[], noon()).unwrap();
        // One client sends a new referrer with every request, over many flushes.
        for round in 0..10 {
            let views: Vec<View> = (0..500)
                .map(|i| {
                    let host = format!("spam{round}-{i}.example");
                    view(ViewKind::Page, "/", Some(&host), Some(2))
                })
                .collect();
            flush(&store, &views, 0, &[], noon()).unwrap();
        }
        let bound = MAX_REFERRERS_PER_VISITOR as usize + 1;
        // site + page for each visitor; 2 referrers, and the flood's bound.
        assert_eq!(seen(&store), 2 + 2 + 2 + bound, "bounded, not 5,000");
        let referrers = names(&store, HOURLY, Hour::of(noon()).0, Metric::Referrer);
        let visitors = |host: &str| {
            let key = schema::hourly_key(Hour::of(noon()), &Series::new(Metric::Referrer, host));
            Counts::decode(&store.get(&key).unwrap().unwrap())
                .unwrap()
                .visitors
        };
        assert_eq!(visitors("news.example"), 1);
        assert_eq!(visitors("mail.example"), 1);
        assert_eq!(
            referrers.iter().map(|(_, v)| v).sum::<u64>(),
            3 + 5_000,
            "every view still counted"
        );
    }

    #[test]
    fn visitors_past_the_days_cap_count_as_views_only() {
        let store = MemoryStore::default();
        let extra = 10;
        let views: Vec<View> = (0..MAX_VISITORS_PER_DAY + extra)
            .map(|i| view(ViewKind::Page, "/", None, Some(i)))
            .collect();
        flush(&store, &views[..1000], 0, &[], noon()).unwrap();
        flush(&store, &views[1000..], 0, &[], noon()).unwrap();
        // One already counted comes back: still known, still one visitor.
        flush(&store, &views[..1], 0, &[], noon()).unwrap();
        let site = store
            .get(&schema::hourly_key(Hour::of(noon()), &Series::site()))
            .unwrap()
            .map(|bytes| Counts::decode(&bytes).unwrap())
            .unwrap();
        assert_eq!(site.views, MAX_VISITORS_PER_DAY + extra + 1);
        assert_eq!(site.visitors, MAX_VISITORS_PER_DAY);
        let seen = store
            .range(
                &schema::bucket_start(schema::SEEN, 0),
                &schema::bucket_start(schema::SEEN, u32::MAX),
                usize::MAX,
            )
            .unwrap()
            .len() as u64;
        assert_eq!(
            seen,
            2 * MAX_VISITORS_PER_DAY,
            "site and page, for each tracked one"
        );
    }
}
