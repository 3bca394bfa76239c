//! `quire cert status` and `quire cert renew [--dry-run]`. Renewal goes
//! through the running server when there is one (its listeners must answer the
//! challenges); otherwise it binds the listeners itself, certifies, and exits.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::certs::CertStore;
use super::service;
use super::store::{FileStore, Storage};
use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::control::client;
use crate::control::protocol::Request;
use crate::datadir::DataDir;
use crate::shutdown::Shutdown;
use crate::tls::listener::{self, Listener};
use crate::upgrade::sockets::SocketName;
use crate::web::{self, ChallengeMap, SitePolicy};

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| crate::clock::for_people(t).to_string())
}

/// The status report of the certificate in `config`'s data directory.
pub fn status(config: &Config, now: DateTime<Utc>) -> anyhow::Result<String> {
    let storage: Arc<dyn Storage> = Arc::new(FileStore::new(config.paths.data.clone()));
    let store = CertStore::new(storage, config.canonical_domain().clone());
    let dir = DataDir::new(&config.paths.data).certs(store.primary().as_str());
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("  {label:<13} {value}\n"));
    let status = store.status()?;
    let configured: Vec<&str> = config.domains.iter().map(|d| d.as_str()).collect();
    line("mode", config.mode.to_string());
    line("domains", configured.join(", "));
    match store.load()? {
        Some(stored) => {
            let b = &stored.bundle;
            line(
                "certificate",
                dir.join("fullchain.pem").display().to_string(),
            );
            line("names", b.names.join(", "));
            line("issuer", b.issuer.clone());
            let days = (b.not_after - now).num_days();
            line(
                "not after",
                format!("{} ({days} days left)", when(Some(b.not_after))),
            );
            if let Err(e) = b.check(&config.domains, now) {
                line("problem", e.to_string());
            }
        }
        None => line(
            "certificate",
            format!(
                "none in {} yet; `quire serve` obtains one at start",
                dir.display()
            ),
        ),
    }
    line("renew after", when(status.renew_after));
    line("next check", when(status.next_check));
    line("CA", status.directory.clone().unwrap_or_else(|| "-".into()));
    line(
        "issued by",
        status.issued_by.clone().unwrap_or_else(|| "-".into()),
    );
    line("last attempt", when(status.last_attempt));
    line(
        "last success",
        match status.last_took_ms {
            Some(ms) => format!("{} (took {ms} ms)", when(status.last_success)),
            None => when(status.last_success),
        },
    );
    line(
        "last error",
        status.last_error.clone().unwrap_or_else(|| "-".into()),
    );
    line(
        "failures",
        format!("{} in a row", status.consecutive_failures),
    );
    let week = status
        .issued
        .iter()
        .filter(|t| now - **t < chrono::Duration::days(7))
        .count();
    line("issued (7d)", week.to_string());
    if config.mode == Mode::Local {
        line(
            "local CA root",
            service::local_ca_root(config).display().to_string(),
        );
    }
    Ok(format!("certificate of {}\n{out}", store.primary()))
}

/// Forces a renewal (or a dry run) and returns what happened.
pub async fn renew(config: &Config, dry_run: bool, clock: SharedClock) -> anyhow::Result<String> {
    if !matches!(
        config.mode,
        Mode::Local | Mode::Staging | Mode::Production | Mode::Acme
    ) {
        anyhow::bail!(
            "mode `{}` does not obtain certificates by ACME; use local, staging, production or acme",
            config.mode
        );
    }
    let request = Request::Renew { dry_run };
    if let Some(message) = client::ask_if_running(&config.paths.data, &request).await? {
        return Ok(format!("{message} (done by the running server)"));
    }
    renew_directly(config, dry_run, clock).await
}

