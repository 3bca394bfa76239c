//! The ACME server's memory: nonces, accounts, orders, authorizations with their
//! challenges, and issued certificates, with the status transitions between them.
//! Everything here is synchronous; callers hold the lock only between awaits.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::jws::{Jwk, b64};
use super::problem::Problem;

/// Outstanding nonces kept; older ones are forgotten (and then rejected as badNonce).
const MAX_NONCES: usize = 10_000;

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
}

pub struct Order {
    pub account: String,
    pub status: Status,
    pub expires: DateTime<Utc>,
    pub identifiers: Vec<String>,
    pub authorizations: Vec<String>,
    pub error: Option<Problem>,
    pub certificate: Option<String>,
}

pub struct Challenge {
    pub kind: ChallengeKind,
    pub token: String,
    pub status: Status,
    pub validated: Option<DateTime<Utc>>,
    pub error: Option<Problem>,
}

pub struct Authorization {
    pub account: String,
    pub identifier: String,
    pub status: Status,
    pub expires: DateTime<Utc>,
    pub challenges: Vec<Challenge>,
}

impl Authorization {
    fn expire(&mut self, now: DateTime<Utc>) {
        if self.status == Status::Pending && self.expires <= now {
            self.status = Status::Expired;
        }
    }
}

pub struct IssuedCert {
    pub account: String,
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
}

#[derive(Default)]
pub struct State {
    nonces: HashSet<String>,
    nonce_order: VecDeque<String>,
    pub accounts: HashMap<String, Account>,
    /// Key thumbprint -> account id.
    pub account_by_key: HashMap<String, String>,
    pub orders: HashMap<String, Order>,
    pub authorizations: HashMap<String, Authorization>,
    pub certs: HashMap<String, IssuedCert>,
}

pub fn random_id(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    // Filling a buffer from the OS only fails if the OS has no randomness at all.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("operating system randomness unavailable");
    b64(bytes)
}

impl State {
    pub fn new_nonce(&mut self) -> String {
        let nonce = random_id(16);
        self.nonces.insert(nonce.clone());
        self.nonce_order.push_back(nonce.clone());
        while self.nonce_order.len() > MAX_NONCES {
            if let Some(old) = self.nonce_order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        nonce
    }

    /// True once for each nonce this server handed out and still remembers.
    pub fn take_nonce(&mut self, nonce: &str) -> bool {
        self.nonces.remove(nonce)
    }

    /// Marks an order and its authorizations expired if their time has come.
    pub fn expire_order(&mut self, id: &str, now: DateTime<Utc>) {
        let Some(order) = self.orders.get_mut(id) else {
            return;
        };
        if matches!(order.status, Status::Pending | Status::Ready) && order.expires <= now {
            order.status = Status::Invalid;
            order.error = Some(Problem::malformed(
                "the order expired before it was finalized",
            ));
        }
        for authz_id in &order.authorizations {
            if let Some(authz) = self.authorizations.get_mut(authz_id) {
                authz.expire(now);
            }
        }
    }

    pub fn expire_authorization(&mut self, id: &str, now: DateTime<Utc>) {
        if let Some(authz) = self.authorizations.get_mut(id) {
            authz.expire(now);
        }
    }

    /// Forgets expired orders with their authorizations, and expired certificates,
    /// so memory stays bounded however long the server runs.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let expired: Vec<String> = self
            .orders
            .iter()
            .filter(|(_, o)| o.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(order) = self.orders.remove(&id) {
                for authz in &order.authorizations {
                    self.authorizations.remove(authz);
                }
                if let Some(account) = self.accounts.get_mut(&order.account) {
                    account.orders.retain(|o| *o != id);
                }
            }
        }
        self.certs.retain(|_, cert| cert.not_after > now);
    }

    /// Records the outcome of a challenge's validation and moves its
    /// authorization and the orders depending on it along.
    pub fn finish_validation(
        &mut self,
        authz_id: &str,
        kind: ChallengeKind,
        outcome: Result<(), Problem>,
        now: DateTime<Utc>,
    ) {
        let Some(authz) = self.authorizations.get_mut(authz_id) else {
            return;
        };
        let Some(challenge) = authz.challenges.iter_mut().find(|c| c.kind == kind) else {
            return;
        };
        if challenge.status != Status::Processing {
            return;
        }
        match &outcome {
            Ok(()) => {
                challenge.status = Status::Valid;
                challenge.validated = Some(now);
                authz.status = Status::Valid;
            }
            Err(problem) => {
                challenge.status = Status::Invalid;
                challenge.error = Some(problem.clone());
                authz.status = Status::Invalid;
            }
        }
        let authorizations = &self.authorizations;
        for order in self.orders.values_mut() {
            if order.status != Status::Pending
                || !order.authorizations.iter().any(|a| a == authz_id)
            {
                continue;
            }
            match &outcome {
                Err(problem) => {
                    order.status = Status::Invalid;
                    order.error = Some(problem.clone());
                }
                Ok(()) => {
                    let all_valid = order.authorizations.iter().all(|a| {
                        authorizations
                            .get(a)
                            .is_some_and(|authz| authz.status == Status::Valid)
                    });
                    if all_valid {
                        order.status = Status::Ready;
                    }
                }
            }
        }
    }

    /// Deactivating an authorization makes the orders that need it unfinishable.
    pub fn deactivate_authorization(&mut self, authz_id: &str) {
        if let Some(authz) = self.authorizations.get_mut(authz_id) {
            authz.status = Status::Deactivated;
        }
        for order in self.orders.values_mut() {
            if matches!(order.status, Status::Pending | Status::Ready)
                && order.authorizations.iter().any(|a| a == authz_id)
            {
                order.status = Status::Invalid;
                order.error = Some(Problem::unauthorized(
                    "an authorization of the order was deactivated",
                ));
            }
        }
    }
}
