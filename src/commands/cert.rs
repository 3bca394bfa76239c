//! `quire cert status` and `quire cert renew [--dry-run]`. Renewal goes
//! through the running server when there is one (its listeners must answer the
//! challenges); otherwise it binds the listeners itself, certifies, and exits.
//! With a cluster, status reads the shared store (or says it is unreachable
//! and shows this node's local copy), and a direct renewal takes the
//! cluster's turn like a running node.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{load_config, runtime};
use crate::acme::certs::CertStore;
use crate::acme::follow::serial_hex;
use crate::acme::lease::LeaseSlot;
use crate::acme::manager::order_lease;
use crate::acme::pg_store::{self, PgStore};
use crate::acme::service;
use crate::acme::store::{FileStore, Storage};
use crate::cli::CertCommand;
use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::config::{Config, IssuerConfig, Mode, Overrides};
use crate::control::client;
use crate::control::protocol::Request;
use crate::datadir::DataDir;
use crate::net::{self, Listeners, SocketName};
use crate::web::{self, ChallengeMap, SitePolicy};

pub fn run(command: CertCommand, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let (config, mode, data_dir) = match &command {
        CertCommand::Status {
            config,
            mode,
            data_dir,
        }
        | CertCommand::Renew {
            config,
            mode,
            data_dir,
            ..
        } => (config, mode, data_dir),
    };
    let config = load_config(
        config,
        Overrides {
            mode: mode.clone(),
            data_dir: data_dir.clone(),
            ..Default::default()
        },
    )?;
    match command {
        CertCommand::Status { .. } => {
            print!("{}", runtime()?.block_on(status(&config, clock))?);
        }
        CertCommand::Renew { dry_run, .. } => {
            let message = runtime()?.block_on(renew(&config, dry_run, clock))?;
            println!("{message}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| crate::clock::for_people(t).to_string())
}

/// Where the status comes from: the shared store of a cluster when it
/// answers, else the data directory; with a cluster, lines saying which.
async fn status_source(
    config: &Config,
    clock: &SharedClock,
    local: CertStore,
) -> (CertStore, Vec<(&'static str, String)>) {
    let Some(settings) = &config.cluster else {
        return (local, Vec::new());
    };
    let cluster = Cluster::start(settings, clock.clone(), vec![&pg_store::AREA]);
    let shared = PgStore::new(cluster.clone());
    let primary = local.primary().clone();
    let lease = order_lease(&primary);
    let mut lines = vec![("node", cluster.node().as_str().to_string())];
    match shared.holder(&lease).await {
        Ok(holder) => {
            lines.push(("engine", "up: reading the shared store".into()));
            lines.push((
                "ordering",
                match holder {
                    Some((node, until)) => format!(
                        "node {node} holds the lease until {}",
                        crate::clock::for_people(until)
                    ),
                    None => "no node (nobody holds the lease)".into(),
                },
            ));
            let local_serial = local.load(None).await.ok().flatten();
            let shared_store = CertStore::new(Arc::new(shared), primary);
            let shared_serial = shared_store.load(None).await.ok().flatten();
            if let (Some(l), Some(s)) = (local_serial, shared_serial) {
                let (l, s) = (serial_hex(&l.bundle), serial_hex(&s.bundle));
                lines.push((
                    "local copy",
                    match l == s {
                        true => format!("serial {l}, the shared one"),
                        false => format!(
                            "serial {l}, not yet the shared {s} (a running node follows within seconds)"
                        ),
                    },
                ));
            }
            (shared_store, lines)
        }
        Err(e) => {
            lines.push((
                "engine",
                format!(
                    "the shared store is unreachable ({e}); showing this node's local copy. Check that PostgreSQL runs and [cluster] postgres reaches it"
                ),
            ));
            (local, lines)
        }
    }
}

/// The status report of the certificate in `config`'s data directory (or,
/// with a cluster, the shared store).
async fn status(config: &Config, clock: SharedClock) -> anyhow::Result<String> {
    let now = clock.now();
    let storage: Arc<dyn Storage> =
        Arc::new(FileStore::new(config.paths.data.clone(), clock.clone()));
    let local = CertStore::new(storage, config.canonical_domain().clone());
    let (store, cluster_lines) = status_source(config, &clock, local).await;
    let dir = DataDir::new(&config.paths.data).certs(store.primary().as_str());
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("  {label:<13} {value}\n"));
    let status = store.status().await?;
    let configured: Vec<String> = config.domains.iter().map(ToString::to_string).collect();
    line("mode", config.mode.to_string());
    line("domains", configured.join(", "));
    for (label, value) in cluster_lines {
        line(label, value);
    }
    let stored = store.load(None).await?;
    match &stored {
        Some(stored) => {
            let b = &stored.bundle;
            line(
                "certificate",
                dir.join("fullchain.pem").display().to_string(),
            );
            line("serial", serial_hex(b));
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
    line(
        "profile",
        status
            .profile
            .clone()
            .unwrap_or_else(|| "the CA's default".into()),
    );
    let ari = status.ari.as_ref().filter(|a| {
        stored
            .as_ref()
            .is_some_and(|s| serial_hex(&s.bundle) == a.serial)
    });
    line(
        "ARI window",
        match ari {
            Some(a) => match a.window {
                Some(window) => format!("{window} (asked {})", when(Some(a.checked))),
                None => "the CA offers no renewal information".into(),
            },
            None => "-".into(),
        },
    );
    line("ARI check", when(ari.map(|a| a.next_check)));
    line("CA", status.directory.clone().unwrap_or_else(|| "-".into()));
    line(
        "issued by",
        status.issued_by.clone().unwrap_or_else(|| "-".into()),
    );
    for passed in &status.passed_over {
        line(
            "fell back",
            format!("{} failed: {}", passed.directory, passed.error),
        );
    }
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
    line(
        "alert",
        match status.alert {
            Some(alert) => format!(
                "{}: {}",
                alert.label().to_uppercase(),
                crate::acme::alert::describe(
                    alert,
                    stored.as_ref().map(|s| s.bundle.not_after),
                    &status,
                    now
                )
            ),
            None => "none".into(),
        },
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
    if let Some((issuers, _)) = crate::acme::issuers::configured(config) {
        out.push_str(&caa_section(config, store.storage(), &issuers).await);
    }
    Ok(format!("certificate of {}\n{out}", store.primary()))
}

/// The CAA records restricting issuance to the configured CAs and this
/// server's account at each, ready to paste into the zone.
async fn caa_section(config: &Config, storage: &dyn Storage, issuers: &[IssuerConfig]) -> String {
    let mut records = Vec::new();
    let mut notes = String::new();
    let mut without_account = false;
    for issuer in issuers {
        let directory = &issuer.directory_url;
        let account = match storage
            .get(&crate::acme::client::account_key(directory))
            .await
        {
            Ok(Some(bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|json| json["id"].as_str().map(str::to_string)),
            _ => None,
        };
        let identities = match crate::acme::http::AcmeRoots::for_issuer(
            issuer.roots.as_deref(),
            &crate::config::process_env,
        )
        .and_then(|roots| crate::acme::http::AcmeHttp::new(&roots, Default::default()))
        {
            Ok(http) => crate::acme::caa::identities(&http, directory).await,
            Err(e) => {
                tracing::debug!("cannot reach the CA: {e:#}");
                Vec::new()
            }
        };
        if identities.is_empty() {
            notes.push_str(&format!(
                "\nCAA: {directory} names no CAA identity (its directory has no meta.caaIdentities); ask the CA which issuer domain to put in a CAA record\n"
            ));
            continue;
        }
        without_account |= account.is_none();
        records.extend(crate::acme::caa::records(
            &config.domains,
            &identities,
            account.as_deref(),
        ));
    }
    if records.is_empty() {
        return notes;
    }
    let mut section = format!(
        "\nCAA records that let only {}, and only this server's account at {}, issue for these names (paste into the zone):\n",
        match issuers.len() {
            1 => "this CA",
            _ => "these CAs",
        },
        match issuers.len() {
            1 => "it",
            _ => "each",
        },
    );
    for record in records {
        section.push_str(&format!("  {record}\n"));
    }
    if without_account {
        section.push_str(
            "  (no ACME account yet: run `quire serve` once, and the records will name it)\n",
        );
    }
    section + &notes
}

/// Forces a renewal (or a dry run) and returns what happened.
async fn renew(config: &Config, dry_run: bool, clock: SharedClock) -> anyhow::Result<String> {
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
    let http = Arc::new(net::bind(config.listen.http, SocketName::Http).await?);
    let https = Arc::new(net::bind(config.listen.https, SocketName::Https).await?);
    let challenges = ChallengeMap::default();
    // A one-off run: its figures are not exported.
    let metrics = crate::metrics::Metrics::new();
    let lease = service::lock_certificates(&config.paths.data, &clock).await?;
    let cluster = config
        .cluster
        .as_ref()
        .map(|settings| Cluster::start(settings, clock.clone(), vec![&pg_store::AREA]));
    let parts = service::prepare(
        config,
        &clock,
        challenges.clone(),
        http.local_addr()?,
        https.local_addr()?,
        &mut Default::default(),
        &crate::config::process_env,
        &metrics,
        LeaseSlot::holding(lease),
        cluster.as_ref(),
    )
    .await?;
    let policy = web::live_policy(SitePolicy::from_config(config, true));
    let mut listeners = Listeners::new(
        net::live_limits(config.limits.clone()),
        metrics.clone(),
        net::Cores::current(),
    );
    let http_side = web::HttpSide {
        challenges,
        policy,
        metrics,
    };
    listeners.add(
        SocketName::Http,
        http,
        None,
        net::App::Direct(Arc::new(http_side)),
    );
    let tls = crate::tls::server_config(parts.resolver.clone())?;
    listeners.add(
        SocketName::Https,
        https,
        Some(tls.into()),
        net::App::Router(axum::Router::new()),
    );
    if let Some(ca) = parts.local_ca {
        let tls = ca.ca.server_config();
        listeners.add(
            SocketName::LocalCa,
            ca.socket,
            Some(tls.into()),
            net::App::Router(ca.app),
        );
    }
    let running = listeners.start();
    let mut manager = parts.manager;
    let mut status = manager.store.status().await?;
    let outcome = manager.obtain(&mut status, dry_run).await;
    if !dry_run {
        manager.save_status(&status).await;
    }
    // This node's local copy, as a running node's follower would write it.
    if let (Some(follower), Ok(_), false) = (&parts.follower, &outcome, dry_run) {
        follower.catch_up(None).await;
    }
    // The ACME client keeps its connections to the CA open for reuse; closed
    // first, they leave nothing for the listeners' drain to wait out.
    drop(manager);
    running.stop().await;
    outcome.context("renewal failed")
}
