//! ACME errors as RFC 7807 problem documents: the RFC 8555 error type, the HTTP
//! status that goes with it, and a detail telling the client what was wrong.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The RFC 8555 §6.7 error types this server reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    AccountDoesNotExist,
    /// RFC 9773 §5: the certificate an order `replaces` already was.
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Connection,
    IncorrectResponse,
    InvalidContact,
    /// draft-ietf-acme-profiles: an order names a profile not offered.
    InvalidProfile,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
}

impl ProblemType {
    pub fn urn(self) -> &'static str {
        match self {
            ProblemType::AccountDoesNotExist => "urn:ietf:params:acme:error:accountDoesNotExist",
            ProblemType::AlreadyReplaced => "urn:ietf:params:acme:error:alreadyReplaced",
            ProblemType::AlreadyRevoked => "urn:ietf:params:acme:error:alreadyRevoked",
            ProblemType::BadCsr => "urn:ietf:params:acme:error:badCSR",
            ProblemType::BadNonce => "urn:ietf:params:acme:error:badNonce",
            ProblemType::BadPublicKey => "urn:ietf:params:acme:error:badPublicKey",
            ProblemType::BadRevocationReason => "urn:ietf:params:acme:error:badRevocationReason",
            ProblemType::BadSignatureAlgorithm => {
                "urn:ietf:params:acme:error:badSignatureAlgorithm"
            }
            ProblemType::Connection => "urn:ietf:params:acme:error:connection",
            ProblemType::IncorrectResponse => "urn:ietf:params:acme:error:incorrectResponse",
            ProblemType::InvalidContact => "urn:ietf:params:acme:error:invalidContact",
            ProblemType::InvalidProfile => "urn:ietf:params:acme:error:invalidProfile",
            ProblemType::Malformed => "urn:ietf:params:acme:error:malformed",
            ProblemType::OrderNotReady => "urn:ietf:params:acme:error:orderNotReady",
            ProblemType::RateLimited => "urn:ietf:params:acme:error:rateLimited",
            ProblemType::RejectedIdentifier => "urn:ietf:params:acme:error:rejectedIdentifier",
            ProblemType::ServerInternal => "urn:ietf:params:acme:error:serverInternal",
            ProblemType::Tls => "urn:ietf:params:acme:error:tls",
            ProblemType::Unauthorized => "urn:ietf:params:acme:error:unauthorized",
            ProblemType::UnsupportedContact => "urn:ietf:params:acme:error:unsupportedContact",
            ProblemType::UnsupportedIdentifier => {
                "urn:ietf:params:acme:error:unsupportedIdentifier"
            }
        }
    }

    /// The status RFC 8555 suggests for the type when nothing more specific applies.
    fn status(self) -> StatusCode {
        match self {
            ProblemType::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemType::OrderNotReady => StatusCode::FORBIDDEN,
            ProblemType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemType::AlreadyReplaced => StatusCode::CONFLICT,
            ProblemType::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// One ACME error, ready to be sent or recorded on a challenge or order.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{} ({}): {detail}", kind.urn(), status.as_u16())]
pub struct Problem {
    pub kind: ProblemType,
    pub status: StatusCode,
    pub detail: String,
    /// Only for badSignatureAlgorithm: RFC 8555 §6.2 requires the supported list.
    pub algorithms: Option<&'static [&'static str]>,
    /// Seconds until a refused request may succeed, sent as Retry-After (RFC 8555 §6.6).
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            status: kind.status(),
            detail: detail.into(),
            algorithms: None,
            retry_after: None,
        }
    }

    /// A limit was reached; the client may try again after `seconds`.
    pub fn rate_limited(detail: impl Into<String>, seconds: u64) -> Problem {
        let mut problem = Problem::new(ProblemType::RateLimited, detail);
        problem.retry_after = Some(seconds.max(1));
        problem
    }

    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemType::Malformed, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(ProblemType::Unauthorized, detail)
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::malformed(format!("no such {what}")).with_status(StatusCode::NOT_FOUND)
    }

    pub fn with_status(mut self, status: StatusCode) -> Problem {
        self.status = status;
        self
    }

    pub fn with_algorithms(mut self, algorithms: &'static [&'static str]) -> Problem {
        self.algorithms = Some(algorithms);
        self
    }

    pub fn document(&self) -> ProblemDocument<'_> {
        ProblemDocument {
            kind: self.kind.urn(),
            detail: &self.detail,
            status: self.status.as_u16(),
            algorithms: self.algorithms,
        }
    }
}

#[derive(Serialize)]
pub struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    detail: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithms: Option<&'static [&'static str]>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.document()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
