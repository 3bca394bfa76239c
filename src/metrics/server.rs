//! The internal listener (127.0.0.1:9100 by default): `/metrics`, `/health`,
//! `/ready` and the dashboard at `/`, served by its own task, apart from the
//! public router. When a token is configured every request must carry it as
//! `Authorization: Bearer <token>` (config validation insists on one when the
//! listener is reachable from other machines).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::Digest as _;

use super::exposition::Format;
pub use super::sources::Sources;
use super::{dashboard, health};

pub fn router(sources: Sources, token: Option<String>) -> Router {
    Router::new()
        .route("/", get(dashboard_page))
        .route("/metrics", get(metrics))
        .route("/health", get(health_check))
        .route("/ready", get(ready))
        .with_state(sources)
        .layer(middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ))
}

async fn require_token(
    State(token): State<Arc<Option<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token.as_deref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Comparing digests keeps the time taken independent of the token.
    let digest = |t: &str| sha2::Sha256::digest(t.as_bytes());
    let matches = presented.is_some_and(|p| digest(p) == digest(expected));
    if matches {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "This endpoint needs `Authorization: Bearer <[metrics] token>`.\n",
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"quire metrics\""),
    );
    response
}

async fn metrics(State(sources): State<Sources>, request: Request) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let text = sources
        .metrics
        .render(&sources.snapshot(), sources.clock.now());
    (
        [(header::CONTENT_TYPE, format.content_type())],
        format.encode(text),
    )
        .into_response()
}

async fn health_check(State(sources): State<Sources>) -> Response {
    let now = sources.clock.now();
    let body = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": (now - sources.started).num_seconds(),
    });
    json(StatusCode::OK, &body)
}

async fn ready(State(sources): State<Sources>) -> Response {
    let readiness = tokio::task::spawn_blocking(move || {
        let now = sources.clock.now();
        health::readiness(&sources, now)
    })
    .await;
    match readiness {
        Ok(readiness) => {
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(status, &readiness)
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("readiness check failed: {e}\n"),
        )
            .into_response(),
    }
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text =
        serde_json::to_string_pretty(body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        text + "\n",
    )
        .into_response()
}

/// Reads the statistics store and certificate status (disk), off the runtime.
async fn dashboard_page(State(sources): State<Sources>) -> Response {
    // In a cluster the status is in the shared store: not asked while the
    // engine is down, so the page does not wait for the pool's timeouts.
    let engine_down = sources
        .cluster
        .as_ref()
        .is_some_and(|c| !c.health().is_up());
    let certificate_status = match &sources.certificates {
        Some(store) if !engine_down => store.status().await.ok(),
        _ => None,
    };
    match tokio::task::spawn_blocking(move || {
        dashboard::render(&sources, certificate_status.as_ref())
    })
    .await
    {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
                ),
            ],
            html,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the dashboard failed: {e}\n"))
            .into_response(),
    }
}
