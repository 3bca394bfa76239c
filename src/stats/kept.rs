//! What the store could not take, carried across a restart ([`Carryover`]):
//! the outbox reserved at start, and the parcel the last run left in it
//! until the backend has it. At shutdown, the views a failing store could
//! not take are written into that outbox ([`Kept`]), or reported lost
//! ([`Unsaved`]) when even that fails.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::backend::{Drained, Merged, StatsBackend};
use super::outbox::{Found, Outbox, OutboxError, Seal};
use super::parcel::{Parcel, Part};
use super::privacy::Salt;
use super::schema::Day;
use super::store::StatsStoreError;

/// Views the store could not take at shutdown, kept in the outbox.
#[derive(Debug)]
pub struct Kept {
    pub views: u64,
    /// Views that did not fit in the outbox, kept there as a dropped count.
    pub folded: u64,
    pub outbox: PathBuf,
    pub error: StatsStoreError,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; the last {} statistics views were kept in {} and are added to the store at the next start",
            self.error,
            self.views,
            self.outbox.display()
        )?;
        if self.folded > 0 {
            write!(
                f,
                " ({} more did not fit and are counted as dropped)",
                self.folded
            )?;
        }
        Ok(())
    }
}

/// Views lost at shutdown: the store could not take them, nor the outbox.
#[derive(Debug, thiserror::Error)]
#[error("the last {views} statistics views were not saved: {error}; {why}")]
pub struct Unsaved {
    pub views: u64,
    pub error: StatsStoreError,
    #[source]
    pub why: NotKept,
}

/// Why the outbox could not keep what the store did not take.
#[derive(Debug, thiserror::Error)]
pub enum NotKept {
    #[error("there is no outbox to keep them in (the log at start says why)")]
    NoOutbox,
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// The outbox, and what the last run left in it.
#[derive(Default)]
pub struct Carryover {
    /// Reserved while a durable store is attached.
    outbox: Option<Outbox>,
    /// What the last run left in the outbox, until the store has it.
    pending: Option<(Parcel, Seal)>,
}

impl Carryover {
    /// Reserves the outbox at `path` and reads what the last run left in
    /// it. Never fails: what goes wrong is logged, and costs views only if
    /// the store fails at shutdown too.
    pub fn open(path: &Path) -> Carryover {
        let outbox = match Outbox::reserve(path) {
            Ok(outbox) => outbox,
            Err(e) => {
                tracing::error!("{e}");
                return Carryover::default();
            }
        };
        match outbox.read() {
            Ok(Found::Empty) => Carryover {
                outbox: Some(outbox),
                pending: None,
            },
            Ok(Found::Parcel(parcel, seal)) => {
                tracing::info!(
                    "{} holds {} statistics views kept at the last shutdown, when the store could not take them; adding them to the store",
                    path.display(),
                    parcel.count()
                );
                Carryover {
                    outbox: Some(outbox),
                    pending: Some((parcel, seal)),
                }
            }
            Ok(Found::Damaged(why)) => {
                let (moved, fresh) = outbox.set_aside();
                match moved {
                    Ok(aside) => tracing::error!(
                        "the statistics outbox {} is damaged ({why}); it was not added to the store, and was moved to {} for inspection: remove that file once you no longer need it",
                        path.display(),
                        aside.display()
                    ),
                    Err(e) => tracing::error!(
                        "the statistics outbox {} is damaged ({why}) and was not added to the store; {e}",
                        path.display()
                    ),
                }
                let outbox = fresh.inspect_err(|e| tracing::error!("{e}")).ok();
                Carryover {
                    outbox,
                    pending: None,
                }
            }
            // Left alone, not written over: the next start reads it again.
            Err(e) => {
                tracing::error!("{e}; it is read again at the next start");
                Carryover::default()
            }
        }
    }

    /// The salts of the waiting parcel's days, so that its readers stay
    /// one visitor each.
    pub fn pending_salts(&self) -> Option<&[(Day, Salt)]> {
        self.pending.as_ref().map(|(parcel, _)| &parcel.salts[..])
    }

