//! The ACME objects an account works through (RFC 8555 §7.1): orders,
//! authorizations with their challenges, and issued certificates, with the
//! status transitions each makes on its own. Transitions that span several
//! objects (a validation moving its orders along) are `State`'s.

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::jws::{Jwk, b64};
use super::problem::{Problem, ProblemType};
use super::profiles::Profile;

/// Ids of ACME objects and nonces: unguessable, URL-safe.
pub fn random_id(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    // Filling a buffer from the OS only fails if the OS has no randomness at all.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("operating system randomness unavailable");
    b64(bytes)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Deactivated,
    Expired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    Http01,
    TlsAlpn01,
}

impl ChallengeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }

    pub fn from_name(name: &str) -> Option<ChallengeKind> {
        match name {
            "http-01" => Some(ChallengeKind::Http01),
            "tls-alpn-01" => Some(ChallengeKind::TlsAlpn01),
            _ => None,
        }
    }
}

pub struct Account {
    pub key: Jwk,
    pub status: Status,
    pub contact: Vec<String>,
    pub terms_agreed: bool,
    pub orders: Vec<String>,
    pub last_used: DateTime<Utc>,
}

/// Only the account that made an object may read or change it.
pub fn check_owner(owner: &str, account: &str) -> Result<(), Problem> {
    if owner == account {
        Ok(())
    } else {
        Err(Problem::unauthorized(
            "the resource belongs to another account",
        ))
    }
}

#[derive(Debug)]
pub struct Order {
    pub account: String,
    pub status: Status,
    pub expires: DateTime<Utc>,
    pub identifiers: Vec<String>,
    pub authorizations: Vec<String>,
    pub error: Option<Problem>,
    pub certificate: Option<String>,
    pub profile: Profile,
    /// The certificate it replaces (RFC 9773 §5), as the client named it.
    pub replaces: Option<Replaces>,
}

/// An order's `replaces`: the CertID as written, and the certificate's key
/// in the state.
#[derive(Debug, Clone)]
pub struct Replaces {
    pub cert_id: String,
    pub cert: String,
}

/// What a new order asks for besides its identifiers.
pub struct OrderRequest {
    pub profile: Profile,
    pub replaces: Option<Replaces>,
}

impl Order {
    pub fn new(
        account: String,
        identifiers: Vec<String>,
        authorizations: Vec<String>,
        expires: DateTime<Utc>,
        request: OrderRequest,
    ) -> Order {
        Order {
            account,
            status: Status::Pending,
            expires,
            identifiers,
            authorizations,
            error: None,
            certificate: None,
            profile: request.profile,
            replaces: request.replaces,
        }
    }

    /// An order not finalized by its time is invalid.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        if matches!(self.status, Status::Pending | Status::Ready) && self.expires <= now {
            self.status = Status::Invalid;
            self.error = Some(Problem::malformed(
                "the order expired before it was finalized",
            ));
        }
    }

    /// One of its authorizations was validated (`Ok`) or failed; `all_valid`
    /// says whether every one of them is valid now.
    pub fn authorization_settled(&mut self, outcome: &Result<(), Problem>, all_valid: bool) {
        if self.status != Status::Pending {
            return;
        }
        match outcome {
            Err(problem) => {
                self.status = Status::Invalid;
                self.error = Some(problem.clone());
            }
            Ok(()) if all_valid => self.status = Status::Ready,
            Ok(()) => {}
        }
    }

    /// An order that needs a deactivated authorization can never be finalized.
    pub fn authorization_deactivated(&mut self) {
        if matches!(self.status, Status::Pending | Status::Ready) {
            self.status = Status::Invalid;
            self.error = Some(Problem::unauthorized(
                "an authorization of the order was deactivated",
            ));
        }
    }

    /// Ready -> processing: the order is being issued, and a second finalize
    /// meanwhile is refused as it would be once the order is valid.
    pub fn start_issuing(&mut self) -> Result<(), Problem> {
        if self.status != Status::Ready {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                format!(
                    "the order is {}, not ready; every authorization must be valid first",
                    serde_json::json!(self.status)
                        .as_str()
                        .unwrap_or("not ready")
                ),
            ));
        }
        self.status = Status::Processing;
        Ok(())
    }

    /// Processing -> ready: issuing failed (a bad CSR, a full CA), so the
    /// client may finalize again.
    pub fn stop_issuing(&mut self) {
        if self.status == Status::Processing {
            self.status = Status::Ready;
        }
    }

    /// Processing -> valid with the certificate, or the reason it cannot be,
    /// since the state was unlocked while the certificate was signed: the
    /// order expired meanwhile (it is then invalid) or is no longer processing.
    pub fn issued(&mut self, certificate: String, now: DateTime<Utc>) -> Result<(), Problem> {
        if self.status != Status::Processing {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                "the order changed while its certificate was being signed; place a new order",
            ));
        }
        if self.expires <= now {
            let problem = expired_while_signing();
            self.status = Status::Invalid;
            self.error = Some(problem.clone());
            return Err(problem);
        }
        self.status = Status::Valid;
        self.certificate = Some(certificate);
        Ok(())
    }
}

