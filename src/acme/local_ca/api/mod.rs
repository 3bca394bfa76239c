//! The ACME endpoints (RFC 8555 §7, RFC 9773 renewal information) over HTTP:
//! the routes, what every response carries (nonce, index link), reading and
//! authenticating a POST, and one handler per resource in `accounts`,
//! `issuance` and `certificates`, with the JSON each resource shows in `views`.

mod accounts;
mod certificates;
mod issuance;
mod views;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::LocalCa;
use super::jws::{Accounts, Authenticated, Expect, Jwk};
use super::orders::Status;
use super::problem::{Problem, ProblemType};
use crate::tls::listener::PeerAddr;

const MAX_BODY: usize = 64 * 1024;

struct Api {
    ca: Arc<LocalCa>,
    /// The base URL without a trailing slash; every resource URL starts with it.
    base: String,
}

pub fn router(ca: Arc<LocalCa>, base: &url::Url) -> Router {
    let api = Arc::new(Api {
        ca,
        base: base.as_str().trim_end_matches('/').to_owned(),
    });
    let routes = Router::new()
        .route("/directory", only_get(get(directory)))
        .route("/acme/new-nonce", only_get(get(new_nonce)))
        .route("/acme/new-account", only_post(post(accounts::new_account)))
        .route("/acme/new-order", only_post(post(issuance::new_order)))
        .route(
            "/acme/revoke-cert",
            only_post(post(certificates::revoke_cert)),
        )
        .route("/acme/key-change", only_post(post(accounts::key_change)))
        .route("/acme/acct/{id}", only_post(post(accounts::account)))
        .route(
            "/acme/acct/{id}/orders",
            only_post(post(accounts::account_orders)),
        )
        .route("/acme/order/{id}", only_post(post(issuance::order)))
        .route(
            "/acme/order/{id}/finalize",
            only_post(post(issuance::finalize)),
        )
        .route("/acme/authz/{id}", only_post(post(issuance::authorization)))
        .route(
            "/acme/chall/{authz}/{kind}",
            only_post(post(issuance::challenge)),
        )
        .route(
            "/acme/cert/{id}",
            only_post(post(certificates::certificate)),
        )
        .route(
            "/acme/renewal-info/{id}",
            only_get(get(certificates::renewal_info)),
        )
        .fallback(|| async { Problem::not_found("resource") })
        .layer(middleware::from_fn_with_state(api.clone(), stamp))
        .with_state(api);
    match base.path().trim_end_matches('/') {
        "" => routes,
        prefix => Router::new().nest(prefix, routes),
    }
}

fn only_get(route: MethodRouter<Arc<Api>>) -> MethodRouter<Arc<Api>> {
    route.fallback(|| async {
        Problem::malformed("this resource only answers GET")
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
    })
}

fn only_post(route: MethodRouter<Arc<Api>>) -> MethodRouter<Arc<Api>> {
    route.fallback(|| async {
        Problem::malformed("this resource only answers POST (use POST-as-GET to read it)")
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
    })
}

/// The address a request came from, for per-client budgets; requests that did not
/// come through a listener (tests, in-process calls) share one budget.
struct Client(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client, Infallible> {
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        Ok(Client(peer.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))))
    }
}

/// Every response carries a fresh nonce and points at the directory (RFC 8555 §6.5, §7.1).
async fn stamp(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let now = now(&api);
    let nonce = {
        let mut state = api.ca.lock();
        state.sweep(now);
        state.new_nonce(now)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&nonce) {
        headers.insert("replay-nonce", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("<{}>;rel=\"index\"", api.url("directory"))) {
        headers.append(header::LINK, value);
    }
    response
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn json_response(status: StatusCode, body: &Value, location: Option<&str>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(header::LOCATION, value);
    }
    response
}

fn with_link(mut response: Response, url: &str, rel: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("<{url}>;rel=\"{rel}\"")) {
        response.headers_mut().append(header::LINK, value);
    }
    response
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !content_type.is_some_and(|t| t.eq_ignore_ascii_case("application/jose+json")) {
        return Err(
            Problem::malformed("Content-Type must be application/jose+json")
                .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    }
    let too_large = || {
        Problem::malformed("request body is larger than 64 KiB")
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())
}

/// Reads and authenticates a POST, then runs the synchronous handler on it.
async fn posted(
    api: &Api,
    headers: &HeaderMap,
    body: Body,
    path: &str,
    expect: Expect,
    handle: impl FnOnce(&Api, Authenticated) -> Result<Response, Problem>,
) -> Response {
    let result = match read_body(headers, body).await {
        Ok(bytes) => Authenticated::new(&bytes, &api.url(path), expect, api)
            .and_then(|request| handle(api, request)),
        Err(problem) => Err(problem),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn now(api: &Api) -> DateTime<Utc> {
    api.ca.settings.clock.now()
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Accounts for Api {
    fn take_nonce(&self, nonce: &str) -> bool {
        self.ca.lock().take_nonce(nonce, now(self))
    }

    fn account(&self, kid: &str) -> Result<(String, Jwk), Problem> {
        let no_account = || {
            Problem::new(
                ProblemType::AccountDoesNotExist,
                format!("no account at {kid:?}"),
            )
        };
        let id = kid
            .strip_prefix(&self.url("acme/acct/"))
            .ok_or_else(no_account)?;
        let now = now(self);
        let mut state = self.ca.lock();
        let account = state.accounts.get_mut(id).ok_or_else(no_account)?;
        if account.status != Status::Valid {
            return Err(Problem::unauthorized(format!(
                "account {kid} is deactivated"
            )));
        }
        account.last_used = now;
        Ok((id.to_owned(), account.key.clone()))
    }
}

async fn directory(State(api): State<Arc<Api>>) -> Response {
    let body = json!({
        "newNonce": api.url("acme/new-nonce"),
        "newAccount": api.url("acme/new-account"),
        "newOrder": api.url("acme/new-order"),
        "revokeCert": api.url("acme/revoke-cert"),
        "keyChange": api.url("acme/key-change"),
        "renewalInfo": api.url("acme/renewal-info"),
        "meta": {"externalAccountRequired": false},
    });
    json_response(StatusCode::OK, &body, None)
}

async fn new_nonce(method: Method) -> Response {
    // RFC 8555 §7.2: HEAD answers 200, GET 204; the nonce itself comes from `stamp`.
    let status = if method == Method::HEAD {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    (status, [(header::CACHE_CONTROL, "no-store")]).into_response()
}
