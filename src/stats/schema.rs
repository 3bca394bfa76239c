//! How statistics are laid out in the key-value store: time buckets (UTC hours
//! and days), the counters kept per bucket, the key encoding (big-endian, so
//! keys sort by time), and the schema version with its migrations.
//!
//! Keys, all in one ordered key space:
//! - `h` hour  series -> counts   hourly buckets
//! - `d` day   series -> counts   daily buckets (finished hours, added up)
//! - `s` day          -> salt     the day's visitor-key salt, forgotten after the day
//! - `v` day visitor series -> () who was already counted that day, forgotten with the salt
//! - `m` name         -> u32      bookkeeping (schema version, watermarks)
//! - `moutbox`        -> seal     the last outbox parcel merged (see `outbox`)
//!
//! A series is one byte of [`Metric`] and a name (a path or a host).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::store::{Batch, StatsStore, StatsStoreError};

/// The layout this binary writes.
pub const SCHEMA_VERSION: u32 = 1;

pub const HOURLY: u8 = b'h';
pub const DAILY: u8 = b'd';
pub const SALT: u8 = b's';
pub const SEEN: u8 = b'v';
const META: u8 = b'm';

/// An hour of UTC time, counted from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(pub u32);

/// A UTC day, counted from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub u32);

impl Hour {
    pub fn of(time: DateTime<Utc>) -> Hour {
        Hour((time.timestamp().max(0) / 3600) as u32)
    }

    pub fn day(self) -> Day {
        Day(self.0 / 24)
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.timestamp_opt(i64::from(self.0) * 3600, 0)
            .single()
            .expect("hours fit in a timestamp")
    }
}

impl Day {
    pub fn of(time: DateTime<Utc>) -> Day {
        Hour::of(time).day()
    }

    pub fn first_hour(self) -> Hour {
        Hour(self.0 * 24)
    }

    pub fn date(self) -> NaiveDate {
        self.first_hour().start().date_naive()
    }

    pub fn minus(self, days: u32) -> Day {
        Day(self.0.saturating_sub(days))
    }

    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }
}

/// What a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// The whole site; its name is empty.
    Site,
    /// One page, named by its path.
    Page,
    /// Views that arrived from another site, named by its host.
    Referrer,
    /// Requests for a path that does not exist.
    NotFound,
    /// Feed readers; only used to remember who was counted.
    FeedReader,
}

impl Metric {
    fn byte(self) -> u8 {
        match self {
            Metric::Site => b'T',
            Metric::Page => b'P',
            Metric::Referrer => b'R',
            Metric::NotFound => b'N',
            Metric::FeedReader => b'F',
        }
    }

    fn from_byte(b: u8) -> Option<Metric> {
        Some(match b {
            b'T' => Metric::Site,
            b'P' => Metric::Page,
            b'R' => Metric::Referrer,
            b'N' => Metric::NotFound,
            b'F' => Metric::FeedReader,
            _ => return None,
        })
    }
}

/// The counters of one bucket of one series. Pages and referrers use `views`
/// and `visitors`; 404 paths use `views`; the site series uses all of them.
///
/// `visitors` counts visitors in the bucket where they were first seen that
/// day, so the hours of a day add up to the day's unique visitors exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub views: u64,
    pub visitors: u64,
    pub feed_fetches: u64,
    pub feed_readers: u64,
    pub bot_views: u64,
    pub not_found: u64,
    /// Views the recorder had to drop because its buffers were full.
    pub dropped: u64,
}

impl Counts {
    fn fields(&self) -> [u64; 7] {
        [
            self.views,
            self.visitors,
            self.feed_fetches,
            self.feed_readers,
            self.bot_views,
            self.not_found,
            self.dropped,
        ]
    }

