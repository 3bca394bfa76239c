//! Starts the activities of `quire serve` and stops them: binds the listeners
//! (or takes those given at start; failing fast with a fix when a port is
//! taken), builds the site, loads the certificate, and runs the listeners,
//! the content watcher, the certificate manager (or manual mode's file
//! reloader), the local CA, the statistics flusher and maintenance, and the
//! control socket under the [`Supervisor`], all sharing one [`Shutdown`].
//! [`serve`] adds the signals: SIGTERM stops, SIGHUP reloads, SIGUSR2
//! upgrades (see [`crate::upgrade`]).

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::middleware;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};

use crate::acme::service;
use crate::acme::store::StoreLock;
use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::control::server::{self as control, UpgradeRequest};
use crate::metrics::{self, Metrics};
use crate::reload::{Reloader, Trigger};
use crate::shutdown::Shutdown;
use crate::site::watcher::FileWatch;
use crate::site::{self, BuildInputs, LiveSite};
use crate::stats::privacy::Salt;
use crate::stats::schema::Day;
use crate::stats::{Stats, open_disk_store};
use crate::supervisor::{Supervisor, TaskRegistry};
use crate::tls::listener::{self, Listener, LiveLimits, live_limits};
use crate::tls::manual::{self, CertFilesWatch, ManualFiles};
use crate::tls::{self, CertResolver};
use crate::upgrade::notify::{Notification, Status};
use crate::upgrade::sockets::{Inherited, SocketName};
use crate::upgrade::{self, DataOwnership, Launch, Predecessor, Successor};
use crate::web::{self, ChallengeMap, SitePolicy};

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
    /// Upgrades asked for with `quire upgrade`; [`serve`] answers them.
    pub upgrade_requests: Option<mpsc::Receiver<UpgradeRequest>>,
    supervisor: Supervisor,
    /// Every listening socket by name, to hand to a successor.
    sockets: Vec<(SocketName, Arc<TcpListener>)>,
    control: Arc<UnixListener>,
    ownership: DataOwnership,
    _certificate_lock: Arc<Mutex<Option<StoreLock>>>,
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
    pub fn start_successor(&self, launch: &Launch) -> Result<upgrade::Starting, String> {
        if !self.ownership.is_owned() {
            return Err(
                "this process is still taking over from the one it replaced; try again in a moment"
                    .into(),
            );
        }
        let mut sockets: Vec<(SocketName, std::os::fd::BorrowedFd<'_>)> = self
            .sockets
            .iter()
            .map(|(name, socket)| (*name, socket.as_fd()))
            .collect();
        sockets.push((SocketName::Control, self.control.as_fd()));
        let salts = self
            .stats
            .as_ref()
            .map(|s| s.recorder().salts().current())
            .unwrap_or_default();
        upgrade::start_successor(launch, &sockets, &salts).map_err(|e| e.to_string())
    }
}

/// A listener that could not be bound: which, where, and why, so that
/// `quire serve` can say where to choose another address.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({name}); {}", bind_hint(*.addr, *.name, .source))]
pub struct BindError {
    pub name: SocketName,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

fn bind_hint(addr: SocketAddr, key: SocketName, e: &std::io::Error) -> String {
    match e.kind() {
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
    }
}

/// Binds a listener, explaining the usual reasons it fails.
pub async fn bind(addr: SocketAddr, key: SocketName) -> Result<TcpListener, BindError> {
    let bound = match addr {
        // Every address, IPv6 and IPv4 alike, whatever net.ipv6.bindv6only
        // says; IPv4 only on a machine without IPv6.
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => match bind_dual_stack(addr) {
            Err(e) if is_ipv6_missing(&e) => {
                let ipv4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
                tracing::warn!(
                    "IPv6 is not available here ({e}); [listen] {key} listens on {ipv4}, IPv4 only"
                );
                TcpListener::bind(ipv4).await
            }
            bound => bound,
        },
        _ => TcpListener::bind(addr).await,
    };
    bound.map_err(|source| BindError {
        name: key,
        addr,
        source,
    })
}

/// A listener on `[::]:port` that takes IPv4 connections too.
fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

fn is_ipv6_missing(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
    )
}

