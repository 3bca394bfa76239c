//! Request metrics for the operator and the debug request log: every
//! response counted by route kind ([`RouteKind`]) and status class, with its
//! latency, and one `quire::request` debug line when debug logging is on.
//! Atomic adds only. (The body bytes the connection actually takes are
//! counted by the connection, `net::Delivery`.)

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};

use crate::metrics::{Metrics, RouteKind};

/// One request being answered: when it arrived, and who sent it.
pub struct Exchange {
    started: Instant,
    pub client: IpAddr,
}

impl Exchange {
    pub fn start(client: IpAddr) -> Exchange {
        Exchange {
            started: Instant::now(),
            client,
        }
    }

    /// Counts the response, and logs it when debug logging is on.
    pub fn finish<B>(
        self,
        metrics: &Metrics,
        request: &Request<B>,
        response: &Response<Bytes>,
        kind: RouteKind,
    ) {
        let took = self.started.elapsed();
        metrics.request(kind, response.status().as_u16(), took);
        if tracing::enabled!(target: "quire::request", tracing::Level::DEBUG) {
            tracing::debug!(
                target: "quire::request",
                method = %request.method(),
                path = request.uri().path(),
                client = self.client.to_string(),
                status = response.status().as_u16(),
                bytes = response.body().len(),
                micros = took.as_micros() as u64,
            );
        }
    }
}
