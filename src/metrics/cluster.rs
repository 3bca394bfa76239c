//! The cluster in the operator's view: how the shared PostgreSQL is, the
//! nodes with their last contact, the nodes whose content differs and the
//! lease holders, for `/ready`, `/metrics` and the dashboard. Nothing here
//! queries the database on a request: a background task re-reads the
//! registry every few seconds into a [`ClusterView`], and requests read
//! that, marked with its age when the engine is down.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::clock::{SharedClock, for_people};
use crate::cluster::status::ClusterStatus;
use crate::cluster::{Cluster, EngineHealth};
use crate::site::markdown::escape_html as esc;

/// How often the view is re-read while the engine is up: the heartbeat's
/// period, so a node's last contact is never more than one beat behind.
const REFRESH: Duration = Duration::from_secs(5);

/// What one node's view holds, cheap to clone; requests only read it.
#[derive(Clone)]
pub struct ClusterView {
    state: Arc<State>,
}

struct State {
    node: String,
    target: String,
    health: watch::Receiver<EngineHealth>,
    clock: SharedClock,
    read: ArcSwapOption<Read>,
}

/// The registry and leases as last read.
pub struct Read {
    pub status: ClusterStatus,
    /// On this node's clock.
    pub at: DateTime<Utc>,
}

impl ClusterView {
    /// Starts re-reading `cluster`'s registry in the background, until the
    /// last clone of the view is dropped.
    pub fn start(cluster: &Cluster) -> ClusterView {
        let state = Arc::new(State {
            node: cluster.node().to_string(),
            target: cluster.target().to_string(),
            health: cluster.health(),
            clock: cluster.clock().clone(),
            read: ArcSwapOption::empty(),
        });
        tokio::spawn(refresh(Arc::downgrade(&state), cluster.clone()));
        ClusterView { state }
    }

    pub fn health(&self) -> EngineHealth {
        self.state.health.borrow().clone()
    }

    pub fn last_read(&self) -> Option<Arc<Read>> {
        self.state.read.load_full()
    }

    /// What the exposition shows.
    pub fn figures(&self, now: DateTime<Utc>) -> Figures {
        let read = self.last_read();
        let status = read.as_ref().map(|r| &r.status);
        Figures {
            engine_up: self.health().is_up(),
            live_nodes: status.map_or(0, |s| s.live().count()),
            content_mismatch: status.map_or(0, |s| s.differing().len()),
            last_contact: read.as_ref().map_or_else(Vec::new, |read| {
                read.status
                    .nodes
                    .iter()
                    .map(|n| (n.node.clone(), age_now(n.last_contact_age, read.at, now)))
                    .collect()
            }),
        }
    }

    /// Whether all is well, and what to say: `/ready` never lets the
    /// cluster make a node unready (serving what it holds is what ready
    /// means), but calls it degraded, and says why, when the engine is down
    /// or the nodes' content differs.
    pub fn readiness(&self) -> (bool, String) {
        match self.health() {
            EngineHealth::Up => {
                let read = self.last_read();
                let live = read.as_ref().map_or(0, |r| r.status.live().count());
                let differing = read.as_ref().map_or_else(Vec::new, |r| {
                    r.status.differing().into_iter().map(String::from).collect()
                });
                let mut detail = format!(
                    "node {} of a cluster on {}: the shared PostgreSQL is up, {live} nodes live",
                    self.state.node, self.state.target
                );
                if !differing.is_empty() {
                    let _ = write!(
                        detail,
                        "; content differs on {}: deploy the same content to every node",
                        differing.join(", ")
                    );
                }
                (differing.is_empty(), detail)
            }
            EngineHealth::Connecting => (
                false,
                format!(
                    "node {}: connecting to the shared PostgreSQL {}; serving what this node holds",
                    self.state.node, self.state.target
                ),
            ),
            EngineHealth::Down { since, error } => (
                false,
                format!(
                    "node {}: the shared PostgreSQL {} is down since {} ({error}); serving the certificate this node holds, statistics are buffered, and no certificate is ordered until it is back",
                    self.state.node,
                    self.state.target,
                    for_people(since)
                ),
            ),
        }
    }
}

/// The age of a contact read `age` old at `read_at`, as of `now`.
fn age_now(age: Duration, read_at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    age.as_secs_f64() + (now - read_at).num_milliseconds().max(0) as f64 / 1000.0
}

/// Re-reads the registry every [`REFRESH`] and whenever the engine comes
/// back; keeps the last read while it is down.
async fn refresh(state: Weak<State>, cluster: Cluster) {
    let mut health = cluster.health();
    loop {
        if health.borrow_and_update().is_up() {
            let read = match cluster.client().await {
                Ok(client) => ClusterStatus::read(&client).await,
                Err(e) => Err(e),
            };
            let Some(state) = state.upgrade() else {
                return;
            };
            match read {
                Ok(status) => state.read.store(Some(Arc::new(Read {
                    status,
                    at: state.clock.now(),
                }))),
                // The keeper logs the engine's state changes; a failed read
                // is retried at the next refresh.
                Err(e) => tracing::debug!("reading the cluster's registry: {e}"),
            }
        }
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(REFRESH) => {}
        }
        if state.strong_count() == 0 {
            return;
        }
    }
}

/// The cluster's figures for one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub engine_up: bool,
    pub live_nodes: usize,
    pub content_mismatch: usize,
    /// Seconds since each node's last contact.
    pub last_contact: Vec<(String, f64)>,
}