/// The socket for `[listen] key`: the one given at start under that name
/// (or bound to `addr`), else a new one bound to `addr`.
pub async fn listen(
    addr: SocketAddr,
    key: SocketName,
    sockets: &mut Inherited,
) -> anyhow::Result<TcpListener> {
    let Some(given) = sockets.take_tcp(key, addr)? else {
        return Ok(bind(addr, key).await?);
    };
    let bound = given.local_addr()?;
    // [::] falls back to 0.0.0.0 where there is no IPv6.
    let every_address = |a: SocketAddr| a.ip().is_unspecified();
    let same = bound == addr
        || (every_address(bound) && every_address(addr) && bound.port() == addr.port());
    if addr.port() != 0 && !same {
        tracing::warn!(
            "the [listen] {key} socket this process was given is bound to {bound}, not {addr} as the config says; restart quire (not upgrade) to move it"
        );
    }
    TcpListener::from_std(given).with_context(|| format!("using the given {key} socket"))
}

/// A derived base URL for port 0 (tests, ad-hoc runs) takes the bound port.
fn fix_base_url_port(config: &mut Config, bound: SocketAddr) {
    if config.site.base_url.port() == Some(0) {
        let _ = config.site.base_url.set_port(Some(bound.port()));
    }
}

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
    let manual_files = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert_file), Some(key_file)) if serves_tls => Some(ManualFiles {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            domains: config.domains.clone(),
        }),
        _ => None,
    };
    // Watch before the first read, so a pair replaced meanwhile is still seen.
    let mut first_files_watch = manual_files
        .as_ref()
        .and_then(|files| CertFilesWatch::start(files).ok());
    let mut resolver = match &manual_files {
        Some(files) => Some(CertResolver::new(files.load(&clock)?)),
        None => None,
    };

    // Bind before the (slower) build, so a taken port fails at once.
    let http_socket = Arc::new(listen(config.listen.http, SocketName::Http, &mut sockets).await?);
    let http_addr = http_socket
        .local_addr()
        .context("reading the bound address")?;
    let https_socket = match serves_tls {
        true => Some(Arc::new(
            listen(config.listen.https, SocketName::Https, &mut sockets).await?,
        )),
        false => None,
    };
    let https_addr = https_socket.as_ref().map(|s| s.local_addr()).transpose()?;
    let metrics_socket = match config.metrics.enabled {
        true => Some(Arc::new(
            listen(config.listen.metrics, SocketName::Metrics, &mut sockets).await?,
        )),
        false => None,
    };
    let http_socket_for_handover = http_socket.clone();
    let https_socket_for_handover = https_socket.clone();
    let metrics_addr = metrics_socket
        .as_ref()
        .map(|s| s.local_addr())
        .transpose()?;
    let metrics = Metrics::new();
    fix_base_url_port(&mut config, https_addr.unwrap_or(http_addr));
    let challenges = ChallengeMap::default();
    // Writing the data directory waits for a predecessor to exit; a fresh
    // start takes the certificate lock at once, failing fast if taken.
    let certificate_lock = Arc::new(Mutex::new(None));
    let (ownership, predecessor) = match predecessor {
        Some(predecessor) => {
            let (ownership, grant) = DataOwnership::pending();
            (ownership, Some((predecessor, grant)))
        }
        None => {
            if uses_acme {
                *certificate_lock.lock().expect("new lock") =
                    Some(service::lock_certificates(&config.paths.data)?);
            }
            (DataOwnership::owned(), None)
        }
    };
    let acme = match (uses_acme, https_addr) {
        (true, Some(https_addr)) => {
            let parts = service::prepare(
                &config,
                &clock,
                challenges.clone(),
                http_addr,
                https_addr,
                &mut sockets,
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
    let stats = match (&predecessor, config.stats.enabled) {
        (_, false) => None,
        (Some((predecessor, _)), true) => Some(Stats::awaiting_store(
            crate::stats::StatsSettings::from_config(&config),
            clock.clone(),
            predecessor.salts.clone(),
        )),
        (None, true) => Some(Stats::open(&config, clock.clone())),
    };
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
    // What can still fail comes before the first listener: a new process
    // failing after it accepts would drop connections it took from a
    // predecessor's queue.
    let control = Arc::new(control::bind(&config.paths.data, &mut sockets)?);
    let https_acceptor = match &resolver {
        Some(resolver) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            resolver.clone(),
        )?)),
        None => None,
    };
    spawn_listener(
        &mut supervisor,
        SocketName::Http,
        http_socket,
        None,
        http_app,
        &limits,
        &metrics,
    );
    if let (Some(socket), Some(acceptor)) = (https_socket, https_acceptor) {
        spawn_listener(
            &mut supervisor,
            SocketName::Https,
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
            // The first run uses the watch made before the first read; a
            // restart makes a new one, and fails with the reason if it cannot.
            let watch = first_files_watch
                .take()
                .map_or_else(|| CertFilesWatch::start(&manual_files), Ok);
            let run = watch.map(|watch| {
                manual::watch(
                    manual_files.clone(),
                    watch,
                    resolver.clone(),
                    clock.clone(),
                    shutdown.clone(),
                )
            });
            async move {
                run?.await;
                Ok(())
            }
        });
    }

    if let Some(stats) = &stats {
        let (flusher, shutdown, owned) = (
            stats.clone(),
            supervisor.shutdown().clone(),
            ownership.clone(),
        );
        supervisor.spawn("stats flusher", move || {
            let run = flusher.clone().run_flusher(shutdown.clone());
            when_owned(owned.clone(), shutdown.clone(), run)
        });
        let (maintenance, shutdown, owned) = (
            stats.clone(),
            supervisor.shutdown().clone(),
            ownership.clone(),
        );
        supervisor.spawn("stats maintenance", move || {
            let run = maintenance.clone().run_maintenance(shutdown.clone());
            when_owned(owned.clone(), shutdown.clone(), run)
        });
    }

    let mut handlers = control::Handlers {
        renewals: None,
        stats: stats.clone(),
        data: config.paths.data.clone(),
        reloader: None,
        upgrades: None,
    };
    let mut local_ca_root = None;
    let mut sockets_by_name = vec![(SocketName::Http, http_socket_for_handover)];
    sockets_by_name.extend(https_socket_for_handover.map(|s| (SocketName::Https, s)));
    sockets_by_name.extend(metrics_socket.clone().map(|s| (SocketName::Metrics, s)));
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
            sockets_by_name.push((SocketName::LocalCa, ca.socket.clone()));
            spawn_listener(
                &mut supervisor,
                SocketName::LocalCa,
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
        let (manager, shutdown, owned) = (
            acme.manager,
            supervisor.shutdown().clone(),
            ownership.clone(),
        );
        supervisor.spawn("certificate manager", move || {
            let run = manager.clone().run(renew_rx.clone(), shutdown.clone());
            when_owned(owned.clone(), shutdown.clone(), run)
        });
        handlers.renewals = Some(renew_tx);
    }
    let (upgrade_tx, upgrade_rx) = mpsc::channel(1);
    handlers.upgrades = Some(upgrade_tx);
    let (control_socket, shutdown) = (control.clone(), supervisor.shutdown().clone());
    supervisor.spawn(SocketName::Control.listener(), move || {
        control::serve(control_socket.clone(), handlers.clone(), shutdown.clone())
    });
    if let Some((predecessor, grant)) = predecessor {
        tokio::spawn(take_over_data(
            predecessor.exited,
            config.paths.data.clone(),
            uses_acme.then(|| certificate_lock.clone()),
            stats.clone(),
            grant,
        ));
    }
    for unused in sockets.unused() {
        tracing::warn!(
            "the socket {unused} given at start matches no [listen] address; it is closed"
        );
    }

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
            SocketName::Metrics,
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
        upgrade_requests: Some(upgrade_rx),
        supervisor,
        sockets: sockets_by_name,
        control,
        ownership,
        _certificate_lock: certificate_lock,
    })
}

