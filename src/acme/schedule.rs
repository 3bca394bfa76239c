//! When to order a certificate: the renewal window, backoff after failures and
//! the weekly cap. Pure functions of the certificate, the status and "now", so
//! every rule is tested by passing times, not by waiting.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::certs::RenewalStatus;
use crate::names::SiteName;
use crate::tls::CertBundle;

const WEEK: chrono::Duration = chrono::Duration::days(7);

/// How long a node of a cluster waits, when another node is ordering, before
/// it looks at the shared store again: the new certificate usually arrives
/// first (by notification), and the spread keeps the nodes out of step.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// What a node of a cluster does once it holds the lease to order.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// Still needed, for this reason.
    Order(String),
    /// The shared store's certificate is good: another node ordered it
    /// between this node's check and its taking the lease.
    NotNeeded,
    /// The cluster's shared backoff or weekly cap says not before then.
    NotBefore(DateTime<Utc>, String),
}

/// Why the certificate must be replaced although it is valid: it comes from
/// another CA than the one configured (`identity`), which browsers may not
/// trust (staging to production, say).
pub fn other_ca(
    status: &RenewalStatus,
    current: Option<&CertBundle>,
    identity: &str,
) -> Option<String> {
    status
        .issued_by
        .as_deref()
        .filter(|by| current.is_some() && *by != identity)
        .map(|by| {
            format!("the certificate comes from {by}, and the configuration now names {identity}")
        })
}

#[derive(Debug, Clone)]
pub struct RenewalPolicy {
    /// Renew when fewer than this remain, or a third of the lifetime if shorter.
    pub renew_before: chrono::Duration,
    pub check_every: Duration,
    /// The first retry after a failure; each further failure doubles it.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// Most certificates per rolling week (Let's Encrypt allows 5 duplicates).
    pub weekly_cap: Option<usize>,
}

impl RenewalPolicy {
    /// The policy for a public CA: retries at 1, 2, 4, 8 minutes (fewer than
    /// Let's Encrypt's 5 failed validations per hour), then up to 12 hours
    /// apart; at most 4 certificates a week.
    pub fn public(renew_before_days: u32, check_every: Duration) -> RenewalPolicy {
        RenewalPolicy {
            renew_before: chrono::Duration::days(renew_before_days.into()),
            check_every,
            first_retry: Duration::from_secs(60),
            max_retry: Duration::from_secs(12 * 3600),
            weekly_cap: Some(4),
        }
    }

    /// The policy for the in-process CA: no limits to respect, quick retries.
    pub fn local(renew_before_days: u32, check_every: Duration) -> RenewalPolicy {
        RenewalPolicy {
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(300),
            weekly_cap: None,
            ..RenewalPolicy::public(renew_before_days, check_every)
        }
    }

    /// When `bundle` enters its renewal window.
    pub fn renew_after(&self, bundle: &CertBundle) -> DateTime<Utc> {
        let lifetime = bundle.not_after - bundle.not_before;
        bundle.not_after - self.renew_before.min(lifetime / 3)
    }

    /// Why a certificate must be ordered now, or `None` if the current one is fine.
    pub fn reason_to_order(
        &self,
        current: Option<&CertBundle>,
        domains: &[SiteName],
        now: DateTime<Utc>,
        ca_window_opens: Option<DateTime<Utc>>,
    ) -> Option<String> {
        let Some(bundle) = current else {
            return Some("no certificate yet".into());
        };
        if let Err(e) = bundle.check(domains, now) {
            return Some(e.to_string());
        }
        if now >= self.renew_after(bundle) {
            return Some(format!(
                "it expires on {}, inside the renewal window",
                crate::clock::for_people(bundle.not_after)
            ));
        }
        if ca_window_opens.is_some_and(|at| now >= at) {
            return Some("the CA suggests renewing now (ACME renewal information)".into());
        }
        None
    }

