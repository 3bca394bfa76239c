//! The certificate manager, a supervised task: it keeps a valid certificate in
//! the resolver. At start it serves what the store has (or the temporary
//! certificate); then, on the injected clock, it checks whether to order,
//! orders, stores the result before anything else, swaps it in, writes a
//! backup and runs the post-issue hook. Failures are retried with backoff and
//! never touch the certificate being served; every attempt is recorded in the
//! status that `quire cert status` shows. It writes only under a lease on
//! the certificates ([`LeasePolicy`]): a single node holds the data
//! directory's for its whole life; a node of a cluster takes the shared one
//! for each order, re-reads the store once it holds it (another node may just
//! have ordered), and gives it up after, so that exactly one node orders and
//! every node may be the next. Nodes of a cluster receive the certificates
//! they did not order through [`super::follow`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::alert::AlertPolicy;
use super::backup;
use super::certs::{AriStatus, CertStore, IssuedCert, RenewalStatus};
use super::client::Certifier;
use super::follow::serial_hex;
use super::issuers::{Issuers, PassedOver};
use super::lease::{Lease, LeaseSlot};
use super::schedule::{self, RenewalPolicy, Turn, other_ca, random_unit, turn_wait};
use super::store::{StorageError, keep_lease};
use crate::clock::SharedClock;
use crate::names::{DnsName, SiteName};
use crate::shutdown::Shutdown;
use crate::tls::{CertBundle, CertResolver};

/// How long a node of a cluster holds the lease to order before it must
/// renew it: an order takes seconds, and a node that dies mid-order holds up
/// the others no longer than this.
const ORDER_LEASE_TTL: Duration = Duration::from_secs(60);

/// How the manager holds the right to write the certificates.
#[derive(Clone)]
pub enum LeasePolicy {
    /// A single node: the data directory's lease, taken at start (or once a
    /// predecessor has exited) and held for the life of the process.
    HeldForLife(LeaseSlot),
    /// A node of a cluster: the shared lease on the site's certificates,
    /// taken for one order and given up after it.
    PerOrder,
}

/// The name of a cluster's lease on the certificates of `primary`.
pub fn order_lease(primary: &DnsName) -> String {
    format!("certificates/{primary}")
}

/// A request to the running manager (from `quire cert renew`).
pub struct RenewRequest {
    pub dry_run: bool,
    /// What was obtained, or why not (with its causes).
    pub reply: oneshot::Sender<anyhow::Result<String>>,
}

#[derive(Clone)]
pub struct CertManager {
    pub domains: Vec<SiteName>,
    pub store: CertStore,
    /// The CAs to order from, in order.
    pub issuers: Issuers,
    /// The CA used by `--dry-run` (Let's Encrypt staging for production).
    pub dry_run_certifier: Certifier,
    pub resolver: Arc<CertResolver>,
    pub clock: SharedClock,
    pub policy: RenewalPolicy,
    pub data_dir: PathBuf,
    pub post_issue_hook: Option<String>,
    pub alerts: AlertPolicy,
    /// The certificate being served, if it is a real one.
    pub current: Option<CertBundle>,
    pub metrics: crate::metrics::Metrics,
    /// The domain list after a configuration reload.
    pub domain_updates: tokio::sync::watch::Receiver<Vec<SiteName>>,
    /// How the certificates' lease is held; a life-long one is filled
    /// before [`CertManager::run`] starts.
    pub leases: LeasePolicy,
    /// Checks in a row that found the shared store unreachable, for the
    /// backoff (and so that the outage is logged once).
    pub unreachable: u32,
}

impl CertManager {
    /// Loads the stored certificate into the resolver, if there is a good one.
    pub async fn load_stored(&mut self) -> anyhow::Result<()> {
        let lease = match &self.leases {
            LeasePolicy::HeldForLife(slot) => slot.current(),
            LeasePolicy::PerOrder => None,
        };
        if let Some(stored) = self.store.load(lease.as_ref()).await? {
            match stored.bundle.check(&self.domains, self.clock.now()) {
                Ok(()) => self.resolver.install(std::slice::from_ref(&stored.bundle)),
                Err(e) => {
                    tracing::warn!("the stored certificate cannot serve ({e}); ordering a new one")
                }
            }
            self.current = Some(stored.bundle);
        }
        Ok(())
    }

