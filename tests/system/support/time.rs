//! Waiting on what the test does not control: the file system watcher's
//! timing, when the certificate manager installs a certificate, and the
//! real clock's UTC midnight.

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

/// Waits until `resolver` serves a certificate from the CA, not the
/// temporary one, and returns a watch of its installs from then on, so the
/// next [`installed`] is a renewal. The manager may install the first one
/// before the test subscribes (it runs on its own as soon as the server
/// starts), so it is looked for, not waited on as a change.
pub async fn first_certificate(
    resolver: &quire::tls::CertResolver,
) -> tokio::sync::watch::Receiver<u64> {
    let mut installs = resolver.subscribe();
    tokio::time::timeout(DEADLINE, async {
        while resolver.served().iter().any(|c| c.temporary) {
            installs.changed().await.unwrap();
        }
    })
    .await
    .expect("the first certificate in time");
    installs.borrow_and_update();
    installs
}

/// Waits for the next certificate install, `what` naming it.
pub async fn installed(installs: &mut tokio::sync::watch::Receiver<u64>, what: &str) {
    tokio::time::timeout(DEADLINE, installs.changed())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap();
}
