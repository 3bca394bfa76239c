//! Injectable wall-clock time. Everything that depends on "now" (scheduled posts
//! today, certificate renewal and stats rotation later) reads it through a
//! [`Clock`], so tests move time forward instead of sleeping. Also the one way
//! a moment is written for people ([`for_people`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time that can also wait for a moment to arrive.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// `now()` to within a few milliseconds, cheaper where the platform
    /// allows: for bucketing on the request path.
    fn now_coarse(&self) -> DateTime<Utc> {
        self.now()
    }
    /// Resolves once `now() >= deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
pub struct SystemClock;

/// The longest single timer the system clock arms. Wall time can jump (suspend,
/// NTP step) while a monotonic timer keeps ticking, so long waits re-read the
/// clock at least this often.
const WALL_CLOCK_RECHECK: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn now_coarse(&self) -> DateTime<Utc> {
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut time) };
        match read {
            0 => {
                DateTime::from_timestamp(time.tv_sec, time.tv_nsec as u32).unwrap_or_else(Utc::now)
            }
            _ => Utc::now(),
        }
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        Box::pin(async move {
            loop {
                let Ok(remaining) = (deadline - Utc::now()).to_std() else {
                    return;
                };
                if remaining.is_zero() {
                    return;
                }
                tokio::time::sleep(remaining.min(WALL_CLOCK_RECHECK)).await;
            }
        })
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A moment as people read it, in the log, command output and the dashboard:
/// `2027-02-27 14:13:05 UTC`, the one format for them everywhere. Machine
/// formats (HTTP dates, JSON, feeds, the sitemap, certificate fields, hook
/// variables) keep their own.
pub fn for_people(t: DateTime<Utc>) -> impl std::fmt::Display {
    t.format("%Y-%m-%d %H:%M:%S UTC")
}

/// A clock that only moves when told to; sleepers wake when it passes their deadline.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock {
            now: Mutex::new(start),
            moved: watch::Sender::new(start),
        })
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().expect("manual clock poisoned");
        *now += by;
        self.moved.send_replace(*now);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self.now.lock().expect("manual clock poisoned");
        *now = to;
        self.moved.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("manual clock poisoned")
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current value first, so a deadline already
            // passed resolves at once; a dropped clock never wakes anyone.
            if moved.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn people_read_a_moment_to_the_second_in_utc() {
        assert_eq!(
            for_people(at("2027-02-27T14:13:05.031097123Z")).to_string(),
            "2027-02-27 14:13:05 UTC"
        );
        assert_eq!(
            for_people(at("2026-11-29T23:18:26+01:00")).to_string(),
            "2026-11-29 22:18:26 UTC"
        );
    }

    #[tokio::test]
    async fn manual_sleep_wakes_only_when_moved_past_deadline() {
        let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
        let mut sleeper = tokio::spawn(clock.sleep_until(at("2026-01-02T00:00:00Z")));
        clock.advance(chrono::Duration::hours(12));
        tokio::task::yield_now().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut sleeper)
                .await
                .is_err(),
            "woke before the deadline"
        );
        clock.advance(chrono::Duration::hours(12));
        sleeper.await.unwrap();
    }

    #[tokio::test]
    async fn past_deadline_resolves_immediately() {
        let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
        clock.sleep_until(at("2025-01-01T00:00:00Z")).await;
        SystemClock.sleep_until(Utc::now()).await;
    }
}
