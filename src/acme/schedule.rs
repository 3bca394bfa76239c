//! When to order a certificate: inside the renewal window the CA suggests
//! (ACME renewal information, RFC 9773) or, without one, when a third of the
//! lifetime is left (half for short lifetimes); when to ask the CA for that
//! window again; backoff after failures and the weekly cap, which scales with
//! the lifetime. Pure functions of the certificate, the status and "now", so
//! every rule is tested by passing times, not by waiting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::certs::{AriStatus, RenewalStatus};
use crate::names::SiteName;
use crate::tls::CertBundle;

const WEEK: chrono::Duration = chrono::Duration::days(7);

/// Certificates shorter-lived than this renew at half their life, not at
/// two thirds: a 6-day certificate then has 3 days to get a successor
/// through a CA outage, where a third would leave 2.
const SHORT_LIFETIME: chrono::Duration = chrono::Duration::days(10);

/// The renewal information is asked for again at least this often (RFC 9773
/// §4.3 suggests checking a few times a day)...
pub const ARI_MAX_WAIT: Duration = Duration::from_secs(6 * 3600);
/// ...and never more often than this, whatever Retry-After says.
pub const ARI_MIN_WAIT: Duration = Duration::from_secs(60);
/// After the CA failed to answer it, the renewal information is asked for
/// again this much later; the window already known (if any) stays.
pub const ARI_AFTER_ERROR: Duration = Duration::from_secs(3600);

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
/// none of the CAs configured (their `identities`), and browsers may not
/// trust it (staging to production, say). A certificate from any of them,
/// the first or a fallback, serves until its renewal.
pub fn other_ca(
    status: &RenewalStatus,
    current: Option<&CertBundle>,
    identities: &[&str],
) -> Option<String> {
    status
        .issued_by
        .as_deref()
        .filter(|by| current.is_some() && !identities.contains(by))
        .map(|by| {
            format!(
                "the certificate comes from {by}, and the configuration now names {}",
                identities.join(", ")
            )
        })
}

/// A renewal window the CA suggested for a certificate (RFC 9773 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AriWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl AriWindow {
    /// `None` for a window that ends before it starts, which RFC 9773 §4.2
    /// has clients treat as no answer.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<AriWindow> {
        (end >= start).then_some(AriWindow { start, end })
    }

    /// RFC 9773 §4.2: a uniformly random moment in the window, `unit` in
    /// [0, 1) being the chance; [`unit_of`] keeps it the same for a
    /// certificate across checks and restarts.
    pub fn pick(&self, unit: f64) -> DateTime<Utc> {
        let span = (self.end - self.start).num_milliseconds() as f64;
        self.start + chrono::Duration::milliseconds((span * unit) as i64)
    }
}

impl std::fmt::Display for AriWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to {}",
            crate::clock::for_people(self.start),
            crate::clock::for_people(self.end)
        )
    }
}

/// A number in [0, 1) drawn from `bundle`'s serial: the certificate's own
/// random point in any window, stable however often the window is fetched
/// (drawing anew at each check would favour the window's start).
pub fn unit_of(bundle: &CertBundle) -> f64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, &bundle.serial);
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&digest.as_ref()[..4]);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// The window the CA suggested for `bundle`, if the status holds one for it.
pub fn ari_window(ari: Option<&AriStatus>, bundle: &CertBundle) -> Option<AriWindow> {
    ari.filter(|a| a.serial == crate::acme::follow::serial_hex(bundle))
        .and_then(|a| a.window)
}

/// Whether to ask the CA for `bundle`'s renewal information now: never
/// asked for this certificate, or the time set at the last answer has come.
pub fn ari_due(ari: Option<&AriStatus>, bundle: &CertBundle, now: DateTime<Utc>) -> bool {
    match ari {
        Some(a) if a.serial == crate::acme::follow::serial_hex(bundle) => now >= a.next_check,
        _ => true,
    }
}

