//! The ACME endpoints (RFC 8555 §7, RFC 9773 renewal information): request
//! authentication, one handler per resource, and the JSON each resource shows.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rcgen::SignatureAlgorithm;
use serde_json::{Map, Value, json};
use x509_parser::prelude::*;

use super::LocalCa;
use super::authority::LeafKey;
use super::jws::{Jwk, Jws, KeyRef, unb64};
use super::problem::{Problem, ProblemType};
use super::state::{
    Account, Authorization, Challenge, ChallengeKind, IssuedCert, ORDER_LIFETIME_SECS, Order,
    Status, random_id,
};
use super::validate;
use crate::names::DnsName;
use crate::net::PeerAddr;

const MAX_BODY: usize = 64 * 1024;
const MAX_IDENTIFIERS: usize = 100;
/// Contacts per account and characters per contact: enough for real addresses,
/// too few to make each account hold a 64 KiB body.
const MAX_CONTACTS: usize = 4;
const MAX_CONTACT_LEN: usize = 320;
const MAX_PENDING_ORDERS: usize = 300;
/// RFC 9773: how long clients should wait before asking again.
const ARI_RETRY_AFTER_SECS: &str = "21600";

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
        .route("/acme/new-account", only_post(post(new_account)))
        .route("/acme/new-order", only_post(post(new_order)))
        .route("/acme/revoke-cert", only_post(post(revoke_cert)))
        .route("/acme/key-change", only_post(post(key_change)))
        .route("/acme/acct/{id}", only_post(post(account)))
        .route("/acme/acct/{id}/orders", only_post(post(account_orders)))
        .route("/acme/order/{id}", only_post(post(order)))
        .route("/acme/order/{id}/finalize", only_post(post(finalize)))
        .route("/acme/authz/{id}", only_post(post(authorization)))
        .route("/acme/chall/{authz}/{kind}", only_post(post(challenge)))
        .route("/acme/cert/{id}", only_post(post(certificate)))
        .route("/acme/renewal-info/{id}", only_get(get(renewal_info)))
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

/// Who signed a request: an existing account, or a bare key (new account, revocation by key).
enum Signer {
    Account { id: String, key: Jwk },
    Key(Jwk),
}

impl Signer {
    fn key(&self) -> &Jwk {
        match self {
            Signer::Account { key, .. } | Signer::Key(key) => key,
        }
    }

    fn account(&self) -> Result<&str, Problem> {
        match self {
            Signer::Account { id, .. } => Ok(id),
            Signer::Key(_) => Err(Problem::malformed(
                "this request must be signed with \"kid\"",
            )),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Kid,
    Jwk,
    Either,
}

struct Authenticated {
    payload: Vec<u8>,
    signer: Signer,
}

impl Authenticated {
    fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }

    fn object(&self) -> Result<Map<String, Value>, Problem> {
        match serde_json::from_slice(&self.payload) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(_) => Err(Problem::malformed("payload is not a JSON object")),
            Err(e) => Err(Problem::malformed(format!("payload is not JSON: {e}"))),
        }
    }

    fn post_as_get(&self) -> Result<(), Problem> {
        if self.is_post_as_get() {
            Ok(())
        } else {
            Err(Problem::malformed(
                "this resource is read by POST-as-GET: send an empty payload",
            ))
        }
    }
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
        Ok(bytes) => api
            .authenticate(&bytes, path, expect)
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

