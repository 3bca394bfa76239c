//! Starts the activities of `quire serve`, in one order: bind the listeners
//! (or take those given at start, failing fast with a fix when a port is
//! taken), build the site, the certificate and the statistics, prepare what
//! can still fail (the control socket, the TLS configurations), and only then
//! spawn every activity under one [`Supervisor`] sharing one [`Shutdown`].
//! What each activity is lives in [`activities`] and [`build`]; stopping is
//! [`RunningServer::stop`]; the signals are [`serve`]'s.

mod activities;
mod build;
mod handover;
mod running;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use self::activities::{
    CertificateManager, ControlSocket, StatsFlusher, StatsMaintenance, WhenOwned,
};
pub use self::handover::{Inheritance, PredecessorState};
pub use self::running::RunningServer;
pub use self::serve::serve;
use crate::acme::challenges::ChallengeFollower;
use crate::acme::service::{self, AcmeParts};
use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::control::server as control;
use crate::metrics::{self, Metrics};
use crate::net::{self, Listeners, SocketName};
use crate::reload::Reloader;
use crate::shutdown::Shutdown;
use crate::site;
use crate::supervisor::Supervisor;
use crate::tls;
use crate::web::{self, ChallengeMap, SitePolicy};

/// Binds, builds and starts serving.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<RunningServer> {
    start_with(config, clock, Inheritance::default()).await
}

