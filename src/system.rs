//! Starts the activities of `quire serve` and stops them: binds the listeners
//! (failing fast with a fix when a port is taken), builds the site, loads the
//! certificate, and runs the listeners, the content watcher, the certificate
//! manager (or manual mode's file reloader), the local CA, the statistics
//! flusher and maintenance, and the control socket under the [`Supervisor`],
//! all sharing one [`Shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::middleware;
use tokio::net::TcpListener;

use crate::acme::service;
use crate::acme::store::StoreLock;
use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::control;
use crate::metrics::{self, Metrics};
use crate::reload::Reloader;
use crate::shutdown::Shutdown;
use crate::site::watcher::FileWatch;
use crate::site::{self, BuildInputs, LiveSite};
use crate::stats::Stats;
use crate::supervisor::{Supervisor, TaskRegistry};
use crate::tls::listener::{self, Listener, LiveLimits, live_limits};
use crate::tls::manual::{self, ManualFiles};
use crate::tls::{self, CertResolver};
use crate::web::{self, ChallengeMap, SitePolicy};

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
    /// Applies a changed configuration file (SIGHUP, `quire reload`).
    pub reloader: Arc<Reloader>,
    supervisor: Supervisor,
    _certificate_lock: Option<StoreLock>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), and waits for every task.
    pub async fn stop(self) {
        self.supervisor.stop().await;
        // The listeners have drained: the last views are in memory now.
        if let Some(stats) = self.stats {
            match tokio::task::spawn_blocking(move || stats.flush_now()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("the last statistics were not saved: {e}"),
                Err(e) => tracing::error!("the last statistics flush panicked: {e}"),
            }
        }
    }

    pub fn shutdown(&self) -> &Shutdown {
        self.supervisor.shutdown()
    }
}

/// Binds a listener, explaining the usual reasons it fails.
pub async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another process already listens on {addr}; stop it, or set [listen] {key} in the config to a free address"
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "binding {addr} needs privileges; allow it with `sudo setcap cap_net_bind_service=+ep $(command -v quire)` (or use the systemd unit in deploy/), or use a port above 1023"
            ),
            std::io::ErrorKind::AddrNotAvailable => format!(
                "{addr} is not an address of this machine; set [listen] {key} to one of its addresses"
            ),
            _ => format!("check [listen] {key} in the config"),
        };
        anyhow::anyhow!("cannot listen on {addr} ({key}): {e}; {hint}")
    })
}

/// A derived base URL for port 0 (tests, ad-hoc runs) takes the bound port.
fn fix_base_url_port(config: &mut Config, bound: SocketAddr) {
    if config.site.base_url.port() == Some(0) {
        let _ = config.site.base_url.set_port(Some(bound.port()));
    }
}