    /// The life-long lease, renewed first when due; `None` in a cluster.
    async fn life_lease(&self) -> anyhow::Result<Option<Lease>> {
        match &self.leases {
            LeasePolicy::HeldForLife(slot) => Ok(Some(
                keep_lease(self.store.storage(), slot, self.clock.now()).await?,
            )),
            LeasePolicy::PerOrder => Ok(None),
        }
    }

    /// Records `status` under the lease in `slot`.
    async fn save_status_under(&self, status: &RenewalStatus, slot: &LeaseSlot) {
        let saved = match keep_lease(self.store.storage(), slot, self.clock.now()).await {
            Ok(lease) => self.store.save_status(status, &lease).await,
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            tracing::warn!("cannot save the certificate status: {e:#}");
        }
    }

    /// Records `status` under the life-long lease. In a cluster the status
    /// is shared, and recorded only by the node ordering, under its turn's
    /// lease ([`CertManager::obtain`] does).
    pub async fn save_status(&self, status: &RenewalStatus) {
        if let LeasePolicy::HeldForLife(slot) = &self.leases {
            self.save_status_under(status, slot).await;
        }
    }

    /// A cluster: what the shared store holds becomes what this node judges
    /// by (another node may have ordered since).
    async fn refresh_shared(&mut self, status: &mut RenewalStatus) -> Result<(), StorageError> {
        let shared = self.store.status().await;
        let stored = match shared {
            Ok(shared) => {
                *status = shared;
                self.store.load(None).await
            }
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => {
                if self.unreachable > 0 {
                    tracing::info!("the shared certificate store answers again");
                }
                self.unreachable = 0;
                if let Some(stored) = stored {
                    self.current = Some(stored.bundle);
                }
                Ok(())
            }
            Err(e) => {
                self.unreachable += 1;
                match self.unreachable {
                    1 => tracing::warn!("no certificate is ordered meanwhile: {e}"),
                    _ => tracing::debug!("the shared store is still unreachable: {e}"),
                }
                Err(e)
            }
        }
    }

    /// When a node that found the shared store unreachable looks again.
    fn after_outage(&self) -> DateTime<Utc> {
        self.clock.now()
            + chrono::Duration::from_std(self.policy.retry_delay(self.unreachable))
                .unwrap_or_default()
    }

