//! What a connection runs for each request: the listener's [`App`], with the
//! connection's bookkeeping around it (a request received, its response in
//! flight until the body is handed over, `Connection: close` while shutting
//! down). The public site is an [`App::Direct`]: answered from memory in the
//! call itself, with no boxed future, no cloned router and no middleware
//! stack per request; the internal endpoints are axum routers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tower::ServiceExt;

use super::connections::{InFlight, Progress};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// The TCP peer of a request, added to every routed request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Answers a request at once, from memory. Whatever it counts (metrics,
/// statistics) it counts in the call; the bytes of the body are counted as
/// the connection takes them.
pub trait Respond: Send + Sync + 'static {
    fn respond(&self, request: &Request<Incoming>, peer: SocketAddr) -> Response<Bytes>;
}

/// What a listener serves.
#[derive(Clone)]
pub enum App {
    /// The public side: answered in the call, its body counted in
    /// `quire_http_response_body_bytes_total`.
    Direct(Arc<dyn Respond>),
    /// An internal endpoint (metrics, the local CA), through axum.
    Router(Router),
}

/// One connection's service; hyper calls it once per request.
pub struct ConnectionService {
    pub app: App,
    pub peer: SocketAddr,
    pub progress: Arc<Progress>,
    pub closing: Shutdown,
    pub metrics: Metrics,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Delivery>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Answer {
        let closing = self.closing.is_triggered();
        self.progress.request_received(request.version(), closing);
        let in_flight = self.progress.answering();
        // Said in the response itself, so the client cannot reuse the
        // connection and race its close. (HTTP/2 has GOAWAY.)
        let close = closing && self.progress.speaks_http1();
        match &self.app {
            App::Direct(respond) => {
                let response = respond.respond(&request, self.peer);
                let metrics = self.metrics.clone();
                Answer::Ready(Some(finish(
                    response.map(|whole| Payload::Whole {
                        rest: whole,
                        metrics,
                    }),
                    in_flight,
                    close,
                )))
            }
            App::Router(router) => {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(PeerAddr(self.peer));
                let routed = router.clone().oneshot(request);
                Answer::Routed(Box::pin(async move {
                    let response = match routed.await {
                        Ok(response) => response,
                        Err(infallible) => match infallible {},
                    };
                    finish(response.map(Payload::Routed), in_flight, close)
                }))
            }
        }
    }
}

fn finish(response: Response<Payload>, in_flight: InFlight, close: bool) -> Response<Delivery> {
    let mut response = response.map(|payload| Delivery { payload, in_flight });
    if close {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A response ready at once, or one an axum router is still working on.
pub enum Answer {
    Ready(Option<Response<Delivery>>),
    Routed(Pin<Box<dyn Future<Output = Response<Delivery>> + Send>>),
}

impl Future for Answer {
    type Output = Result<Response<Delivery>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Ready(response) => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            Answer::Routed(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// The largest piece of a body handed to the connection at once. Pages and
/// files are one buffer in memory; cut up, the connection pulls the next
/// piece only when it has room, so a reader who stalls or leaves stops the
/// count (and the buffering) near where it stopped reading.
pub const PIECE: usize = 64 * 1024;

enum Payload {
    /// What is left of a body held whole in memory.
    Whole {
        rest: Bytes,
        metrics: Metrics,
    },
    Routed(axum::body::Body),
}

/// A response body that keeps its request counted as in flight until it has
/// been handed to the connection in full (or abandoned).
pub struct Delivery {
    payload: Payload,
    in_flight: InFlight,
}

impl http_body::Body for Delivery {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.payload {
            Payload::Whole { rest, metrics } => {
                if rest.is_empty() {
                    return Poll::Ready(None);
                }
                let piece = rest.split_to(rest.len().min(PIECE));
                metrics.body_sent(piece.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            Payload::Routed(body) => Pin::new(body).poll_frame(cx),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.in_flight.delivered(data.len());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.payload {
            Payload::Whole { rest, .. } => rest.is_empty(),
            Payload::Routed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.payload {
            Payload::Whole { rest, .. } => SizeHint::with_exact(rest.len() as u64),
            Payload::Routed(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::BodyExt;

    use super::*;
    use crate::metrics::Snapshot;
    use crate::net::connections::Connections;

    fn body_bytes(metrics: &Metrics) -> u64 {
        let text = metrics.render(&Snapshot::default(), chrono::Utc::now());
        text.lines()
            .find_map(|l| l.strip_prefix("quire_http_response_body_bytes_total "))
            .expect("the counter is exposed")
            .parse()
            .unwrap()
    }

    fn large() -> Bytes {
        (0..PIECE * 10 + 7).map(|i| i as u8).collect()
    }

    fn delivery(metrics: &Metrics, progress: &Arc<Progress>) -> Delivery {
        Delivery {
            payload: Payload::Whole {
                rest: large(),
                metrics: metrics.clone(),
            },
            in_flight: progress.answering(),
        }
    }

    #[tokio::test]
    async fn a_body_read_to_the_end_counts_every_byte_once_and_ends_the_request() {
        let metrics = Metrics::new();
        let connections = Connections::default();
        let entry = connections.open();
        let mut body = delivery(&metrics, &entry.progress);
        assert_eq!(entry.progress.in_flight(), 1);
        assert_eq!(body.size_hint().exact(), Some(large().len() as u64));
        let mut read = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= PIECE);
            read.extend_from_slice(&data);
            assert_eq!(
                body.size_hint().exact(),
                Some((large().len() - read.len()) as u64)
            );
        }
        assert!(body.is_end_stream());
        assert_eq!(read, large());
        assert_eq!(body_bytes(&metrics), large().len() as u64);
        drop(body);
        assert_eq!(entry.progress.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_body_abandoned_after_one_piece_counts_one_piece() {
        let metrics = Metrics::new();
        let connections = Connections::default();
        let entry = connections.open();
        let mut body = delivery(&metrics, &entry.progress);
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(body_bytes(&metrics), PIECE as u64);
        assert_eq!(entry.progress.in_flight(), 0);
    }
}
