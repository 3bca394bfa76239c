//! The certificate manager, a supervised task: it keeps a valid certificate in
//! the resolver. At start it serves what the store has (or the temporary
//! certificate); then, on the injected clock, it checks whether to order,
//! orders, stores the result before anything else, swaps it in, writes a
//! backup and runs the post-issue hook. Failures are retried with backoff and
//! never touch the certificate being served; every attempt is recorded in the
//! status that `quire cert status` shows. It writes only under the
//! certificates' lease, which it renews on the clock while it runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::backup;
use super::certs::{CertStore, RenewalStatus};
use super::client::Certifier;
use super::lease::{Lease, LeaseSlot};
use super::schedule::{RenewalPolicy, random_unit};
use super::store::keep_lease;
use crate::clock::SharedClock;
use crate::names::DnsName;
use crate::shutdown::Shutdown;
use crate::tls::{CertBundle, CertResolver};

/// The longest a post-issue hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// A request to the running manager (from `quire cert renew`).
pub struct RenewRequest {
    pub dry_run: bool,
    /// What was obtained, or why not (with its causes).
    pub reply: oneshot::Sender<anyhow::Result<String>>,
}

#[derive(Clone)]
pub struct CertManager {
    pub domains: Vec<DnsName>,
    pub store: CertStore,
    pub certifier: Certifier,
    /// The CA used by `--dry-run` (Let's Encrypt staging for production).
    pub dry_run_certifier: Certifier,
    pub resolver: Arc<CertResolver>,
    pub clock: SharedClock,
    pub policy: RenewalPolicy,
    pub data_dir: PathBuf,
    pub post_issue_hook: Option<String>,
    /// The certificate being served, if it is a real one.
    pub current: Option<CertBundle>,
    pub metrics: crate::metrics::Metrics,
    /// The domain list after a configuration reload.
    pub domain_updates: tokio::sync::watch::Receiver<Vec<DnsName>>,
    /// The certificates' lease; filled before [`CertManager::run`] starts.
    pub lease: LeaseSlot,
}

