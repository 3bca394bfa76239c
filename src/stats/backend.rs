//! The seam between the running statistics (`Stats`: buffering,
//! retries with backoff, the outbox) and where they are kept. A
//! [`StatsBackend`] takes flushes and outbox parcels, maintains, reports and
//! hands back the salts, each as one call that is durable when it returns.
//! Any ordered key-value store with atomic batches ([`StatsStore`]: sled,
//! memory) is a backend through the layout in `schema`; an engine with its
//! own tables (a database shared by several nodes: `postgres`) implements
//! the trait itself. Every call blocks: callers run it off the async runtime.

use chrono::{DateTime, Utc};

use super::dump;
use super::flush::{self, Flushed};
use super::maintain::{self, Maintained, Retention};
use super::outbox::Seal;
use super::parcel::Parcel;
use super::privacy::Salt;
use super::recorder::View;
use super::report::{self, Report};
use super::schema::{self, Counts, Day};
use super::store::{StatsStore, StatsStoreError};

/// What [`StatsBackend::merge`] did with a parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    Added(Flushed),
    /// The backend had recorded this seal: the parcel was added before
    /// (the process stopped before emptying the outbox).
    AlreadyAdded,
}

/// Views drained from the recorder, oldest first, in batches. A batch is
/// named (by a sequence number of this node) when it is drained and keeps
/// that name across retries, so that a backend whose commit may succeed
/// while its reply is lost (a database over the network) can tell a retried
/// batch it already added from a new one.
#[derive(Debug, Clone, Copy)]
pub struct Drained<'a> {
    pub views: &'a [View],
    /// In drain order; their `views` add up to `views.len()`.
    pub batches: &'a [Sealed],
}

/// One drained batch: its sequence number, how many of the views are its
/// own (the next ones after the batch before), and the views it counts as
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub seq: u64,
    pub views: usize,
    pub dropped: u64,
}

impl Drained<'_> {
    pub fn dropped(&self) -> u64 {
        self.batches.iter().map(|b| b.dropped).sum()
    }

    /// Each batch with its own views.
    pub fn split(&self) -> impl Iterator<Item = (&Sealed, &[View])> {
        let mut rest = self.views;
        self.batches.iter().map(move |batch| {
            let (own, tail) = rest.split_at(batch.views.min(rest.len()));
            rest = tail;
            (batch, own)
        })
    }
}

