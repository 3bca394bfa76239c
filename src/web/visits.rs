//! Tells the statistics recorder what a response was: a page view (a full
//! HTML page), a feed fetch, or a 404. Assets, redirects, revalidated pages
//! (304), HEAD requests and browser prefetches are not views. Runs after the
//! response is built, and only pushes into memory.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::client_ip::ClientIp;
use super::kind::route_kind;
use crate::metrics::RouteKind;
use crate::stats::{Hit, HitKind, Recorder};

pub async fn record(State(recorder): State<Recorder>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET || is_prefetch(request.headers()) {
        return next.run(request).await;
    }
    let Some(ClientIp(client)) = request.extensions().get::<ClientIp>().copied() else {
        return next.run(request).await;
    };
    // Header values and the URI share the request's buffer: keeping them is
    // a reference count, not a copy.
    let headers = request.headers();
    let user_agent = headers.get(header::USER_AGENT).cloned();
    let referer = headers.get(header::REFERER).cloned();
    let opted_out = ["dnt", "sec-gpc"]
        .iter()
        .any(|name| headers.get(*name).is_some_and(|v| v.as_bytes() == b"1"));
    let uri = request.uri().clone();
    let response = next.run(request).await;
    if let Some(kind) = classify(&response) {
        recorder.record(&Hit {
            kind,
            path: uri.path(),
            client,
            user_agent: user_agent.as_ref().map_or(&[][..], |v| v.as_bytes()),
            referer: referer.as_ref().and_then(|v| v.to_str().ok()),
            opted_out,
        });
    }
    response
}

fn is_prefetch(headers: &HeaderMap) -> bool {
    ["sec-purpose", "purpose", "x-moz"].iter().any(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("prefetch") || v.contains("prerender"))
    })
}

fn classify(response: &Response) -> Option<HitKind> {
    match route_kind(response) {
        // A revalidated page (304) is not a new view; a revalidated feed is a fetch.
        RouteKind::Page if response.status() == StatusCode::OK => Some(HitKind::Page),
        RouteKind::Feed => Some(HitKind::Feed),
        RouteKind::NotFound => Some(HitKind::NotFound),
        _ => None,
    }
}