    /// Runs until shutdown.
    pub async fn run(
        mut self,
        requests: Arc<tokio::sync::Mutex<mpsc::Receiver<RenewRequest>>>,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let mut requests = requests.lock().await;
        self.domains = self.domain_updates.borrow_and_update().clone();
        let mut life = self.life_lease().await?;
        let now = self.clock.now();
        let mut next = now;
        // In a cluster the certificate being served came from the local copy
        // at start; the first check reads the shared store (if it answers).
        let mut status = RenewalStatus::default();
        // dns-01 records a crashed order left in the zone go first.
        if let Some(lease) = &life {
            self.issuers.first().clean_leftovers(lease).await;
        }
        if life.is_some() {
            // After a restart by the supervisor, the store knows best what is current.
            self.load_stored().await?;
            status = self.store.status().await?;
            let same_ca = status
                .directory
                .as_deref()
                .is_some_and(|d| self.issuers.has_directory(d));
            // A restart does not reset the backoff of a CA that keeps failing.
            if let Some(at) = status.next_check {
                if same_ca && status.consecutive_failures > 0 && at > now {
                    next = at;
                }
            }
        }
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            if self.clock.now() >= next {
                // An order in progress is abandoned at shutdown: nothing is
                // stored until it completes, and the next start checks again.
                next = tokio::select! {
                    next = self.check(&mut status) => next,
                    () = &mut stop => return Ok(()),
                };
                status.next_check = Some(next);
                self.raise_alerts(&mut status);
                self.save_status(&status).await;
            }
            let renew_life = async {
                match &life {
                    Some(lease) => self.clock.sleep_until(lease.renew_at()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = self.clock.sleep_until(next) => {}
                // A lease that cannot be kept ends the task: the supervisor
                // restarts it, and it writes nothing meanwhile.
                () = renew_life => life = self.life_lease().await?,
                Some(request) = requests.recv() => {
                    let outcome = tokio::select! {
                        outcome = self.obtain(&mut status, request.dry_run) => outcome,
                        () = &mut stop => return Ok(()),
                    };
                    self.raise_alerts(&mut status);
                    self.save_status(&status).await;
                    let _ = request.reply.send(outcome);
                }
                Ok(()) = self.domain_updates.changed() => {
                    self.domains = self.domain_updates.borrow_and_update().clone();
                    tracing::info!(
                        "the domain list is now {}; checking the certificate",
                        self.domains.iter().map(SiteName::to_string).collect::<Vec<_>>().join(", ")
                    );
                    next = self.clock.now();
                }
            }
        }
    }

    /// Raises, changes or resolves the alert the certificate calls for now.
    fn raise_alerts(&self, status: &mut RenewalStatus) {
        self.alerts.update(
            status,
            self.current.as_ref(),
            self.store.primary(),
            self.clock.now(),
        );
    }

    /// Asks the CA for the current certificate's renewal information when it
    /// is due (RFC 9773), recording the answer and when to ask again in
    /// `status`. A node of a cluster would need the lease to create the
    /// account this asks with; it keeps to the lifetime rule.
    async fn refresh_ari(&self, status: &mut RenewalStatus, now: DateTime<Utc>) {
        let Some(bundle) = &self.current else {
            return;
        };
        if bundle.check(&self.domains, now).is_err()
            || !schedule::ari_due(status.ari.as_ref(), bundle, now)
        {
            return;
        }
        // Only the CA that issued a certificate knows its renewal window.
        let Some(certifier) = status
            .issued_by
            .as_deref()
            .and_then(|by| self.issuers.find(by))
        else {
            return;
        };
        let Ok(Some(lease)) = self.life_lease().await else {
            return;
        };
        let serial = serial_hex(bundle);
        let known = schedule::ari_window(status.ari.as_ref(), bundle);
        let (window, wait) = match certifier.renewal_info(bundle, &lease).await {
            Ok(Some((window, retry_after))) => {
                if known != Some(window) {
                    tracing::info!(
                        "the CA suggests renewing the certificate for {} from {window}",
                        self.store.primary()
                    );
                }
                (Some(window), retry_after)
            }
            Ok(None) => (None, schedule::ARI_MAX_WAIT),
            Err(e) => {
                tracing::warn!(
                    "no renewal information from {} for the certificate of {}: {e:#}; asking again in {}",
                    certifier.name(),
                    self.store.primary(),
                    humantime::format_duration(schedule::ARI_AFTER_ERROR)
                );
                (known, schedule::ARI_AFTER_ERROR)
            }
        };
        status.ari = Some(AriStatus {
            serial,
            window,
            checked: now,
            next_check: schedule::ari_next_check(now, wait),
        });
    }

    /// Looks at the certificate, orders one if needed, and says when to look next.
    async fn check(&mut self, status: &mut RenewalStatus) -> DateTime<Utc> {
        if matches!(self.leases, LeasePolicy::PerOrder)
            && self.refresh_shared(status).await.is_err()
        {
            return self.after_outage();
        }
        let now = self.clock.now();
        self.refresh_ari(status, now).await;
        let ari = self
            .current
            .as_ref()
            .and_then(|b| schedule::ari_window(status.ari.as_ref(), b));
        let regular = self.policy.next_check(now, random_unit());
        let Some(reason) = other_ca(status, self.current.as_ref(), &self.issuers.identities())
            .or_else(|| {
                self.policy
                    .reason_to_order(self.current.as_ref(), &self.domains, now, ari)
            })
        else {
            let renew_after = self
                .current
                .as_ref()
                .map(|b| self.policy.renew_after(b, ari));
            status.renew_after = renew_after;
            let ari_check = status.ari.as_ref().map(|a| a.next_check);
            let next = [Some(regular), renew_after, ari_check]
                .into_iter()
                .flatten()
                .filter(|t| *t > now)
                .min()
                .unwrap_or(regular);
            tracing::info!(
                "certificate for {} is good until {}; next check {}",
                self.store.primary(),
                self.current
                    .as_ref()
                    .map(|b| crate::clock::for_people(b.not_after).to_string())
                    .unwrap_or_default(),
                crate::clock::for_people(next)
            );
            return next;
        };
        let lifetime = self.current.as_ref().map(|b| b.not_after - b.not_before);
        if let Some(until) = self.policy.capped_until(&status.issued, now, lifetime) {
            let message = format!(
                "{} certificates were issued for {} in the last 7 days, the weekly limit; next attempt {}",
                self.policy.weekly_cap(lifetime).unwrap_or_default(),
                self.store.primary(),
                crate::clock::for_people(until)
            );
            tracing::warn!("{message}");
            status.last_error = Some(message);
            return until;
        }
        match self.leases.clone() {
            LeasePolicy::HeldForLife(slot) => {
                tracing::info!(
                    "ordering a certificate for {}: {reason}",
                    self.store.primary()
                );
                let outcome = self.attempt(status, false, &slot).await;
                self.next_after(status, outcome.is_ok())
            }
            LeasePolicy::PerOrder => self.take_turn(status, &reason).await,
        }
    }

    /// When to look next after an attempt: soon after a success, to learn
    /// the new certificate's renewal window (and set the schedule by it),
    /// though not at once, so that a certificate born due cannot make a loop.
    fn next_after(&self, status: &RenewalStatus, succeeded: bool) -> DateTime<Utc> {
        let now = self.clock.now();
        match succeeded {
            true => schedule::ari_next_check(now, Duration::ZERO),
            false => {
                now + chrono::Duration::from_std(
                    self.policy.retry_delay(status.consecutive_failures),
                )
                .unwrap_or_default()
            }
        }
    }

    /// A cluster: the check says "order", so this node tries to take the
    /// turn; whether it then orders is decided by what the store holds once
    /// it has it.
    async fn take_turn(&mut self, status: &mut RenewalStatus, reason: &str) -> DateTime<Utc> {
        let primary = self.store.primary().clone();
        let lease = match self
            .store
            .storage()
            .acquire(&order_lease(&primary), ORDER_LEASE_TTL)
            .await
        {
            Ok(lease) => lease,
            Err(StorageError::Held { holder, .. }) => {
                let wait = turn_wait(random_unit());
                tracing::info!(
                    "node {holder} is ordering the certificate for {primary}; this node waits for it (looking again in {})",
                    humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
                );
                return self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
            }
            Err(e) => {
                tracing::warn!("cannot take the turn to order the certificate for {primary}: {e}");
                self.unreachable += 1;
                return self.after_outage();
            }
        };
        if self.refresh_shared(status).await.is_err() {
            return self.after_outage();
        }
        let now = self.clock.now();
        let turn = self.policy.in_turn(
            self.current.as_ref(),
            status,
            &self.domains,
            now,
            &self.issuers.identities(),
        );
        match turn {
            Turn::NotNeeded => {
                tracing::info!(
                    "another node renewed the certificate for {primary} meanwhile; not ordering"
                );
                self.policy.next_check(now, random_unit())
            }
            Turn::NotBefore(at, why) => {
                tracing::info!(
                    "not ordering the certificate for {primary} before {}: {why}",
                    crate::clock::for_people(at)
                );
                at
            }
            Turn::Order(now_reason) => {
                tracing::info!(
                    "ordering a certificate for {primary}: {now_reason} (this node's turn; the check said: {reason})"
                );
                let outcome = self.in_turn(status, false, lease).await;
                self.next_after(status, outcome.is_ok())
            }
        }
    }

    /// One attempt, whatever the schedule says (`quire cert renew` comes here
    /// directly); the outcome is recorded in `status`. A node of a cluster
    /// takes its turn first, and fails if another node is ordering.
    pub async fn obtain(
        &mut self,
        status: &mut RenewalStatus,
        dry_run: bool,
    ) -> anyhow::Result<String> {
        match self.leases.clone() {
            LeasePolicy::HeldForLife(slot) => self.attempt(status, dry_run, &slot).await,
            LeasePolicy::PerOrder => {
                let lease = self
                    .store
                    .storage()
                    .acquire(&order_lease(self.store.primary()), ORDER_LEASE_TTL)
                    .await
                    .context("taking the turn to order")?;
                self.refresh_shared(status).await?;
                self.in_turn(status, dry_run, lease).await
            }
        }
    }

    /// An attempt under a cluster's lease, renewed on the clock while it
    /// runs (an order that loses it is abandoned: the new holder owns the
    /// store), then the shared status recorded and the lease given up.
    async fn in_turn(
        &mut self,
        status: &mut RenewalStatus,
        dry_run: bool,
        lease: Lease,
    ) -> anyhow::Result<String> {
        let slot = LeaseSlot::holding(lease);
        let keeper = keep_turn(self.store.clone(), slot.clone(), self.clock.clone());
        let outcome = tokio::select! {
            outcome = self.attempt(status, dry_run, &slot) => outcome,
            lost = keeper => Err(lost.context("the order was abandoned")),
        };
        if !dry_run {
            status.next_check = Some(self.next_after(status, outcome.is_ok()));
            self.save_status_under(status, &slot).await;
        }
        outcome
    }

    /// One order from `certifier`, checked, under the lease in `slot`.
    async fn order_from(
        &self,
        certifier: &Certifier,
        replaces: Option<&CertBundle>,
        slot: &LeaseSlot,
    ) -> anyhow::Result<(IssuedCert, CertBundle)> {
        let lease = keep_lease(self.store.storage(), slot, self.clock.now()).await?;
        let issued = certifier.certify(&self.domains, &lease, replaces).await?;
        let bundle = issued.bundle()?;
        bundle.check(&self.domains, self.clock.now())?;
        Ok((issued, bundle))
    }

    /// A dry run against the `--dry-run` CA: nothing is stored or recorded.
    async fn dry_run(&self, slot: &LeaseSlot) -> anyhow::Result<String> {
        let certifier = &self.dry_run_certifier;
        let started = Instant::now();
        match self.order_from(certifier, None, slot).await {
            Ok((_, bundle)) => Ok(format!(
                "dry run: {} issued a certificate for {} in {} ms; the stored certificate is unchanged",
                certifier.directory(),
                bundle.names.join(", "),
                started.elapsed().as_millis()
            )),
            Err(e) => Err(e.context(format!("dry run against {}", certifier.directory()))),
        }
    }

    /// One attempt under the lease in `slot`, going down the CAs until one
    /// issues; the outcome is recorded in `status`.
    async fn attempt(
        &mut self,
        status: &mut RenewalStatus,
        dry_run: bool,
        slot: &LeaseSlot,
    ) -> anyhow::Result<String> {
        if dry_run {
            return self.dry_run(slot).await;
        }
        let started_at = self.clock.now();
        let started = Instant::now();
        let mut failures: Vec<(&Certifier, anyhow::Error)> = Vec::new();
        let mut obtained = None;
        for certifier in self.issuers.iter() {
            // A CertID means something only to the CA that issued it.
            let replaces = self
                .current
                .as_ref()
                .filter(|_| status.issued_by.as_deref() == Some(certifier.identity()));
            match self.order_from(certifier, replaces, slot).await {
                Ok(done) => {
                    obtained = Some((certifier.clone(), done));
                    break;
                }
                Err(e) => {
                    if let Some(next) = self.issuers.after(certifier) {
                        tracing::warn!(
                            "{} could not issue a certificate for {}: {e:#}; trying {}",
                            certifier.name(),
                            self.store.primary(),
                            next.name()
                        );
                    }
                    failures.push((certifier, e));
                }
            }
        }
        let took = started.elapsed();
        let passed_over: Vec<PassedOver> = failures
            .iter()
            .map(|(certifier, e)| PassedOver {
                directory: certifier.directory().to_string(),
                error: format!("{e:#}"),
            })
            .collect();
        status.last_attempt = Some(started_at);
        self.metrics.certificate_order(obtained.is_some());
        let Some((certifier, (issued, bundle))) = obtained else {
            status.directory = Some(self.issuers.first().directory().to_string());
            let e = all_failed(failures);
            status.consecutive_failures += 1;
            status.last_error = Some(format!("{e:#}"));
            let retry = self.policy.retry_delay(status.consecutive_failures);
            tracing::error!(
                failures = status.consecutive_failures,
                "could not obtain a certificate for {} from {}: {e:#}; still serving the current certificate, retrying in {}",
                self.store.primary(),
                self.issuers.names(),
                humantime::format_duration(retry)
            );
            return Err(e);
        };
        status.directory = Some(certifier.directory().to_string());
        // Stored first: a crash after this point never causes a second order.
        // The order may have taken long enough for the lease to be due.
        let lease = keep_lease(self.store.storage(), slot, self.clock.now()).await?;
        self.store
            .save(&issued, &bundle, started_at, &lease)
            .await?;
        self.resolver.install(std::slice::from_ref(&bundle));
        let now = self.clock.now();
        status
            .issued
            .retain(|t| now - *t < chrono::Duration::days(7));
        status.issued.push(now);
        status.last_success = Some(now);
        status.last_error = None;
        status.consecutive_failures = 0;
        status.last_took_ms = Some(took.as_millis() as u64);
        status.issued_by = Some(certifier.identity().to_string());
        status.profile = certifier.profile().map(ToString::to_string);
        status.ari = None;
        status.passed_over = passed_over;
        status.renew_after = Some(self.policy.renew_after(&bundle, None));
        let message = format!(
            "obtained a certificate for {} from {} ({}) in {} ms (issuer {}, {}valid until {})",
            bundle.names.join(", "),
            certifier.name(),
            certifier.directory(),
            took.as_millis(),
            bundle.issuer,
            certifier
                .profile()
                .map(|p| format!("profile {p}, "))
                .unwrap_or_default(),
            crate::clock::for_people(bundle.not_after)
        ) + &fallback_note(&status.passed_over);
        tracing::info!("{message}");
        self.current = Some(bundle.clone());
        // In a cluster every node, this one included, writes its local copy,
        // its backup and runs its hook when the new version reaches it.
        if let LeasePolicy::PerOrder = self.leases {
            return Ok(message);
        }
        // Written in place, not awaited: from the install to the caller
        // recording the outcome nothing may yield, or a shutdown (or a moved
        // clock) in between would lose the status of a certificate now served.
        match backup::write(&self.data_dir, now) {
            Ok(path) => tracing::debug!("wrote backup {}", path.display()),
            Err(e) => tracing::warn!("could not write a backup: {e:#}"),
        }
        if let Some(hook) = &self.post_issue_hook {
            run_hook(hook, &self.data_dir, self.store.primary(), &bundle);
        }
        Ok(message)
    }
}

/// The error of an attempt no CA answered with a certificate: the one CA's,
/// or what each said.
fn all_failed(mut failures: Vec<(&Certifier, anyhow::Error)>) -> anyhow::Error {
    if failures.len() == 1 {
        return failures.remove(0).1;
    }
    let each: Vec<String> = failures
        .iter()
        .map(|(certifier, e)| format!("{}: {e:#}", certifier.name()))
        .collect();
    anyhow::anyhow!("no CA issued a certificate ({})", each.join("; "))
}

/// What a success message adds when the first CAs failed.
fn fallback_note(passed_over: &[PassedOver]) -> String {
    match passed_over.is_empty() {
        true => String::new(),
        false => format!(
            ", after {} failed",
            passed_over
                .iter()
                .map(|p| p.directory.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    }
}

/// Renews the lease in `slot` on the clock while an order runs; returns
/// only when it cannot be kept.
async fn keep_turn(store: CertStore, slot: LeaseSlot, clock: SharedClock) -> anyhow::Error {
    loop {
        let Some(lease) = slot.current() else {
            return anyhow::anyhow!("the lease on the certificates is gone");
        };
        clock.sleep_until(lease.renew_at()).await;
        if let Err(e) = keep_lease(store.storage(), &slot, clock.now()).await {
            return anyhow::Error::new(e)
                .context("the lease on the certificates could not be kept");
        }
    }
}

/// Runs the post-issue hook in the background; its outcome is logged.
pub fn run_hook(hook: &str, data_dir: &std::path::Path, primary: &DnsName, bundle: &CertBundle) {
    let dir = crate::datadir::DataDir::new(data_dir).certs(primary.as_str());
    super::hook::spawn(
        "post-issue hook",
        hook,
        vec![
            (
                "QUIRE_CERT_FILE",
                dir.join("fullchain.pem").display().to_string(),
            ),
            (
                "QUIRE_KEY_FILE",
                dir.join("privkey.pem").display().to_string(),
            ),
            ("QUIRE_DOMAINS", bundle.names.join(" ")),
            ("QUIRE_NOT_AFTER", bundle.not_after.to_rfc3339()),
        ],
    );
}