/// Like [`start`], from what the process was given at start.
pub async fn start_with(
    mut config: Config,
    clock: SharedClock,
    inheritance: Inheritance,
) -> anyhow::Result<RunningServer> {
    let Inheritance {
        mut sockets,
        predecessor,
    } = inheritance;
    let serves_tls = config.mode != Mode::Off;
    let uses_acme = serves_tls && config.mode != Mode::Manual;
    if !config.paths.content.is_dir() {
        return Err(site::BuildError::MissingContent(config.paths.content.clone()).into());
    }
    let manual = build::manual_certificates(&config, serves_tls, &clock)?;

    // Bind before the (slower) build, so a taken port fails at once.
    let http = Arc::new(net::listen(config.listen.http, SocketName::Http, &mut sockets).await?);
    let https = match serves_tls {
        true => Some(net::listen(config.listen.https, SocketName::Https, &mut sockets).await?),
        false => None,
    };
    let metrics_socket = match config.metrics.enabled {
        true => Some(net::listen(config.listen.metrics, SocketName::Metrics, &mut sockets).await?),
        false => None,
    };
    let http_addr = http.local_addr().context("reading the bound address")?;
    let https_addr = https.as_ref().map(|s| s.local_addr()).transpose()?;
    let metrics_addr = metrics_socket
        .as_ref()
        .map(|s| s.local_addr())
        .transpose()?;
    fix_base_url_port(&mut config, https_addr.unwrap_or(http_addr));

    let metrics = Metrics::new();
    let cluster = build::cluster(&config, &clock);
    let challenges = ChallengeMap::default();
    let claim =
        handover::claim_data(predecessor.is_some(), uses_acme, &config.paths.data, &clock).await?;
    let acme = match (uses_acme, https_addr) {
        (true, Some(https_addr)) => Some(
            service::prepare(
                &config,
                &clock,
                challenges.clone(),
                http_addr,
                https_addr,
                &mut sockets,
                &crate::config::process_env,
                &metrics,
                claim.certificate_lock.clone(),
                cluster.as_ref(),
            )
            .await?,
        ),
        _ => None,
    };
    let resolver = match (&acme, &manual) {
        (Some(acme), _) => Some(acme.resolver.clone()),
        (None, Some(manual)) => Some(manual.resolver.clone()),
        (None, None) => None,
    };

    let (watcher, summary) = build::site(&config, &clock).await?;
    let live = watcher.site.clone();
    let salts = predecessor.as_ref().map(|p| p.salts.as_slice());
    let stats = build::stats(&config, &clock, cluster.as_ref(), salts).await;
    let limits = net::live_limits(config.limits.clone());
    let policy = web::live_policy(SitePolicy::from_config(&config, serves_tls));
    let (site_app, http_app) = build::public_apps(
        &live,
        &policy,
        stats.as_ref(),
        &challenges,
        &metrics,
        serves_tls,
    );

    // What can still fail comes before the first activity: a new process
    // failing after it accepts would drop connections it took from a
    // predecessor's queue.
    let control = Arc::new(control::bind(&config.paths.data, &mut sockets)?);
    let mut listeners = Listeners::new(
        limits.clone(),
        metrics.clone(),
        net::Cores::per_cpu().context("starting the serving threads")?,
    );
    listeners.add(SocketName::Http, http, None, http_app);
    if let (Some(socket), Some(resolver)) = (https, &resolver) {
        let tls = tls::server_config(resolver.clone())?;
        listeners.add(
            SocketName::Https,
            Arc::new(socket),
            Some(tls.into()),
            site_app,
        );
    }
    let (manager, domains, local_ca, follower) = match acme {
        Some(AcmeParts {
            manager,
            local_ca,
            domains,
            follower,
            ..
        }) => (Some(manager), Some(domains), local_ca, follower),
        None => (None, None, None, None),
    };
    let local_ca_root = local_ca.map(|ca| build::local_ca(ca, &config, &mut listeners));
    for unused in sockets.unused() {
        tracing::warn!(
            "the socket {unused} given at start matches no [listen] address; it is closed"
        );
    }
    let mut supervisor = Supervisor::new(Shutdown::new(), listeners.stop_deadline());
    if let Some(socket) = metrics_socket {
        let sources = metrics::server::Sources {
            metrics: metrics.clone(),
            site: live.clone(),
            resolver: resolver.clone(),
            stats: stats.clone(),
            tasks: supervisor.registry.clone(),
            certificates: manager.as_ref().map(|m| m.store.clone()),
            clock: clock.clone(),
            mode: config.mode,
            title: config.site.title.clone(),
            started: clock.now(),
            cluster: cluster.as_ref().map(metrics::cluster::ClusterView::start),
        };
        let app = metrics::server::router(sources, config.metrics.token.clone());
        listeners.add(
            SocketName::Metrics,
            Arc::new(socket),
            None,
            net::App::Router(app),
        );
    }
    let reloader = Arc::new(Reloader::new(
        config.overrides.clone(),
        config.clone(),
        limits,
        policy,
        domains,
    ));
    let (upgrade_tx, upgrade_rx) = mpsc::channel(1);
    let mut handlers = control::Handlers {
        renewals: None,
        stats: stats.clone(),
        data: config.paths.data.clone(),
        reloader: Some(reloader.clone()),
        upgrades: Some(upgrade_tx),
    };

    // Spawn: nothing fails from here on.
    listeners.spawn(&mut supervisor);
    if let Some(manual) = manual {
        supervisor.spawn(manual);
    }
    if let Some(stats) = &stats {
        supervisor.spawn(WhenOwned::new(
            StatsFlusher(stats.clone()),
            &claim.ownership,
        ));
        supervisor.spawn(WhenOwned::new(
            StatsMaintenance(stats.clone()),
            &claim.ownership,
        ));
    }
    if let Some(manager) = manager {
        let (renew_tx, renew_rx) = mpsc::channel(4);
        let requests = Arc::new(tokio::sync::Mutex::new(renew_rx));
        let manager = CertificateManager { manager, requests };
        supervisor.spawn(WhenOwned::new(manager, &claim.ownership));
        handlers.renewals = Some(renew_tx);
    }
    if let Some(follower) = follower {
        supervisor.spawn(WhenOwned::new(follower, &claim.ownership));
    }
    if let (Some(cluster), Some(resolver), true) = (&cluster, &resolver, uses_acme) {
        supervisor.spawn(ChallengeFollower {
            cluster: cluster.clone(),
            http01: challenges.clone(),
            resolver: resolver.clone(),
        });
    }
    let socket = control.clone();
    supervisor.spawn(ControlSocket { socket, handlers });
    if let (Some(predecessor), Some(grant)) = (predecessor, claim.grant) {
        tokio::spawn(handover::take_over_data(
            predecessor.exited,
            config.paths.data.clone(),
            clock.clone(),
            uses_acme.then(|| claim.certificate_lock.clone()),
            stats.clone(),
            grant,
        ));
    }
    supervisor.spawn(watcher);
    if let Some(cluster) = cluster.clone() {
        // Every build's content hash goes to the registry, where `quire
        // cluster status` and the dashboard compare the nodes by it.
        let site = live.clone();
        let mut builds = site.subscribe();
        tokio::spawn(async move {
            loop {
                cluster.report_content_hash(&site.snapshot().content_hash());
                if builds.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    build::log_serving(&config, http_addr, https_addr, metrics_addr, &summary);
    Ok(RunningServer {
        http_addr,
        https_addr,
        metrics_addr,
        site: live,
        resolver,
        challenges,
        tasks: supervisor.registry.clone(),
        local_ca_root,
        stats,
        cluster,
        reloader,
        upgrade_requests: Some(upgrade_rx),
        supervisor,
        listeners,
        control,
        ownership: claim.ownership,
        _certificate_lock: claim.certificate_lock,
    })
}

/// A derived base URL for port 0 (tests, ad-hoc runs) takes the bound port.
fn fix_base_url_port(config: &mut Config, bound: SocketAddr) {
    if config.site.base_url.port() == Some(0) {
        let _ = config.site.base_url.set_port(Some(bound.port()));
    }
}
