//! The connection loop shared by the HTTP and HTTPS listeners: accept (never
//! dying on a per-connection error, backing off when out of file descriptors),
//! cap concurrent connections, finish the TLS handshake within a deadline, then
//! let hyper serve HTTP/1.1 or HTTP/2 with the configured limits. On shutdown:
//! stop accepting, let in-flight requests finish within the grace period.
//! A connection idle at that moment (or new, its first request not yet sent)
//! gets [`LINGER`] to send its next request, which is answered with the
//! connection's close; so a client whose request was already on its way,
//! during an upgrade or a restart, gets an answer rather than a reset.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Limits;
use crate::metrics::{HandshakeFailure, Metrics};
use crate::shutdown::Shutdown;

/// How long, at shutdown, an idle connection may still send one request.
const LINGER: Duration = Duration::from_secs(1);

/// The TCP peer of a request, added to every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The limits in force; a reload swaps them, and new connections use them.
pub type LiveLimits = Arc<arc_swap::ArcSwap<Limits>>;

pub fn live_limits(limits: Limits) -> LiveLimits {
    Arc::new(arc_swap::ArcSwap::from_pointee(limits))
}

/// One listening socket and how to serve it.
pub struct Listener {
    pub name: &'static str,
    pub socket: Arc<TcpListener>,
    pub tls: Option<TlsAcceptor>,
    pub app: Router,
    pub limits: LiveLimits,
    pub metrics: Metrics,
}

/// Accepts and serves connections until `shutdown`, then drains them.
pub async fn run(listener: Listener, shutdown: Shutdown) {
    let mut allowed = listener.limits.load().max_connections;
    let permits = Arc::new(Semaphore::new(allowed));
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        // A reload may have changed the connection cap.
        let wanted = listener.limits.load().max_connections;
        if wanted > allowed {
            permits.add_permits(wanted - allowed);
            allowed = wanted;
        } else if wanted < allowed {
            allowed -= permits.forget_permits(allowed - wanted);
        }
        // Waiting for a permit before accepting leaves excess clients in the
        // kernel's backlog instead of holding sockets we cannot serve.
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
        };
        let (tcp, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if is_resource_exhaustion(&e) {
                        tracing::warn!(listener = listener.name, "accept failed: {e}; pausing 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    } else {
                        tracing::debug!(listener = listener.name, "accept failed: {e}");
                    }
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // A dual-stack socket gives IPv4 clients as ::ffff:a.b.c.d; they are
        // a.b.c.d to trusted proxies, statistics and logs.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let connection = serve_connection(tcp, peer, &listener, &shutdown);
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    // Every connection holds a permit until it ends.
    let grace = listener.limits.load().shutdown_grace;
    let all = u32::try_from(allowed).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            listener = listener.name,
            "connections still open after {grace:?}; closing them"
        );
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
    listener: &Listener,
    shutdown: &Shutdown,
) -> impl Future<Output = ()> + Send + 'static {
    let limits = listener.limits.load_full();
    let tls = listener.tls.clone();
    let name = listener.name;
    let app = listener.app.clone();
    let stop = shutdown.wait();
    let closing = shutdown.clone();
    let metrics = listener.metrics.clone();
    async move {
        metrics.connection_opened(name);
        let _open = OpenConnection(&metrics, name);
        let activity = Arc::new(Activity::new());
        let tcp = Tracked {
            inner: tcp,
            activity: activity.clone(),
        };
        let exchanges = Exchanges::default();
        let (asked, answered, closing) = (exchanges.clone(), exchanges.clone(), closing.clone());
        let service = TowerToHyperService::new(
            app.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                asked.received(request.version());
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(PeerAddr(peer));
                request
            })
            .map_response(move |mut response: axum::response::Response| {
                // Said in the response itself, so the client cannot reuse
                // the connection and race its close. (HTTP/2 has GOAWAY.)
                if closing.is_triggered() && answered.http1.load(Ordering::Relaxed) {
                    response.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                answered.unanswered.fetch_sub(1, Ordering::Relaxed);
                response
            }),
        );
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
            // No keep-alive pings: they would count as traffic and keep idle
            // connections open forever; the idle timeout closes dead peers.
            // Rapid reset (CVE-2023-44487): few pending resets, then GOAWAY.
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(256))
            .max_header_list_size(limits.max_header_bytes as u32);
        let io: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(acceptor) => {
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(mut stream)) => {
                        metrics.handshake(Ok(()));
                        // A tls-alpn-01 validator only looks at the certificate.
                        if stream.get_ref().1.alpn_protocol() == Some(super::ACME_TLS_ALPN) {
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
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => return log_end(name, peer, result),
            () = activity.idle_for(limits.idle_timeout) => {
                tracing::debug!(listener = name, %peer, "closed an idle connection");
                return;
            }
            () = stop => {}
        }
        // Shutting down. A request in flight is answered; otherwise wait a
        // moment for one: the client may have sent it already.
        let mut arrived = exchanges.received.subscribe();
        arrived.mark_unchanged();
        if exchanges.unanswered.load(Ordering::Relaxed) == 0 {
            tokio::select! {
                result = connection.as_mut() => return log_end(name, peer, result),
                _ = arrived.changed() => {}
                () = tokio::time::sleep(LINGER) => {}
            }
        }
        // HTTP/1.1: no keep-alive after the current response; HTTP/2: GOAWAY.
        connection.as_mut().graceful_shutdown();
        log_end(name, peer, connection.await);
    }
}

/// A connection's requests, as the shutdown path needs them.
#[derive(Clone, Default)]
struct Exchanges {
    /// Requests received so far; shutdown waits for the next one.
    received: tokio::sync::watch::Sender<u64>,
    /// Received and not yet answered.
    unanswered: Arc<AtomicU64>,
    /// Whether the connection speaks HTTP/1 (else HTTP/2).
    http1: Arc<AtomicBool>,
}

impl Exchanges {
    fn received(&self, version: http::Version) {
        self.http1
            .store(version <= http::Version::HTTP_11, Ordering::Relaxed);
        self.unanswered.fetch_add(1, Ordering::Relaxed);
        self.received.send_modify(|n| *n += 1);
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

/// When a connection last moved a byte.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that records activity on every read and write.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