    /// RFC 8555 §6.2-6.4: nonce, url, key selection, then the signature.
    fn authenticate(
        &self,
        body: &[u8],
        path: &str,
        expect: Expect,
    ) -> Result<Authenticated, Problem> {
        let jws = Jws::parse(body)?;
        let bad_nonce = |detail: &str| Problem::new(ProblemType::BadNonce, detail);
        let nonce = jws
            .header
            .nonce
            .as_deref()
            .ok_or_else(|| bad_nonce("protected header lacks \"nonce\""))?;
        let now = self.ca.settings.clock.now();
        if !self.ca.lock().take_nonce(nonce, now) {
            return Err(bad_nonce(
                "nonce was not issued by this server or was already used; get a fresh one",
            ));
        }
        let url = self.url(path);
        if jws.header.url != url {
            return Err(Problem::unauthorized(format!(
                "\"url\" header is {:?} but the request was sent to {url:?}",
                jws.header.url
            )));
        }
        let signer = match (&jws.header.key, expect) {
            (KeyRef::Kid(kid), Expect::Kid | Expect::Either) => {
                let no_account = || {
                    Problem::new(
                        ProblemType::AccountDoesNotExist,
                        format!("no account at {kid:?}"),
                    )
                };
                let id = kid
                    .strip_prefix(&self.url("acme/acct/"))
                    .ok_or_else(no_account)?;
                let mut state = self.ca.lock();
                let account = state.accounts.get_mut(id).ok_or_else(no_account)?;
                if account.status != Status::Valid {
                    return Err(Problem::unauthorized(format!(
                        "account {kid} is deactivated"
                    )));
                }
                account.last_used = now;
                Signer::Account {
                    id: id.to_owned(),
                    key: account.key.clone(),
                }
            }
            (KeyRef::Jwk(jwk), Expect::Jwk | Expect::Either) => Signer::Key(jwk.clone()),
            (KeyRef::Kid(_), _) => {
                return Err(Problem::malformed(
                    "this request must be signed with \"jwk\", not \"kid\"",
                ));
            }
            (KeyRef::Jwk(_), _) => {
                return Err(Problem::malformed(
                    "this request must be signed with \"kid\" (the account URL), not \"jwk\"",
                ));
            }
        };
        jws.verify(signer.key())?;
        Ok(Authenticated {
            payload: jws.payload,
            signer,
        })
    }

    fn account_json(&self, id: &str, account: &Account) -> Value {
        json!({
            "status": account.status,
            "contact": account.contact,
            "termsOfServiceAgreed": account.terms_agreed,
            "orders": self.url(&format!("acme/acct/{id}/orders")),
        })
    }

    fn order_json(&self, id: &str, order: &Order) -> Value {
        let mut value = json!({
            "status": order.status,
            "expires": rfc3339(order.expires),
            "identifiers": order.identifiers.iter()
                .map(|name| json!({"type": "dns", "value": name}))
                .collect::<Vec<_>>(),
            "authorizations": order.authorizations.iter()
                .map(|a| self.url(&format!("acme/authz/{a}")))
                .collect::<Vec<_>>(),
            "finalize": self.url(&format!("acme/order/{id}/finalize")),
        });
        if let Some(cert) = &order.certificate {
            value["certificate"] = json!(self.url(&format!("acme/cert/{cert}")));
        }
        if let Some(error) = &order.error {
            value["error"] = json!(error.document());
        }
        value
    }

    fn challenge_json(&self, authz_id: &str, challenge: &Challenge) -> Value {
        let mut value = json!({
            "type": challenge.kind.name(),
            "url": self.challenge_url(authz_id, challenge.kind),
            "token": challenge.token,
            "status": challenge.status,
        });
        if let Some(validated) = challenge.validated {
            value["validated"] = json!(rfc3339(validated));
        }
        if let Some(error) = &challenge.error {
            value["error"] = json!(error.document());
        }
        value
    }

    fn challenge_url(&self, authz_id: &str, kind: ChallengeKind) -> String {
        self.url(&format!("acme/chall/{authz_id}/{}", kind.name()))
    }