/// Why a signed certificate is thrown away rather than handed out.
pub fn expired_while_signing() -> Problem {
    Problem::malformed(
        "the order expired while its certificate was being signed; place a new order",
    )
}

pub struct Challenge {
    pub kind: ChallengeKind,
    pub token: String,
    pub status: Status,
    pub validated: Option<DateTime<Utc>>,
    pub error: Option<Problem>,
}

impl Challenge {
    fn new(kind: ChallengeKind) -> Challenge {
        Challenge {
            kind,
            token: random_id(32),
            status: Status::Pending,
            validated: None,
            error: None,
        }
    }
}

pub struct Authorization {
    pub account: String,
    pub identifier: String,
    pub status: Status,
    pub expires: DateTime<Utc>,
    pub challenges: Vec<Challenge>,
}

impl Authorization {
    /// A pending authorization offering both challenge types the CA validates.
    pub fn new(account: String, identifier: String, expires: DateTime<Utc>) -> Authorization {
        Authorization {
            account,
            identifier,
            status: Status::Pending,
            expires,
            challenges: vec![
                Challenge::new(ChallengeKind::Http01),
                Challenge::new(ChallengeKind::TlsAlpn01),
            ],
        }
    }

    pub fn expire(&mut self, now: DateTime<Utc>) {
        if self.status == Status::Pending && self.expires <= now {
            self.status = Status::Expired;
        }
    }

    pub fn challenge(&self, kind: ChallengeKind) -> Result<&Challenge, Problem> {
        self.challenges
            .iter()
            .find(|c| c.kind == kind)
            .ok_or_else(|| Problem::not_found("challenge"))
    }

    /// The client asks for `kind` to be validated: the first such request
    /// moves it to processing and returns its token; any later one (or one for
    /// an authorization no longer pending) changes nothing and returns `None`.
    pub fn start_validation(&mut self, kind: ChallengeKind) -> Result<Option<String>, Problem> {
        let idle = self.status == Status::Pending
            && self.challenges.iter().all(|c| c.status == Status::Pending);
        if !idle {
            return Ok(None);
        }
        let challenge = self
            .challenges
            .iter_mut()
            .find(|c| c.kind == kind)
            .ok_or_else(|| Problem::not_found("challenge"))?;
        challenge.status = Status::Processing;
        Ok(Some(challenge.token.clone()))
    }

    /// Records a validation's outcome; false if the challenge was not being validated.
    pub fn finish_validation(
        &mut self,
        kind: ChallengeKind,
        outcome: &Result<(), Problem>,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(challenge) = self.challenges.iter_mut().find(|c| c.kind == kind) else {
            return false;
        };
        if challenge.status != Status::Processing {
            return false;
        }
        match outcome {
            Ok(()) => {
                challenge.status = Status::Valid;
                challenge.validated = Some(now);
                self.status = Status::Valid;
            }
            Err(problem) => {
                challenge.status = Status::Invalid;
                challenge.error = Some(problem.clone());
                self.status = Status::Invalid;
            }
        }
        true
    }
}

pub struct IssuedCert {
    pub account: String,
    /// The names it certifies; an order replacing it must share one.
    pub names: Vec<String>,
    /// Thumbprint of the certified key, for revocation signed by that key.
    pub key_thumbprint: String,
    /// Content octets of the DER serial and the authority key identifier: the ARI CertID.
    pub serial: Vec<u8>,
    pub authority_key_id: Vec<u8>,
    pub der: Vec<u8>,
    pub chain_pem: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub revoked: bool,
    /// The order that named it in `replaces`; once that order is valid the
    /// certificate stays replaced even after the order is forgotten.
    pub replaced_by: Option<String>,
    pub replaced: bool,
}
