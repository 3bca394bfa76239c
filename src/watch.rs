//! Settle-then-act file watching, shared by the site rebuilder and manual
//! certificates: a `notify` watcher turns file system events into the changes
//! its caller names, and [`Watch::settle`] waits out the burst of events that
//! one save makes, so the caller acts once. It knows nothing of what is watched.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Changes waiting to be read; a full queue already holds a pending change,
/// and the settle that follows reads past it, so more are dropped.
const QUEUE: usize = 64;

/// A running watch; dropping it stops the notifications.
pub struct Watch<T> {
    _watcher: notify::RecommendedWatcher,
    changes: Settling<T>,
}

impl<T: Send + 'static> Watch<T> {
    /// Watches each of `paths`; `classify` names the change an event makes, or
    /// `None` to ignore it. Reads never count as changes. Register the watch
    /// before the first read of what it covers, so no edit falls in between.
    pub fn start(
        paths: &[(&Path, RecursiveMode)],
        settle: Duration,
        classify: impl Fn(&notify::Event) -> Option<T> + Send + 'static,
    ) -> notify::Result<Watch<T>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            if let Some(change) = classify(&event) {
                let _ = tx.try_send(change);
            }
        };
        // Links out of the watched folders are never published, so never
        // followed: a link to / would otherwise put a watch on every folder of
        // the system. (Non-recursive watches walk nothing, so lose nothing.)
        let mut watcher = notify::RecommendedWatcher::new(
            handler,
            notify::Config::default().with_follow_symlinks(false),
        )?;
        for (path, mode) in paths {
            watcher.watch(path, *mode)?;
        }
        Ok(Watch {
            _watcher: watcher,
            changes: Settling { rx, settle },
        })
    }

    /// The next change. Cancel-safe, so it can wait in a `select!`.
    pub async fn changed(&mut self) -> Option<T> {
        self.changes.changed().await
    }

    /// Hands each further change to `each` until none has come for the settle
    /// delay: editors and tools write in several steps.
    pub async fn settle(&mut self, each: impl FnMut(T)) {
        self.changes.settle(each).await;
    }
}

/// The queue and the quiet time that ends a burst, apart from the watcher so
/// that the settling can be tested without a file system.
struct Settling<T> {
    rx: mpsc::Receiver<T>,
    settle: Duration,
}

impl<T> Settling<T> {
    async fn changed(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    async fn settle(&mut self, mut each: impl FnMut(T)) {
        while let Ok(Some(change)) = tokio::time::timeout(self.settle, self.rx.recv()).await {
            each(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const SETTLE: Duration = Duration::from_millis(100);

    /// Sends each change at its offset from now, on tokio's paused clock.
    fn settling(at: &[(u64, u32)]) -> Settling<u32> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let start = Instant::now();
        let at = at.to_vec();
        tokio::spawn(async move {
            for (ms, change) in at {
                tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
                tx.send(change).await.unwrap();
            }
            // Keep the sender, so the queue stays open like a live watch.
            std::future::pending::<()>().await;
        });
        Settling { rx, settle: SETTLE }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_collected_until_it_has_been_quiet_for_the_settle_delay() {
        // Each gap is under the delay, so one burst; the last change comes
        // after a gap longer than the delay, so it starts the next one.
        let mut changes = settling(&[(0, 1), (60, 2), (150, 3), (249, 4), (400, 5)]);
        let start = Instant::now();
        assert_eq!(changes.changed().await, Some(1));
        let mut burst = Vec::new();
        changes.settle(|c| burst.push(c)).await;
        assert_eq!(burst, [2, 3, 4]);
        // The timer wheel rounds to whole milliseconds, hence a range.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(249) + SETTLE, "{took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
        assert_eq!(changes.changed().await, Some(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_change_settles_after_the_delay() {
        let mut changes = settling(&[(0, 1)]);
        let start = Instant::now();
        assert_eq!(changes.changed().await, Some(1));
        let mut burst = Vec::new();
        changes.settle(|c| burst.push(c)).await;
        assert!(burst.is_empty());
        let took = start.elapsed();
        assert!(took >= SETTLE && took < 2 * SETTLE, "{took:?}");
    }
}
