//! When the operator must hear about the certificate. CAs no longer email
//! expiry warnings (Let's Encrypt stopped in June 2025), so quire raises its
//! own alerts and runs `[tls] alert_hook` for them: when orders keep failing,
//! and when the certificate gets close to its expiry. The hook runs once per
//! change of state (raised, changed, resolved), not at every check, and the
//! state is kept in the certificate status, so a restart does not repeat it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::certs::RenewalStatus;
use crate::config::AlertConfig;
use crate::names::DnsName;
use crate::tls::CertBundle;

/// What is wrong, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alert {
    /// The certificate expires soon (or has expired) and no new one came.
    Expiring,
    /// Orders failed several times in a row.
    Failing,
}

impl Alert {
    pub fn label(self) -> &'static str {
        match self {
            Alert::Expiring => "expiring",
            Alert::Failing => "failing",
        }
    }
}

/// A change the hook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Raised(Alert),
    /// All is well again; the alert that was up.
    Resolved(Alert),
}

/// [`AlertConfig`], applied.
#[derive(Debug, Clone)]
pub struct AlertPolicy(pub AlertConfig);

impl AlertPolicy {
    /// The alert `current` and `status` call for at `now`, if any.
    pub fn assess(
        &self,
        current: Option<&CertBundle>,
        status: &RenewalStatus,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        if let Some(bundle) = current {
            if bundle.not_after - now < self.expiring_within(bundle) {
                return Some(Alert::Expiring);
            }
        }
        (status.consecutive_failures >= self.0.after_failures).then_some(Alert::Failing)
    }

    /// How close to its expiry a certificate raises the alert: the
    /// configured days, or a quarter of its life if that is shorter, so a
    /// six-day certificate (renewed at half its life) alerts a day and a
    /// half before it expires, not from the moment it is issued.
    fn expiring_within(&self, bundle: &CertBundle) -> chrono::Duration {
        let configured = chrono::Duration::days(self.0.days_left.into());
        configured.min((bundle.not_after - bundle.not_before) / 4)
    }

    /// Records in `status` the alert that holds at `now` and, if it differs
    /// from the one recorded, runs the hook for the change.
    pub fn update(
        &self,
        status: &mut RenewalStatus,
        current: Option<&CertBundle>,
        primary: &DnsName,
        now: DateTime<Utc>,
    ) {
        let alert = self.assess(current, status, now);
        let Some(change) = change(status.alert, alert) else {
            return;
        };
        status.alert = alert;
        match change {
            Change::Raised(alert) => tracing::error!(
                "certificate alert for {primary}: {}",
                describe(alert, current.map(|b| b.not_after), status, now)
            ),
            Change::Resolved(was) => tracing::info!(
                "certificate alert for {primary} resolved (it was: {})",
                was.label()
            ),
        }
        if let Some(hook) = &self.0.hook {
            super::hook::spawn(
                "alert hook",
                hook,
                environment(change, current, status, primary, now),
            );
        }
    }
}

/// The change from the alert recorded to the one that holds, if any.
pub fn change(recorded: Option<Alert>, holds: Option<Alert>) -> Option<Change> {
    match (recorded, holds) {
        (was, now) if was == now => None,
        (_, Some(alert)) => Some(Change::Raised(alert)),
        (Some(was), None) => Some(Change::Resolved(was)),
        (None, None) => None,
    }
}

/// One line for the log, the dashboard and `quire cert status`.
pub fn describe(
    alert: Alert,
    not_after: Option<DateTime<Utc>>,
    status: &RenewalStatus,
    now: DateTime<Utc>,
) -> String {
    let last_error = status.last_error.as_deref().unwrap_or("no error recorded");
    match (alert, not_after) {
        (Alert::Expiring, Some(not_after)) if not_after <= now => format!(
            "the certificate expired on {}; last error: {last_error}",
            crate::clock::for_people(not_after)
        ),
        (Alert::Expiring, Some(not_after)) => format!(
            "the certificate expires on {} ({} days left) and no new one came; last error: {last_error}",
            crate::clock::for_people(not_after),
            (not_after - now).num_days()
        ),
        _ => format!(
            "{} orders failed in a row; last error: {last_error}",
            status.consecutive_failures
        ),
    }
}

