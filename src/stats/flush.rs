//! Moving buffered views into the store: one atomic, durable batch per flush.
//! Counters are added per hourly bucket; a visitor is counted in the bucket
//! where they were first seen that day (the day's seen-set, kept beside the
//! salt, says who was). Views for an hour that maintenance has already rolled
//! up are added to the daily bucket too, so a late flush is never lost.
//! Whatever clients send is bounded on the way in (`caps`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::caps::{Caps, MAX_VISITORS_PER_DAY, Seen, visitors_of};
use super::privacy::Salt;
use super::recorder::{View, ViewKind};
use super::schema::{self, Counts, DAILY, Day, HOURLY, Hour, Meta, Metric, Series};
use super::store::{Batch, StatsStore, StatsStoreError, read_through};

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
    let mut batch = Batch::default();
    let mut seen = Seen::new(store);

    // Oldest first, so a visitor is counted in the hour first seen.
    groups.sort_by_key(|(view, _)| view.hour);
    let mut deltas = view_counts(&groups, dropped, now);
    let mut visitors_by_day: HashMap<Day, u64> = HashMap::new();
    for (view, _) in &groups {
        let day = view.hour.day();
        // Once a day's seen-set is forgotten, its visitors can no longer be
        // told apart; late views still count, as views.
        let Some(visitor) = view
            .visitor
            .filter(|_| remembered_from.is_none_or(|from| day >= from))
        else {
            continue;
        };
        let key = schema::seen_key(day, visitor, &Series::site());
        let known = batch.pending(&key).is_some() || store.get(&key)?.is_some();
        let counted = match visitors_by_day.entry(day) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(visitors_of(store, &batch, day)?)
            }
        };
        if !known && *counted >= MAX_VISITORS_PER_DAY {
            continue;
        }
        *counted += u64::from(!known);
        let mut first_sighting = |series: &Series| -> Result<bool, StatsStoreError> {
            seen.first_sighting(day, visitor, series, &mut batch)
        };
        match view.kind {
            ViewKind::Page => {
                let page = Series::new(Metric::Page, &view.path);
                let referrer = view
                    .referrer
                    .as_deref()
                    .map(|host| Series::new(Metric::Referrer, host));
                for series in [Some(Series::site()), Some(page), referrer]
                    .into_iter()
                    .flatten()
                {
                    if first_sighting(&series)? {
                        deltas.entry((view.hour, series)).or_default().visitors += 1;
                    }
                }
            }
            ViewKind::Feed => {
                if first_sighting(&Series::new(Metric::FeedReader, ""))? {
                    let site = deltas.entry((view.hour, Series::site())).or_default();
                    site.feed_readers += 1;
                }
            }
            ViewKind::NotFound | ViewKind::Bot => {}
        }
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

/// What `groups` add to the counters, visitors and feed readers aside
/// (counting those takes knowing who was seen before): views by page,
/// referrer and missing path, and the site's views, feed fetches, 404s and
/// bot views, each in its view's hour; `dropped` goes to the hour of `now`.
pub fn view_counts(
    groups: &[(&View, u64)],
    dropped: u64,
    now: DateTime<Utc>,
) -> HashMap<(Hour, Series), Counts> {
    let mut deltas: HashMap<(Hour, Series), Counts> = HashMap::new();
    for (view, n) in groups {
        let n = *n;
        let views = Counts {
            views: n,
            ..Counts::default()
        };
        let mut site = Counts::default();
        match view.kind {
            ViewKind::Page => {
                site.views = n;
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
                let series = Series::new(Metric::NotFound, &view.path);
                deltas.entry((view.hour, series)).or_default().add(&views);
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
    deltas
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
