//! Starts the activities of `quire serve` and stops them: the first site build,
//! the content watcher and the HTTP listener, all sharing one [`Shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::shutdown::Shutdown;
use crate::site::watcher::FileWatch;
use crate::site::{self, BuildInputs, LiveSite};
use crate::web;

/// A started server; stop it with [`RunningServer::stop`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub site: LiveSite,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and waits for every task.
    pub async fn stop(self) {
        self.shutdown.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
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

/// Builds the site and starts serving it.
pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<RunningServer> {
    if config.mode != Mode::Off {
        bail!(
            "mode `{}` serves HTTPS, which this version of quire does not do yet; run with --mode off (plain HTTP, e.g. behind a TLS proxy)",
            config.mode
        );
    }
    let inputs = Arc::new(BuildInputs::from_config(&config));
    if !inputs.content.is_dir() {
        return Err(site::BuildError::MissingContent(inputs.content.clone()).into());
    }
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
    let shutdown = Shutdown::new();

    let listener = bind(config.listen.http, "http").await?;
    let http_addr = listener.local_addr().context("reading the bound address")?;
    let mut tasks = Vec::new();

    let app = web::router(live.clone());
    let stop = shutdown.wait();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("http listener stopped: {e}");
        }
    }));

    tasks.push(tokio::spawn(site::watcher::run(
        live.clone(),
        inputs.clone(),
        files,
        clock.clone(),
        shutdown.clone(),
    )));

    tracing::info!("listening on http://{http_addr}");
    tracing::info!(
        posts = summary.posts,
        pages = summary.pages,
        problems = summary.problems.len(),
        ms = summary.took.as_millis() as u64,
        "serving {} at {} (open http://{http_addr}/)",
        config.paths.content.display(),
        config.site.base_url,
    );
    Ok(RunningServer {
        http_addr,
        site: live,
        shutdown,
        tasks,
    })
}

/// `quire serve`: runs until SIGINT or SIGTERM.
pub async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<()> {
    let server = start(config, clock).await?;
    crate::shutdown::os_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}
