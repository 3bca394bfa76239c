//! `/health` and `/ready`. Health says the process answers. Readiness says it
//! can do its job: the site is built, a real certificate that has not expired
//! is being served (when the mode serves HTTPS), and the statistics store is
//! writable (when statistics are on). Each check explains itself in JSON.
//!
//! A statistics store that fails while quire retries it (a full disk) marks
//! its check `degraded` but keeps the server ready: the site is served all
//! along, and a load balancer that took every node out over a statistics
//! disk would turn a lost count into an outage. So does a cluster whose
//! shared PostgreSQL is down: the node serves the certificate it holds.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sources::Sources;
use crate::config::Mode;
use crate::stats::StoreHealth;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    /// Working, but not as it should: the detail says what to fix.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: std::collections::BTreeMap<&'static str, Check>,
}

fn check(ok: bool, detail: impl Into<String>) -> Check {
    Check {
        ok,
        degraded: false,
        detail: detail.into(),
    }
}

pub fn readiness(sources: &Sources, now: DateTime<Utc>) -> Readiness {
    let mut checks = std::collections::BTreeMap::new();
    let snapshot = sources.site.snapshot();
    let summary = &snapshot.summary;
    checks.insert(
        "site",
        check(
            !snapshot.routes.is_empty(),
            format!(
                "{} posts, {} pages, {} problems in the last build",
                summary.posts,
                summary.pages,
                summary.problems.len()
            ),
        ),
    );
    let certificate = match (&sources.resolver, sources.mode) {
        (_, Mode::Off) => check(true, "plain HTTP (mode off); TLS is the proxy's"),
        (None, _) => check(false, "no certificate resolver"),
        (Some(resolver), _) => match resolver.served().first() {
            None => check(false, "no certificate"),
            Some(cert) if cert.temporary => check(
                false,
                "serving the temporary self-signed certificate; the first real one has not arrived (see `quire cert status`)",
            ),
            Some(cert) if cert.not_after <= now => check(
                false,
                format!(
                    "the certificate expired at {}; see `quire cert status`",
                    cert.not_after
                ),
            ),
            Some(cert) => check(
                true,
                format!(
                    "{} from {}, {} days left",
                    cert.names.join(", "),
                    cert.issuer,
                    (cert.not_after - now).num_days()
                ),
            ),
        },
    };
    checks.insert("certificate", certificate);
    let stats = match &sources.stats {
        None => check(true, "statistics are disabled"),
        // During an upgrade the views wait in memory for a moment; the site
        // is served all along, so a load balancer must not take it out.
        Some(stats) if stats.is_awaiting_store() => check(
            true,
            "taking over from the previous process: views wait in memory until it has exited",
        ),
        Some(stats) => match stats.health() {
            StoreHealth::Writing => check(true, format!("writing to {}", stats.store().describe())),
            StoreHealth::Retrying(why) => Check {
                degraded: true,
                ..check(true, why)
            },
            StoreHealth::Unwritable(why) => check(false, why),
        },
    };
    checks.insert("stats", stats);
    if let Some(view) = &sources.cluster {
        let (well, detail) = view.readiness();
        checks.insert(
            "cluster",
            Check {
                degraded: !well,
                ..check(true, detail)
            },
        );
    }
    Readiness {
        ready: checks.values().all(|c| c.ok),
        checks,
    }
}
