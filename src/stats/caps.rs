//! What clients can make the store keep is bounded here: each bucket keeps a
//! capped number of distinct names per metric ([`Caps`]; the rest add up
//! under [`schema::OTHER`]), each day tracks a capped number of visitors
//! ([`MAX_VISITORS_PER_DAY`]), and each visitor a capped number of referrers
//! in the day's seen-set ([`MAX_REFERRERS_PER_VISITOR`]). Flushes and the
//! daily roll-up admit names through these.

use std::collections::{HashMap, HashSet};

use super::schema::{self, Counts, DAILY, Day, Hour, Metric, Series};
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
pub fn visitors_of(
    store: &dyn StatsStore,
    batch: &Batch,
    day: Day,
) -> Result<u64, StatsStoreError> {
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
pub struct Seen<'s> {
    store: &'s dyn StatsStore,
    /// Keys this flush has already looked up or added.
    in_batch: HashSet<Vec<u8>>,
    /// Referrers remembered per (day, visitor), from the store, then as added.
    referrers: HashMap<(Day, u64), u64>,
}

impl<'s> Seen<'s> {
    pub fn new(store: &'s dyn StatsStore) -> Seen<'s> {
        Seen {
            store,
            in_batch: HashSet::new(),
            referrers: HashMap::new(),
        }
    }

    /// True when `visitor` had not been counted for `series` on `day`; a
    /// referrer past [`MAX_REFERRERS_PER_VISITOR`] is looked up (and
    /// remembered) as [`schema::OTHER`].
    pub fn first_sighting(
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::stats::flush::flush;
    use crate::stats::maintain::{Retention, maintain};
    use crate::stats::recorder::{View, ViewKind};
    use crate::stats::schema::HOURLY;
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
