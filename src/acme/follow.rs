//! The certificate follower of a cluster node, a supervised task: it keeps
//! this node serving the certificate in the shared store, whichever node
//! ordered it. It looks at the certificate's version on a notification
//! (`quire_certificate`), after every (re)connection or a missed event, and
//! every [`VERSION_CHECK`] on the injected clock, since notifications sent
//! while the node was disconnected are lost. A new version is checked (names,
//! validity), written as this node's local copy in the data directory (the
//! same files as a single node, so a restart with the engine down serves it),
//! swapped into the resolver, reported as this node's serial, backed up, and
//! handed to this node's post-issue hook. Nothing here is on the request
//! path: the resolver holds what is served in memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::error::RecvError;

use super::backup;
use super::certs::{CertStore, StoredCert};
use super::lease::LeaseSlot;
use super::manager::run_hook;
use super::pg_store::PgStore;
use super::store::keep_lease;
use crate::clock::SharedClock;
use crate::cluster::{Channel, ClusterEvent};
use crate::names::SiteName;
use crate::shutdown::Shutdown;
use crate::supervisor::Activity;
use crate::tls::{CertBundle, CertResolver};

/// How often the version is compared without a notification.
pub const VERSION_CHECK: Duration = Duration::from_secs(10);

/// A certificate's serial as the cluster reports it: hexadecimal.
pub fn serial_hex(bundle: &CertBundle) -> String {
    bundle.serial.iter().map(|b| format!("{b:02x}")).collect()
}

/// Follows the shared certificate into this node.
#[derive(Clone)]
pub struct CertFollower {
    /// The shared store.
    pub shared: PgStore,
    /// The site's certificate there.
    pub store: CertStore,
    /// This node's copy in its data directory.
    pub local: CertStore,
    /// The data directory's lease, which the local copy is written under.
    pub local_lease: LeaseSlot,
    pub resolver: Arc<CertResolver>,
    pub domains: tokio::sync::watch::Receiver<Vec<SiteName>>,
    pub data_dir: PathBuf,
    pub post_issue_hook: Option<String>,
    pub clock: SharedClock,
}

/// What one look at the shared store found.
#[derive(Debug, Clone, PartialEq)]
pub enum Caught {
    /// Nothing newer than `version`.
    Current,
    /// Installed version `version` with this serial.
    Installed { version: i64, serial: String },
    /// The version was seen but cannot serve; it is not looked at again.
    Refused { version: i64 },
    /// The shared store did not answer.
    Unreachable,
}

impl CertFollower {
    /// One look: installs the shared certificate if its version is not
    /// `held`; returns what it found, and the version now held.
    pub async fn catch_up(&self, held: Option<i64>) -> (Caught, Option<i64>) {
        let key = self.store.key("fullchain.pem");
        let version = match self.shared.version(&key).await {
            Ok(version) => version,
            Err(e) => {
                tracing::debug!("cannot read the certificate version: {e}");
                return (Caught::Unreachable, held);
            }
        };
        let Some(version) = version.filter(|v| Some(*v) != held) else {
            return (Caught::Current, held);
        };
        let stored = match self.store.load(None).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return (Caught::Current, held),
            Err(e) => {
                tracing::debug!("cannot read the shared certificate: {e}");
                return (Caught::Unreachable, held);
            }
        };
        let now = self.clock.now();
        let domains = self.domains.borrow().clone();
        if let Err(e) = stored.bundle.check(&domains, now) {
            tracing::warn!(
                "the cluster's certificate for {} (version {version}) cannot serve here ({e}); keeping the one served",
                self.store.primary()
            );
            return (Caught::Refused { version }, Some(version));
        }
        let serial = serial_hex(&stored.bundle);
        self.shared.cluster().report_serial(&serial);
        // A restart finds its local copy current: nothing to redo.
        let local = self.local.load(None).await.ok().flatten();
        if local.is_some_and(|l| l.bundle.serial == stored.bundle.serial) {
            self.resolver.install(std::slice::from_ref(&stored.bundle));
            return (Caught::Current, Some(version));
        }
        self.install(&stored, now).await;
        tracing::info!(
            "serving the cluster's certificate for {} (version {version}, serial {serial}, valid until {})",
            stored.bundle.names.join(", "),
            crate::clock::for_people(stored.bundle.not_after)
        );
        (Caught::Installed { version, serial }, Some(version))
    }

    /// Writes the local copy, serves it, backs it up and runs the hook.
    async fn install(&self, stored: &StoredCert, now: DateTime<Utc>) {
        let copied = match keep_lease(self.local.storage(), &self.local_lease, now).await {
            Ok(lease) => {
                let status = self.store.status().await.unwrap_or_default();
                let saved = self
                    .local
                    .save(&stored.pem, &stored.bundle, now, &lease)
                    .await;
                match saved {
                    Ok(()) => self.local.save_status(&status, &lease).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &copied {
            tracing::warn!(
                "cannot write the local copy of the certificate in {} ({e}); it is served, but a restart with the engine down would serve the previous one",
                self.data_dir.display()
            );
        }
        self.resolver.install(std::slice::from_ref(&stored.bundle));
        if copied.is_ok() {
            match backup::write(&self.data_dir, now) {
                Ok(path) => tracing::debug!("wrote backup {}", path.display()),
                Err(e) => tracing::warn!("could not write a backup: {e:#}"),
            }
        }
        if let Some(hook) = &self.post_issue_hook {
            run_hook(hook, &self.data_dir, self.store.primary(), &stored.bundle);
        }
    }

    /// Follows until shutdown.
    pub async fn follow(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let mut events = self.shared.cluster().subscribe();
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut held = None;
        let mut reachable = true;
        loop {
            let (caught, now_held) = self.catch_up(held).await;
            held = now_held;
            match (&caught, reachable) {
                (Caught::Unreachable, true) => tracing::warn!(
                    "the shared certificate store is unreachable; serving the certificate this node holds until it answers"
                ),
                (Caught::Unreachable, false) => {}
                (_, false) => tracing::info!("the shared certificate store answers again"),
                _ => {}
            }
            reachable = caught != Caught::Unreachable;
            let next =
                self.clock.now() + chrono::Duration::from_std(VERSION_CHECK).unwrap_or_default();
            loop {
                tokio::select! {
                    () = &mut stop => return Ok(()),
                    () = self.clock.sleep_until(next) => break,
                    event = events.recv() => match event {
                        Ok(ClusterEvent::Notified { channel: Channel::Certificate, .. })
                        | Ok(ClusterEvent::Connected)
                        | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => anyhow::bail!("the cluster's events stopped"),
                    },
                }
            }
        }
    }
}

impl Activity for CertFollower {
    fn name(&self) -> &'static str {
        "certificate follower"
    }

    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        self.follow(shutdown)
    }
}
