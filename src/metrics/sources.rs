//! What the operator's view (the dashboard, `/health`, `/ready`, `/metrics`)
//! reads: handles to the live state of every activity, all read-only, and
//! the figures the exposition takes from them at scrape time.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::cluster::ClusterView;
use super::{Metrics, Snapshot};
use crate::acme::certs::CertStore;
use crate::clock::SharedClock;
use crate::config::Mode;
use crate::site::LiveSite;
use crate::stats::Stats;
use crate::supervisor::TaskRegistry;
use crate::tls::CertResolver;

/// Everything the operator's view reads; all of it read-only.
#[derive(Clone)]
pub struct Sources {
    pub metrics: Metrics,
    pub site: LiveSite,
    pub resolver: Option<Arc<CertResolver>>,
    pub stats: Option<Stats>,
    pub tasks: TaskRegistry,
    pub certificates: Option<CertStore>,
    pub clock: SharedClock,
    pub mode: Mode,
    pub title: String,
    pub started: DateTime<Utc>,
    /// A node of a cluster's view of it.
    pub cluster: Option<ClusterView>,
}

impl Sources {
    /// The figures the exposition reads at scrape time.
    pub fn snapshot(&self) -> Snapshot {
        let (stats_recorded, stats_dropped) = self
            .stats
            .as_ref()
            .map_or((0, 0), |s| (s.recorder().totals().0, s.dropped()));
        Snapshot {
            // The generation counts rebuilds; the first build is generation 0.
            site_builds: *self.site.subscribe().borrow() + 1,
            site_problems: self.site.snapshot().summary.problems.len(),
            certificates: self
                .resolver
                .iter()
                .flat_map(|r| r.served())
                .filter(|c| !c.temporary)
                .flat_map(|c| c.names.into_iter().map(move |n| (n, c.not_after)))
                .collect(),
            task_restarts: self.tasks.restarts(),
            stats_recorded,
            stats_dropped,
            stats_flushed: self.stats.as_ref().map_or(0, Stats::flushed),
            stats_store_bytes: self.stats.as_ref().and_then(|s| s.store().size_on_disk()),
            cluster: self
                .cluster
                .as_ref()
                .map(|view| view.figures(self.clock.now())),
        }
    }
}