    pub fn add(&mut self, other: &Counts) {
        self.views += other.views;
        self.visitors += other.visitors;
        self.feed_fetches += other.feed_fetches;
        self.feed_readers += other.feed_readers;
        self.bot_views += other.bot_views;
        self.not_found += other.not_found;
        self.dropped += other.dropped;
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    /// Little-endian u64s with trailing zeros left out: page records stay
    /// small, and counters added later decode as zero from older records.
    pub fn encode(&self) -> Vec<u8> {
        let fields = self.fields();
        let used = fields.iter().rposition(|&v| v != 0).map_or(0, |i| i + 1);
        fields[..used]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    pub fn decode(bytes: &[u8]) -> Option<Counts> {
        if bytes.len() % 8 != 0 {
            return None;
        }
        let mut fields = [0u64; 7];
        for (slot, chunk) in fields.iter_mut().zip(bytes.chunks_exact(8)) {
            *slot = u64::from_le_bytes(chunk.try_into().ok()?);
        }
        let [
            views,
            visitors,
            feed_fetches,
            feed_readers,
            bot_views,
            not_found,
            dropped,
        ] = fields;
        Some(Counts {
            views,
            visitors,
            feed_fetches,
            feed_readers,
            bot_views,
            not_found,
            dropped,
        })
    }
}

/// A metric and its name: the part of a key after the time bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    pub metric: Metric,
    pub name: String,
}

impl Series {
    pub fn site() -> Series {
        Series {
            metric: Metric::Site,
            name: String::new(),
        }
    }

    pub fn new(metric: Metric, name: &str) -> Series {
        Series {
            metric,
            name: name.to_string(),
        }
    }

    fn append_to(&self, key: &mut Vec<u8>) {
        key.push(self.metric.byte());
        key.extend_from_slice(self.name.as_bytes());
    }

    fn parse(bytes: &[u8]) -> Option<Series> {
        let (&metric, name) = bytes.split_first()?;
        Some(Series {
            metric: Metric::from_byte(metric)?,
            name: String::from_utf8(name.to_vec()).ok()?,
        })
    }
}

/// The name that stands for every name a bucket had no room for. Paths start
/// with `/` and hosts have no parentheses, so no real name collides with it.
pub const OTHER: &str = "(other)";

/// Distinct names one bucket of `prefix` (hourly or daily) keeps for
/// `metric`; views of any further name are added to [`OTHER`]. Pages exist
/// only as the site has them, but 404 paths and referrers are whatever a
/// client sends: without a cap, junk traffic grew the store ~12 MB per 10 s.
pub fn name_cap(prefix: u8, metric: Metric) -> Option<usize> {
    let daily = prefix == DAILY;
    match metric {
        Metric::Page => Some(if daily { 2_000 } else { 1_000 }),
        Metric::Referrer => Some(if daily { 300 } else { 100 }),
        Metric::NotFound => Some(if daily { 200 } else { 100 }),
        Metric::Site | Metric::FeedReader => None,
    }
}

/// The keys of `metric`'s series in bucket `period` of `prefix`: `start..end`.
pub fn metric_range(prefix: u8, period: u32, metric: Metric) -> (Vec<u8>, Vec<u8>) {
    let mut start = prefixed(prefix, period);
    let mut end = start.clone();
    start.push(metric.byte());
    end.push(metric.byte() + 1);
    (start, end)
}

fn prefixed(prefix: u8, period: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.push(prefix);
    key.extend_from_slice(&period.to_be_bytes());
    key
}

pub fn hourly_key(hour: Hour, series: &Series) -> Vec<u8> {
    let mut key = prefixed(HOURLY, hour.0);
    series.append_to(&mut key);
    key
}

pub fn daily_key(day: Day, series: &Series) -> Vec<u8> {
    let mut key = prefixed(DAILY, day.0);
    series.append_to(&mut key);
    key
}

/// The first key of `prefix`'s bucket `period`: ranges run from one bucket's
/// start to another's.
pub fn bucket_start(prefix: u8, period: u32) -> Vec<u8> {
    prefixed(prefix, period)
}

/// Splits a bucket key into its period and series.
pub fn parse_bucket_key(key: &[u8]) -> Option<(u32, Series)> {
    let period = u32::from_be_bytes(key.get(1..5)?.try_into().ok()?);
    Some((period, Series::parse(key.get(5..)?)?))
}

pub fn salt_key(day: Day) -> Vec<u8> {
    prefixed(SALT, day.0)
}

pub fn parse_salt_key(key: &[u8]) -> Option<Day> {
    Some(Day(u32::from_be_bytes(key.get(1..5)?.try_into().ok()?)))
}

pub fn seen_key(day: Day, visitor: u64, series: &Series) -> Vec<u8> {
    let mut key = prefixed(SEEN, day.0);
    key.extend_from_slice(&visitor.to_be_bytes());
    series.append_to(&mut key);
    key
}

/// The seen keys of `visitor` for `metric` on `day`: `start..end`.
pub fn seen_range(day: Day, visitor: u64, metric: Metric) -> (Vec<u8>, Vec<u8>) {
    let mut start = prefixed(SEEN, day.0);
    start.extend_from_slice(&visitor.to_be_bytes());
    let mut end = start.clone();
    start.push(metric.byte());
    end.push(metric.byte() + 1);
    (start, end)
}

/// Where the store keeps the seal of the last outbox parcel it took, in
/// the batch that took it: a parcel is merged once, even if the process
/// stops before the outbox is cleared.
pub const OUTBOX_MERGED: &[u8] = b"moutbox";

/// Bookkeeping values the store keeps about itself.
#[derive(Debug, Clone, Copy)]
pub enum Meta {
    /// The layout version of the store.
    SchemaVersion,
    /// The first hour not yet added into the daily buckets.
    AggregatedUntil,
    /// The first day whose salt and seen-visitor sets are still kept.
    RememberedFrom,
}

impl Meta {
    fn key(self) -> Vec<u8> {
        let name: &[u8] = match self {
            Meta::SchemaVersion => b"schema",
            Meta::AggregatedUntil => b"aggregated_until",
            Meta::RememberedFrom => b"remembered_from",
        };
        let mut key = vec![META];
        key.extend_from_slice(name);
        key
    }

