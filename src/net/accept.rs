//! The accept loop every listener runs, plain HTTP and HTTPS alike: accept (never
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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::SocketName;
use super::connections::{Connections, Cut, Entry, InFlight};
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

/// The TCP peer of a request, added to every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

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
    pub app: Router,
    pub limits: LiveLimits,
    pub metrics: Metrics,
}

impl Activity for Listener {
    fn name(&self) -> &'static str {
        self.name.listener()
    }

    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        accept_and_serve(self, shutdown).await;
        Ok(())
    }
}

/// Accepts and serves connections until `shutdown`, then drains them.
async fn accept_and_serve(listener: Listener, shutdown: Shutdown) {
    let mut allowed = listener.limits.load().max_connections;
    let permits = Arc::new(Semaphore::new(allowed));
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let connections = Connections::default();
    'accept: loop {
        // A reload may have changed the connection cap.
        let wanted = listener.limits.load().max_connections;
        if wanted > allowed {
            permits.add_permits(wanted - allowed);
            allowed = wanted;
        } else if wanted < allowed {
            allowed -= permits.forget_permits(allowed - wanted);
        }
        let (tcp, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.socket.accept() => match accepted {
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
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => loop {
                connections.evict_idlest();
                // A busy connection may fall idle or stall: look again.
                tokio::select! {
                    () = &mut stop => break 'accept,
                    permit = permits.clone().acquire_owned() => break permit.expect("semaphore never closed"),
                    () = tokio::time::sleep(EVICT_AGAIN_AFTER) => {}
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // A dual-stack socket gives IPv4 clients as ::ffff:a.b.c.d; they are
        // a.b.c.d to trusted proxies, statistics and logs.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let connection = serve_connection(tcp, peer, connections.open(), &listener, &shutdown);
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
            listener = listener.name.listener(),
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
        let (asked, answered, answering) = (progress.clone(), progress.clone(), progress.clone());
        let service = TowerToHyperService::new(
            app.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                asked.request_received(request.version());
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(PeerAddr(peer));
                request
            })
            .map_response(move |mut response: axum::response::Response| {
                // Said in the response itself, so the client cannot reuse
                // the connection and race its close. (HTTP/2 has GOAWAY.)
                if closing.is_triggered() && answered.speaks_http1() {
                    response.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                response
            })
            .map_future(move |answer| {
                let in_flight = answering.answering();
                async move {
                    let response: axum::response::Response = answer.await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Delivery { body, in_flight }),
                    )
                }
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

/// A response body that keeps its request counted as in flight until it has
/// been handed to the connection in full (or abandoned).
/// The connection pulls the next piece only when it has room for it (see
/// `web::measure`), so what it takes is what the client reads, give or take
/// a piece and the socket's buffers.
struct Delivery<B> {
    body: B,
    in_flight: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for Delivery<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.in_flight.delivered(bytes::Buf::remaining(data));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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
