//! Starting as a successor: what a new process is given ([`Inheritance`]),
//! and taking over the data directory once the process it replaces has
//! exited (see [`crate::upgrade`] for the handshake).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::sync::watch;

use crate::acme::lease::LeaseSlot;
use crate::acme::service;
use crate::clock::SharedClock;
use crate::net::Inherited;
use crate::stats::privacy::Salt;
use crate::stats::schema::Day;
use crate::stats::{Stats, open_disk_store};
use crate::upgrade::DataOwnership;

/// What a server starts from besides its config: sockets given at start
/// (systemd, or a predecessor), and a predecessor still holding the data
/// directory (an upgrade).
#[derive(Default)]
pub struct Inheritance {
    pub sockets: Inherited,
    pub predecessor: Option<PredecessorState>,
}

/// The quire process being replaced, as the new one sees it.
pub struct PredecessorState {
    /// The salts it counted visitors with.
    pub salts: Vec<(Day, Salt)>,
    /// Resolves once it has exited.
    pub exited: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// This process's hold on the data directory.
pub(super) struct Claim {
    /// Whether the tasks that write it may run yet.
    pub ownership: DataOwnership,
    /// Grants the ownership once the predecessor has exited (an upgrade).
    pub grant: Option<watch::Sender<bool>>,
    /// The certificate lease, when this mode manages certificates.
    pub certificate_lock: LeaseSlot,
}

/// Writing the data directory waits for a predecessor to exit; a fresh
/// start takes the certificate lock at once, failing fast if taken.
pub(super) async fn claim_data(
    upgrading: bool,
    uses_acme: bool,
    data: &Path,
    clock: &SharedClock,
) -> anyhow::Result<Claim> {
    let certificate_lock = LeaseSlot::default();
    if upgrading {
        let (ownership, grant) = DataOwnership::pending();
        return Ok(Claim {
            ownership,
            grant: Some(grant),
            certificate_lock,
        });
    }
    if uses_acme {
        certificate_lock.fill(service::lock_certificates(data, clock).await?);
    }
    Ok(Claim {
        ownership: DataOwnership::owned(),
        grant: None,
        certificate_lock,
    })
}

/// Once the predecessor has exited: takes the certificate lock (into
/// `certificate_lock`, when this mode manages certificates), opens the
/// statistics store, and grants the data directory to the waiting tasks.
pub(super) async fn take_over_data(
    predecessor_exited: Pin<Box<dyn Future<Output = ()> + Send>>,
    data: PathBuf,
    clock: SharedClock,
    certificate_lock: Option<LeaseSlot>,
    stats: Option<Stats>,
    grant: watch::Sender<bool>,
) {
    predecessor_exited.await;
    tracing::info!(
        "the previous process has exited; taking over {}",
        data.display()
    );
    // Its locks go with its last descriptors, a moment after the link closes.
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
    if let Some(slot) = certificate_lock {
        let started = tokio::time::Instant::now();
        let mut complained = false;
        let lock = loop {
            match service::lock_certificates(&data, &clock).await {
                Ok(lock) => break lock,
                Err(e) if started.elapsed() > PATIENCE && !complained => {
                    tracing::error!("{e:#}; certificates are not renewed until it is free");
                    complained = true;
                }
                _ => {}
            }
            tokio::time::sleep(PAUSE).await;
        };
        slot.fill(lock);
    }
    if let Some(stats) = stats {
        let started = tokio::time::Instant::now();
        let opened = loop {
            let data = data.clone();
            let opened = tokio::task::spawn_blocking(move || open_disk_store(&data))
                .await
                .unwrap_or_else(|e| {
                    Err(crate::stats::StatsStoreError::Engine(
                        format!("opening it panicked: {e}").into(),
                    ))
                });
            if opened.is_ok() || started.elapsed() > PATIENCE {
                break opened;
            }
            tokio::time::sleep(PAUSE).await;
        };
        let _ = tokio::task::spawn_blocking(move || stats.attach_opened(opened)).await;
    }
    grant.send_replace(true);
    tracing::info!("this process now owns {}", data.display());
}