    fn authorization_json(&self, id: &str, authz: &Authorization) -> Value {
        json!({
            "status": authz.status,
            "expires": rfc3339(authz.expires),
            "identifier": {"type": "dns", "value": authz.identifier},
            "challenges": authz.challenges.iter()
                .map(|c| self.challenge_json(id, c))
                .collect::<Vec<_>>(),
        })
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

/// RFC 8555 §7.3: contacts must be mailto: URLs with one plain address each.
fn check_contacts(value: Option<&Value>) -> Result<Vec<String>, Problem> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .ok_or_else(|| Problem::malformed("\"contact\" must be an array of URLs"))?;
    if list.len() > MAX_CONTACTS {
        return Err(Problem::new(
            ProblemType::InvalidContact,
            format!("an account has at most {MAX_CONTACTS} contacts"),
        ));
    }
    list.iter()
        .map(|contact| {
            let contact = contact
                .as_str()
                .ok_or_else(|| Problem::malformed("each contact must be a string"))?;
            if contact.len() > MAX_CONTACT_LEN {
                return Err(Problem::new(
                    ProblemType::InvalidContact,
                    format!("a contact has at most {MAX_CONTACT_LEN} characters"),
                ));
            }
            let address = contact.strip_prefix("mailto:").ok_or_else(|| {
                Problem::new(
                    ProblemType::UnsupportedContact,
                    format!("contact {contact:?} is not a mailto: URL; only email contacts are supported"),
                )
            })?;
            let plain = address.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            }) && !address.contains([',', '?', ' ']);
            if !plain {
                return Err(Problem::new(
                    ProblemType::InvalidContact,
                    format!("contact {contact:?} is not a single plain email address"),
                ));
            }
            Ok(contact.to_owned())
        })
        .collect()
}

async fn new_account(
    State(api): State<Arc<Api>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Response {
    posted(
        &api,
        &headers,
        body,
        "acme/new-account",
        Expect::Jwk,
        |api, request| {
            let payload = request.object()?;
            let key = request.signer.key().clone();
            let now = now(api);
            let mut state = api.ca.lock();
            if let Some(id) = state.account_by_key.get(key.thumbprint()).cloned() {
                let location = api.url(&format!("acme/acct/{id}"));
                let body = state
                    .accounts
                    .get(&id)
                    .map(|account| api.account_json(&id, account))
                    .unwrap_or_default();
                return Ok(json_response(StatusCode::OK, &body, Some(&location)));
            }
            if payload.get("onlyReturnExisting").and_then(Value::as_bool) == Some(true) {
                return Err(Problem::new(
                    ProblemType::AccountDoesNotExist,
                    "no account has this key",
                ));
            }
            let contact = check_contacts(payload.get("contact"))?;
            state.spend(client, 1, now)?;
            state.admit_account(now)?;
            let account = Account {
                key: key.clone(),
                status: Status::Valid,
                contact,
                terms_agreed: payload
                    .get("termsOfServiceAgreed")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                orders: Vec::new(),
                last_used: now,
            };
            let id = random_id(16);
            let body = api.account_json(&id, &account);
            state
                .account_by_key
                .insert(key.thumbprint().to_owned(), id.clone());
            state.accounts.insert(id.clone(), account);
            let location = api.url(&format!("acme/acct/{id}"));
            Ok(json_response(StatusCode::CREATED, &body, Some(&location)))
        },
    )
    .await
}

async fn account(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/acct/{id}");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        if request.signer.account()? != id {
            return Err(Problem::unauthorized(
                "the request is signed by another account",
            ));
        }
        let mut state = api.ca.lock();
        let account = state
            .accounts
            .get_mut(&id)
            .ok_or_else(|| Problem::not_found("account"))?;
        if !request.is_post_as_get() {
            let payload = request.object()?;
            if payload.contains_key("contact") {
                account.contact = check_contacts(payload.get("contact"))?;
            }
            match payload.get("status").and_then(Value::as_str) {
                None => {}
                Some("deactivated") => account.status = Status::Deactivated,
                Some(other) => {
                    return Err(Problem::malformed(format!(
                        "an account's status can only be set to \"deactivated\", not {other:?}"
                    )));
                }
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &api.account_json(&id, account),
            None,
        ))
    })
    .await
}