/// Where a running server keeps its statistics.
pub trait StatsBackend: Send + Sync + 'static {
    /// Where the statistics live, for messages.
    fn describe(&self) -> String;
    /// Bytes on disk, as last measured. Read on the request path
    /// (`/metrics`): never waits on the disk or a lock.
    fn size_on_disk(&self) -> Option<u64>;
    /// Makes the backend usable again after a call failed, for engines that
    /// stay broken until then (sled after an I/O error). Called before
    /// every retry.
    fn recover(&self) -> Result<(), StatsStoreError>;
    /// Brings what is stored to this binary's layout; returns the steps
    /// taken, for the log. Refuses a layout from a newer binary.
    fn migrate(&self) -> Result<Vec<&'static str>, StatsStoreError>;
    /// The salts of the days not yet forgotten, so that a reader stays one
    /// visitor across a restart.
    fn salts(&self) -> Result<Vec<(Day, Salt)>, StatsStoreError>;
    /// Adds the drained views (identical ones counted together) and what
    /// they count as dropped (charged to the hour of `now`), and keeps
    /// `salts`, in one write. A batch the backend has already added (a
    /// retry after a lost reply) is not added again.
    fn flush(
        &self,
        drained: &Drained<'_>,
        salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Flushed, StatsStoreError>;
    /// Adds a parcel from the outbox unless the backend has recorded its
    /// `seal`, and records the seal in the same write, so that a parcel is
    /// added once however often the process stops before emptying the outbox.
    fn merge(
        &self,
        parcel: &Parcel,
        seal: &Seal,
        salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Merged, StatsStoreError>;
    /// Rolls up, forgets and prunes as of `now`.
    fn maintain(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
    ) -> Result<Maintained, StatsStoreError>;
    /// The days `from..=to`; rankings keep their `top` first rows.
    fn report(&self, from: Day, to: Day, top: usize) -> Result<Report, StatsStoreError>;
    /// A logical copy, for backups, in the format `dump` reads back.
    fn export(&self) -> Result<Vec<u8>, StatsStoreError>;
    /// For a backend shared by several nodes: the salts of `days`, decided
    /// once for all of them (`ours` is offered for a day that has none
    /// yet), so that a reader seen by two nodes is one visitor. `None`: the
    /// salts this node makes are the backend's.
    fn shared_salts(
        &self,
        _days: &[Day],
        _ours: &[(Day, Salt)],
    ) -> Result<Option<Vec<(Day, Salt)>>, StatsStoreError> {
        Ok(None)
    }
    /// For a backend shared by several nodes: each node's totals over the
    /// days `from..=to`, by node name. `None` for a backend of one node.
    fn report_by_node(
        &self,
        _from: Day,
        _to: Day,
    ) -> Result<Option<Vec<(String, Counts)>>, StatsStoreError> {
        Ok(None)
    }
    /// The key-value store beneath, for a backend that is one: lets tests
    /// and tools look at the stored layout itself.
    fn as_key_value(&self) -> Option<&dyn StatsStore> {
        None
    }
}

impl<S: StatsStore> StatsBackend for S {
    fn describe(&self) -> String {
        StatsStore::describe(self)
    }

    fn size_on_disk(&self) -> Option<u64> {
        StatsStore::size_on_disk(self)
    }

    fn recover(&self) -> Result<(), StatsStoreError> {
        StatsStore::recover(self)
    }

    fn migrate(&self) -> Result<Vec<&'static str>, StatsStoreError> {
        schema::migrate(self, schema::MIGRATIONS, schema::SCHEMA_VERSION)
    }

    fn salts(&self) -> Result<Vec<(Day, Salt)>, StatsStoreError> {
        flush::stored_salts(self)
    }

    /// A batch's write is atomic and its outcome known, so there is no
    /// retry of a batch already added to tell apart: sequence numbers are
    /// not kept.
    fn flush(
        &self,
        drained: &Drained<'_>,
        salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Flushed, StatsStoreError> {
        flush::flush(self, drained.views, drained.dropped(), salts, now)
    }

    fn merge(
        &self,
        parcel: &Parcel,
        seal: &Seal,
        salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<Merged, StatsStoreError> {
        if self.get(schema::OUTBOX_MERGED)?.as_deref() == Some(&seal[..]) {
            return Ok(Merged::AlreadyAdded);
        }
        let groups = parcel.views.iter().map(|(view, n)| (view, *n)).collect();
        let (mut batch, flushed) = flush::prepare(self, groups, parcel.dropped, salts, now)?;
        batch.put(schema::OUTBOX_MERGED.to_vec(), seal.to_vec());
        self.apply(batch)?;
        Ok(Merged::Added(flushed))
    }

    fn maintain(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
    ) -> Result<Maintained, StatsStoreError> {
        maintain::maintain(self, now, retention)
    }

    fn report(&self, from: Day, to: Day, top: usize) -> Result<Report, StatsStoreError> {
        report::report(self, from, to, top)
    }

    fn export(&self) -> Result<Vec<u8>, StatsStoreError> {
        dump::export(self)
    }

    fn as_key_value(&self) -> Option<&dyn StatsStore> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::stats::parcel::samples::parcel;
    use crate::stats::store::MemoryStore;

    #[test]
    fn a_parcel_is_added_once_per_seal() {
        let backend: &dyn StatsBackend = &MemoryStore::default();
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let parcel = parcel();
        let views = |backend: &dyn StatsBackend| {
            let day = Day::of(now);
            backend.report(day.minus(400), day, 0).unwrap().total.views
        };
        let Merged::Added(first) = backend.merge(&parcel, &[1; 32], &[], now).unwrap() else {
            panic!("a new seal is added");
        };
        assert_eq!(first.views as u64, parcel.count());
        let added = views(backend);
        assert!(added > 0);
        assert_eq!(
            backend.merge(&parcel, &[1; 32], &[], now).unwrap(),
            Merged::AlreadyAdded
        );
        assert_eq!(views(backend), added, "added once");
        assert!(matches!(
            backend.merge(&parcel, &[2; 32], &[], now).unwrap(),
            Merged::Added(_)
        ));
        assert_eq!(views(backend), 2 * added, "another seal, another parcel");
    }
}
