//! The salts of a backend shared by several nodes: one salt per day for the
//! whole cluster, decided once in the backend and taken on ahead of time
//! (today's and tomorrow's), so that recording never waits and a reader seen
//! by two nodes is one visitor. When the backend cannot be reached as a day
//! begins, the recorder makes this node's own salt for it rather than wait;
//! that salt is offered to the backend once it answers, and given up should
//! another node's have been decided first.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::schema::Day;
use super::{Stats, StatsStoreError};

/// How often the shared salts are checked once known: tomorrow's is taken on
/// a day ahead, so this only bounds how late a node learns of a change.
pub const SALTS_EVERY: Duration = Duration::from_secs(600);

/// Where this node stands with the shared salts.
#[derive(Debug, Default)]
pub(super) struct SaltCheck {
    /// When they were last taken on, on the injected clock.
    checked: Option<DateTime<Utc>>,
    /// The days whose salt came from the backend.
    decided: Vec<Day>,
    /// The day this node last said it counts with a salt of its own.
    warned: Option<Day>,
}

impl Stats {
    /// Takes on the backend's salts of today and tomorrow when due: at the
    /// first call, every [`SALTS_EVERY`], and at every call after a failure.
    /// Nothing to do for a backend of one node. Blocking.
    pub fn check_salts(&self) -> Result<(), StatsStoreError> {
        let now = self.shared.clock.now();
        let today = Day::of(now);
        let mut check = self
            .shared
            .salt_check
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let every = chrono::Duration::from_std(SALTS_EVERY).unwrap_or_default();
        if check.checked.is_some_and(|at| now - at < every) {
            return Ok(());
        }
        let salts = self.shared.recorder.salts();
        let days = [today, today.next()];
        let ours: Vec<_> = salts
            .current()
            .into_iter()
            .filter(|(day, _)| days.contains(day))
            .collect();
        match self.store().shared_salts(&days, &ours) {
            Ok(decided) => {
                let decided = decided.unwrap_or(ours);
                for day in salts.settle(&decided) {
                    tracing::warn!(
                        "this node counted the readers of {} with a salt of its own (the shared statistics could not be reached when the day began) and now takes on the cluster's: a reader it saw before may be counted once more",
                        day.date()
                    );
                }
                check.decided = decided.iter().map(|(day, _)| *day).collect();
                check.checked = Some(now);
                Ok(())
            }
            Err(e) => {
                check.checked = None;
                if !check.decided.contains(&today) && check.warned != Some(today) {
                    check.warned = Some(today);
                    tracing::warn!(
                        "the cluster's salt for {} could not be fetched ({e}); this node counts its readers with a salt of its own until it can, so a reader it sees may be counted again by other nodes",
                        today.date()
                    );
                }
                Err(e)
            }
        }
    }
}
