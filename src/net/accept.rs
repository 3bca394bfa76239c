//! The accept loop every listener runs on each serving core ([`super::Cores`]),
//! plain HTTP and HTTPS alike: accept (never
//! dying on a per-connection error, backing off when out of file descriptors),
//! cap concurrent connections (a newcomer to a full table closes the idlest),
//! finish the TLS handshake within a deadline, then let hyper serve HTTP/1.1
//! or HTTP/2 with the configured limits, closing a connection that stops
//! making progress ([`super::connections`]). On shutdown:
//! stop accepting, let in-flight requests finish within the grace period.
//! A connection idle at that moment (or new, its first request not yet sent)
//! gets [`LINGER`] to send its next request, which is answered with the
//! connection's close; so a client whose request was already on its way,
//! during an upgrade or a restart, gets an answer rather than a reset.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::SocketName;
use super::connections::{Connections, Cut, Entry};
use super::cores::Cores;
use super::service::{App, ConnectionService};
use crate::config::Limits;
use crate::metrics::{HandshakeFailure, Metrics};
use crate::shutdown::Shutdown;
use crate::supervisor::Activity;

/// How long, at shutdown, an idle connection may still send one request.
const LINGER: Duration = Duration::from_secs(1);

/// How often a newcomer waiting for a full table of busy connections looks
/// again for one to close.
const EVICT_AGAIN_AFTER: Duration = Duration::from_millis(500);

/// HTTP/2 pings find a dead peer before its response's deadline; they are
/// not progress, so they keep no idle connection open.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
const H2_PING_ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// The limits in force; a reload swaps them, and new connections use them.
pub type LiveLimits = Arc<arc_swap::ArcSwap<Limits>>;

pub fn live_limits(limits: Limits) -> LiveLimits {
    Arc::new(arc_swap::ArcSwap::from_pointee(limits))
}

/// One listening socket and how to serve it; cheap to clone, so the
/// supervisor restarts it from a copy.
#[derive(Clone)]
pub struct Listener {
    pub name: SocketName,
    pub socket: Arc<TcpListener>,
    pub tls: Option<TlsAcceptor>,
    pub app: App,
    pub limits: LiveLimits,
    pub metrics: Metrics,
    pub cores: Cores,
}

impl Activity for Listener {
    fn name(&self) -> &'static str {
        self.name.listener()
    }

    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        accept_and_serve(self, shutdown).await
    }
}

/// Accepts and serves connections on every core until `shutdown`, then
/// drains them.
async fn accept_and_serve(listener: Listener, shutdown: Shutdown) -> anyhow::Result<()> {
    let admission = Arc::new(Admission::new(listener.limits.load().max_connections));
    let connections = Connections::default();
    // Each core's connections watch a signal of their own, passed on from
    // `shutdown` when that core stops accepting: every connection looks at
    // it each time it wakes, and a signal shared by all cores would be
    // written from both on every request.
    let core_shutdowns: Arc<[Shutdown]> = listener
        .cores
        .handles()
        .iter()
        .map(|_| Shutdown::new())
        .collect();
    let mut cores = tokio::task::JoinSet::new();
    for (core, runtime) in listener.cores.handles().iter().enumerate() {
        let socket = listener
            .socket
            .as_fd()
            .try_clone_to_owned()
            .map(std::net::TcpListener::from)?;
        let here = Core {
            index: core,
            shutdowns: core_shutdowns.clone(),
        };
        let (listener, shutdown) = (listener.clone(), shutdown.clone());
        let (admission, connections) = (admission.clone(), connections.clone());
        cores.spawn_on(
            async move {
                // Registered with this core's reactor: its accepts wake this
                // thread only.
                let socket = TcpListener::from_std(socket)?;
                accept_on_core(
                    &socket,
                    &here,
                    &listener,
                    &admission,
                    &connections,
                    &shutdown,
                )
                .await;
                here.shutdowns[here.index].trigger();
                Ok::<_, std::io::Error>(())
            },
            runtime,
        );
    }
    while let Some(ended) = cores.join_next().await {
        ended??;
    }
    // Every connection holds a permit until it ends.
    let grace = listener.limits.load().shutdown_grace;
    if tokio::time::timeout(grace, admission.all_returned())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = listener.name.listener(),
            "connections still open after {grace:?}; closing them"
        );
    }
    Ok(())
}

/// The listener's cap on open connections, shared by its cores; a reload
/// may move it.
struct Admission {
    permits: Arc<Semaphore>,
    allowed: std::sync::Mutex<usize>,
}

impl Admission {
    fn new(allowed: usize) -> Admission {
        Admission {
            permits: Arc::new(Semaphore::new(allowed)),
            allowed: std::sync::Mutex::new(allowed),
        }
    }

    fn follow(&self, wanted: usize) {
        let mut allowed = self.allowed.lock().unwrap_or_else(|e| e.into_inner());
        if wanted > *allowed {
            self.permits.add_permits(wanted - *allowed);
            *allowed = wanted;
        } else if wanted < *allowed {
            *allowed -= self.permits.forget_permits(*allowed - wanted);
        }
    }

    async fn all_returned(&self) {
        let allowed = *self.allowed.lock().unwrap_or_else(|e| e.into_inner());
        let all = u32::try_from(allowed).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }
}

/// The core an accept loop runs on, and every core's shutdown signal.
struct Core {
    index: usize,
    shutdowns: Arc<[Shutdown]>,
}

