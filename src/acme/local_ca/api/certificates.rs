//! Certificate resources: downloading the chain (RFC 8555 §7.4.2), revocation
//! by the ordering account or the certified key (§7.6), and renewal
//! information (RFC 9773).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use serde_json::{Value, json};

use super::super::jws::{Expect, Signer, unb64};
use super::super::orders::check_owner;
use super::super::problem::{Problem, ProblemType};
use super::super::profiles::renewal_window;
use super::http::{Api, json_response, now, posted, rfc3339};

/// RFC 9773: how long clients should wait before asking again.
const ARI_RETRY_AFTER_SECS: &str = "21600";

pub(super) async fn certificate(
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
        check_owner(&cert.account, request.signer.account()?)?;
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

pub(super) async fn revoke_cert(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
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

/// RFC 9773: the window of [`renewal_window`] (a third of the life left, half
/// for short lives); a revoked
/// certificate, or one issued under an intermediate this CA no longer uses (its
/// root may have been replaced, so clients trusting the new root.pem reject it),
/// gets a window in the past, asking for renewal now. Any other ID is unknown:
/// a window for it would claim a certificate this CA never issued.
pub(super) async fn renewal_info(
    State(api): State<Arc<Api>>,
    Path(cert_id): Path<String>,
) -> Response {
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
            Some(cert) if !cert.revoked => renewal_window(cert.not_before, cert.not_after),
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
