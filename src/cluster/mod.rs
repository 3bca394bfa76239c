//! Several nodes, one site: the handle every activity uses to reach the
//! shared PostgreSQL. [`Cluster::start`] never waits for the engine: it builds
//! a bounded pool and spawns the keeper, which holds one LISTEN connection,
//! migrates the schema on every (re)connection, forwards notifications as
//! [`ClusterEvent`]s and says how the engine is ([`EngineHealth`]). Callers
//! that cannot reach the engine get [`ClusterError::Unavailable`] quickly and
//! keep serving what they hold: nothing on the request path or in a TLS
//! handshake ever calls into this module.
//!
//! `connect` owns the connection string and TLS, `schema` the versioned
//! migrations per area, `lease` the leases by the database clock, `nodes` the
//! registry of nodes and their heartbeat, `keeper` the LISTEN connection,
//! `status` what the operator is shown of them all.

mod connect;
mod keeper;
pub mod lease;
pub mod nodes;
pub mod schema;
pub mod status;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{broadcast, watch};

use crate::clock::SharedClock;
use crate::config::ClusterConfig;
pub use crate::config::NodeName;
pub use schema::Area;

/// How long a caller waits for the engine before it is called unavailable.
const WAIT_FOR_ENGINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the shared PostgreSQL {target} is unreachable ({reason}); this node keeps serving what it holds; check that the server is up and [cluster] postgres is right"
    )]
    Unavailable { target: String, reason: String },
    #[error("the lease `{name}` is held by node {holder} until {until}")]
    Held {
        name: String,
        holder: String,
        until: DateTime<Utc>,
    },
    #[error("the lease `{name}` is no longer ours: another node took it over")]
    LeaseLost { name: String },
    #[error(
        "the lease `{name}` expired by the database's clock before this write; it must be renewed first"
    )]
    LeaseExpired { name: String },
    #[error("cannot migrate the shared PostgreSQL schema ({area}): {source}")]
    Migration {
        area: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "the shared PostgreSQL holds {area} at schema version {found}, newer than this binary's {known}; upgrade quire on this node"
    )]
    Newer {
        area: &'static str,
        found: i32,
        known: i32,
    },
    #[error("a query to the shared PostgreSQL failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// The PostgreSQL channels the nodes tell each other on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A new certificate was stored (payload: the store's version).
    Certificate,
    /// Challenge answers were published or withdrawn.
    Challenge,
    /// A node took in the published challenge answers.
    ChallengeAck,
}

impl Channel {
    pub const ALL: [Channel; 3] = [
        Channel::Certificate,
        Channel::Challenge,
        Channel::ChallengeAck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Certificate => "quire_certificate",
            Channel::Challenge => "quire_challenge",
            Channel::ChallengeAck => "quire_challenge_ack",
        }
    }

    fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What the keeper tells subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    Notified {
        channel: Channel,
        payload: String,
    },
    /// The LISTEN connection is (back) up and the schema migrated.
    /// Notifications sent while it was down are lost: re-read your state.
    Connected,
}

/// How the shared engine is, as `/ready`, `/metrics`, the dashboard and
/// `quire cert status` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHealth {
    /// Not reached yet since start.
    Connecting,
    Up,
    Down {
        since: DateTime<Utc>,
        error: String,
    },
}

impl EngineHealth {
    pub fn is_up(&self) -> bool {
        matches!(self, EngineHealth::Up)
    }
}

/// The shared engine, as one node sees it. Clones share everything; the
/// keeper stops when the last clone is dropped.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

struct Shared {
    node: NodeName,
    target: String,
    pool: Pool,
    clock: SharedClock,
    events: broadcast::Sender<ClusterEvent>,
    health: watch::Sender<EngineHealth>,
    /// Whether the schema has been migrated by this process since start.
    migrated: watch::Sender<bool>,
    report: Mutex<nodes::Report>,
    /// Asks the keeper for a heartbeat now (what the node reports changed).
    beat: Arc<tokio::sync::Notify>,
}

impl Cluster {
    /// Starts reaching the engine in the background; never fails and never
    /// waits, so a node whose engine is down still starts and serves.
    pub fn start(config: &ClusterConfig, clock: SharedClock, areas: Vec<&'static Area>) -> Cluster {
        let tls = connect::tls(config);
        let pool = connect::pool(config, tls.clone());
        let shared = Arc::new(Shared {
            node: config.node.clone(),
            target: config.postgres.to_string(),
            pool,
            clock,
            events: broadcast::channel(256).0,
            health: watch::Sender::new(EngineHealth::Connecting),
            migrated: watch::Sender::new(false),
            report: Mutex::new(nodes::Report::default()),
            beat: Arc::new(tokio::sync::Notify::new()),
        });
        let keeper = keeper::Keeper {
            shared: Arc::downgrade(&shared),
            config: config.clone(),
            tls,
            areas,
        };
        tokio::spawn(keeper.run());
        Cluster { shared }
    }

    pub fn node(&self) -> &NodeName {
        &self.shared.node
    }

    /// The engine's host and database, for messages (never the password).
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// A pooled connection once the schema is migrated. Fails within a few
    /// seconds with [`ClusterError::Unavailable`] when the engine is down.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, ClusterError> {
        let mut migrated = self.shared.migrated.subscribe();
        // A bool, not the watch's guard: holding that across the pool's
        // await would make every caller's future not Send.
        let ready = matches!(
            tokio::time::timeout(WAIT_FOR_ENGINE, migrated.wait_for(|done| *done)).await,
            Ok(Ok(_))
        );
        if !ready {
            return Err(self.unavailable(match &*self.shared.health.borrow() {
                EngineHealth::Down { error, .. } => error.clone(),
                _ => "not reached yet".to_string(),
            }));
        }
        self.shared
            .pool
            .get()
            .await
            .map_err(|e| self.unavailable(connect::pool_error_text(&e)))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.shared.events.subscribe()
    }

    pub fn health(&self) -> watch::Receiver<EngineHealth> {
        self.shared.health.subscribe()
    }

    /// Sets the certificate serial this node serves, for `quire cluster
    /// status`; written by the next heartbeat.
    pub fn report_serial(&self, serial: &str) {
        self.shared.report().cert_serial = Some(serial.to_string());
        self.shared.beat.notify_one();
    }

    /// Sets the hash of the content this node serves; written by the next
    /// heartbeat, so that nodes deployed with different content show.
    pub fn report_content_hash(&self, hash: &str) {
        self.shared.report().content_hash = Some(hash.to_string());
        self.shared.beat.notify_one();
    }

    fn unavailable(&self, reason: String) -> ClusterError {
        ClusterError::Unavailable {
            target: self.shared.target.clone(),
            reason,
        }
    }
}

impl Shared {
    fn report(&self) -> std::sync::MutexGuard<'_, nodes::Report> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends `payload` on `channel` when `client`'s transaction commits (or at
/// once outside a transaction).
pub async fn notify(
    client: &impl GenericClient,
    channel: Channel,
    payload: &str,
) -> Result<(), ClusterError> {
    client
        .execute("SELECT pg_notify($1, $2)", &[&channel.name(), &payload])
        .await?;
    Ok(())
}