/// One core's accept loop.
async fn accept_on_core(
    socket: &TcpListener,
    here: &Core,
    listener: &Listener,
    admission: &Admission,
    connections: &Connections,
    shutdown: &Shutdown,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    'accept: loop {
        // A reload may have changed the connection cap.
        admission.follow(listener.limits.load().max_connections);
        let (tcp, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if is_resource_exhaustion(&e) {
                        tracing::warn!(listener = listener.name.listener(), "accept failed: {e}; pausing 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    } else {
                        tracing::debug!(listener = listener.name.listener(), "accept failed: {e}");
                    }
                    continue;
                }
            },
        };
        // A full table makes room by closing the connection that has waited
        // longest without progress, so idle or dribbling clients cannot lock
        // others out. When every connection is busy, the newcomer waits, and
        // the ones after it wait in the kernel's backlog.
        let permit = match admission.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => loop {
                connections.evict_idlest();
                // A busy connection may fall idle or stall: look again.
                tokio::select! {
                    () = &mut stop => break 'accept,
                    permit = admission.permits.clone().acquire_owned() => break permit.expect("semaphore never closed"),
                    () = tokio::time::sleep(EVICT_AGAIN_AFTER) => {}
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // A dual-stack socket gives IPv4 clients as ::ffff:a.b.c.d; they are
        // a.b.c.d to trusted proxies, statistics and logs.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let entry = connections.open();
        let placed = listener.cores.place(here.index);
        let core_shutdown = &here.shutdowns[placed.core];
        if placed.core == here.index {
            let connection = serve_connection(tcp, peer, entry, listener, core_shutdown);
            tokio::spawn(async move {
                connection.await;
                drop((permit, placed));
            });
            continue;
        }
        // Moved to a core with fewer connections: registered with that
        // core's reactor, from its own thread.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!(listener = listener.name.listener(), %peer, "could not pass the connection on: {e}");
                continue;
            }
        };
        let (listener, core_shutdown) = (listener.clone(), core_shutdown.clone());
        placed.runtime().clone().spawn(async move {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => serve_connection(tcp, peer, entry, &listener, &core_shutdown).await,
                Err(e) => {
                    tracing::debug!(listener = listener.name.listener(), %peer, "could not take the connection over: {e}");
                }
            }
            drop((permit, placed));
        });
    }
}

fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    entry: Entry,
    listener: &Listener,
    shutdown: &Shutdown,
) -> impl Future<Output = ()> + Send + 'static {
    let limits = listener.limits.load_full();
    let tls = listener.tls.clone();
    let name = listener.name.listener();
    let app = listener.app.clone();
    let stop = shutdown.wait();
    let closing = shutdown.clone();
    let metrics = listener.metrics.clone();
    async move {
        metrics.connection_opened(name);
        let _open = OpenConnection(&metrics, name);
        let progress = entry.progress.clone();
        let service = ConnectionService {
            app,
            peer,
            progress: progress.clone(),
            closing,
            metrics: metrics.clone(),
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .keep_alive_interval(H2_PING_EVERY)
            .keep_alive_timeout(H2_PING_ANSWER_WITHIN)
            // Rapid reset (CVE-2023-44487): few pending resets, then GOAWAY.
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(256))
            .max_header_list_size(limits.max_header_bytes as u32);
        let io: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
                let handshake = tokio::select! {
                    done = handshake => done,
                    () = progress.evicted() => return metrics.connection_cut(name, Cut::Evicted.label()),
                };
                match handshake {
                    Ok(Ok(mut stream)) => {
                        metrics.handshake(Ok(()));
                        // A tls-alpn-01 validator only looks at the certificate.
                        if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
                            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
                            return;
                        }
                        Box::new(stream)
                    }
                    Ok(Err(e)) => {
                        metrics.handshake(Err(HandshakeFailure::of(&e)));
                        tracing::debug!(listener = name, %peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        metrics.handshake(Err(HandshakeFailure::Timeout));
                        tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        // The first request's deadline runs from here, not from the accept: a
        // slow handshake has its own limit.
        progress.ready();
        let cut = progress.cut(&limits);
        tokio::pin!(cut);
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => return log_end(name, peer, result),
            cut = cut.as_mut() => {
                tracing::debug!(listener = name, %peer, "closed the connection: {}", describe(cut));
                return metrics.connection_cut(name, cut.label());
            }
            () = stop => {}
        }
        // Shutting down. A request in flight is answered; otherwise wait a
        // moment for one: the client may have sent it already.
        let arrived = progress.next_request();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        if progress.in_flight() == 0 {
            tokio::select! {
                result = connection.as_mut() => return log_end(name, peer, result),
                () = arrived => {}
                () = tokio::time::sleep(LINGER) => {}
            }
        }
        // HTTP/1.1: no keep-alive after the current response; HTTP/2: GOAWAY.
        connection.as_mut().graceful_shutdown();
        log_end(name, peer, connection.await);
    }
}

fn describe(cut: Cut) -> &'static str {
    match cut {
        Cut::NoRequest => "no request in time",
        Cut::Idle => "idle",
        Cut::Stalled => "the client stopped reading its response",
        Cut::Evicted => "the connection table is full and this one was the idlest",
    }
}

/// Counts the connection as closed however its task ends.
struct OpenConnection<'a>(&'a Metrics, &'static str);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connection_closed(self.1);
    }
}

/// A plain or TLS stream, whichever the listener serves.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

fn log_end(
    name: &str,
    peer: SocketAddr,
    result: Result<(), Box<dyn std::error::Error + Send + Sync>>,
) {
    if let Err(e) = result {
        tracing::debug!(listener = name, %peer, "connection ended: {e}");
    }
}
