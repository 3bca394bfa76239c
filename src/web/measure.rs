//! Request metrics for the operator: every response counted by route kind
//! (`kind`) and status class, its latency, and the body bytes the connection actually took
//! ([`Counted`]). Atomic adds only.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::kind::route_kind;
use crate::metrics::{Metrics, RouteKind};

pub async fn measure(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let challenge = request
        .uri()
        .path()
        .starts_with("/.well-known/acme-challenge/");
    let response = next.run(request).await;
    let kind = if challenge {
        RouteKind::Challenge
    } else {
        route_kind(&response)
    };
    metrics.request(kind, response.status().as_u16(), started.elapsed());
    response.map(|body| Body::new(Counted::new(body, metrics)))
}

/// The largest piece of a body handed to the connection at once. Pages and
/// files are one buffer in memory; cut up, the connection pulls the next
/// piece only when it has room, so a reader who stalls or leaves stops the
/// count (and the buffering) near where it stopped reading.
const PIECE: usize = 64 * 1024;

/// A response body that counts its bytes as the connection takes them.
pub struct Counted {
    inner: Body,
    /// The rest of a data frame larger than [`PIECE`].
    rest: Bytes,
    metrics: Metrics,
}

impl Counted {
    pub fn new(inner: Body, metrics: Metrics) -> Counted {
        Counted {
            inner,
            rest: Bytes::new(),
            metrics,
        }
    }

    fn piece(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if data.len() > PIECE {
            self.rest = data.split_off(PIECE);
        }
        self.metrics.body_sent(data.len() as u64);
        Frame::data(data)
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if !this.rest.is_empty() {
            let rest = std::mem::take(&mut this.rest);
            return Poll::Ready(Some(Ok(this.piece(rest))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(this.piece(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint.set_lower(inner.lower() + rest);
        hint
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::BodyExt;

    use super::*;
    use crate::metrics::Snapshot;

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

    #[tokio::test]
    async fn a_body_read_to_the_end_counts_every_byte_once() {
        let metrics = Metrics::new();
        let mut body = Counted::new(Body::from(large()), metrics.clone());
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
    }

    #[tokio::test]
    async fn a_body_abandoned_after_one_piece_counts_one_piece() {
        let metrics = Metrics::new();
        let mut body = Counted::new(Body::from(large()), metrics.clone());
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(body_bytes(&metrics), PIECE as u64);
    }
}
