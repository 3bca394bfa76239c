//! Issuance resources (RFC 8555 §7.4-7.5): new orders and their identifiers,
//! reading orders and authorizations, starting a challenge's validation (and
//! waiting a moment for it, so the answer is usually final), and finalizing: the state is locked to claim the order and again to record the
//! certificate, never while the CSR is checked or the certificate signed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Duration;
use serde_json::{Map, Value};

use super::super::csr;
use super::super::jws::Expect;
use super::super::orders::{ChallengeKind, OrderRequest, Status, check_owner};
use super::super::problem::{Problem, ProblemType};
use super::super::profiles::Profile;
use super::super::state::ORDER_LIFETIME_SECS;
use super::super::validate;
use super::http::{Api, Client, json_response, now, posted, with_link};
use crate::names::DnsName;

const MAX_IDENTIFIERS: usize = 100;
/// How long a challenge POST waits for its validation before answering
/// "processing". Validating over loopback takes milliseconds; a client told
/// "valid" at once skips its polling, and some (lego) wait 5 s per poll.
const SETTLE_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);
/// What a "processing" answer asks the client to wait before polling.
const RETRY_AFTER_SECS: &str = "1";
const MAX_PENDING_ORDERS: usize = 300;

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

/// The profile an order asks for (draft-ietf-acme-profiles), the default
/// when it names none.
fn profile(payload: &Map<String, Value>) -> Result<Profile, Problem> {
    match payload.get("profile") {
        None => Ok(Profile::DEFAULT),
        Some(Value::String(name)) => Profile::requested(name),
        Some(_) => Err(Problem::malformed("\"profile\" must be a string")),
    }
}

/// The CertID an order `replaces` (RFC 9773 §5), if it names one.
fn replaces(payload: &Map<String, Value>) -> Result<Option<&str>, Problem> {
    match payload.get("replaces") {
        None => Ok(None),
        Some(Value::String(id)) => Ok(Some(id)),
        Some(_) => Err(Problem::malformed(
            "\"replaces\" must be a string, keyIdentifier.serial in base64url",
        )),
    }
}

pub(super) async fn new_order(
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
            let profile = profile(&payload)?;
            let replaces = replaces(&payload)?;
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
            let replaces = replaces
                .map(|id| state.replaces(&account_id, &names, id, now))
                .transpose()?;
            let request = OrderRequest { profile, replaces };
            let id = state.add_order(&account_id, names, expires, request);
            let body = state
                .orders
                .get(&id)
                .map(|order| api.order_json(&id, order))
                .unwrap_or_default();
            let location = api.url(&format!("acme/order/{id}"));
            Ok(json_response(StatusCode::CREATED, &body, Some(&location)))
        },
    )
    .await
}

pub(super) async fn order(
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
        check_owner(&order.account, request.signer.account()?)?;
        Ok(json_response(
            StatusCode::OK,
            &api.order_json(&id, order),
            None,
        ))
    })
    .await
}

pub(super) async fn authorization(
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
        check_owner(&authz.account, request.signer.account()?)?;
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

pub(super) async fn challenge(
    State(api): State<Arc<Api>>,
    Path((authz_id, kind_name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/chall/{authz_id}/{kind_name}");
    let mut validation = None;
    let answer = posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        let kind =
            ChallengeKind::from_name(&kind_name).ok_or_else(|| Problem::not_found("challenge"))?;
        let now = now(api);
        let mut state = api.ca.lock();
        state.expire_authorization(&authz_id, now);
        let authz = state
            .authorizations
            .get_mut(&authz_id)
            .ok_or_else(|| Problem::not_found("authorization"))?;
        check_owner(&authz.account, request.signer.account()?)?;
        if !request.is_post_as_get() {
            request.object()?;
            if let Some(token) = authz.start_validation(kind)? {
                let identifier = authz.identifier.clone();
                let key_authorization = format!("{token}.{}", request.signer.key().thumbprint());
                let ca = api.ca.clone();
                let target = ca.settings.validation;
                let authz_id = authz_id.clone();
                validation = Some((
                    kind,
                    tokio::spawn(async move {
                        let outcome = match kind {
                            ChallengeKind::Http01 => {
                                validate::http01(
                                    target.http,
                                    &identifier,
                                    &token,
                                    &key_authorization,
                                )
                                .await
                            }
                            ChallengeKind::TlsAlpn01 => {
                                validate::tls_alpn01(target.tls, &identifier, &key_authorization)
                                    .await
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
                    }),
                ));
            }
        }
        let challenge = authz.challenge(kind)?;
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
    .await;
    match validation {
        Some((kind, running)) => settled(&api, answer, running, &authz_id, kind).await,
        None => answer,
    }
}

/// The answer to a challenge POST that started a validation: given a moment
/// to finish, it says the outcome; past that, "processing" with when to ask
/// again. The headers (nonce, link) are the ones already made.
async fn settled(
    api: &Api,
    answer: Response,
    running: tokio::task::JoinHandle<()>,
    authz_id: &str,
    kind: ChallengeKind,
) -> Response {
    let finished = tokio::time::timeout(SETTLE_WITHIN, running).await.is_ok();
    let challenge = {
        let state = api.ca.lock();
        match state
            .authorizations
            .get(authz_id)
            .and_then(|authz| authz.challenge(kind).ok())
        {
            Some(challenge) => api.challenge_json(authz_id, challenge),
            None => return answer,
        }
    };
    let (mut parts, _) = answer.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if !finished {
        parts.headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    Response::from_parts(parts, Body::from(challenge.to_string()))
}

pub(super) async fn finalize(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/order/{id}/finalize");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        let account_id = request.signer.account()?.to_owned();
        let payload = request.object()?;
        let claimed = now(api);
        let (identifiers, profile) = api.ca.lock().start_issuing(&id, &account_id, claimed)?;
        // Unlocked: checking the CSR and signing are the slow part.
        let signed =
            csr::from_payload(&payload, &identifiers, request.signer.key()).and_then(|csr| {
                api.ca
                    .sign(&account_id, &csr, &identifiers, profile, claimed)
            });
        let mut state = api.ca.lock();
        let cert = match signed {
            Ok(cert) => cert,
            Err(problem) => {
                state.stop_issuing(&id);
                return Err(problem);
            }
        };
        let order = state.finish_issuing(&id, cert, now(api))?;
        let location = api.url(&format!("acme/order/{id}"));
        Ok(json_response(
            StatusCode::OK,
            &api.order_json(&id, order),
            Some(&location),
        ))
    })
    .await
}