    /// Views waiting in the parcel.
    pub fn pending(&self) -> u64 {
        self.pending
            .as_ref()
            .map_or(0, |(parcel, _)| parcel.count())
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Adds the waiting parcel to `backend`, once, then empties the outbox.
    /// Returns how many views that added.
    pub fn merge(
        &mut self,
        backend: &dyn StatsBackend,
        salts: &[(Day, Salt)],
        now: DateTime<Utc>,
    ) -> Result<u64, StatsStoreError> {
        let (Some((parcel, seal)), Some(outbox)) = (&self.pending, &self.outbox) else {
            return Ok(0);
        };
        let path = outbox.path().display();
        let added = match backend.merge(parcel, seal, salts, now)? {
            Merged::AlreadyAdded => {
                tracing::info!("the store already has the views of {path}; emptying it");
                0
            }
            Merged::Added(flushed) => {
                let had = parcel.count().saturating_sub(flushed.views as u64);
                tracing::info!(
                    "recovered {} statistics views from {path} into the store{}{}",
                    flushed.views,
                    match had {
                        0 => String::new(),
                        n =>
                            format!(" ({n} more it had already, from a write whose reply was lost)"),
                    },
                    match parcel.dropped() {
                        0 => String::new(),
                        n => format!(" ({n} more had been dropped and are counted as dropped)"),
                    }
                );
                flushed.views as u64
            }
        };
        if let Err(e) = outbox.clear() {
            tracing::warn!("{e}; the store has its views and will not add them twice");
        }
        self.pending = None;
        Ok(added)
    }

    /// Writes the `drained` views, which the store failed to take with
    /// `error`, into the outbox, together with the parcel still waiting.
    /// Each batch keeps its sequence number, and the waiting parcel's parts
    /// take its seal along, so that a write of them that committed while
    /// its reply was lost (a backend over the network) is not added again
    /// from the outbox.
    pub fn keep(
        &self,
        drained: &Drained<'_>,
        salts: Vec<(Day, Salt)>,
        error: StatsStoreError,
    ) -> Result<Kept, Unsaved> {
        let carried = self.pending.iter().flat_map(|(parcel, seal)| {
            parcel.parts.iter().map(|part| {
                let mut part = part.clone();
                part.parcels.push(*seal);
                part
            })
        });
        let drained = drained.split().map(|(batch, views)| {
            let views = views.iter().map(|view| (view.clone(), 1));
            Part::new(Some(batch.seq), Vec::new(), views, batch.dropped)
        });
        let parcel = Parcel {
            parts: carried.chain(drained).collect(),
            salts,
        };
        let views = parcel.count();
        // Only an attached durable store reserves the outbox: a successor
        // still waiting for its predecessor leaves it to that process.
        let Some(outbox) = &self.outbox else {
            return Err(Unsaved {
                views,
                error,
                why: NotKept::NoOutbox,
            });
        };
        match outbox.put(&parcel) {
            Ok((_, folded)) => Ok(Kept {
                views: views - folded,
                folded,
                outbox: outbox.path().to_path_buf(),
                error,
            }),
            Err(e) => Err(Unsaved {
                views,
                error,
                why: e.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::datadir::DataDir;
    use crate::stats::fixtures::{noon, record, totals, with_outbox};
    use crate::stats::outbox::{Found, Outbox};
    use crate::stats::store::testing::Crashing;
    use crate::stats::{Stats, StoreHealth};

    #[test]
    fn views_the_store_cannot_take_at_shutdown_wait_in_the_outbox_and_are_added_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.1");
        record(&stats, "192.0.2.1");
        record(&stats, "192.0.2.2");
        store.fail_after(0);
        let kept = stats.flush_at_exit().unwrap().expect("kept, not saved");
        assert_eq!((kept.views, kept.folded), (3, 0));
        assert!(kept.to_string().contains("next start"), "{kept}");
        drop(stats);
        let outbox = std::fs::read(DataDir::new(dir.path()).stats_outbox()).unwrap();

        // The next start, with room on the disk again.
        store.free_space();
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        assert_eq!(totals(&stats), (3, 2, 0), "nothing lost");
        assert_eq!(stats.flush_at_exit().unwrap().map(|k| k.views), None);
        drop(stats);

        // Stopped after the store took the parcel, before the outbox was
        // emptied: the parcel is seen again, and not added twice.
        std::fs::write(DataDir::new(dir.path()).stats_outbox(), &outbox).unwrap();
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        assert_eq!(totals(&stats), (3, 2, 0), "added once");
        let emptied = std::fs::read(DataDir::new(dir.path()).stats_outbox()).unwrap();
        assert!(emptied.iter().all(|&b| b == 0));
    }

    #[test]
    fn the_outbox_names_each_batch_and_the_parcels_that_carried_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = DataDir::new(dir.path()).stats_outbox();
        let kept = || match Outbox::reserve(&path).unwrap().read().unwrap() {
            Found::Parcel(parcel, seal) => (parcel, seal),
            found => panic!("{found:?}"),
        };
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.1");
        store.fail_after(0);
        assert!(stats.flush_now().is_err());
        record(&stats, "192.0.2.2");
        assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 2);
        drop(stats);
        let (first, seal) = kept();
        let batches: Vec<_> = first.parts.iter().map(|p| (p.batch, p.count())).collect();
        assert!(
            matches!(batches[..], [(Some(a), 1), (Some(b), 1)] if a < b),
            "{batches:?}"
        );
        assert!(first.parts.iter().all(|p| p.parcels.is_empty()));

        // Stopped again while the store still fails: the parcel's parts
        // carry its seal, beside the batch drained since.
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.3");
        assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 3);
        drop(stats);
        let (second, _) = kept();
        let carried: Vec<_> = second.parts.iter().map(|p| &p.parcels[..]).collect();
        assert_eq!(carried, [&[seal][..], &[seal], &[]]);
        for (carried, part) in second.parts.iter().zip(&first.parts) {
            assert_eq!((carried.batch, &carried.views), (part.batch, &part.views));
        }
        assert!(second.parts[2].batch > first.parts[1].batch);
    }

    #[test]
    fn a_parcel_like_one_already_added_is_added_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        // Two runs end alike: the same reader, the same hour, a full disk.
        for run in 1..=2 {
            let stats =
                Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
            record(&stats, "192.0.2.1");
            store.fail_after(0);
            assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 1, "{run}");
            drop(stats);
            store.free_space();
        }
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        assert_eq!(
            totals(&stats),
            (2, 1, 0),
            "the second parcel is not the first"
        );
    }