async fn account_orders(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/acct/{id}/orders");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        request.post_as_get()?;
        if request.signer.account()? != id {
            return Err(Problem::unauthorized(
                "the request is signed by another account",
            ));
        }
        let state = api.ca.lock();
        let account = state
            .accounts
            .get(&id)
            .ok_or_else(|| Problem::not_found("account"))?;
        let orders: Vec<String> = account
            .orders
            .iter()
            .map(|o| api.url(&format!("acme/order/{o}")))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "orders": orders }),
            None,
        ))
    })
    .await
}

async fn key_change(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> Response {
    posted(
        &api,
        &headers,
        body,
        "acme/key-change",
        Expect::Kid,
        |api, request| {
            let account_id = request.signer.account()?;
            let inner = Jws::parse(&request.payload)?;
            let KeyRef::Jwk(new_key) = &inner.header.key else {
                return Err(Problem::malformed(
                    "the inner JWS must carry the new key as \"jwk\"",
                ));
            };
            inner.verify(new_key)?;
            let outer_url = api.url("acme/key-change");
            if inner.header.url != outer_url {
                return Err(Problem::malformed(
                    "the inner JWS must have the same \"url\" as the outer one",
                ));
            }
            let change: Value = serde_json::from_slice(&inner.payload)
                .map_err(|_| Problem::malformed("the inner payload is not JSON"))?;
            let account_url = api.url(&format!("acme/acct/{account_id}"));
            if change.get("account").and_then(Value::as_str) != Some(account_url.as_str()) {
                return Err(Problem::unauthorized(
                    "\"account\" of the key change is not the account signing the request",
                ));
            }
            let old_key = Jwk::from_json(
                change
                    .get("oldKey")
                    .ok_or_else(|| Problem::malformed("the key change lacks \"oldKey\""))?,
            )?;
            if old_key.thumbprint() != request.signer.key().thumbprint() {
                return Err(Problem::unauthorized(
                    "\"oldKey\" is not the account's current key",
                ));
            }
            let mut state = api.ca.lock();
            if let Some(other) = state.account_by_key.get(new_key.thumbprint()) {
                let location = api.url(&format!("acme/acct/{other}"));
                let mut response = Problem::malformed("the new key already belongs to an account")
                    .with_status(StatusCode::CONFLICT)
                    .into_response();
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                return Ok(response);
            }
            state.account_by_key.remove(old_key.thumbprint());
            state
                .account_by_key
                .insert(new_key.thumbprint().to_owned(), account_id.to_owned());
            let account = state
                .accounts
                .get_mut(account_id)
                .ok_or_else(|| Problem::not_found("account"))?;
            account.key = new_key.clone();
            Ok(json_response(
                StatusCode::OK,
                &api.account_json(account_id, account),
                None,
            ))
        },
    )
    .await
}

/// A name this CA will certify, by the rules the config checks its domains with.
fn check_name(name: &str) -> Result<String, Problem> {
    DnsName::parse(name)
        .map(DnsName::into_string)
        .map_err(|why| {
            Problem::new(
                ProblemType::RejectedIdentifier,
                format!("cannot certify {name:?}: {why}"),
            )
        })
}

fn identifiers(payload: &Map<String, Value>) -> Result<Vec<String>, Problem> {
    let list = payload
        .get("identifiers")
        .and_then(Value::as_array)
        .ok_or_else(|| Problem::malformed("the order lacks an \"identifiers\" array"))?;
    if list.is_empty() || list.len() > MAX_IDENTIFIERS {
        return Err(Problem::malformed(format!(
            "an order needs 1 to {MAX_IDENTIFIERS} identifiers"
        )));
    }
    let mut names = Vec::new();
    for identifier in list {
        let kind = identifier.get("type").and_then(Value::as_str);
        let value = identifier.get("value").and_then(Value::as_str);
        match (kind, value) {
            (Some("dns"), Some(value)) => names.push(check_name(value)?),
            (Some(other), Some(_)) => {
                return Err(Problem::new(
                    ProblemType::UnsupportedIdentifier,
                    format!("identifier type {other:?} is not supported; use \"dns\""),
                ));
            }
            _ => {
                return Err(Problem::malformed(
                    "each identifier needs string \"type\" and \"value\"",
                ));
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

async fn new_order(
    State(api): State<Arc<Api>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Response {
    posted(
        &api,
        &headers,
        body,
        "acme/new-order",
        Expect::Kid,
        |api, request| {
            let account_id = request.signer.account()?.to_owned();
            let payload = request.object()?;
            if payload.contains_key("notBefore") || payload.contains_key("notAfter") {
                return Err(Problem::malformed(
                    "notBefore and notAfter are not supported; leave them out",
                ));
            }
            let names = identifiers(&payload)?;
            if let Some(outside) = names.iter().find(|n| !api.ca.authority.permits(n)) {
                return Err(Problem::new(
                    ProblemType::RejectedIdentifier,
                    format!(
                        "the local CA's root is constrained to {} and cannot certify {outside:?}; add the name to [domains] names (for `quire local-ca`, pass --domain {outside}) and restart to make a root that covers it",
                        api.ca.authority.permitted().join(", ")
                    ),
                ));
            }
            let now = now(api);
            let expires = now + Duration::seconds(ORDER_LIFETIME_SECS);
            let mut state = api.ca.lock();
            state.spend(client, 1 + names.len(), now)?;
            state.admit_order(names.len(), now)?;
            let pending = state
                .orders
                .values()
                .filter(|o| o.account == account_id && o.status == Status::Pending)
                .count();
            if pending >= MAX_PENDING_ORDERS {
                return Err(Problem::new(
                    ProblemType::RateLimited,
                    format!("the account has {pending} pending orders; finish or let some expire"),
                ));
            }
            let mut authorizations = Vec::new();
            for name in &names {
                let id = random_id(16);
                let challenge = |kind| Challenge {
                    kind,
                    token: random_id(32),
                    status: Status::Pending,
                    validated: None,
                    error: None,
                };
                state.authorizations.insert(
                    id.clone(),
                    Authorization {
                        account: account_id.clone(),
                        identifier: name.clone(),
                        status: Status::Pending,
                        expires,
                        challenges: vec![
                            challenge(ChallengeKind::Http01),
                            challenge(ChallengeKind::TlsAlpn01),
                        ],
                    },
                );
                authorizations.push(id);
            }
            let id = random_id(16);
            let order = Order {
                account: account_id.clone(),
                status: Status::Pending,
                expires,
                identifiers: names,
                authorizations,
                error: None,
                certificate: None,
            };
            let body = api.order_json(&id, &order);
            state.orders.insert(id.clone(), order);
            if let Some(account) = state.accounts.get_mut(&account_id) {
                account.orders.push(id.clone());
            }
            let location = api.url(&format!("acme/order/{id}"));
            Ok(json_response(StatusCode::CREATED, &body, Some(&location)))
        },
    )
    .await
}

fn owned_by(owner: &str, signer: &Signer) -> Result<(), Problem> {
    if signer.account()? == owner {
        Ok(())
    } else {
        Err(Problem::unauthorized(
            "the resource belongs to another account",
        ))
    }
}

async fn order(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/order/{id}");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        request.post_as_get()?;
        let mut state = api.ca.lock();
        state.expire_order(&id, now(api));
        let order = state
            .orders
            .get(&id)
            .ok_or_else(|| Problem::not_found("order"))?;
        owned_by(&order.account, &request.signer)?;
        Ok(json_response(
            StatusCode::OK,
            &api.order_json(&id, order),
            None,
        ))
    })
    .await
}

async fn authorization(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/authz/{id}");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        let mut state = api.ca.lock();
        state.expire_authorization(&id, now(api));
        let authz = state
            .authorizations
            .get(&id)
            .ok_or_else(|| Problem::not_found("authorization"))?;
        owned_by(&authz.account, &request.signer)?;
        if !request.is_post_as_get() {
            match request.object()?.get("status").and_then(Value::as_str) {
                Some("deactivated") => state.deactivate_authorization(&id),
                _ => {
                    return Err(Problem::malformed(
                        "an authorization can only be updated with {\"status\": \"deactivated\"}",
                    ));
                }
            }
        }
        let authz = state
            .authorizations
            .get(&id)
            .ok_or_else(|| Problem::not_found("authorization"))?;
        Ok(json_response(
            StatusCode::OK,
            &api.authorization_json(&id, authz),
            None,
        ))
    })
    .await
}

async fn challenge(
    State(api): State<Arc<Api>>,
    Path((authz_id, kind_name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/chall/{authz_id}/{kind_name}");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        let kind =
            ChallengeKind::from_name(&kind_name).ok_or_else(|| Problem::not_found("challenge"))?;
        let now = now(api);
        let mut state = api.ca.lock();
        state.expire_authorization(&authz_id, now);
        let authz = state
            .authorizations
            .get_mut(&authz_id)
            .ok_or_else(|| Problem::not_found("authorization"))?;
        owned_by(&authz.account, &request.signer)?;
        if !request.is_post_as_get() {
            request.object()?;
            let idle = authz.status == Status::Pending
                && authz.challenges.iter().all(|c| c.status == Status::Pending);
            if idle {
                let identifier = authz.identifier.clone();
                let challenge = authz
                    .challenges
                    .iter_mut()
                    .find(|c| c.kind == kind)
                    .ok_or_else(|| Problem::not_found("challenge"))?;
                challenge.status = Status::Processing;
                let token = challenge.token.clone();
                let key_authorization = format!("{token}.{}", request.signer.key().thumbprint());
                let ca = api.ca.clone();
                let target = ca.settings.validation;
                let authz_id = authz_id.clone();
                tokio::spawn(async move {
                    let outcome = match kind {
                        ChallengeKind::Http01 => {
                            validate::http01(target.http, &identifier, &token, &key_authorization)
                                .await
                        }
                        ChallengeKind::TlsAlpn01 => {
                            validate::tls_alpn01(target.tls, &identifier, &key_authorization).await
                        }
                    };
                    if let Err(problem) = &outcome {
                        tracing::info!(
                            "local CA: {} for {identifier} failed: {problem}",
                            kind.name()
                        );
                    }
                    let now = ca.settings.clock.now();
                    ca.lock().finish_validation(&authz_id, kind, outcome, now);
                });
            }
        }
        let challenge = authz
            .challenges
            .iter()
            .find(|c| c.kind == kind)
            .ok_or_else(|| Problem::not_found("challenge"))?;
        let response = json_response(
            StatusCode::OK,
            &api.challenge_json(&authz_id, challenge),
            None,
        );
        Ok(with_link(
            response,
            &api.url(&format!("acme/authz/{authz_id}")),
            "up",
        ))
    })
    .await
}

/// Checks a CSR against an order (RFC 8555 §7.4): signature, key, and exactly the order's names.
fn check_csr(
    der: &[u8],
    identifiers: &[String],
    account_key: &Jwk,
) -> Result<(LeafKey, Jwk), Problem> {
    let bad = |detail: String| Problem::new(ProblemType::BadCsr, detail);
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| bad(format!("the CSR cannot be parsed: {e}")))?;
    csr.verify_signature()
        .map_err(|_| bad("the CSR's signature does not verify".into()))?;
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let bad_key = |detail: &str| Problem::new(ProblemType::BadPublicKey, detail);
    let jwk = Jwk::from_spki(spki).ok_or_else(|| {
        bad_key("the CSR's key must be ECDSA P-256, P-384 or RSA of at least 2048 bits")
    })?;
    let alg: &'static SignatureAlgorithm = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let bits = rsa.modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err(bad_key("RSA keys must have 2048 to 8192 bits"));
            }
            &rcgen::PKCS_RSA_SHA256
        }
        Ok(x509_parser::public_key::PublicKey::EC(point)) if point.data().len() == 65 => {
            &rcgen::PKCS_ECDSA_P256_SHA256
        }
        Ok(x509_parser::public_key::PublicKey::EC(_)) => &rcgen::PKCS_ECDSA_P384_SHA384,
        _ => return Err(bad_key("unsupported key type")),
    };
    if jwk.thumbprint() == account_key.thumbprint() {
        return Err(bad("the CSR must not use the account key".into()));
    }

    let mut names: Vec<String> = Vec::new();
    for attribute in info.subject.iter_common_name() {
        let cn = attribute
            .as_str()
            .map_err(|_| bad("the CSR's common name is not a string".into()))?;
        names.push(cn.to_ascii_lowercase());
    }
    for extension in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                    other => {
                        return Err(bad(format!(
                            "the CSR names {other}; only the order's DNS names are allowed"
                        )));
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    let extra: Vec<&str> = names
        .iter()
        .filter(|n| !identifiers.contains(n))
        .map(String::as_str)
        .collect();
    let missing: Vec<&str> = identifiers
        .iter()
        .filter(|n| !names.contains(n))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() || !missing.is_empty() {
        return Err(bad(format!(
            "the CSR must name exactly the order's identifiers; extra: [{}], missing: [{}]",
            extra.join(", "),
            missing.join(", ")
        )));
    }
    let key = LeafKey {
        raw: spki.subject_public_key.data.to_vec(),
        alg,
    };
    Ok((key, jwk))
}