impl CertManager {
    /// Loads the stored certificate into the resolver, if there is a good one.
    pub async fn load_stored(&mut self) -> anyhow::Result<()> {
        let lease = self.lease.current();
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

    /// The lease to write under, renewed first when due.
    async fn lease(&self) -> anyhow::Result<Lease> {
        Ok(keep_lease(self.store.storage(), &self.lease, self.clock.now()).await?)
    }

    async fn save_status(&self, status: &RenewalStatus) {
        let saved = match self.lease().await {
            Ok(lease) => self
                .store
                .save_status(status, &lease)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            tracing::warn!("cannot save the certificate status: {e:#}");
        }
    }

    /// Runs until shutdown.
    pub async fn run(
        mut self,
        requests: Arc<tokio::sync::Mutex<mpsc::Receiver<RenewRequest>>>,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let mut requests = requests.lock().await;
        self.domains = self.domain_updates.borrow_and_update().clone();
        let mut lease = self.lease().await?;
        // After a restart by the supervisor, the store knows best what is current.
        self.load_stored().await?;
        let mut status = self.store.status().await?;
        let now = self.clock.now();
        let same_ca = status.directory.as_deref() == Some(self.certifier.directory().as_str());
        // A restart does not reset the backoff of a CA that keeps failing.
        let mut next = match status.next_check {
            Some(at) if same_ca && status.consecutive_failures > 0 && at > now => at,
            _ => now,
        };
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
                self.save_status(&status).await;
            }
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = self.clock.sleep_until(next) => {}
                // A lease that cannot be kept ends the task: the supervisor
                // restarts it, and it writes nothing meanwhile.
                () = self.clock.sleep_until(lease.renew_at()) => lease = self.lease().await?,
                Some(request) = requests.recv() => {
                    let outcome = tokio::select! {
                        outcome = self.obtain(&mut status, request.dry_run) => outcome,
                        () = &mut stop => return Ok(()),
                    };
                    self.save_status(&status).await;
                    let _ = request.reply.send(outcome);
                }
                Ok(()) = self.domain_updates.changed() => {
                    self.domains = self.domain_updates.borrow_and_update().clone();
                    tracing::info!(
                        "the domain list is now {}; checking the certificate",
                        self.domains.iter().map(DnsName::as_str).collect::<Vec<_>>().join(", ")
                    );
                    next = self.clock.now();
                }
            }
        }
    }

    /// Looks at the certificate, orders one if needed, and says when to look next.
    async fn check(&mut self, status: &mut RenewalStatus) -> DateTime<Utc> {
        let now = self.clock.now();
        let ca_window = match &self.current {
            Some(bundle) if bundle.check(&self.domains, now).is_ok() => {
                let window = match self.lease().await {
                    Ok(lease) => self.certifier.renewal_window(bundle, &lease).await,
                    Err(e) => Err(e),
                };
                match window {
                    Ok(window) => window.map(|(start, end)| start + (end - start) / 2),
                    Err(e) => {
                        tracing::debug!("no renewal information from the CA: {e:#}");
                        None
                    }
                }
            }
            _ => None,
        };
        let regular = self.policy.next_check(now, random_unit());
        // Switching CA (staging to production, say) replaces a certificate
        // that is still valid: browsers would not trust the old issuer.
        let other_ca = status
            .issued_by
            .as_deref()
            .filter(|by| self.current.is_some() && *by != self.certifier.identity())
            .map(|by| {
                format!(
                    "the certificate comes from {by}, and the configuration now names {}",
                    self.certifier.identity()
                )
            });
        let Some(reason) = other_ca.or_else(|| {
            self.policy
                .reason_to_order(self.current.as_ref(), &self.domains, now, ca_window)
        }) else {
            let renew_after = self.current.as_ref().map(|b| self.policy.renew_after(b));
            status.renew_after = renew_after;
            let next = [Some(regular), renew_after, ca_window]
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
        if let Some(until) = self.policy.capped_until(&status.issued, now) {
            let message = format!(
                "{} certificates were issued for {} in the last 7 days, the weekly limit; next attempt {}",
                self.policy.weekly_cap.unwrap_or_default(),
                self.store.primary(),
                crate::clock::for_people(until)
            );
            tracing::warn!("{message}");
            status.last_error = Some(message);
            return until;
        }
        tracing::info!(
            "ordering a certificate for {}: {reason}",
            self.store.primary()
        );
        match self.obtain(status, false).await {
            Ok(_) => self.policy.next_check(self.clock.now(), random_unit()),
            Err(_) => {
                self.clock.now()
                    + chrono::Duration::from_std(
                        self.policy.retry_delay(status.consecutive_failures),
                    )
                    .unwrap_or_default()
            }
        }
    }

    /// One attempt, whatever the schedule says (`quire cert renew` comes here
    /// directly); the outcome is recorded in `status`.
    pub async fn obtain(
        &mut self,
        status: &mut RenewalStatus,
        dry_run: bool,
    ) -> anyhow::Result<String> {
        let certifier = match dry_run {
            true => &self.dry_run_certifier,
            false => &self.certifier,
        };
        let started_at = self.clock.now();
        let started = Instant::now();
        let result = async {
            let lease = self.lease().await?;
            let issued = certifier.certify(&self.domains, &lease).await?;
            let bundle = issued.bundle()?;
            bundle.check(&self.domains, self.clock.now())?;
            anyhow::Ok((issued, bundle))
        }
        .await;
        let took = started.elapsed();
        if dry_run {
            return match result {
                Ok((_, bundle)) => Ok(format!(
                    "dry run: {} issued a certificate for {} in {} ms; the stored certificate is unchanged",
                    certifier.directory(),
                    bundle.names.join(", "),
                    took.as_millis()
                )),
                Err(e) => Err(e.context(format!("dry run against {}", certifier.directory()))),
            };
        }
        status.directory = Some(certifier.directory().to_string());
        status.last_attempt = Some(started_at);
        self.metrics.certificate_order(result.is_ok());
        let (issued, bundle) = match result {
            Ok(done) => done,
            Err(e) => {
                status.consecutive_failures += 1;
                status.last_error = Some(format!("{e:#}"));
                let retry = self.policy.retry_delay(status.consecutive_failures);
                tracing::error!(
                    failures = status.consecutive_failures,
                    "could not obtain a certificate for {} from {}: {e:#}; still serving the current certificate, retrying in {}",
                    self.store.primary(),
                    certifier.directory(),
                    humantime::format_duration(retry)
                );
                return Err(e);
            }
        };
        // Stored first: a crash after this point never causes a second order.
        // The order may have taken long enough for the lease to be due.
        let lease = self.lease().await?;
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
        status.renew_after = Some(self.policy.renew_after(&bundle));
        let message = format!(
            "obtained a certificate for {} from {} ({}) in {} ms (issuer {}, valid until {})",
            bundle.names.join(", "),
            certifier.name(),
            certifier.directory(),
            took.as_millis(),
            bundle.issuer,
            crate::clock::for_people(bundle.not_after)
        );
        tracing::info!("{message}");
        self.current = Some(bundle.clone());
        // Written in place, not awaited: from the install to the caller
        // recording the outcome nothing may yield, or a shutdown (or a moved
        // clock) in between would lose the status of a certificate now served.
        match backup::write(&self.data_dir, now) {
            Ok(path) => tracing::debug!("wrote backup {}", path.display()),
            Err(e) => tracing::warn!("could not write a backup: {e:#}"),
        }
        if let Some(hook) = &self.post_issue_hook {
            self.run_hook(hook, &bundle);
        }
        Ok(message)
    }

    /// Runs the hook in the background; its outcome is logged.
    fn run_hook(&self, hook: &str, bundle: &CertBundle) {
        let dir = crate::datadir::DataDir::new(&self.data_dir).certs(self.store.primary().as_str());
        let mut command = tokio::process::Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(hook)
            .env("QUIRE_CERT_FILE", dir.join("fullchain.pem"))
            .env("QUIRE_KEY_FILE", dir.join("privkey.pem"))
            .env("QUIRE_DOMAINS", bundle.names.join(" "))
            .env("QUIRE_NOT_AFTER", bundle.not_after.to_rfc3339())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for variable in crate::upgrade::START_VARIABLES {
            command.env_remove(variable);
        }
        let hook = hook.to_string();
        tokio::spawn(async move {
            match tokio::time::timeout(HOOK_TIMEOUT, command.output()).await {
                Ok(Ok(out)) if out.status.success() => {
                    tracing::info!("post-issue hook `{hook}` succeeded");
                }
                Ok(Ok(out)) => tracing::error!(
                    "post-issue hook `{hook}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Ok(Err(e)) => tracing::error!("cannot run the post-issue hook `{hook}`: {e}"),
                Err(_) => tracing::error!(
                    "post-issue hook `{hook}` did not finish within {}s and was stopped",
                    HOOK_TIMEOUT.as_secs()
                ),
            }
        });
    }
}
