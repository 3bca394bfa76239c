//! Account resources (RFC 8555 §7.3): creating or finding an account by its
//! key, reading and updating it, listing its orders, and changing its key.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::jws::{Authenticated, Expect, Jwk};
use super::super::orders::{Account, Status, random_id};
use super::super::problem::{Problem, ProblemType};
use super::http::{Api, Client, json_response, now, posted};

/// Contacts per account and characters per contact: enough for real addresses,
/// too few to make each account hold a 64 KiB body.
const MAX_CONTACTS: usize = 4;
const MAX_CONTACT_LEN: usize = 320;

/// An account's own resources answer only requests its key signed.
fn check_signed_by(request: &Authenticated, account: &str) -> Result<(), Problem> {
    if request.signer.account()? == account {
        Ok(())
    } else {
        Err(Problem::unauthorized(
            "the request is signed by another account",
        ))
    }
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

pub(super) async fn new_account(
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

pub(super) async fn account(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/acct/{id}");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        check_signed_by(&request, &id)?;
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

pub(super) async fn account_orders(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("acme/acct/{id}/orders");
    posted(&api, &headers, body, &path, Expect::Kid, |api, request| {
        request.post_as_get()?;
        check_signed_by(&request, &id)?;
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

pub(super) async fn key_change(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    posted(
        &api,
        &headers,
        body,
        "acme/key-change",
        Expect::Kid,
        |api, request| {
            let account_id = request.signer.account()?;
            let (new_key, change) = request.key_change(&api.url("acme/key-change"))?;
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
