//! The public routers. `router` serves the site from the live [`SiteSnapshot`]
//! (pages, redirects, the 404 page) with security headers and the canonical-host
//! redirect; `redirect_router` is the plain HTTP side: ACME challenges, and a
//! 301 to HTTPS for everything else. Neither cares which listener feeds it, and
//! neither touches the disk.

pub mod challenge;
pub mod client_ip;
pub mod kind;
pub mod measure;
pub mod path;
pub mod respond;
pub mod visits;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;

use crate::config::Config;
use crate::net::PeerAddr;
use crate::site::snapshot::CachePolicy;
use crate::site::{LiveSite, Route};
use crate::stats::Recorder;
pub use challenge::ChallengeMap;
use client_ip::ClientIp;

/// How the site presents itself: its canonical origin, the other names that
/// redirect to it, and which headers to send.
#[derive(Debug, Clone)]
pub struct SitePolicy {
    /// `https://blog.example.com` or `https://localhost:8443`, no trailing slash.
    pub origin: String,
    /// Host names (lowercase, no port) that redirect to the origin.
    pub redirect_hosts: HashSet<String>,
    pub hsts: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl SitePolicy {
    pub fn from_config(config: &Config, tls: bool) -> SitePolicy {
        SitePolicy {
            origin: config
                .site
                .base_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            redirect_hosts: config
                .domains
                .iter()
                .skip(1)
                .map(|d| d.as_str().to_string())
                .collect(),
            hsts: tls && config.tls.hsts,
            trusted_proxies: config.listen.trusted_proxies.clone(),
        }
    }
}

/// The policy in force; swapped whole when the configuration is reloaded.
pub type LivePolicy = Arc<arc_swap::ArcSwap<SitePolicy>>;

pub fn live_policy(policy: SitePolicy) -> LivePolicy {
    Arc::new(arc_swap::ArcSwap::from_pointee(policy))
}

/// The site's router; with a recorder, page views are counted.
pub fn router(site: LiveSite, policy: LivePolicy, recorder: Option<Recorder>) -> Router {
    let mut router = Router::new().fallback(serve_site).with_state(site);
    if let Some(recorder) = recorder {
        router = router.layer(middleware::from_fn_with_state(recorder, visits::record));
    }
    router
        .layer(middleware::from_fn_with_state(
            policy.clone(),
            canonical_host,
        ))
        .layer(middleware::from_fn(refuse_bodies))
        .layer(middleware::from_fn_with_state(
            policy.clone(),
            security_headers,
        ))
        .layer(middleware::from_fn_with_state(policy, log_request))
}

/// The plain HTTP router when the site itself is on HTTPS.
pub fn redirect_router(challenges: ChallengeMap, policy: LivePolicy) -> Router {
    Router::new()
        .fallback(move |request: Request| {
            let challenges = challenges.clone();
            let policy = policy.load_full();
            async move { http_side(request, &challenges, &policy) }
        })
        .layer(middleware::from_fn_with_state(
            live_policy(SitePolicy {
                origin: String::new(),
                redirect_hosts: HashSet::new(),
                hsts: false,
                trusted_proxies: Vec::new(),
            }),
            log_request,
        ))
}

fn http_side(request: Request, challenges: &ChallengeMap, policy: &SitePolicy) -> Response {
    let uri = request.uri();
    if let Some(token) = uri.path().strip_prefix("/.well-known/acme-challenge/") {
        return match challenges.get(token) {
            Some(key_authorization) => {
                let mut response = key_authorization.into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                response
            }
            None => (StatusCode::NOT_FOUND, "No such ACME challenge.\n").into_response(),
        };
    }
    redirect(&origin_target(&policy.origin, uri.path()), uri.query())
}

/// The same path on the canonical origin; a path no page can have goes to
/// the home page rather than being echoed back.
fn origin_target(origin: &str, raw_path: &str) -> String {
    let path = path::normalize(raw_path).map_or_else(|| "/".to_string(), |p| path::location(&p));
    format!("{origin}{path}")
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
            redirect(&format!("{}/", path::location(&path)), uri.query())
        }
        None => not_found(),
    }
}

/// A permanent redirect, keeping the query.
fn redirect(target: &str, query: Option<&str>) -> Response {
    let location = match query {
        Some(q) => format!("{target}?{q}"),
        None => target.to_string(),
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

/// The host a request was sent to: `:authority` for HTTP/2, `Host` otherwise.
fn request_host(request: &Request) -> Option<String> {
    let host = request.uri().host().map(str::to_string).or_else(|| {
        request
            .headers()
            .get(header::HOST)?
            .to_str()
            .ok()
            .map(str::to_string)
    })?;
    let host = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_string()
        }
        _ => host,
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Other configured names answer with a 301 to the canonical origin.
async fn canonical_host(
    State(policy): State<LivePolicy>,
    request: Request,
    next: Next,
) -> Response {
    let policy = policy.load();
    if policy.redirect_hosts.is_empty() {
        return next.run(request).await;
    }
    match request_host(&request) {
        Some(host) if policy.redirect_hosts.contains(&host) => {
            let target = origin_target(&policy.origin, request.uri().path());
            redirect(&target, request.uri().query())
        }
        _ => next.run(request).await,
    }
}

/// The site only reads: a request that carries a body is refused unread.
async fn refuse_bodies(request: Request, next: Next) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
        || request.body().size_hint().lower() > 0;
    if has_body {
        let mut response = (
            StatusCode::PAYLOAD_TOO_LARGE,
            "This site is read-only and takes no request bodies.\n",
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// A policy the default theme satisfies: no scripts, styles and fonts from the
/// site itself, images from anywhere over HTTPS (posts may embed them).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' https: data:; script-src 'none'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
const HSTS: &str = "max-age=31536000; includeSubDomains";

async fn security_headers(
    State(policy): State<LivePolicy>,
    request: Request,
    next: Next,
) -> Response {
    let hsts = policy.load().hsts;
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// One debug line per request; costs nothing when debug logging is off.
async fn log_request(
    State(policy): State<LivePolicy>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(PeerAddr(peer)) = request.extensions().get::<PeerAddr>().copied() {
        let trusted = &policy.load().trusted_proxies;
        let ip = client_ip::client_ip(peer.ip(), request.headers(), trusted);
        request.extensions_mut().insert(ClientIp(ip));
    }
    if !tracing::enabled!(target: "quire::request", tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let client = request
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    tracing::debug!(
        target: "quire::request",
        %method,
        path,
        client,
        status = response.status().as_u16(),
        bytes = response.body().size_hint().exact().unwrap_or(0),
        micros = started.elapsed().as_micros() as u64,
    );
    response
}
