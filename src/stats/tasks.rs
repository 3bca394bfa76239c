//! The statistics activities of a running server: the flusher, which moves
//! what the recorder holds into the backend on the injected clock and
//! retries a failing backend with backoff, and hourly maintenance. Both
//! work through [`Stats`]; neither ever stops the site.

use std::future::Future;
use std::time::Duration;

use super::schema::Hour;
use super::{Maintained, RETRY_CAP, Stats};
use crate::shutdown::Shutdown;

/// The wait before attempt `failures + 1`: 1 s, doubling, up to [`RETRY_CAP`].
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(RETRY_CAP)
}

impl Stats {
    /// Flushes every `flush_every`, or sooner when a buffer is half full,
    /// until shutdown; the last flush is the caller's, once the listeners
    /// have drained. A failed flush is retried after 1 s, 2 s, 4 s... up to
    /// [`RETRY_CAP`], whatever the buffers do, until one works.
    ///
    /// Each wait counts from when the previous attempt started (the first
    /// from this call), so moving an injected clock is enough to drive it.
    pub fn run_flusher(
        self,
        shutdown: Shutdown,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let clock = self.shared.clock.clone();
        // A wait past what a date can hold (a huge flush_every) means never,
        // not a panic.
        let after = |from: chrono::DateTime<chrono::Utc>, wait: Duration| {
            chrono::Duration::from_std(wait)
                .ok()
                .and_then(|wait| from.checked_add_signed(wait))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        };
        let mut next = after(clock.now(), self.shared.flush_every);
        async move {
            let mut failures: u32 = 0;
            loop {
                let filling = async {
                    if failures == 0 {
                        self.shared.recorder.filling().await
                    } else {
                        std::future::pending().await
                    }
                };
                tokio::select! {
                    () = clock.sleep_until(next) => {}
                    () = filling => {}
                    () = shutdown.wait() => return Ok(()),
                }
                let started = clock.now();
                let stats = self.clone();
                let flushed = tokio::task::spawn_blocking(move || {
                    // A failure here is the flush's too, and logged as such.
                    let _ = stats.check_salts();
                    stats.flush_now()
                });
                match flushed.await? {
                    Ok(flushed) if failures > 0 => {
                        tracing::info!(
                            "statistics are being written again, after {failures} failed attempts; the {} views kept meanwhile are saved",
                            flushed.views
                        );
                        failures = 0;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let retry = retry_delay(failures).as_secs();
                        if failures == 1 {
                            tracing::error!(
                                "{e}; views are kept in memory and the flush is retried (in {retry}s, then less often, up to every {}s)",
                                RETRY_CAP.as_secs()
                            );
                        } else {
                            tracing::warn!(
                                "statistics flush attempt {failures} failed: {e}; next in {retry}s"
                            );
                        }
                    }
                }
                let wait = match failures {
                    0 => self.shared.flush_every,
                    n => retry_delay(n),
                };
                next = after(started, wait);
            }
        }
    }

    /// Runs maintenance now, then once an hour, just after each hour settles.
    pub async fn run_maintenance(self, shutdown: Shutdown) -> anyhow::Result<()> {
        loop {
            // The next run follows from when this one started: if the clock
            // passes another hour meanwhile, the next run comes at once.
            let started = self.shared.clock.now();
            let stats = self.clone();
            match tokio::task::spawn_blocking(move || stats.maintain_now()).await? {
                Ok(done) if done != Maintained::default() => {
                    tracing::debug!(?done, "statistics maintenance")
                }
                Ok(_) => {}
                Err(e) => tracing::error!("statistics maintenance failed: {e}; retrying next hour"),
            }
            let settle =
                chrono::Duration::from_std(self.shared.retention.settle).unwrap_or_default();
            let settled_hour = Hour::of(started - settle);
            let next = Hour(settled_hour.0 + 1).start() + settle;
            tokio::select! {
                () = self.shared.clock.sleep_until(next) => {}
                () = shutdown.wait() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stats::fixtures::{noon, record, settings};
    use crate::stats::store::testing::Crashing;
    use crate::stats::{MemoryStore, StatsSettings, StoreHealth};

    #[test]
    fn retries_wait_1_2_4_seconds_and_so_on_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
    }

    /// Polls `done` until it holds; the flusher runs on other threads.
    async fn until(what: &str, done: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("never: {what}"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_flusher_retries_a_failing_store_with_backoff_and_recovers_by_itself() {
        let clock = crate::clock::ManualClock::new(
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 5, 1, 12, 0, 0).unwrap(),
        );
        let store = Arc::new(Crashing::default());
        let stats = Stats::new(Box::new(store.clone()), settings(), clock.clone()).unwrap();
        let shutdown = Shutdown::new();
        let flusher = tokio::spawn(stats.clone().run_flusher(shutdown.clone()));
        let reopened = || store.reopen_attempts();
        record(&stats, "192.0.2.1");
        store.fail_after(0);

        clock.advance(chrono::Duration::seconds(10));
        until("the first flush fails", || {
            matches!(stats.health(), StoreHealth::Retrying(_))
        })
        .await;
        let StoreHealth::Retrying(why) = stats.health() else {
            unreachable!()
        };
        assert!(why.contains("1 views wait in memory"), "{why}");
        let first = reopened();

        clock.advance(chrono::Duration::seconds(1));
        until("the retry after 1 s", || reopened() > first).await;

        store.free_space();
        record(&stats, "192.0.2.2");
        clock.advance(chrono::Duration::seconds(2));
        until("the retry after 2 s works", || {
            stats.health() == StoreHealth::Writing
        })
        .await;
        let total = stats.report(1, 10).unwrap().total;
        assert_eq!((total.views, total.visitors), (2, 2), "nothing lost");
        assert_eq!(reopened(), first + 2, "one attempt per retry, none between");
        shutdown.trigger();
        flusher.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_flush_interval_too_long_for_a_date_means_never_not_a_panic() {
        let stats = Stats::new(
            Box::new(MemoryStore::default()),
            StatsSettings {
                flush_every: Duration::MAX,
                ..settings()
            },
            noon(),
        )
        .unwrap();
        let shutdown = Shutdown::new();
        let flusher = tokio::spawn(stats.run_flusher(shutdown.clone()));
        shutdown.trigger();
        flusher.await.unwrap().unwrap();
    }
}