    pub fn read(self, store: &dyn StatsStore) -> Result<Option<u32>, StatsStoreError> {
        match store.get(&self.key())? {
            None => Ok(None),
            Some(bytes) => {
                let bytes: [u8; 4] = bytes.as_slice().try_into().map_err(|_| {
                    StatsStoreError::Corrupt(format!("the value of {self:?} is not 4 bytes"))
                })?;
                Ok(Some(u32::from_be_bytes(bytes)))
            }
        }
    }

    pub fn write(self, batch: &mut Batch, value: u32) {
        batch.put(self.key(), value.to_be_bytes().to_vec());
    }

    /// Removes the value, as if it had never been written. Used by the
    /// benchmarks to undo a roll-up; the server itself never clears one.
    pub fn clear(self, batch: &mut Batch) {
        batch.delete(self.key());
    }
}

/// One step from schema version `from` to `from + 1`. It adds its changes to
/// the batch; the version bump goes into the same batch, so an interrupted
/// migration is redone from its start, never half applied.
pub struct Migration {
    pub from: u32,
    pub describe: &'static str,
    pub apply: fn(&dyn StatsStore, &mut Batch) -> Result<(), StatsStoreError>,
}

/// The migrations this binary knows. Version 0 is a store written before
/// versioning (or a new, empty one): its layout is version 1's.
pub const MIGRATIONS: &[Migration] = &[Migration {
    from: 0,
    describe: "stamp the schema version",
    apply: |_, _| Ok(()),
}];

/// Brings the store to `target`, one migration per batch. Refuses a store
/// written by a newer binary rather than misreading it.
pub fn migrate(
    store: &dyn StatsStore,
    migrations: &[Migration],
    target: u32,
) -> Result<Vec<&'static str>, StatsStoreError> {
    let mut applied = Vec::new();
    loop {
        let version = Meta::SchemaVersion.read(store)?.unwrap_or(0);
        if version == target {
            return Ok(applied);
        }
        if version > target {
            return Err(StatsStoreError::NewerSchema {
                found: version,
                supported: target,
            });
        }
        let step = migrations
            .iter()
            .find(|m| m.from == version)
            .ok_or(StatsStoreError::NoMigration { from: version })?;
        let mut batch = Batch::default();
        (step.apply)(store, &mut batch)?;
        Meta::SchemaVersion.write(&mut batch, version + 1);
        store.apply(batch)?;
        applied.push(step.describe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::store::MemoryStore;

    #[test]
    fn hours_and_days_are_utc_buckets() {
        let t = Utc.with_ymd_and_hms(2026, 3, 9, 23, 59, 59).unwrap();
        let hour = Hour::of(t);
        assert_eq!(
            hour.start(),
            Utc.with_ymd_and_hms(2026, 3, 9, 23, 0, 0).unwrap()
        );
        assert_eq!(hour.day().date().to_string(), "2026-03-09");
        let next = Hour::of(t + chrono::Duration::seconds(1));
        assert_eq!(next.0, hour.0 + 1);
        assert_eq!(next.day(), hour.day().next());
        assert_eq!(next.day().first_hour(), next);
    }

    #[test]
    fn keys_sort_by_time_then_series() {
        let a = hourly_key(Hour(10), &Series::new(Metric::Page, "/z/"));
        let b = hourly_key(Hour(11), &Series::new(Metric::Page, "/a/"));
        let c = hourly_key(Hour(256), &Series::site());
        assert!(a < b && b < c);
        assert_eq!(
            parse_bucket_key(&b),
            Some((11, Series::new(Metric::Page, "/a/")))
        );
        assert!(bucket_start(HOURLY, 11) <= b && b < bucket_start(HOURLY, 12));
    }

    #[test]
    fn counts_round_trip_and_stay_small() {
        let page = Counts {
            views: 3,
            visitors: 2,
            ..Counts::default()
        };
        assert_eq!(page.encode().len(), 16);
        assert_eq!(Counts::decode(&page.encode()), Some(page));
        let site = Counts { dropped: 9, ..page };
        assert_eq!(Counts::decode(&site.encode()), Some(site));
        assert_eq!(Counts::decode(&[]), Some(Counts::default()));
        assert_eq!(Counts::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn migrations_run_in_order_and_newer_stores_are_refused() {
        let store = MemoryStore::default();
        const STEPS: &[Migration] = &[
            Migration {
                from: 0,
                describe: "zero to one",
                apply: |_, batch| {
                    batch.put(b"xa".to_vec(), b"1".to_vec());
                    Ok(())
                },
            },
            Migration {
                from: 1,
                describe: "one to two",
                apply: |store, batch| {
                    let old = store.get(b"xa")?.expect("step one ran first");
                    batch.delete(b"xa".to_vec());
                    batch.put(b"xb".to_vec(), old);
                    Ok(())
                },
            },
        ];
        assert_eq!(
            migrate(&store, STEPS, 2).unwrap(),
            vec!["zero to one", "one to two"]
        );
        assert_eq!(store.get(b"xb").unwrap(), Some(b"1".to_vec()));
        assert_eq!(Meta::SchemaVersion.read(&store).unwrap(), Some(2));
        assert!(migrate(&store, STEPS, 2).unwrap().is_empty(), "idempotent");
        let error = migrate(&store, MIGRATIONS, SCHEMA_VERSION).unwrap_err();
        assert!(matches!(
            error,
            StatsStoreError::NewerSchema { found: 2, .. }
        ));
        assert!(error.to_string().contains("newer quire"), "{error}");
    }
}
