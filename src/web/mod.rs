//! The public router: finds the path in the live [`SiteSnapshot`] and answers
//! with the page, a redirect, or the 404 page. It does not care which listener
//! feeds it (plain HTTP now, TLS next), and it never touches the disk.

pub mod path;
pub mod respond;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;

use crate::site::snapshot::CachePolicy;
use crate::site::{LiveSite, Route};

/// The site's router.
pub fn router(site: LiveSite) -> Router {
    Router::new()
        .fallback(serve_site)
        .with_state(site)
        .layer(middleware::from_fn(log_request))
}

async fn serve_site(State(site): State<LiveSite>, request: Request) -> Response {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response = (
            StatusCode::METHOD_NOT_ALLOWED,
            "This site is read-only: use GET or HEAD.\n",
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let snapshot = site.snapshot();
    let uri = request.uri();
    let not_found = || {
        respond::resource(
            &snapshot.not_found,
            CachePolicy::Revalidate,
            request.headers(),
            StatusCode::NOT_FOUND,
        )
    };
    let Some(path) = path::normalize(uri.path()) else {
        return not_found();
    };
    match snapshot.route(&path) {
        Some(Route::Resource { resource, cache }) => {
            respond::resource(resource, *cache, request.headers(), StatusCode::OK)
        }
        Some(Route::Redirect(target)) => redirect(target, uri.query()),
        None if !path.ends_with('/') && snapshot.route(&format!("{path}/")).is_some() => {
            redirect(&format!("{}/", uri.path()), uri.query())
        }
        None => not_found(),
    }
}

/// A permanent redirect to a path on this site, keeping the query.
fn redirect(path: &str, query: Option<&str>) -> Response {
    let location = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}

/// One debug line per request; costs nothing when debug logging is off.
async fn log_request(request: Request, next: Next) -> Response {
    if !tracing::enabled!(target: "quire::request", tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::debug!(
        target: "quire::request",
        %method,
        path,
        status = response.status().as_u16(),
        bytes = response.body().size_hint().exact().unwrap_or(0),
        micros = started.elapsed().as_micros() as u64,
    );
    response
}
