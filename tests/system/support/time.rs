//! Waiting on what the test does not control: the file system watcher's
//! timing and the real clock's UTC midnight.

use std::time::{Duration, Instant};

use super::DEADLINE;

/// Polls `probe` until it returns true; for changes that arrive through the
/// file system watcher, whose timing the test does not control.
pub async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits out the last two minutes before a UTC midnight, if it is in them.
///
/// Statistics count views and visitors per UTC day, so a test comparing
/// counts across a run of the real binary (on the real clock) must not
/// straddle midnight: the same reader would count as two visitors.
pub fn clear_of_utc_midnight() {
    use chrono::Timelike;
    const MARGIN: u32 = 120;
    let left = 86_400 - chrono::Utc::now().num_seconds_from_midnight();
    if left <= MARGIN {
        std::thread::sleep(Duration::from_secs(u64::from(left) + 1));
    }
}
