//! What the tests of the running statistics share: settings, a clock that
//! stays on one day, a reader's visit, the totals of today.

use std::net::IpAddr;

use super::*;

pub fn settings() -> StatsSettings {
    StatsSettings {
        recorder: RecorderSettings {
            site: "example.org".into(),
            own_hosts: vec![],
            respect_opt_out: true,
            capacity: 1000,
        },
        flush_every: Duration::from_secs(10),
        retention: Retention {
            hourly_days: 14,
            daily_days: 730,
            settle: Duration::from_secs(80),
        },
        outbox: None,
    }
}

/// A clock that stays on one day, however long the test takes.
pub fn noon() -> SharedClock {
    use chrono::TimeZone;
    crate::clock::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap())
}

pub fn record(stats: &Stats, client: &str) {
    stats.recorder().record(&Hit {
        kind: HitKind::Page,
        path: "/",
        client: client.parse::<IpAddr>().unwrap(),
        user_agent: b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        referer: None,
        opted_out: false,
    })
}

/// Settings whose outbox is under `dir`.
pub fn with_outbox(dir: &Path) -> StatsSettings {
    StatsSettings {
        outbox: Some(DataDir::new(dir).stats_outbox()),
        ..settings()
    }
}

pub fn totals(stats: &Stats) -> (u64, u64, u64) {
    let total = stats.report(1, 10).unwrap().total;
    (total.views, total.visitors, total.dropped)
}