/// When to ask for the renewal information again: after `wait` (the CA's
/// Retry-After, or one of the constants above), kept between
/// [`ARI_MIN_WAIT`] and [`ARI_MAX_WAIT`].
pub fn ari_next_check(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    let wait = wait.clamp(ARI_MIN_WAIT, ARI_MAX_WAIT);
    now + chrono::Duration::from_std(wait).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct RenewalPolicy {
    /// For certificates of 10 days or more: renew when fewer than this
    /// remain, or a third of the lifetime if shorter.
    pub renew_before: chrono::Duration,
    pub check_every: Duration,
    /// The first retry after a failure; each further failure doubles it.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// Whether certificates per rolling week are capped ([`Self::weekly_cap`]).
    pub capped: bool,
}

impl RenewalPolicy {
    /// The policy for a public CA: retries at 1, 2, 4, 8 minutes (fewer than
    /// Let's Encrypt's 5 failed validations per hour), then up to 12 hours
    /// apart; a weekly cap.
    pub fn public(renew_before_days: u32, check_every: Duration) -> RenewalPolicy {
        RenewalPolicy {
            renew_before: chrono::Duration::days(renew_before_days.into()),
            check_every,
            first_retry: Duration::from_secs(60),
            max_retry: Duration::from_secs(12 * 3600),
            capped: true,
        }
    }

    /// The policy for the in-process CA: no limits to respect, quick retries.
    pub fn local(renew_before_days: u32, check_every: Duration) -> RenewalPolicy {
        RenewalPolicy {
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(300),
            capped: false,
            ..RenewalPolicy::public(renew_before_days, check_every)
        }
    }

    /// When `bundle` is due for renewal by its lifetime alone: when a third
    /// of it is left (half, under 10 days), for long lifetimes no later than
    /// `renew_before` before the end.
    pub fn by_lifetime(&self, bundle: &CertBundle) -> DateTime<Utc> {
        let lifetime = bundle.not_after - bundle.not_before;
        let left = match lifetime < SHORT_LIFETIME {
            true => lifetime / 2,
            false => self.renew_before.min(lifetime / 3),
        };
        bundle.not_after - left
    }

    /// When `bundle` is due for renewal: at its point in the CA's window
    /// when there is one, else by its lifetime. A window that ends after the
    /// certificate does is no advice to follow, and is ignored.
    pub fn renew_after(&self, bundle: &CertBundle, ari: Option<AriWindow>) -> DateTime<Utc> {
        match ari.filter(|w| w.end <= bundle.not_after) {
            Some(window) => window.pick(unit_of(bundle)),
            None => self.by_lifetime(bundle),
        }
    }

    /// Why a certificate must be ordered now, or `None` if the current one
    /// is fine; `ari` is the CA's window for it, if it gave one.
    pub fn reason_to_order(
        &self,
        current: Option<&CertBundle>,
        domains: &[SiteName],
        now: DateTime<Utc>,
        ari: Option<AriWindow>,
    ) -> Option<String> {
        let Some(bundle) = current else {
            return Some("no certificate yet".into());
        };
        if let Err(e) = bundle.check(domains, now) {
            return Some(e.to_string());
        }
        if now < self.renew_after(bundle, ari) {
            return None;
        }
        Some(match ari.filter(|w| w.end <= bundle.not_after) {
            Some(window) => {
                format!("the CA suggests renewing it from {window} (ACME renewal information)")
            }
            None => format!(
                "it expires on {}, inside the renewal window",
                crate::clock::for_people(bundle.not_after)
            ),
        })
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
        identities: &[&str],
    ) -> Turn {
        let Some(reason) = other_ca(status, current, identities)
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
        let lifetime = current.map(|b| b.not_after - b.not_before);
        if let Some(until) = self.capped_until(&status.issued, now, lifetime) {
            return Turn::NotBefore(
                until,
                format!(
                    "{} certificates were issued in the last 7 days, the weekly limit",
                    self.weekly_cap(lifetime).unwrap_or_default()
                ),
            );
        }
        Turn::Order(reason)
    }

    /// Most certificates per rolling week, for certificates of `lifetime`
    /// (`None`: no certificate yet); `None` when uncapped. Enough for every
    /// renewal at half the lifetime, plus one for a renewal the CA asks for
    /// early, and never fewer than 4 (one fewer than Let's Encrypt's 5
    /// duplicates a week): max(4, ceil(7 days / (lifetime / 2)) + 1). So 90
    /// and 45 days get 4, 6 days (up to 3 renewals a week) 4, 1 day 15, an hour
    /// 337; a CA that keeps failing is held off by the backoff meanwhile,
    /// and one that issues but whose certificates are then refused cannot
    /// be asked more than this.
    pub fn weekly_cap(&self, lifetime: Option<chrono::Duration>) -> Option<usize> {
        const FLOOR: usize = 4;
        if !self.capped {
            return None;
        }
        let half = lifetime
            .and_then(|l| u64::try_from((l / 2).num_seconds()).ok())
            .filter(|s| *s > 0);
        Some(match half {
            Some(half) => {
                let renewals = (WEEK.num_seconds() as u64).div_ceil(half);
                FLOOR.max(
                    usize::try_from(renewals)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1),
                )
            }
            None => FLOOR,
        })
    }

    /// If the weekly cap for certificates of `lifetime` is reached, when the
    /// next certificate may be ordered.
    pub fn capped_until(
        &self,
        issued: &[DateTime<Utc>],
        now: DateTime<Utc>,
        lifetime: Option<chrono::Duration>,
    ) -> Option<DateTime<Utc>> {
        let cap = self.weekly_cap(lifetime)?;
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

    /// A certificate for blog.test valid from `from` for `lifetime`.
    fn lasting(from: DateTime<Utc>, lifetime: chrono::Duration) -> CertBundle {
        let mut b = bundle(from);
        b.not_before = from;
        b.not_after = from + lifetime;
        b
    }

    fn domains() -> [SiteName; 1] {
        ["blog.test".parse::<SiteName>().unwrap()]
    }

    #[test]
    fn short_lifetimes_renew_at_half_and_long_ones_at_a_third_or_renew_before() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(8 * 3600));
        let start = at("2026-01-01T00:00:00Z");
        let days = chrono::Duration::days;
        let hours = chrono::Duration::hours;
        for (lifetime, due) in [
            // Under 10 days: half.
            (hours(160), hours(80)),
            (days(6), days(3)),
            (chrono::Duration::minutes(10), chrono::Duration::minutes(5)),
            // 10 days and more: a third left, but no later than 30 days before the end.
            (days(10), days(10) - days(10) / 3),
            (days(45), days(30)),
            (days(90), days(60)),
            (days(200), days(170)),
        ] {
            let b = lasting(start, lifetime);
            assert_eq!(policy.by_lifetime(&b), start + due, "{lifetime}");
            assert_eq!(policy.renew_after(&b, None), start + due, "{lifetime}");
            let before = start + due - chrono::Duration::seconds(1);
            assert_eq!(
                policy.reason_to_order(Some(&b), &domains(), before, None),
                None
            );
            let reason = policy.reason_to_order(Some(&b), &domains(), start + due, None);
            assert!(reason.unwrap().contains("renewal window"), "{lifetime}");
        }
        // renew_before shortens only: 5 days before the end of a 90-day one.
        let b = lasting(start, days(90));
        assert_eq!(
            RenewalPolicy::public(5, Duration::from_secs(3600)).by_lifetime(&b),
            start + days(85)
        );
        assert!(
            policy
                .reason_to_order(None, &domains(), start, None)
                .is_some()
        );
        let other = ["other.test".parse::<SiteName>().unwrap()];
        assert!(
            policy
                .reason_to_order(Some(&b), &other, start, None)
                .unwrap()
                .contains("does not cover")
        );
    }

    #[test]
    fn the_cas_window_decides_when_it_gives_a_usable_one() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(8 * 3600));
        let start = at("2026-01-01T00:00:00Z");
        let b = lasting(start, chrono::Duration::days(90));
        let window = |from: i64, to: i64| {
            AriWindow::new(
                start + chrono::Duration::days(from),
                start + chrono::Duration::days(to),
            )
        };
        // Earlier than the lifetime rule (a CA about to revoke): it wins.
        let early = window(10, 11);
        let due = policy.renew_after(&b, early);
        assert!(
            due >= start + chrono::Duration::days(10) && due <= start + chrono::Duration::days(11)
        );
        assert_eq!(
            due,
            early.unwrap().pick(unit_of(&b)),
            "the certificate's own point in the window"
        );
        let reason = policy.reason_to_order(Some(&b), &domains(), due, early);
        assert!(reason.unwrap().contains("renewal information"));
        assert_eq!(
            policy.reason_to_order(
                Some(&b),
                &domains(),
                due - chrono::Duration::seconds(1),
                early
            ),
            None
        );
        // A window in the past: at once.
        let past = AriWindow::new(
            start - chrono::Duration::hours(2),
            start - chrono::Duration::hours(1),
        );
        assert!(
            policy
                .reason_to_order(Some(&b), &domains(), start, past)
                .is_some()
        );
        // Later than the lifetime rule, but before the end: the CA's word.
        let late = window(70, 72);
        assert!(policy.renew_after(&b, late) >= start + chrono::Duration::days(70));
        assert_eq!(
            policy.reason_to_order(
                Some(&b),
                &domains(),
                start + chrono::Duration::days(65),
                late
            ),
            None
        );
        // Past the certificate's end: no advice to follow.
        let beyond = window(89, 95);
        assert_eq!(
            policy.renew_after(&b, beyond),
            start + chrono::Duration::days(60)
        );
        // Backwards: no window at all.
        assert_eq!(window(5, 4), None);
    }

    #[test]
    fn a_point_in_the_window_is_uniform_and_the_same_for_a_certificate() {
        let start = at("2026-01-01T00:00:00Z");
        let w = AriWindow::new(start, start + chrono::Duration::hours(10)).unwrap();
        assert_eq!(w.pick(0.0), start);
        assert_eq!(w.pick(0.5), start + chrono::Duration::hours(5));
        assert!(w.pick(0.999_999) < w.end);
        let mut b = bundle(start);
        b.serial = vec![1, 2, 3];
        let unit = unit_of(&b);
        assert!((0.0..1.0).contains(&unit));
        assert_eq!(unit, unit_of(&b));
        b.serial = vec![1, 2, 4];
        assert_ne!(unit, unit_of(&b));
    }

    #[test]
    fn renewal_information_is_asked_for_on_its_own_bounded_schedule() {
        let now = at("2026-01-01T00:00:00Z");
        let minutes = chrono::Duration::minutes;
        // Retry-After honoured between a minute and six hours.
        assert_eq!(
            ari_next_check(now, Duration::from_secs(3600)),
            now + minutes(60)
        );
        assert_eq!(ari_next_check(now, Duration::ZERO), now + minutes(1));
        assert_eq!(
            ari_next_check(now, Duration::from_secs(86400)),
            now + minutes(360)
        );
        assert_eq!(ari_next_check(now, ARI_AFTER_ERROR), now + minutes(60));

        let b = bundle(now);
        assert!(ari_due(None, &b, now), "never asked");
        let asked = AriStatus {
            serial: crate::acme::follow::serial_hex(&b),
            window: AriWindow::new(now, now + minutes(5)),
            checked: now,
            next_check: now + minutes(360),
        };
        assert!(!ari_due(Some(&asked), &b, now + minutes(359)));
        assert!(ari_due(Some(&asked), &b, now + minutes(360)));
        assert_eq!(ari_window(Some(&asked), &b), asked.window);
        // About another certificate: stale.
        let newer = bundle(now);
        assert!(ari_due(Some(&asked), &newer, now));
        assert_eq!(ari_window(Some(&asked), &newer), None);
    }

    #[test]
    fn the_weekly_cap_lets_short_lifetimes_renew_and_still_holds() {
        let policy = RenewalPolicy::public(30, Duration::from_secs(3600));
        let days = chrono::Duration::days;
        let hours = chrono::Duration::hours;
        for (lifetime, cap) in [
            (Some(days(90)), 4),
            (Some(days(45)), 4),
            (Some(hours(160)), 4),
            (Some(days(6)), 4),
            (Some(days(1)), 15),
            (Some(hours(1)), 337),
            (None, 4),
        ] {
            assert_eq!(policy.weekly_cap(lifetime), Some(cap), "{lifetime:?}");
        }
        assert_eq!(
            RenewalPolicy::local(30, Duration::from_secs(60)).weekly_cap(Some(days(1))),
            None
        );
        // A 6-day certificate renewed every 3 days (and once early) for
        // weeks on end is never held.
        let mut now = at("2026-01-01T00:00:00Z");
        let mut issued = Vec::new();
        for renewal in 0..12 {
            let early = renewal == 5;
            now += match early {
                true => hours(1),
                false => days(3),
            };
            assert_eq!(
                policy.capped_until(&issued, now, Some(days(6))),
                None,
                "renewal {renewal}"
            );
            issued.push(now);
        }
        // A day-long one ordered hourly (the CA's certificates refused, say)
        // is held after 15.
        let now = at("2026-02-01T00:00:00Z");
        let hourly: Vec<_> = (1..=15).map(|h| now - hours(h)).collect();
        assert_eq!(
            policy.capped_until(&hourly, now, Some(days(1))),
            Some(now - hours(15) + WEEK)
        );
        assert_eq!(policy.capped_until(&hourly[..14], now, Some(days(1))), None);
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
        let lifetime = Some(chrono::Duration::days(90));
        assert_eq!(
            policy.capped_until(&issued, now, lifetime),
            Some(now - chrono::Duration::days(4) + WEEK)
        );
        assert_eq!(policy.capped_until(&issued[..3], now, lifetime), None);
        let old: Vec<_> = (8..=11).map(|d| now - chrono::Duration::days(d)).collect();
        assert_eq!(policy.capped_until(&old, now, lifetime), None);
        assert_eq!(
            RenewalPolicy::local(30, Duration::from_secs(1)).capped_until(&issued, now, lifetime),
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
            policy.in_turn(Some(&stale), &status, &domains, now, &["pebble"]),
            Turn::Order(_)
        ));
        assert_eq!(
            policy.in_turn(Some(&fresh), &status, &domains, now, &["pebble"]),
            Turn::NotNeeded
        );
        assert!(matches!(
            policy.in_turn(None, &status, &domains, now, &["pebble"]),
            Turn::Order(_)
        ));
        // From another CA, even a fresh one is replaced.
        assert!(matches!(
            policy.in_turn(Some(&fresh), &status, &domains, now, &["letsencrypt"]),
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
            policy.in_turn(None, &failed, &domains, now, &["pebble"]),
            Turn::NotBefore(at, why) if at == retry && why.contains("rate limited")
        ));
        assert!(matches!(
            policy.in_turn(None, &failed, &domains, retry, &["pebble"]),
            Turn::Order(_)
        ));
        let capped = RenewalStatus {
            issued: (1..=4).map(|d| now - chrono::Duration::days(d)).collect(),
            ..Default::default()
        };
        assert!(matches!(
            policy.in_turn(None, &capped, &domains, now, &["pebble"]),
            Turn::NotBefore(at, _) if at == now + chrono::Duration::days(3)
        ));
        // A good certificate is never ordered, capped or not.
        let fresh = bundle(now - chrono::Duration::minutes(1));
        assert_eq!(
            policy.in_turn(Some(&fresh), &failed, &domains, now, &["pebble"]),
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