/// Binds, builds and starts serving.
pub async fn start(mut config: Config, clock: SharedClock) -> anyhow::Result<RunningServer> {
    let serves_tls = config.mode != Mode::Off;
    let uses_acme = serves_tls && config.mode != Mode::Manual;
    if !config.paths.content.is_dir() {
        return Err(site::BuildError::MissingContent(config.paths.content.clone()).into());
    }
    let manual_files = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert_file), Some(key_file)) if serves_tls => Some(ManualFiles {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            domains: config.domains.clone(),
        }),
        _ => None,
    };
    let mut resolver = match &manual_files {
        Some(files) => Some(CertResolver::new(files.load(&clock)?)),
        None => None,
    };

    // Bind before the (slower) build, so a taken port fails at once.
    let http_socket = Arc::new(bind(config.listen.http, "http").await?);
    let http_addr = http_socket
        .local_addr()
        .context("reading the bound address")?;
    let https_socket = match serves_tls {
        true => Some(Arc::new(bind(config.listen.https, "https").await?)),
        false => None,
    };
    let https_addr = https_socket.as_ref().map(|s| s.local_addr()).transpose()?;
    let metrics_socket = match config.metrics.enabled {
        true => Some(Arc::new(bind(config.listen.metrics, "metrics").await?)),
        false => None,
    };
    let metrics_addr = metrics_socket
        .as_ref()
        .map(|s| s.local_addr())
        .transpose()?;
    let metrics = Metrics::new();
    fix_base_url_port(&mut config, https_addr.unwrap_or(http_addr));
    let challenges = ChallengeMap::default();
    let acme = match (uses_acme, https_addr) {
        (true, Some(https_addr)) => {
            let parts = service::prepare(
                &config,
                &clock,
                challenges.clone(),
                http_addr,
                https_addr,
                &crate::config::process_env,
                &metrics,
            )
            .await?;
            resolver = Some(parts.resolver.clone());
            Some(parts)
        }
        _ => None,
    };

    let inputs = Arc::new(BuildInputs::from_config(&config));
    // Watch before the first build, so an edit made meanwhile still triggers a rebuild.
    let files = match FileWatch::start(&inputs, &config.paths.templates) {
        Ok(files) => Some(files),
        Err(e) => {
            tracing::error!(
                "cannot watch {} for changes ({e}); the site is served, but edits need a restart. On Linux, raising fs.inotify.max_user_watches usually helps",
                config.paths.content.display()
            );
            None
        }
    };
    let first = {
        let inputs = inputs.clone();
        let now = clock.now();
        tokio::task::spawn_blocking(move || site::build(&inputs, now, None))
            .await
            .context("the first site build panicked")??
    };
    for problem in &first.summary.problems {
        tracing::warn!("{problem}");
    }
    let summary = first.summary.clone();
    let live = LiveSite::new(first);
    let stop_deadline = config.limits.shutdown_grace + std::time::Duration::from_secs(5);
    let mut supervisor = Supervisor::new(Shutdown::new(), stop_deadline);
    let limits = live_limits(config.limits.clone());
    let policy = web::live_policy(SitePolicy::from_config(&config, serves_tls));
    let stats = config
        .stats
        .enabled
        .then(|| Stats::open(&config, clock.clone()));
    let site_app = web::router(
        live.clone(),
        policy.clone(),
        stats.as_ref().map(|s| s.recorder().clone()),
    )
    .layer(middleware::from_fn_with_state(
        metrics.clone(),
        web::measure::measure,
    ));

    let http_app = match serves_tls {
        true => web::redirect_router(challenges.clone(), policy.clone()).layer(
            middleware::from_fn_with_state(metrics.clone(), web::measure::measure),
        ),
        false => site_app.clone(),
    };
    spawn_listener(
        &mut supervisor,
        "http listener",
        http_socket,
        None,
        http_app,
        &limits,
        &metrics,
    );
    if let (Some(socket), Some(resolver)) = (https_socket, &resolver) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(resolver.clone())?);
        spawn_listener(
            &mut supervisor,
            "https listener",
            socket,
            Some(acceptor),
            site_app,
            &limits,
            &metrics,
        );
    }
    if let (Some(resolver), Some(manual_files)) = (&resolver, manual_files) {
        let (resolver, clock, shutdown) = (
            resolver.clone(),
            clock.clone(),
            supervisor.shutdown().clone(),
        );
        supervisor.spawn("certificate files", move || {
            manual::watch(
                manual_files.clone(),
                resolver.clone(),
                clock.clone(),
                shutdown.clone(),
            )
        });
    }

    if let Some(stats) = &stats {
        let (flusher, shutdown) = (stats.clone(), supervisor.shutdown().clone());
        supervisor.spawn("stats flusher", move || {
            flusher.clone().run_flusher(shutdown.clone())
        });
        let (maintenance, shutdown) = (stats.clone(), supervisor.shutdown().clone());
        supervisor.spawn("stats maintenance", move || {
            maintenance.clone().run_maintenance(shutdown.clone())
        });
    }

    let mut handlers = control::Handlers {
        renewals: None,
        stats: stats.clone(),
        data: config.paths.data.clone(),
        reloader: None,
    };
    let mut local_ca_root = None;
    let mut certificate_lock = None;
    let certificates = acme.as_ref().map(|a| a.manager.store.clone());
    let reloader = Arc::new(Reloader::new(
        config.overrides.clone(),
        config.clone(),
        limits.clone(),
        policy.clone(),
        acme.as_ref().map(|a| a.domains.clone()),
    ));
    handlers.reloader = Some(reloader.clone());
    if let Some(acme) = acme {
        if let Some(ca) = acme.local_ca {
            let acceptor = tokio_rustls::TlsAcceptor::from(ca.ca.server_config());
            let root = ca.ca.root_pem_path();
            tracing::info!(
                "local CA at {}; its root is {} (trust it with: curl --cacert {} {})",
                ca.directory,
                root.display(),
                root.display(),
                config.site.base_url
            );
            spawn_listener(
                &mut supervisor,
                "local CA",
                ca.socket,
                Some(acceptor),
                ca.app,
                &limits,
                &metrics,
            );
            local_ca_root = Some(root);
        }
        let (renew_tx, renew_rx) = tokio::sync::mpsc::channel(4);
        let renew_rx = Arc::new(tokio::sync::Mutex::new(renew_rx));
        let (manager, shutdown) = (acme.manager, supervisor.shutdown().clone());
        supervisor.spawn("certificate manager", move || {
            manager.clone().run(renew_rx.clone(), shutdown.clone())
        });
        handlers.renewals = Some(renew_tx);
        certificate_lock = Some(acme.lock);
    }
    let control = Arc::new(control::bind(&config.paths.data)?);
    let shutdown = supervisor.shutdown().clone();
    supervisor.spawn("control socket", move || {
        control::serve(control.clone(), handlers.clone(), shutdown.clone())
    });

    let mut first_watch = files;
    let templates = config.paths.templates.clone();
    let (site_for_watcher, shutdown) = (live.clone(), supervisor.shutdown().clone());
    let (inputs, watcher_clock) = (inputs.clone(), clock.clone());
    supervisor.spawn("content watcher", move || {
        // The first run uses the watch made before the first build; a restart
        // makes a new one.
        let files = first_watch
            .take()
            .or_else(|| FileWatch::start(&inputs, &templates).ok());
        let run = site::watcher::run(
            site_for_watcher.clone(),
            inputs.clone(),
            files,
            watcher_clock.clone(),
            shutdown.clone(),
        );
        async move {
            run.await;
            Ok(())
        }
    });

    if let Some(socket) = metrics_socket {
        let sources = metrics::server::Sources {
            metrics: metrics.clone(),
            site: live.clone(),
            resolver: resolver.clone(),
            stats: stats.clone(),
            tasks: supervisor.registry.clone(),
            certificates,
            clock: clock.clone(),
            mode: config.mode,
            title: config.site.title.clone(),
            started: clock.now(),
        };
        let app = metrics::server::router(sources, config.metrics.token.clone());
        spawn_listener(
            &mut supervisor,
            "metrics listener",
            socket,
            None,
            app,
            &limits,
            &metrics,
        );
    }

    tracing::info!("listening on http://{http_addr}");
    if let Some(addr) = https_addr {
        tracing::info!("listening on https://{addr}");
    }
    if let Some(addr) = metrics_addr {
        tracing::info!("metrics and dashboard on http://{addr}/");
    }
    tracing::info!(
        posts = summary.posts,
        pages = summary.pages,
        problems = summary.problems.len(),
        ms = summary.took.as_millis() as u64,
        "serving {} at {} (open {})",
        config.paths.content.display(),
        config.site.base_url,
        config.site.base_url,
    );
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
        reloader,
        supervisor,
        _certificate_lock: certificate_lock,
    })
}

