//! Keeping the store small and honest over time, driven by the clock:
//! finished hours are added into daily buckets, the day's salts and
//! seen-visitor sets are forgotten once the day is over, and buckets past
//! retention are pruned.
//!
//! Every step is safe to interrupt. A day's worth of hours is rolled up in one
//! atomic batch together with the watermark that says it was, so a crash
//! either leaves both or neither: nothing lost, nothing counted twice.
//! Deleting is idempotent, and the watermark that guards it is written first.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::flush::add_counts;
use super::schema::{self, Counts, DAILY, Day, HOURLY, Hour, Meta, SALT, SEEN, Series};
use super::store::{Batch, StatsStore, StoreError};

/// How long statistics are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub hourly_days: u32,
    pub daily_days: u32,
    /// How long after an hour ends its views may still arrive (the flush
    /// interval, with room to spare); rolling up and forgetting wait that long.
    pub settle: Duration,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Maintained {
    pub hours_rolled_up: u32,
    pub days_forgotten: u32,
    pub records_pruned: usize,
}

/// Deletions go in batches of this many keys, so a long prune holds nothing for long.
const DELETE_CHUNK: usize = 10_000;

pub fn maintain(
    store: &dyn StatsStore,
    now: DateTime<Utc>,
    retention: &Retention,
) -> Result<Maintained, StoreError> {
    let settled = now - chrono::Duration::from_std(retention.settle).unwrap_or_default();
    let mut done = Maintained {
        hours_rolled_up: roll_up(store, Hour::of(settled))?,
        ..Maintained::default()
    };

    let today = Day::of(settled);
    let remembered_from = Meta::RememberedFrom.read(store)?.map(Day);
    if remembered_from.is_none_or(|from| from < today) {
        let mut batch = Batch::default();
        Meta::RememberedFrom.write(&mut batch, today.0);
        store.apply(batch)?;
        done.days_forgotten = remembered_from.map_or(0, |from| today.0 - from.0);
    }
    // Also catches deletions an interrupted run left behind.
    done.records_pruned += delete_range(store, SALT, 0, today.0)?;
    done.records_pruned += delete_range(store, SEEN, 0, today.0)?;

    let aggregated_until = Meta::AggregatedUntil.read(store)?.unwrap_or(0);
    let hourly_cutoff = Hour::of(now)
        .0
        .saturating_sub(retention.hourly_days * 24)
        .min(aggregated_until);
    done.records_pruned += delete_range(store, HOURLY, 0, hourly_cutoff)?;
    let daily_cutoff = Day::of(now).minus(retention.daily_days).0;
    done.records_pruned += delete_range(store, DAILY, 0, daily_cutoff)?;
    Ok(done)
}

/// Adds every hour before `finished` into its day, a day per batch. Returns
/// how many hours that covered.
fn roll_up(store: &dyn StatsStore, finished: Hour) -> Result<u32, StoreError> {
    let mut from = match Meta::AggregatedUntil.read(store)? {
        Some(hour) => Hour(hour),
        // A new store starts at its first hourly bucket.
        None => match store
            .range(
                &schema::bucket_start(HOURLY, 0),
                &schema::bucket_start(HOURLY, u32::MAX),
                1,
            )?
            .first()
            .and_then(|(key, _)| schema::parse_bucket_key(key))
        {
            Some((hour, _)) => Hour(hour.min(finished.0)),
            None => finished,
        },
    };
    let started = from;
    loop {
        let until = Hour(from.day().next().first_hour().0.min(finished.0));
        if until <= from {
            // Nothing to add; still record where rolling up stands.
            if Meta::AggregatedUntil.read(store)?.is_none() {
                let mut batch = Batch::default();
                Meta::AggregatedUntil.write(&mut batch, from.0);
                store.apply(batch)?;
            }
            return Ok(from.0 - started.0);
        }
        let hours = store.range(
            &schema::bucket_start(HOURLY, from.0),
            &schema::bucket_start(HOURLY, until.0),
            usize::MAX,
        )?;
        let mut sums: BTreeMap<Series, Counts> = BTreeMap::new();
        for (key, value) in &hours {
            let (_, series) = schema::parse_bucket_key(key).ok_or_else(|| {
                StoreError::Corrupt(format!("hourly key {}", String::from_utf8_lossy(key)))
            })?;
            let counts = Counts::decode(value).ok_or_else(|| {
                StoreError::Corrupt(format!("hourly counters {}", String::from_utf8_lossy(key)))
            })?;
            sums.entry(series).or_default().add(&counts);
        }
        let mut batch = Batch::default();
        for (series, counts) in sums {
            add_counts(
                store,
                &mut batch,
                schema::daily_key(from.day(), &series),
                &counts,
            )?;
        }
        Meta::AggregatedUntil.write(&mut batch, until.0);
        store.apply(batch)?;
        from = until;
    }
}

/// Deletes every key of `prefix` with a bucket in `[from, until)`.
fn delete_range(
    store: &dyn StatsStore,
    prefix: u8,
    from: u32,
    until: u32,
) -> Result<usize, StoreError> {
    let end = schema::bucket_start(prefix, until);
    let mut deleted = 0;
    loop {
        let doomed = store.range(&schema::bucket_start(prefix, from), &end, DELETE_CHUNK)?;
        if doomed.is_empty() {
            return Ok(deleted);
        }
        deleted += doomed.len();
        let mut batch = Batch::default();
        for (key, _) in doomed {
            batch.delete(key);
        }
        store.apply(batch)?;
    }
}
