//! The ACME server's memory: nonces, accounts, orders, authorizations with their
//! challenges, and issued certificates, with the status transitions between them.
//! Everything here is synchronous; callers hold the lock only between awaits.
//! All of it is bounded: totals are capped, and what is abandoned is forgotten
//! within minutes, so a flood of requests cannot grow the process.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::budget::Budgets;
use super::jws::{Jwk, b64};
use super::problem::Problem;

/// Outstanding nonces kept; older ones are forgotten (and then rejected as badNonce).
const MAX_NONCES: usize = 10_000;
/// A nonce unused this long is forgotten; a client that waited gets badNonce with
/// a fresh nonce and retries, as RFC 8555 §6.5 expects.
const NONCE_LIFETIME_SECS: i64 = 10 * 60;
/// How long an order and its authorizations live: the local CA validates over
/// loopback in seconds, so an order still pending after this was abandoned.
pub const ORDER_LIFETIME_SECS: i64 = 15 * 60;
/// An account unused this long, with no live order, is forgotten; quire's client
/// then makes a new one (it handles accountDoesNotExist), which is cheap.
const ACCOUNT_IDLE_SECS: i64 = 30 * 60;
/// Totals kept at once. Far above what a laptop or CI needs, far below what
/// hurts: together a few megabytes.
pub const MAX_ACCOUNTS: usize = 1_000;
pub const MAX_ORDERS: usize = 1_000;
pub const MAX_AUTHORIZATIONS: usize = 10_000;
pub const MAX_CERTS: usize = 1_000;
/// Expired objects are swept at most this often (and whenever a total is reached).
const SWEEP_EVERY_SECS: i64 = 10;

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
    /// Nonce -> when it was handed out.
    nonces: HashMap<String, DateTime<Utc>>,
    nonce_order: VecDeque<String>,
    pub accounts: HashMap<String, Account>,
    /// Key thumbprint -> account id.
    pub account_by_key: HashMap<String, String>,
    pub orders: HashMap<String, Order>,
    pub authorizations: HashMap<String, Authorization>,
    pub certs: HashMap<String, IssuedCert>,
    budgets: Budgets,
    next_sweep: DateTime<Utc>,
}

fn seconds_until(when: Option<DateTime<Utc>>, now: DateTime<Utc>, fallback: i64) -> u64 {
    when.map_or(fallback, |t| (t - now).num_seconds()).max(1) as u64
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
    pub fn new_nonce(&mut self, now: DateTime<Utc>) -> String {
        let nonce = random_id(16);
        self.nonces.insert(nonce.clone(), now);
        self.nonce_order.push_back(nonce.clone());
        while self.nonce_order.len() > MAX_NONCES {
            if let Some(old) = self.nonce_order.pop_front() {
                self.nonces.remove(&old);
            }
        }
        nonce
    }

    /// True once for each nonce this server handed out in the last minutes.
    pub fn take_nonce(&mut self, nonce: &str, now: DateTime<Utc>) -> bool {
        self.nonces
            .remove(nonce)
            .is_some_and(|issued| now - issued < Duration::seconds(NONCE_LIFETIME_SECS))
    }

    /// Sweeps what has expired, at most every few seconds; called on every request
    /// so that memory falls back after a flood even if nothing new is created.
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        if now >= self.next_sweep {
            self.prune(now);
            self.next_sweep = now + Duration::seconds(SWEEP_EVERY_SECS);
        }
    }

    /// Takes `cost` (the objects a request creates) from the client's budget.
    pub fn spend(
        &mut self,
        client: IpAddr,
        cost: usize,
        now: DateTime<Utc>,
    ) -> Result<(), Problem> {
        self.budgets.spend(client, cost, now).map_err(|seconds| {
            Problem::rate_limited(
                format!("{client} has created too many accounts, orders or authorizations lately; try again in {seconds} s"),
                seconds,
            )
        })
    }

    /// Room for one more account, or rateLimited with when to retry.
    pub fn admit_account(&mut self, now: DateTime<Utc>) -> Result<(), Problem> {
        if self.accounts.len() >= MAX_ACCOUNTS {
            self.prune(now);
        }
        if self.accounts.len() < MAX_ACCOUNTS {
            return Ok(());
        }
        let idle = Duration::seconds(ACCOUNT_IDLE_SECS);
        let first_free = self.accounts.values().map(|a| a.last_used + idle).min();
        Err(Problem::rate_limited(
            format!(
                "the local CA holds its maximum of {MAX_ACCOUNTS} accounts; unused ones are forgotten after {} minutes",
                ACCOUNT_IDLE_SECS / 60
            ),
            seconds_until(first_free, now, ACCOUNT_IDLE_SECS),
        ))
    }

    /// Room for one more order with `names` authorizations, or rateLimited.
    pub fn admit_order(&mut self, names: usize, now: DateTime<Utc>) -> Result<(), Problem> {
        let full = |s: &State| {
            s.orders.len() >= MAX_ORDERS || s.authorizations.len() + names > MAX_AUTHORIZATIONS
        };
        if full(self) {
            self.prune(now);
        }
        if !full(self) {
            return Ok(());
        }
        let first_free = self.orders.values().map(|o| o.expires).min();
        Err(Problem::rate_limited(
            format!(
                "the local CA holds its maximum of {MAX_ORDERS} orders or {MAX_AUTHORIZATIONS} authorizations; orders are forgotten {} minutes after they were made",
                ORDER_LIFETIME_SECS / 60
            ),
            seconds_until(first_free, now, ORDER_LIFETIME_SECS),
        ))
    }

    /// Room for one more issued certificate, or rateLimited.
    pub fn admit_cert(&mut self, now: DateTime<Utc>) -> Result<(), Problem> {
        if self.certs.len() >= MAX_CERTS {
            self.prune(now);
        }
        if self.certs.len() < MAX_CERTS {
            return Ok(());
        }
        let first_free = self.certs.values().map(|c| c.not_after).min();
        Err(Problem::rate_limited(
            format!("the local CA holds its maximum of {MAX_CERTS} unexpired certificates"),
            seconds_until(first_free, now, ORDER_LIFETIME_SECS),
        ))
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

    /// Forgets expired nonces, orders with their authorizations, idle accounts and
    /// expired certificates, so memory stays bounded however long the server runs.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let nonce_deadline = now - Duration::seconds(NONCE_LIFETIME_SECS);
        while let Some(oldest) = self.nonce_order.front() {
            match self.nonces.get(oldest) {
                Some(issued) if *issued > nonce_deadline => break,
                _ => {
                    if let Some(old) = self.nonce_order.pop_front() {
                        self.nonces.remove(&old);
                    }
                }
            }
        }
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
        let idle_since = now - Duration::seconds(ACCOUNT_IDLE_SECS);
        let by_key = &mut self.account_by_key;
        self.accounts.retain(|_, account| {
            let keep = !account.orders.is_empty() || account.last_used > idle_since;
            if !keep {
                by_key.remove(account.key.thumbprint());
            }
            keep
        });
        self.budgets.prune(now);
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
