//! What every ACME endpoint shares: the API's state, the client's address,
//! reading and authenticating a POST (through `jws`), the nonce and index link
//! every response carries, and JSON responses.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::super::LocalCa;
use super::super::jws::{Accounts, Authenticated, Expect, Jwk};
use super::super::orders::Status;
use super::super::problem::{Problem, ProblemType};
use crate::net::PeerAddr;

const MAX_BODY: usize = 64 * 1024;

pub struct Api {
    pub ca: Arc<LocalCa>,
    /// The base URL without a trailing slash; every resource URL starts with it.
    pub base: String,
}

/// The address a request came from, for per-client budgets; requests that did not
/// come through a listener (tests, in-process calls) share one budget.
pub struct Client(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client, Infallible> {
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        Ok(Client(peer.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))))
    }
}

/// Every response carries a fresh nonce and points at the directory (RFC 8555 §6.5, §7.1).
pub async fn stamp(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
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

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn json_response(status: StatusCode, body: &Value, location: Option<&str>) -> Response {
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

pub fn with_link(mut response: Response, url: &str, rel: &str) -> Response {
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
pub async fn posted(
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

pub fn now(api: &Api) -> DateTime<Utc> {
    api.ca.settings.clock.now()
}

impl Api {
    pub fn url(&self, path: &str) -> String {
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