fn spawn_listener(
    supervisor: &mut Supervisor,
    name: &'static str,
    socket: Arc<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: &LiveLimits,
    metrics: &Metrics,
) {
    let shutdown = supervisor.shutdown().clone();
    let limits = limits.clone();
    let metrics = metrics.clone();
    supervisor.spawn(name, move || {
        let listener = Listener {
            name,
            socket: socket.clone(),
            tls: tls.clone(),
            app: app.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
        };
        let shutdown = shutdown.clone();
        async move {
            listener::run(listener, shutdown).await;
            Ok(())
        }
    });
}

/// `quire serve`: runs until SIGINT or SIGTERM; SIGHUP reloads the config.
pub async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let server = start(config, clock).await?;
    let stop = crate::shutdown::os_signal();
    tokio::pin!(stop);
    let mut hangups = crate::shutdown::hangups();
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(()) = hangups.recv() => {
                let reloader = server.reloader.clone();
                match tokio::task::spawn_blocking(move || reloader.reload(&crate::config::process_env)).await {
                    Ok(Ok(message)) => tracing::info!("SIGHUP: {message}"),
                    Ok(Err(message)) => tracing::error!("SIGHUP: the configuration was not reloaded: {message}"),
                    Err(e) => tracing::error!("SIGHUP: the reload failed: {e}"),
                }
            }
        }
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    server.stop().await;
    tracing::info!("stopped");
    Ok(())
}