async fn renew_directly(
    config: &Config,
    dry_run: bool,
    clock: SharedClock,
) -> anyhow::Result<String> {
    let http = Arc::new(crate::system::bind(config.listen.http, SocketName::Http).await?);
    let https = Arc::new(crate::system::bind(config.listen.https, SocketName::Https).await?);
    let challenges = ChallengeMap::default();
    // A one-off run: its figures are not exported.
    let metrics = crate::metrics::Metrics::new();
    let lock = service::lock_certificates(&config.paths.data)?;
    let parts = service::prepare(
        config,
        &clock,
        challenges.clone(),
        http.local_addr()?,
        https.local_addr()?,
        &mut Default::default(),
        &crate::config::process_env,
        &metrics,
    )
    .await?;
    let shutdown = Shutdown::new();
    let limits = crate::tls::listener::live_limits(config.limits.clone());
    let policy = web::live_policy(SitePolicy::from_config(config, true));
    let mut listeners = vec![
        Listener {
            name: SocketName::Http,
            socket: http,
            tls: None,
            app: web::redirect_router(challenges, policy),
            limits: limits.clone(),
            metrics: metrics.clone(),
        },
        Listener {
            name: SocketName::Https,
            socket: https,
            tls: Some(crate::tls::server_config(parts.resolver.clone())?.into()),
            app: axum::Router::new(),
            limits: limits.clone(),
            metrics: metrics.clone(),
        },
    ];
    if let Some(ca) = parts.local_ca {
        listeners.push(Listener {
            name: SocketName::LocalCa,
            socket: ca.socket,
            tls: Some(ca.ca.server_config().into()),
            app: ca.app,
            limits,
            metrics,
        });
    }
    let running: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(listener::run(l, shutdown.clone())))
        .collect();
    let mut manager = parts.manager;
    let mut status = manager.store.status()?;
    let outcome = manager.obtain(&mut status, dry_run).await;
    if !dry_run {
        manager.store.save_status(&status)?;
    }
    shutdown.trigger();
    for task in running {
        let _ = task.await;
    }
    drop(lock);
    outcome.context("renewal failed")
}

/// Where `quire local-ca` listens and validates.
pub struct StandaloneCa {
    pub data: std::path::PathBuf,
    pub listen: std::net::SocketAddr,
    pub validation: super::local_ca::ValidationTarget,
    pub lifetime: std::time::Duration,
    /// Names to certify besides localhost and .test.
    pub domains: Vec<crate::config::Domain>,
}

/// `quire local-ca`: only the in-process CA, so that other ACME clients
/// (certbot, lego) can be tried against it. Runs until SIGINT/SIGTERM.
pub async fn serve_local_ca(settings: StandaloneCa, clock: SharedClock) -> anyhow::Result<()> {
    use super::local_ca::{self, LocalCa, LocalCaSettings};
    let data = DataDir::new(&settings.data);
    data.create()
        .with_context(|| format!("creating {}", settings.data.display()))?;
    let socket = Arc::new(crate::system::bind(settings.listen, SocketName::LocalCa).await?);
    let ca = LocalCa::open(LocalCaSettings {
        dir: data.local_ca(),
        domains: settings.domains.iter().map(|d| d.to_string()).collect(),
        leaf_lifetime: settings.lifetime,
        validation: settings.validation,
        clock,
    })?;
    let base = url::Url::parse(&format!("https://{}", socket.local_addr()?))?;
    let directory = local_ca::directory_url(&base);
    tracing::info!(
        "local CA at {directory}; its root is {}; validating http-01 on {} and tls-alpn-01 on {}",
        ca.root_pem_path().display(),
        settings.validation.http,
        settings.validation.tls
    );
    let shutdown = Shutdown::new();
    let listener = Listener {
        name: SocketName::LocalCa,
        socket,
        tls: Some(ca.server_config().into()),
        app: ca.router(base),
        limits: crate::tls::listener::live_limits(crate::config::Limits::default()),
        metrics: crate::metrics::Metrics::new(),
    };
    let running = tokio::spawn(listener::run(listener, shutdown.clone()));
    crate::shutdown::os_signal().await;
    shutdown.trigger();
    let _ = running.await;
    Ok(())
}
