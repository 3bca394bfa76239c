//! Tells the statistics recorder what a response was: a page view (a full
//! HTML page), a feed fetch, or a 404. Assets, redirects, revalidated pages
//! (304), HEAD requests and browser prefetches are not views. Runs after the
//! response is built, and only pushes into memory.

use std::net::IpAddr;

use http::{HeaderMap, Method, Request, StatusCode, header};

use crate::metrics::RouteKind;
use crate::stats::{Hit, HitKind, Recorder};

/// Records the request if its answer (`status`, of route kind `kind`) is a view.
pub fn record<B>(
    recorder: &Recorder,
    request: &Request<B>,
    client: IpAddr,
    status: StatusCode,
    kind: RouteKind,
) {
    if request.method() != Method::GET {
        return;
    }
    let Some(kind) = classify(status, kind) else {
        return;
    };
    let headers = request.headers();
    if is_prefetch(headers) {
        return;
    }
    let opted_out = ["dnt", "sec-gpc"]
        .iter()
        .any(|name| headers.get(*name).is_some_and(|v| v.as_bytes() == b"1"));
    recorder.record(&Hit {
        kind,
        path: request.uri().path(),
        client,
        user_agent: headers
            .get(header::USER_AGENT)
            .map_or(&[][..], |v| v.as_bytes()),
        referer: headers.get(header::REFERER).and_then(|v| v.to_str().ok()),
        opted_out,
    });
}

fn is_prefetch(headers: &HeaderMap) -> bool {
    ["sec-purpose", "purpose", "x-moz"].iter().any(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("prefetch") || v.contains("prerender"))
    })
}

fn classify(status: StatusCode, kind: RouteKind) -> Option<HitKind> {
    match kind {
        // A revalidated page (304) is not a new view; a revalidated feed is a fetch.
        RouteKind::Page if status == StatusCode::OK => Some(HitKind::Page),
        RouteKind::Feed => Some(HitKind::Feed),
        RouteKind::NotFound => Some(HitKind::NotFound),
        _ => None,
    }
}