    /// How long to wait after `failures` consecutive failures.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.first_retry.saturating_mul(factor).min(self.max_retry)
    }

    /// The decision of a node that has just taken the lease, from what the
    /// shared store holds now (`current`, `status`): the check that sent it
    /// there looked at an older picture. The backoff after a failure and the
    /// weekly cap are the cluster's, so no node hammers the CA where another
    /// just failed.
    pub fn in_turn(
        &self,
        current: Option<&CertBundle>,
        status: &RenewalStatus,
        domains: &[SiteName],
        now: DateTime<Utc>,
        identity: &str,
    ) -> Turn {
        let Some(reason) = other_ca(status, current, identity)
            .or_else(|| self.reason_to_order(current, domains, now, None))
        else {
            return Turn::NotNeeded;
        };
        if let Some(at) = status
            .next_check
            .filter(|at| status.consecutive_failures > 0 && *at > now)
        {
            return Turn::NotBefore(
                at,
                format!(
                    "the last attempt failed ({}); the cluster tries again then",
                    status.last_error.as_deref().unwrap_or("no reason recorded")
                ),
            );
        }
        if let Some(until) = self.capped_until(&status.issued, now) {
            return Turn::NotBefore(
                until,
                format!(
                    "{} certificates were issued in the last 7 days, the weekly limit",
                    self.weekly_cap.unwrap_or_default()
                ),
            );
        }
        Turn::Order(reason)
    }

    /// If the weekly cap is reached, when the next certificate may be ordered.
    pub fn capped_until(
        &self,
        issued: &[DateTime<Utc>],
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let cap = self.weekly_cap?;
        let mut recent: Vec<_> = issued
            .iter()
            .filter(|t| now - **t < WEEK)
            .copied()
            .collect();
        if recent.len() < cap {
            return None;
        }
        recent.sort();
        Some(recent[recent.len() - cap] + WEEK)
    }

    /// The regular check interval, spread by ±10% so that many servers do not
    /// hit the CA in step. `unit` is a random number in [0, 1).
    pub fn next_check(&self, now: DateTime<Utc>, unit: f64) -> DateTime<Utc> {
        let spread = self.check_every.as_secs_f64() * (0.9 + 0.2 * unit);
        now + chrono::Duration::milliseconds((spread * 1000.0) as i64)
    }
}

/// How long to wait for another node's order, spread by `unit` (in [0, 1))
/// over one to two times [`TURN_WAIT`].
pub fn turn_wait(unit: f64) -> Duration {
    TURN_WAIT.mul_f64(1.0 + unit)
}

