//! Moving buffered views into the store: one atomic, durable batch per flush.
//! Counters are added per hourly bucket; a visitor is counted in the bucket
//! where they were first seen that day (the day's seen-set, kept beside the
//! salt, says who was). Views for an hour that maintenance has already rolled
//! up are added to the daily bucket too, so a late flush is never lost.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::privacy::Salt;
use super::recorder::{View, ViewKind};
use super::schema::{self, Counts, Day, Hour, Meta, Metric, Series};
use super::store::{Batch, StatsStore, StoreError, read_through};

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
) -> Result<Flushed, StoreError> {
    let aggregated_until = Meta::AggregatedUntil.read(store)?.map(Hour);
    let remembered_from = Meta::RememberedFrom.read(store)?.map(Day);
    let mut deltas: HashMap<(Hour, Series), Counts> = HashMap::new();
    let mut batch = Batch::default();
    let mut seen_in_batch: HashSet<Vec<u8>> = HashSet::new();
    // True when the visitor had not been counted for `series` that day.
    let mut first_sighting = |day: Day, visitor: u64, series: &Series, batch: &mut Batch| {
        let key = schema::seen_key(day, visitor, series);
        if seen_in_batch.contains(&key) {
            return Ok::<bool, StoreError>(false);
        }
        let new = store.get(&key)?.is_none();
        if new {
            batch.put(key.clone(), Vec::new());
        }
        seen_in_batch.insert(key);
        Ok(new)
    };

    // Identical views (same hour, kind, path, referrer and visitor) are
    // counted together: a busy reader costs one pass, not one per view.
    let mut groups: HashMap<&View, u64> = HashMap::new();
    for view in views {
        *groups.entry(view).or_default() += 1;
    }
    // Oldest first, so a visitor is counted in the hour first seen.
    let mut groups: Vec<(&View, u64)> = groups.into_iter().collect();
    groups.sort_by_key(|(view, _)| view.hour);
    for (view, n) in groups {
        let day = view.hour.day();
        // Once a day's seen-set is forgotten, its visitors can no longer be
        // told apart; late views still count, as views.
        let visitor = view
            .visitor
            .filter(|_| remembered_from.is_none_or(|from| day >= from));
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
                    if first_sighting(day, visitor, &Series::site(), &mut batch)? {
                        site.visitors = 1;
                    }
                    if first_sighting(day, visitor, &page_series, &mut batch)? {
                        page.visitors = 1;
                    }
                    if let Some((series, counts)) = referrer.as_mut()
                        && first_sighting(day, visitor, series, &mut batch)?
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
                    if first_sighting(day, visitor, &readers, &mut batch)? {
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
    for ((hour, series), delta) in deltas {
        add_counts(store, &mut batch, schema::hourly_key(hour, &series), &delta)?;
        if aggregated_until.is_some_and(|until| hour < until) {
            add_counts(
                store,
                &mut batch,
                schema::daily_key(hour.day(), &series),
                &delta,
            )?;
        }
    }
    for (day, salt) in salts {
        if remembered_from.is_none_or(|from| *day >= from) {
            batch.put(schema::salt_key(*day), salt.to_vec());
        }
    }
    store.apply(batch)?;
    Ok(Flushed {
        views: views.len(),
        records,
    })
}

/// Adds `delta` to the counters stored under `key`.
pub fn add_counts(
    store: &dyn StatsStore,
    batch: &mut Batch,
    key: Vec<u8>,
    delta: &Counts,
) -> Result<(), StoreError> {
    let mut counts = match read_through(store, batch, &key)? {
        Some(bytes) => Counts::decode(&bytes).ok_or_else(|| {
            StoreError::Corrupt(format!("counters under {}", String::from_utf8_lossy(&key)))
        })?,
        None => Counts::default(),
    };
    counts.add(delta);
    batch.put(key, counts.encode());
    Ok(())
}

/// The salts of days not yet forgotten, to keep visitor keys stable across a restart.
pub fn stored_salts(store: &dyn StatsStore) -> Result<Vec<(Day, Salt)>, StoreError> {
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