async fn finalize(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/order/{id}/finalize");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        let account_id = request.signer.account()?.to_owned();
        let payload = request.object()?;
        let now = now(api);
        let mut state = api.ca.lock();
        state.expire_order(&id, now);
        state.admit_cert(now)?;
        let order = state
            .orders
            .get(&id)
            .ok_or_else(|| Problem::not_found("order"))?;
        owned_by(&order.account, &request.signer)?;
        if order.status != Status::Ready {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                format!(
                    "the order is {}, not ready; every authorization must be valid first",
                    json!(order.status).as_str().unwrap_or("not ready")
                ),
            ));
        }
        let csr = payload
            .get("csr")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::malformed("the payload lacks the string \"csr\""))?;
        let csr = unb64("csr", csr).map_err(|p| Problem::new(ProblemType::BadCsr, p.detail))?;
        let (key, key_jwk) = check_csr(&csr, &order.identifiers, request.signer.key())?;

        let lifetime = Duration::from_std(api.ca.settings.leaf_lifetime)
            .map_err(|_| Problem::new(ProblemType::ServerInternal, "leaf lifetime too long"))?;
        let not_before = now - Duration::minutes(1);
        // A leaf outliving its intermediate would not verify at its end.
        let not_after = (not_before + lifetime).min(api.ca.authority.intermediate_not_after());
        let internal = |e: String| Problem::new(ProblemType::ServerInternal, e);
        let leaf = api
            .ca
            .authority
            .issue(&key, &order.identifiers, not_before, not_after)
            .map_err(|e| internal(format!("cannot sign the certificate: {e}")))?;
        let (_, parsed) = X509Certificate::from_der(&leaf)
            .map_err(|e| internal(format!("issued an unparsable certificate: {e}")))?;
        let authority_key_id = match parsed
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        {
            Ok(Some(ext)) => match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => aki
                    .key_identifier
                    .as_ref()
                    .map(|k| k.0.to_vec())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let chain_pem = format!(
            "{}{}",
            pem_certificate(&leaf),
            api.ca.authority.intermediate_pem()
        );
        let cert_id = random_id(16);
        let cert = IssuedCert {
            account: account_id,
            key_thumbprint: key_jwk.thumbprint().to_owned(),
            serial: parsed.raw_serial().to_vec(),
            authority_key_id,
            der: leaf.to_vec(),
            chain_pem,
            not_before,
            not_after,
            revoked: false,
        };
        state.certs.insert(cert_id.clone(), cert);
        let order = state
            .orders
            .get_mut(&id)
            .ok_or_else(|| Problem::not_found("order"))?;
        order.status = Status::Valid;
        order.certificate = Some(cert_id);
        let location = api.url(&format!("acme/order/{id}"));
        Ok(json_response(
            StatusCode::OK,
            &api.order_json(&id, order),
            Some(&location),
        ))
    })
    .await
}

fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

async fn certificate(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/cert/{id}");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        request.post_as_get()?;
        let state = api.ca.lock();
        let cert = state
            .certs
            .get(&id)
            .ok_or_else(|| Problem::not_found("certificate"))?;
        owned_by(&cert.account, &request.signer)?;
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
            cert.chain_pem.clone(),
        )
            .into_response())
    })
    .await
}

/// RFC 5280 reason codes a subscriber may give; 7 is unassigned.
fn check_reason(value: Option<&Value>) -> Result<(), Problem> {
    match value {
        None => Ok(()),
        Some(reason) => match reason.as_u64() {
            Some(code) if code <= 10 && code != 7 => Ok(()),
            _ => Err(Problem::new(
                ProblemType::BadRevocationReason,
                format!("revocation reason {reason} is not an RFC 5280 reason code (0-10, not 7)"),
            )),
        },
    }
}

async fn revoke_cert(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> Response {
    posted(
        &api,
        &headers,
        body,
        "acme/revoke-cert",
        Expect::Either,
        |api, request| {
            let payload = request.object()?;
            let der = payload
                .get("certificate")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Problem::malformed("the payload lacks the string \"certificate\"")
                })?;
            let der = unb64("certificate", der)?;
            check_reason(payload.get("reason"))?;
            let mut state = api.ca.lock();
            let cert = state
                .certs
                .values_mut()
                .find(|c| c.der == der)
                .ok_or_else(|| {
                    Problem::malformed("the certificate was not issued by this CA (or has expired)")
                        .with_status(StatusCode::NOT_FOUND)
                })?;
            let allowed = match &request.signer {
                Signer::Account { id, .. } => *id == cert.account,
                Signer::Key(key) => key.thumbprint() == cert.key_thumbprint,
            };
            if !allowed {
                return Err(Problem::unauthorized(
                    "only the account that ordered the certificate, or its key, may revoke it",
                ));
            }
            if cert.revoked {
                return Err(Problem::new(
                    ProblemType::AlreadyRevoked,
                    "the certificate is already revoked",
                ));
            }
            cert.revoked = true;
            Ok(StatusCode::OK.into_response())
        },
    )
    .await
}