/// A random number in [0, 1).
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::CertBundle;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn bundle(now: DateTime<Utc>) -> CertBundle {
        CertBundle::temporary(&["blog.test".parse::<SiteName>().unwrap()], now).unwrap()
    }

    #[test]
    fn renewal_window_is_the_shorter_of_days_and_a_third() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(8 * 3600));
        let start = at("2026-01-01T00:00:00Z");
        let b = bundle(start);
        // A one-day certificate (plus 5 minutes back-dating): a third, not 30 days.
        let after = policy.renew_after(&b);
        assert!(after > start + chrono::Duration::hours(15) && after < b.not_after);
        let domains = ["blog.test".parse::<SiteName>().unwrap()];
        assert_eq!(
            policy.reason_to_order(Some(&b), &domains, start, None),
            None
        );
        assert!(
            policy
                .reason_to_order(Some(&b), &domains, after, None)
                .unwrap()
                .contains("renewal window")
        );
        assert!(
            policy
                .reason_to_order(None, &domains, start, None)
                .is_some()
        );
        let other = ["other.test".parse::<SiteName>().unwrap()];
        assert!(
            policy
                .reason_to_order(Some(&b), &other, start, None)
                .unwrap()
                .contains("does not cover")
        );
        let ari = Some(start + chrono::Duration::hours(1));
        assert!(
            policy
                .reason_to_order(Some(&b), &domains, start + chrono::Duration::hours(2), ari)
                .unwrap()
                .contains("renewal information")
        );
    }

    #[test]
    fn an_expired_intermediate_means_a_new_order() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 2, 1);
        let intermediate =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["blog.test".to_string()]).unwrap();
        leaf.not_before = rcgen::date_time_ymd(2026, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2026, 12, 1);
        let leaf = leaf.signed_by(&key, &intermediate).unwrap();
        let chain = format!("{}{}", leaf.pem(), intermediate.pem());
        let b = CertBundle::from_pem(chain.as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        let policy = RenewalPolicy::public(30, Duration::from_secs(3600));
        let domains = ["blog.test".parse::<SiteName>().unwrap()];
        assert_eq!(
            policy.reason_to_order(Some(&b), &domains, at("2026-01-15T00:00:00Z"), None),
            None
        );
        let reason = policy.reason_to_order(Some(&b), &domains, at("2026-03-01T00:00:00Z"), None);
        assert!(
            reason
                .unwrap()
                .contains("issuer certificate in the chain expired")
        );
    }

    #[test]
    fn failures_back_off_exponentially_to_a_cap() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(3600));
        let delays: Vec<u64> = (1..=4).map(|n| policy.retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480]);
        assert_eq!(policy.retry_delay(40), Duration::from_secs(12 * 3600));
    }

    #[test]
    fn weekly_cap_counts_a_rolling_week() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(3600));
        let now = at("2026-01-10T00:00:00Z");
        let issued: Vec<_> = (1..=4).map(|d| now - chrono::Duration::days(d)).collect();
        assert_eq!(
            policy.capped_until(&issued, now),
            Some(now - chrono::Duration::days(4) + WEEK)
        );
        assert_eq!(policy.capped_until(&issued[..3], now), None);
        let old: Vec<_> = (8..=11).map(|d| now - chrono::Duration::days(d)).collect();
        assert_eq!(policy.capped_until(&old, now), None);
        assert_eq!(
            RenewalPolicy::local(30, Duration::from_secs(1)).capped_until(&issued, now),
            None
        );
    }

    #[test]
    fn a_node_in_turn_orders_only_what_the_store_still_needs() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(3600));
        let now = at("2026-01-10T00:00:00Z");
        let domains = ["blog.test".parse::<SiteName>().unwrap()];
        let status = RenewalStatus {
            issued_by: Some("pebble".into()),
            ..Default::default()
        };
        // The check saw an old certificate, in its window; after taking the
        // lease the store holds a fresh one, ordered by another node.
        let stale = bundle(now - chrono::Duration::hours(20));
        let fresh = bundle(now - chrono::Duration::minutes(1));
        assert!(matches!(
            policy.in_turn(Some(&stale), &status, &domains, now, "pebble"),
            Turn::Order(_)
        ));
        assert_eq!(
            policy.in_turn(Some(&fresh), &status, &domains, now, "pebble"),
            Turn::NotNeeded
        );
        assert!(matches!(
            policy.in_turn(None, &status, &domains, now, "pebble"),
            Turn::Order(_)
        ));
        // From another CA, even a fresh one is replaced.
        assert!(matches!(
            policy.in_turn(Some(&fresh), &status, &domains, now, "letsencrypt"),
            Turn::Order(r) if r.contains("comes from pebble")
        ));
    }

    #[test]
    fn a_node_in_turn_keeps_the_clusters_backoff_and_cap() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(3600));
        let now = at("2026-01-10T00:00:00Z");
        let domains = ["blog.test".parse::<SiteName>().unwrap()];
        let retry = now + chrono::Duration::minutes(4);
        let failed = RenewalStatus {
            consecutive_failures: 3,
            next_check: Some(retry),
            last_error: Some("rate limited".into()),
            ..Default::default()
        };
        assert!(matches!(
            policy.in_turn(None, &failed, &domains, now, "pebble"),
            Turn::NotBefore(at, why) if at == retry && why.contains("rate limited")
        ));
        assert!(matches!(
            policy.in_turn(None, &failed, &domains, retry, "pebble"),
            Turn::Order(_)
        ));
        let capped = RenewalStatus {
            issued: (1..=4).map(|d| now - chrono::Duration::days(d)).collect(),
            ..Default::default()
        };
        assert!(matches!(
            policy.in_turn(None, &capped, &domains, now, "pebble"),
            Turn::NotBefore(at, _) if at == now + chrono::Duration::days(3)
        ));
        // A good certificate is never ordered, capped or not.
        let fresh = bundle(now - chrono::Duration::minutes(1));
        assert_eq!(
            policy.in_turn(Some(&fresh), &failed, &domains, now, "pebble"),
            Turn::NotNeeded
        );
    }

    #[test]
    fn the_wait_for_another_nodes_order_is_short_and_spread() {
        assert_eq!(turn_wait(0.0), TURN_WAIT);
        assert!(turn_wait(0.999) < TURN_WAIT * 2);
    }

    #[test]
    fn checks_are_jittered_within_ten_percent() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(8 * 3600));
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(
            policy.next_check(now, 0.5),
            now + chrono::Duration::hours(8)
        );
        assert!(policy.next_check(now, 0.0) >= now + chrono::Duration::minutes(432));
        assert!(policy.next_check(now, 0.999) < now + chrono::Duration::minutes(529));
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }
}
