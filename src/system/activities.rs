//! The background activities of `quire serve` as the [`Supervisor`] runs
//! them: each holds what its module's loop needs, so that a restart runs a
//! clone of it. The listeners are [`crate::net::Listener`]s.
//!
//! [`Supervisor`]: crate::supervisor::Supervisor

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::{Mutex, mpsc};

use crate::acme::manager::{CertManager, RenewRequest};
use crate::clock::SharedClock;
use crate::control::server as control;
use crate::net::SocketName;
use crate::shutdown::Shutdown;
use crate::site::watcher::FileWatch;
use crate::site::{self, BuildInputs, LiveSite};
use crate::stats::Stats;
use crate::supervisor::{Activity, Prepared};
use crate::tls::CertResolver;
use crate::tls::manual::{self, CertFilesWatch, ManualFiles};
use crate::upgrade::DataOwnership;

/// Rebuilds the site when its files change.
#[derive(Clone)]
pub struct ContentWatcher {
    pub site: LiveSite,
    pub inputs: Arc<BuildInputs>,
    pub templates: PathBuf,
    /// Made before the first build, so that an edit made meanwhile is seen.
    pub first_watch: Prepared<FileWatch>,
    pub clock: SharedClock,
}

impl Activity for ContentWatcher {
    fn name(&self) -> &'static str {
        "content watcher"
    }

    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let files = self
            .first_watch
            .take()
            .or_else(|| FileWatch::start(&self.inputs, &self.templates).ok());
        site::watcher::run(self.site, self.inputs, files, self.clock, shutdown).await;
        Ok(())
    }
}

/// Manual mode: installs each good new certificate pair the operator writes.
#[derive(Clone)]
pub struct CertificateFiles {
    pub files: ManualFiles,
    /// Made before the first read, so that a pair replaced meanwhile is seen.
    pub first_watch: Prepared<CertFilesWatch>,
    pub resolver: Arc<CertResolver>,
    pub clock: SharedClock,
}

impl Activity for CertificateFiles {
    fn name(&self) -> &'static str {
        "certificate files"
    }

    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        // A restart that cannot watch fails with the reason, and is retried.
        let watch = match self.first_watch.take() {
            Some(watch) => watch,
            None => CertFilesWatch::start(&self.files)?,
        };
        manual::watch(self.files, watch, self.resolver, self.clock, shutdown).await;
        Ok(())
    }
}

/// Obtains and renews the certificate, and answers `quire cert renew`.
#[derive(Clone)]
pub struct CertificateManager {
    pub manager: CertManager,
    /// Shared by every run, so that requests sent during a restart wait.
    pub requests: Arc<Mutex<mpsc::Receiver<RenewRequest>>>,
}

impl Activity for CertificateManager {
    fn name(&self) -> &'static str {
        "certificate manager"
    }

    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        self.manager.run(self.requests, shutdown)
    }
}

/// Moves the counted views from memory into the store.
#[derive(Clone)]
pub struct StatsFlusher(pub Stats);

impl Activity for StatsFlusher {
    fn name(&self) -> &'static str {
        "stats flusher"
    }

    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        self.0.run_flusher(shutdown)
    }
}

/// Aggregates hours into days and prunes what is past retention.
#[derive(Clone)]
pub struct StatsMaintenance(pub Stats);

impl Activity for StatsMaintenance {
    fn name(&self) -> &'static str {
        "stats maintenance"
    }

    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        self.0.run_maintenance(shutdown)
    }
}

/// Answers the commands that reach the running server.
#[derive(Clone)]
pub struct ControlSocket {
    pub socket: Arc<UnixListener>,
    pub handlers: control::Handlers,
}

impl Activity for ControlSocket {
    fn name(&self) -> &'static str {
        SocketName::Control.listener()
    }

    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        control::serve(self.socket, self.handlers, shutdown)
    }
}

/// An activity that writes the data directory: it starts once this process
/// owns it (at once, or when the process it replaced has exited), and ends
/// at once if shutdown comes first.
#[derive(Clone)]
pub struct WhenOwned<A> {
    activity: A,
    ownership: DataOwnership,
}

impl<A> WhenOwned<A> {
    pub fn new(activity: A, ownership: &DataOwnership) -> WhenOwned<A> {
        WhenOwned {
            activity,
            ownership: ownership.clone(),
        }
    }
}

impl<A: Activity> Activity for WhenOwned<A> {
    fn name(&self) -> &'static str {
        self.activity.name()
    }

    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tokio::select! {
            () = self.ownership.acquired() => self.activity.run(shutdown).await,
            () = shutdown.wait() => Ok(()),
        }
    }
}
