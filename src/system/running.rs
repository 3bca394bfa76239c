//! [`RunningServer`]: what [`super::start`] hands back, to stop the server or
//! to start its successor on the same sockets.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::acme::lease::LeaseSlot;
use crate::cluster::Cluster;
use crate::control::server::UpgradeRequest;
use crate::net::{Listeners, SocketName};
use crate::reload::Reloader;
use crate::shutdown::Shutdown;
use crate::site::LiveSite;
use crate::stats::Stats;
use crate::supervisor::{Supervisor, TaskRegistry};
use crate::tls::CertResolver;
use crate::upgrade::{self, DataOwnership, Launch, UpgradeError};
use crate::web::ChallengeMap;

/// A started server; stop it with [`RunningServer::stop`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    /// The internal metrics listener, unless disabled.
    pub metrics_addr: Option<SocketAddr>,
    pub site: LiveSite,
    pub resolver: Option<Arc<CertResolver>>,
    pub challenges: ChallengeMap,
    pub tasks: TaskRegistry,
    /// The local CA's root certificate (local mode).
    pub local_ca_root: Option<std::path::PathBuf>,
    /// Reading statistics, unless disabled.
    pub stats: Option<Stats>,
    /// The shared PostgreSQL of a cluster; its keeper runs while this is held.
    pub cluster: Option<Cluster>,
    /// Applies a changed configuration file (SIGHUP, `quire reload`).
    pub reloader: Arc<Reloader>,
    /// Upgrades asked for with `quire upgrade`; [`serve`] answers them.
    pub upgrade_requests: Option<mpsc::Receiver<UpgradeRequest>>,
    pub(super) supervisor: Supervisor,
    /// Every TCP listener, whose sockets a successor is handed.
    pub(super) listeners: Listeners,
    pub(super) control: Arc<UnixListener>,
    pub(super) ownership: DataOwnership,
    pub(super) _certificate_lock: LeaseSlot,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), and waits for every task.
    pub async fn stop(self) {
        self.supervisor.stop().await;
        // The listeners have drained: the last views are in memory now.
        if let Some(stats) = self.stats {
            match tokio::task::spawn_blocking(move || stats.flush_at_exit()).await {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(kept))) => tracing::warn!("{kept}"),
                Ok(Err(e)) => tracing::error!("{e}"),
                Err(e) => tracing::error!("the last statistics flush panicked: {e}"),
            }
        }
    }

    pub fn shutdown(&self) -> &Shutdown {
        self.supervisor.shutdown()
    }

    /// Starts the binary at `launch` on this server's sockets; see
    /// [`upgrade::Starting::wait_ready`].
    pub fn start_successor(&self, launch: &Launch) -> Result<upgrade::Starting, UpgradeError> {
        if !self.ownership.is_owned() {
            return Err(UpgradeError::StillTakingOver);
        }
        let mut sockets = self.listeners.sockets();
        sockets.push((SocketName::Control, self.control.as_fd()));
        let salts = self
            .stats
            .as_ref()
            .map(|s| s.recorder().salts().current())
            .unwrap_or_default();
        upgrade::start_successor(launch, &sockets, &salts)
    }
}