/// RFC 9773: the window starts at 2/3 of the lifetime and ends at 3/4; a revoked
/// certificate, or one issued under an intermediate this CA no longer uses (its
/// root may have been replaced, so clients trusting the new root.pem reject it),
/// gets a window in the past, asking for renewal now. Any other ID is unknown:
/// a window for it would claim a certificate this CA never issued.
async fn renewal_info(State(api): State<Arc<Api>>, Path(cert_id): Path<String>) -> Response {
    let found = (|| {
        let (aki, serial) = cert_id.split_once('.').ok_or_else(|| {
            Problem::malformed("the CertID must be keyIdentifier.serial in base64url")
        })?;
        let (aki, serial) = (unb64("keyIdentifier", aki)?, unb64("serial", serial)?);
        let state = api.ca.lock();
        let cert = state
            .certs
            .values()
            .find(|c| c.serial == serial && c.authority_key_id == aki);
        let now = now(&api);
        let (start, end) = match cert {
            Some(cert) if !cert.revoked => {
                let lifetime = cert.not_after - cert.not_before;
                (
                    cert.not_before + lifetime * 2 / 3,
                    cert.not_before + lifetime * 3 / 4,
                )
            }
            Some(_) => (now - Duration::hours(2), now - Duration::hours(1)),
            None if api.ca.authority.retired(&aki) => {
                (now - Duration::hours(2), now - Duration::hours(1))
            }
            None => return Err(Problem::not_found("certificate")),
        };
        Ok::<_, Problem>(json!({
            "suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)},
        }))
    })();
    match found {
        Ok(body) => {
            let mut response = json_response(StatusCode::OK, &body, None);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(ARI_RETRY_AFTER_SECS),
            );
            response
        }
        Err(problem) => problem.into_response(),
    }
}
