//! Request metrics for the operator: every response counted by route kind and
//! status class, its latency and body size. Atomic adds only.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Body as _;

use super::respond::Revalidated;
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
    metrics.request(
        kind,
        response.status().as_u16(),
        started.elapsed(),
        response.body().size_hint().exact().unwrap_or(0),
    );
    response
}

/// What a response is: page, feed, asset (revalidations included), redirect, 404.
pub fn route_kind(response: &Response) -> RouteKind {
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return RouteKind::NotFound;
    }
    if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
        return RouteKind::Redirect;
    }
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return RouteKind::Other;
    }
    let content_type = match response.extensions().get::<Revalidated>() {
        Some(revalidated) => revalidated.content_type.to_str().unwrap_or(""),
        None => response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    };
    if content_type.starts_with("text/html") {
        RouteKind::Page
    } else if super::visits::is_feed(content_type) {
        RouteKind::Feed
    } else {
        RouteKind::Asset
    }
}