/// Runs `task` once this process owns the data directory; ends at once if
/// shutdown comes first.
async fn when_owned(
    owned: DataOwnership,
    shutdown: Shutdown,
    task: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::select! {
        () = owned.acquired() => task.await,
        () = shutdown.wait() => Ok(()),
    }
}

/// Once the predecessor has exited: takes the certificate lock (into
/// `certificate_lock`, when this mode manages certificates), opens the
/// statistics store, and grants the data directory to the waiting tasks.
async fn take_over_data(
    predecessor_exited: Pin<Box<dyn Future<Output = ()> + Send>>,
    data: PathBuf,
    certificate_lock: Option<Arc<Mutex<Option<StoreLock>>>>,
    stats: Option<Stats>,
    grant: tokio::sync::watch::Sender<bool>,
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
            let data = data.clone();
            match tokio::task::spawn_blocking(move || service::lock_certificates(&data)).await {
                Ok(Ok(lock)) => break lock,
                Ok(Err(e)) if started.elapsed() > PATIENCE && !complained => {
                    tracing::error!("{e:#}; certificates are not renewed until it is free");
                    complained = true;
                }
                _ => {}
            }
            tokio::time::sleep(PAUSE).await;
        };
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock);
    }
    if let Some(stats) = stats {
        let started = tokio::time::Instant::now();
        let opened = loop {
            let data = data.clone();
            let opened = tokio::task::spawn_blocking(move || open_disk_store(&data))
                .await
                .unwrap_or_else(|e| {
                    Err(crate::stats::StatsStoreError::Engine(format!(
                        "opening it panicked: {e}"
                    )))
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

fn spawn_listener(
    supervisor: &mut Supervisor,
    name: SocketName,
    socket: Arc<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: &LiveLimits,
    metrics: &Metrics,
) {
    let shutdown = supervisor.shutdown().clone();
    let limits = limits.clone();
    let metrics = metrics.clone();
    supervisor.spawn(name.listener(), move || {
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

/// `quire serve`: runs until SIGINT or SIGTERM; SIGHUP reloads the config;
/// SIGUSR2 (or `quire upgrade`) hands over to the binary now installed.
pub async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let env = &crate::config::process_env;
    // Noted now: an upgrade replaces the file this process was started from.
    let launch = Launch::current();
    let predecessor = Predecessor::from_env(env)?;
    let sockets = Inherited::from_env(env, std::process::id(), predecessor.is_some())?;
    let (exited_tx, exited_rx) = oneshot::channel::<()>();
    let inheritance = Inheritance {
        sockets,
        predecessor: predecessor.as_ref().map(|p| PredecessorState {
            salts: p.salts.clone(),
            exited: Box::pin(async move {
                let _ = exited_rx.await;
            }),
        }),
    };
    // Watched before starting, so that none of them is missed meanwhile.
    let stop = crate::shutdown::os_signal();
    tokio::pin!(stop);
    let mut hangups = crate::shutdown::hangups();
    let mut upgrade_signals = crate::shutdown::upgrade_signals();
    let mut server = start_with(config, clock, inheritance).await?;
    let stopped_while_starting = is_done_now(&mut stop);
    match predecessor {
        // Told to stop before serving: the old process keeps the site.
        Some(_) if stopped_while_starting => {
            tracing::info!("stopped before taking over; the previous process keeps serving");
        }
        Some(predecessor) => {
            // If it is gone already, the sockets are ours alone: serve on.
            if let Err(e) = predecessor.announce_ready() {
                tracing::warn!("{e}; serving on without it");
            }
            tokio::spawn(async move {
                predecessor.exited().await;
                let _ = exited_tx.send(());
            });
        }
        None => {
            let status = Status::listening(
                server
                    .sockets
                    .iter()
                    .filter_map(|(name, socket)| Some((*name, socket.local_addr().ok()?))),
            );
            upgrade::notify::notify(env, &Notification::Ready(&status));
        }
    }

    let mut upgrade_requests = server
        .upgrade_requests
        .take()
        .expect("a new server has its upgrade requests");
    let successor = loop {
        if stopped_while_starting {
            break None;
        }
        let reply: Option<UpgradeRequest> = tokio::select! {
            () = &mut stop => break None,
            Some(()) = hangups.recv() => {
                let reloader = server.reloader.clone();
                // The reloader logs its outcome.
                if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload(Trigger::Hangup, env)).await {
                    tracing::error!("SIGHUP: the reload failed: {e}");
                }
                continue;
            }
            Some(()) = upgrade_signals.recv() => None,
            Some(reply) = upgrade_requests.recv() => Some(reply),
        };
        tracing::info!("upgrade: starting the binary now installed, on this process's sockets");
        let outcome = match upgrade(&server, &launch, env, stop.as_mut()).await {
            Ok(None) => break None,
            Ok(Some(successor)) => {
                let pid = std::process::id();
                match upgrade::notify::notify(env, &Notification::MainPid(successor.pid)) {
                    true => Ok(successor),
                    false => {
                        // SAFETY: kill(2) on the child this process started.
                        unsafe { libc::kill(successor.pid as libc::pid_t, libc::SIGTERM) };
                        Err(format!(
                            "systemd was not told that pid {} takes over, so pid {pid} keeps serving and has stopped it",
                            successor.pid
                        ))
                    }
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(successor) => {
                let message = format!(
                    "pid {} has taken over the sockets; pid {} finishes its requests in flight and exits",
                    successor.pid,
                    std::process::id()
                );
                tracing::info!("upgrade: {message}");
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(message));
                }
                break Some(successor);
            }
            Err(e) => {
                tracing::error!("upgrade: {e}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e));
                }
            }
        }
    };
    // Triggered before it is logged, so that whoever reads the log line can
    // count on new connections being refused.
    server.shutdown().trigger();
    match &successor {
        Some(_) => tracing::info!("handing over: no new connections, finishing requests in flight"),
        None => {
            upgrade::notify::notify(env, &Notification::Stopping);
            tracing::info!("shutting down: no new connections, finishing requests in flight");
        }
    }
    server.stop().await;
    tracing::info!("stopped");
    if let Some(successor) = successor {
        successor.hold_until_exit();
    }
    Ok(())
}

/// Whether `future` is already done, without waiting.
fn is_done_now(future: &mut std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    future.as_mut().poll(&mut context).is_ready()
}

/// One upgrade: the successor once it serves, or `None` when a stop signal
/// came first (the new process is then stopped too).
async fn upgrade(
    server: &RunningServer,
    launch: &std::io::Result<Launch>,
    env: &dyn Fn(&str) -> Option<String>,
    stop: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Option<Successor>, String> {
    if let Some(refusal) = upgrade::refusal(env, std::process::id()) {
        return Err(refusal.to_string());
    }
    let launch = launch.as_ref().map_err(|e| {
        format!("cannot tell which binary this process runs ({e}); upgrade with a restart instead")
    })?;
    let starting = server.start_successor(launch)?;
    let pid = starting.pid();
    let ready = tokio::task::spawn_blocking(move || starting.wait_ready(upgrade::READY_TIMEOUT));
    tokio::select! {
        ready = ready => match ready {
            Ok(outcome) => outcome.map(Some).map_err(|e| e.to_string()),
            Err(e) => Err(format!("the upgrade failed: {e}")),
        },
        () = stop => {
            tracing::info!("asked to stop during the upgrade; stopping the new process (pid {pid}) too");
            // SAFETY: kill(2) on the child this process started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            Ok(None)
        }
    }
}