/// The cluster's gauges, in their own registry: exposed only by a node of
/// a cluster, so a single node's `/metrics` stays as it was.
pub(super) struct Gauges {
    pub registry: Registry,
    engine_up: Gauge,
    nodes: Gauge,
    content_mismatch: Gauge,
    last_contact: Family<Vec<(&'static str, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Gauges {
    pub fn new() -> Gauges {
        let (engine_up, nodes, content_mismatch) = Default::default();
        let last_contact = Family::default();
        let mut registry = Registry::with_prefix("quire_cluster");
        registry.register(
            "engine_up",
            "1 while this node reaches the shared PostgreSQL, 0 while it serves on what it holds",
            Gauge::clone(&engine_up),
        );
        registry.register(
            "nodes",
            "Nodes heard from in the last 30 s, by the registry as last read",
            Gauge::clone(&nodes),
        );
        registry.register(
            "content_mismatch",
            "Nodes whose content hash differs from the live majority's (every node that reported one when there is no majority)",
            Gauge::clone(&content_mismatch),
        );
        registry.register(
            "last_contact_seconds",
            "Seconds since each node's last heartbeat, by the database's clock",
            Family::clone(&last_contact),
        );
        Gauges {
            registry,
            engine_up,
            nodes,
            content_mismatch,
            last_contact,
        }
    }

    pub fn set(&self, figures: &Figures) {
        self.engine_up.set(i64::from(figures.engine_up));
        self.nodes.set(figures.live_nodes as i64);
        self.content_mismatch.set(figures.content_mismatch as i64);
        self.last_contact.clear();
        for (node, seconds) in &figures.last_contact {
            self.last_contact
                .get_or_create(&vec![("node", node.clone())])
                .set(*seconds);
        }
    }
}

/// The dashboard's cluster section.
pub fn section(out: &mut String, view: &ClusterView, now: DateTime<Utc>) {
    out.push_str("<section class=\"broad\"><h2>Cluster</h2>");
    let (ok, detail) = view.readiness();
    let _ = write!(
        out,
        "<p class=\"{}\">{}</p>",
        if ok { "ok" } else { "bad" },
        esc(&detail)
    );
    let Some(read) = view.last_read() else {
        out.push_str("<p class=\"muted\">The registry has not been read yet.</p></section>");
        return;
    };
    if !view.health().is_up() {
        let _ = write!(
            out,
            "<p class=\"muted\">As last read at {}.</p>",
            for_people(read.at)
        );
    }
    let status = &read.status;
    out.push_str(
        "<table><tr><th>node</th><th class=\"n\">last contact</th><th>certificate serial</th><th>content</th><th>version</th></tr>",
    );
    for node in &status.nodes {
        let silent = ClusterStatus::is_silent(node);
        let differs = status.content_differs(node);
        let hash: String = node
            .content_hash
            .as_deref()
            .unwrap_or("-")
            .chars()
            .take(12)
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n{}\">{:.0} s ago</td><td class=\"detail\">{}</td><td class=\"{}\">{}{}</td><td>{}</td></tr>",
            esc(&node.node),
            if silent { " bad" } else { "" },
            age_now(node.last_contact_age, read.at, now),
            esc(node.cert_serial.as_deref().unwrap_or("-")),
            if differs { "bad" } else { "" },
            esc(&hash),
            if differs { " (differs)" } else { "" },
            esc(&node.version)
        );
    }
    out.push_str("</table>");
    if !status.leases.is_empty() {
        out.push_str(
            "<table style=\"margin-top:10px\"><tr><th>lease</th><th>holder</th><th class=\"n\">token</th><th>expires</th></tr>",
        );
        for lease in &status.leases {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"{}\">{}{}</td></tr>",
                esc(&lease.name),
                esc(&lease.holder),
                lease.token,
                if lease.live { "" } else { "muted" },
                for_people(lease.expires),
                if lease.live { "" } else { " (free)" }
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, Snapshot};

    #[test]
    fn only_a_node_of_a_cluster_exports_the_cluster_gauges() {
        let metrics = Metrics::new();
        let now = DateTime::UNIX_EPOCH;
        let alone = metrics.render(&Snapshot::default(), now);
        assert!(!alone.contains("quire_cluster"), "{alone}");
        assert!(alone.ends_with("# EOF\n"), "{alone}");

        let figures = Figures {
            engine_up: true,
            live_nodes: 2,
            content_mismatch: 1,
            last_contact: vec![("paris".into(), 2.5), ("lima".into(), 40.0)],
        };
        let snapshot = Snapshot {
            cluster: Some(figures),
            ..Snapshot::default()
        };
        let text = metrics.render(&snapshot, now);
        for line in [
            "quire_cluster_engine_up 1",
            "quire_cluster_nodes 2",
            "quire_cluster_content_mismatch 1",
            "quire_cluster_last_contact_seconds{node=\"paris\"} 2.5",
            "quire_cluster_last_contact_seconds{node=\"lima\"} 40.0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_contact_ages_with_the_time_since_it_was_read() {
        let read_at = DateTime::UNIX_EPOCH;
        let later = read_at + chrono::Duration::milliseconds(4_500);
        assert_eq!(age_now(Duration::from_secs(2), read_at, later), 6.5);
        assert_eq!(age_now(Duration::from_secs(2), later, read_at), 2.0);
    }
}
