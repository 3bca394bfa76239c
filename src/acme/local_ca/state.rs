//! The ACME server's memory: nonces, accounts, orders, authorizations with their
//! challenges, and issued certificates, with the transitions that span several
//! of them. Everything here is synchronous and quick; callers hold the lock only
//! between awaits, and never while a certificate is signed.
//! All of it is bounded: totals are capped, and what is abandoned is forgotten
//! within minutes, so a flood of requests cannot grow the process.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use super::budget::Budgets;
use super::jws::unb64;
use super::orders::{
    Account, Authorization, ChallengeKind, IssuedCert, Order, OrderRequest, Replaces, Status,
    check_owner, expired_while_signing, random_id,
};
use super::problem::{Problem, ProblemType};
use super::profiles::Profile;

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
        order.expire(now);
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

    /// What an order's `replaces` (RFC 9773 §5) names: a certificate this CA
    /// issued to `account`, sharing a name with the order, and not replaced
    /// already by an order that is still pending, ready, processing or
    /// valid; otherwise the problem the RFC asks for.
    pub fn replaces(
        &mut self,
        account: &str,
        names: &[String],
        cert_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Replaces, Problem> {
        let (aki, serial) = cert_id.split_once('.').ok_or_else(|| {
            Problem::malformed("\"replaces\" must be keyIdentifier.serial in base64url")
        })?;
        let (aki, serial) = (unb64("keyIdentifier", aki)?, unb64("serial", serial)?);
        let (key, cert) = self
            .certs
            .iter()
            .find(|(_, c)| c.serial == serial && c.authority_key_id == aki)
            .ok_or_else(|| {
                Problem::malformed(format!(
                    "\"replaces\" names {cert_id}, which this CA did not issue (or which has expired); leave \"replaces\" out"
                ))
            })?;
        if cert.account != account {
            return Err(Problem::malformed(format!(
                "\"replaces\" names {cert_id}, which was issued to another account"
            )));
        }
        if !cert.names.iter().any(|n| names.contains(n)) {
            return Err(Problem::malformed(format!(
                "\"replaces\" names {cert_id}, which shares no name with the order"
            )));
        }
        let key = key.clone();
        let replacing = cert.replaced_by.clone();
        let replaced = cert.replaced;
        if let Some(order) = &replacing {
            self.expire_order(order, now);
        }
        let live = replacing
            .and_then(|order| self.orders.get(&order))
            .is_some_and(|order| order.status != Status::Invalid);
        if replaced || live {
            return Err(Problem::new(
                ProblemType::AlreadyReplaced,
                format!(
                    "{cert_id} is already replaced by another order; place the order without \"replaces\""
                ),
            ));
        }
        Ok(Replaces {
            cert_id: cert_id.to_owned(),
            cert: key,
        })
    }

    /// A new pending order of `account` for `names`, one authorization each,
    /// all living until `expires`; the certificate it replaces is marked as
    /// being replaced by it. The order's id.
    pub fn add_order(
        &mut self,
        account: &str,
        names: Vec<String>,
        expires: DateTime<Utc>,
        request: OrderRequest,
    ) -> String {
        let authorizations = names
            .iter()
            .map(|name| {
                let id = random_id(16);
                let authz = Authorization::new(account.to_owned(), name.clone(), expires);
                self.authorizations.insert(id.clone(), authz);
                id
            })
            .collect();
        let id = random_id(16);
        if let Some(cert) = request
            .replaces
            .as_ref()
            .and_then(|r| self.certs.get_mut(&r.cert))
        {
            cert.replaced_by = Some(id.clone());
        }
        let order = Order::new(account.to_owned(), names, authorizations, expires, request);
        self.orders.insert(id.clone(), order);
        if let Some(account) = self.accounts.get_mut(account) {
            account.orders.push(id.clone());
        }
        id
    }

    /// The first half of finalizing: the order must be `account`'s and ready,
    /// and the CA must have room for a certificate. The order is then
    /// processing, so that the lock can be let go while the certificate is
    /// signed; the order's identifiers, which the CSR must name, and profile.
    pub fn start_issuing(
        &mut self,
        id: &str,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, Profile), Problem> {
        self.expire_order(id, now);
        self.admit_cert(now)?;
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| Problem::not_found("order"))?;
        check_owner(&order.account, account)?;
        order.start_issuing()?;
        Ok((order.identifiers.clone(), order.profile))
    }

    /// Issuing failed before a certificate was made: the order is ready again.
    pub fn stop_issuing(&mut self, id: &str) {
        if let Some(order) = self.orders.get_mut(id) {
            order.stop_issuing();
        }
    }

    /// The second half of finalizing, once the certificate is signed: records
    /// it on the order, unless the order expired (or was forgotten) meanwhile,
    /// in which case the certificate is never handed out. The order.
    pub fn finish_issuing(
        &mut self,
        id: &str,
        cert: IssuedCert,
        now: DateTime<Utc>,
    ) -> Result<&Order, Problem> {
        if !self.orders.contains_key(id) {
            return Err(expired_while_signing());
        }
        // Other orders may have been finalized while this one was signed.
        if let Err(full) = self.admit_cert(now) {
            self.stop_issuing(id);
            return Err(full);
        }
        let cert_id = random_id(16);
        let order = self.orders.get_mut(id).ok_or_else(expired_while_signing)?;
        order.issued(cert_id.clone(), now)?;
        if let Some(replaced) = order
            .replaces
            .as_ref()
            .and_then(|r| self.certs.get_mut(&r.cert))
        {
            replaced.replaced = true;
        }
        self.certs.insert(cert_id, cert);
        Ok(order)
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
        if !authz.finish_validation(kind, &outcome, now) {
            return;
        }
        let authorizations = &self.authorizations;
        for order in self.orders.values_mut() {
            if !order.authorizations.iter().any(|a| a == authz_id) {
                continue;
            }
            let all_valid = order.authorizations.iter().all(|a| {
                authorizations
                    .get(a)
                    .is_some_and(|authz| authz.status == Status::Valid)
            });
            order.authorization_settled(&outcome, all_valid);
        }
    }

    /// Deactivating an authorization makes the orders that need it unfinishable.
    pub fn deactivate_authorization(&mut self, authz_id: &str) {
        if let Some(authz) = self.authorizations.get_mut(authz_id) {
            authz.status = Status::Deactivated;
        }
        for order in self.orders.values_mut() {
            if order.authorizations.iter().any(|a| a == authz_id) {
                order.authorization_deactivated();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::local_ca::problem::ProblemType;

    fn start() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn cert(now: DateTime<Utc>) -> IssuedCert {
        IssuedCert {
            account: "acct".into(),
            names: vec!["a.test".into()],
            key_thumbprint: "thumb".into(),
            serial: vec![1],
            authority_key_id: vec![2],
            der: vec![3],
            chain_pem: String::new(),
            not_before: now,
            not_after: now + Duration::days(3),
            revoked: false,
            replaced_by: None,
            replaced: false,
        }
    }

    /// A state with one order of "acct" for a.test whose authorization passed.
    fn ready_order() -> (State, String) {
        let mut state = State::default();
        let expires = start() + Duration::seconds(ORDER_LIFETIME_SECS);
        let request = OrderRequest {
            profile: Profile::Classic,
            replaces: None,
        };
        let id = state.add_order("acct", vec!["a.test".into()], expires, request);
        let authz = state.orders[&id].authorizations[0].clone();
        state.authorizations.get_mut(&authz).unwrap().challenges[0].status = Status::Processing;
        let kind = state.authorizations[&authz].challenges[0].kind;
        state.finish_validation(&authz, kind, Ok(()), start());
        assert_eq!(state.orders[&id].status, Status::Ready);
        (state, id)
    }

    #[test]
    fn a_processing_order_takes_the_certificate_signed_for_it_once() {
        let (mut state, id) = ready_order();
        let (names, profile) = state.start_issuing(&id, "acct", start()).unwrap();
        assert_eq!(names, ["a.test"]);
        assert_eq!(profile, Profile::Classic);
        assert_eq!(state.orders[&id].status, Status::Processing);
        // A second finalize while the first signs is refused, not signed twice.
        let again = state.start_issuing(&id, "acct", start()).unwrap_err();
        assert_eq!(again.kind, ProblemType::OrderNotReady);

        let order = state.finish_issuing(&id, cert(start()), start()).unwrap();
        assert_eq!(order.status, Status::Valid);
        let cert_id = order.certificate.clone().unwrap();
        assert!(state.certs.contains_key(&cert_id));
    }

    #[test]
    fn only_the_owner_finalizes_and_a_failed_signing_leaves_the_order_ready() {
        let (mut state, id) = ready_order();
        let other = state.start_issuing(&id, "other", start()).unwrap_err();
        assert_eq!(other.kind, ProblemType::Unauthorized);
        assert_eq!(state.orders[&id].status, Status::Ready);
        state.start_issuing(&id, "acct", start()).unwrap();
        state.stop_issuing(&id);
        assert_eq!(state.orders[&id].status, Status::Ready);
        state.start_issuing(&id, "acct", start()).unwrap();
    }

    #[test]
    fn an_order_that_expires_while_its_certificate_is_signed_never_gets_it() {
        let after = start() + Duration::seconds(ORDER_LIFETIME_SECS);

        // Expired, still remembered: invalid, saying why.
        let (mut state, id) = ready_order();
        state.start_issuing(&id, "acct", start()).unwrap();
        let problem = state.finish_issuing(&id, cert(start()), after).unwrap_err();
        assert!(problem.detail.contains("expired"), "{problem}");
        assert_eq!(state.orders[&id].status, Status::Invalid);
        assert!(state.orders[&id].error.is_some());
        assert!(state.orders[&id].certificate.is_none());
        assert!(state.certs.is_empty());

        // Expired and swept away meanwhile.
        let (mut state, id) = ready_order();
        state.start_issuing(&id, "acct", start()).unwrap();
        state.prune(after);
        assert!(!state.orders.contains_key(&id));
        let problem = state.finish_issuing(&id, cert(start()), after).unwrap_err();
        assert!(problem.detail.contains("expired"), "{problem}");
        assert!(state.certs.is_empty());
    }
}