/// What the hook finds in its environment.
fn environment(
    change: Change,
    current: Option<&CertBundle>,
    status: &RenewalStatus,
    primary: &DnsName,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let mut variables = match change {
        Change::Raised(alert) => vec![
            ("QUIRE_ALERT", alert.label().to_string()),
            (
                "QUIRE_ALERT_MESSAGE",
                describe(alert, current.map(|b| b.not_after), status, now),
            ),
        ],
        Change::Resolved(was) => vec![
            ("QUIRE_ALERT", "resolved".to_string()),
            ("QUIRE_ALERT_WAS", was.label().to_string()),
        ],
    };
    variables.push(("QUIRE_DOMAIN", primary.to_string()));
    variables.push(("QUIRE_FAILURES", status.consecutive_failures.to_string()));
    if let Some(error) = &status.last_error {
        variables.push(("QUIRE_LAST_ERROR", error.clone()));
    }
    if let Some(bundle) = current {
        variables.push(("QUIRE_NOT_AFTER", bundle.not_after.to_rfc3339()));
        variables.push((
            "QUIRE_DAYS_LEFT",
            (bundle.not_after - now).num_days().to_string(),
        ));
    }
    variables
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn policy() -> AlertPolicy {
        AlertPolicy(AlertConfig {
            hook: None,
            after_failures: 3,
            days_left: 7,
        })
    }

    fn failing(n: u32) -> RenewalStatus {
        RenewalStatus {
            consecutive_failures: n,
            last_error: Some("the CA is down".into()),
            ..Default::default()
        }
    }

    /// A certificate valid from `from` for `days` days.
    fn certificate(from: DateTime<Utc>, days: i64) -> CertBundle {
        let mut bundle =
            CertBundle::temporary(&["blog.test".parse::<DnsName>().unwrap()], from).unwrap();
        bundle.not_before = from;
        bundle.not_after = from + chrono::Duration::days(days);
        bundle
    }

    #[test]
    fn failures_raise_the_alert_from_the_configured_count() {
        let now = at("2026-03-01T00:00:00Z");
        let fresh = certificate(now, 90);
        assert_eq!(policy().assess(Some(&fresh), &failing(2), now), None);
        assert_eq!(
            policy().assess(Some(&fresh), &failing(3), now),
            Some(Alert::Failing)
        );
        assert_eq!(
            policy().assess(None, &failing(3), now),
            Some(Alert::Failing)
        );
    }

    #[test]
    fn expiry_raises_the_alert_at_the_configured_days_or_a_quarter_of_the_life() {
        let issued = at("2026-03-01T00:00:00Z");
        let long = certificate(issued, 90);
        let fine = RenewalStatus::default();
        let day = chrono::Duration::days(1);
        assert_eq!(policy().assess(Some(&long), &fine, issued + day * 82), None);
        assert_eq!(
            policy().assess(Some(&long), &fine, issued + day * 84),
            Some(Alert::Expiring)
        );
        assert_eq!(
            policy().assess(Some(&long), &fine, issued + day * 95),
            Some(Alert::Expiring),
            "expired"
        );
        // Six days: a quarter is a day and a half, not seven days.
        let short = certificate(issued, 6);
        assert_eq!(policy().assess(Some(&short), &fine, issued + day * 3), None);
        assert_eq!(
            policy().assess(Some(&short), &fine, issued + day * 5),
            Some(Alert::Expiring)
        );
        // Expiring outranks failing.
        assert_eq!(
            policy().assess(Some(&long), &failing(9), issued + day * 89),
            Some(Alert::Expiring)
        );
    }

    #[test]
    fn only_a_change_of_state_is_told() {
        use Alert::*;
        assert_eq!(change(None, None), None);
        assert_eq!(change(Some(Failing), Some(Failing)), None);
        assert_eq!(change(None, Some(Failing)), Some(Change::Raised(Failing)));
        assert_eq!(
            change(Some(Failing), Some(Expiring)),
            Some(Change::Raised(Expiring))
        );
        assert_eq!(
            change(Some(Expiring), None),
            Some(Change::Resolved(Expiring))
        );
    }

    #[test]
    fn update_records_the_state_so_the_next_check_stays_quiet() {
        let now = at("2026-03-01T00:00:00Z");
        let mut status = failing(3);
        let primary: DnsName = "blog.test".parse().unwrap();
        policy().update(&mut status, None, &primary, now);
        assert_eq!(status.alert, Some(Alert::Failing));
        status.consecutive_failures = 0;
        policy().update(&mut status, Some(&certificate(now, 90)), &primary, now);
        assert_eq!(status.alert, None);
    }

    #[test]
    fn the_hook_is_told_what_happened() {
        let now = at("2026-03-01T00:00:00Z");
        let primary: DnsName = "blog.test".parse().unwrap();
        let bundle = certificate(now - chrono::Duration::days(88), 90);
        let status = failing(4);
        let told = environment(
            Change::Raised(Alert::Expiring),
            Some(&bundle),
            &status,
            &primary,
            now,
        );
        let get = |key: &str| {
            told.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("QUIRE_ALERT"), "expiring");
        assert_eq!(get("QUIRE_DAYS_LEFT"), "2");
        assert_eq!(get("QUIRE_FAILURES"), "4");
        assert_eq!(get("QUIRE_LAST_ERROR"), "the CA is down");
        assert!(get("QUIRE_ALERT_MESSAGE").contains("2 days left"));
        let resolved = environment(
            Change::Resolved(Alert::Failing),
            Some(&bundle),
            &RenewalStatus::default(),
            &primary,
            now,
        );
        assert!(resolved.contains(&("QUIRE_ALERT", "resolved".into())));
        assert!(resolved.contains(&("QUIRE_ALERT_WAS", "failing".into())));
    }
}
