//! [`HttpSide`]: the plain HTTP listener when the site itself is on HTTPS.
//! It answers ACME http-01 challenges from the [`ChallengeMap`] and sends
//! everything else to the same path on the HTTPS origin.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::measure::Exchange;
use super::{ChallengeMap, LivePolicy, kind, origin_target, redirect, text};
use crate::metrics::{Metrics, RouteKind};
use crate::net::Respond;

pub struct HttpSide {
    pub challenges: ChallengeMap,
    pub policy: LivePolicy,
    pub metrics: Metrics,
}

impl Respond for HttpSide {
    fn respond(&self, request: &Request<Incoming>, peer: SocketAddr) -> Response<Bytes> {
        // Proxies are trusted on the site only: this side serves the CA and
        // redirects, and logs the TCP peer.
        let exchange = Exchange::start(peer.ip());
        let (response, kind) = self.answer(request);
        exchange.finish(&self.metrics, request, &response, kind);
        response
    }
}

impl HttpSide {
    fn answer<B>(&self, request: &Request<B>) -> (Response<Bytes>, RouteKind) {
        let uri = request.uri();
        if let Some(token) = uri.path().strip_prefix("/.well-known/acme-challenge/") {
            let response = match self.challenges.get(token) {
                Some(key_authorization) => {
                    let mut response = Response::new(Bytes::from(key_authorization));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                    response
                }
                None => text(StatusCode::NOT_FOUND, "No such ACME challenge.\n"),
            };
            return (response, RouteKind::Challenge);
        }
        let policy = self.policy.load();
        let response = redirect(&origin_target(&policy.origin, uri.path()), uri.query());
        let kind = kind::route_kind(response.status(), None);
        (response, kind)
    }
}