    #[test]
    fn the_outbox_outlives_a_flush_that_worked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.1");
        assert_eq!(stats.flush_now().unwrap().views, 1);
        record(&stats, "192.0.2.2");
        store.fail_after(0);
        let kept = stats.flush_at_exit().unwrap().expect("kept, not saved");
        assert_eq!(kept.views, 1);
    }

    #[test]
    fn an_outbox_found_while_the_store_still_fails_is_kept_until_it_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.1");
        store.fail_after(0);
        assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 1);
        drop(stats);

        // Still full at the next start: the parcel waits, and is reported.
        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        let StoreHealth::Retrying(why) = stats.health() else {
            panic!("not writing: {:?}", stats.health())
        };
        assert!(why.contains("1 views wait"), "{why}");
        record(&stats, "192.0.2.2");
        // And stopped again before the disk had room: both are kept.
        assert_eq!(stats.flush_at_exit().unwrap().unwrap().views, 2);
        drop(stats);

        let stats = Stats::new(Box::new(store.clone()), with_outbox(dir.path()), noon()).unwrap();
        record(&stats, "192.0.2.3");
        store.free_space();
        assert_eq!(stats.flush_now().unwrap().views, 1);
        assert_eq!(totals(&stats), (3, 3, 0));
        assert_eq!(stats.health(), StoreHealth::Writing);
    }
}
