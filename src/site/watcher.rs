//! Keeps the live site current: rebuilds in the background when files under
//! content/ or static/ change, and when a scheduled post's date arrives (read
//! from the injected clock). The old snapshot serves until the new one is ready.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{BuildInputs, LiveSite, build};
use crate::clock::SharedClock;
use crate::shutdown::Shutdown;

/// Editors write a file in several steps; wait for a quiet moment before building.
const SETTLE: Duration = Duration::from_millis(100);

enum Change {
    Content,
    Template(PathBuf),
}

/// File system notifications for content/, static/ and templates/, registered
/// before the first build so that no edit falls between the build and the watch.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::Receiver<Change>,
}

impl FileWatch {
    pub fn start(inputs: &BuildInputs, templates_dir: &Path) -> notify::Result<FileWatch> {
        let (tx, changes) = mpsc::channel::<Change>(64);
        let templates = templates_dir.to_path_buf();
        let data = inputs.data.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            // The data directory may sit inside content/; what quire writes
            // there is never published, so it must not cause rebuilds.
            if event.paths.iter().all(|p| p.starts_with(&data)) {
                return;
            }
            let change = match event.paths.iter().find(|p| p.starts_with(&templates)) {
                Some(path) if event.paths.iter().all(|p| p.starts_with(&templates)) => {
                    Change::Template(path.clone())
                }
                _ => Change::Content,
            };
            // A full queue already holds a pending rebuild; dropping is fine.
            let _ = tx.try_send(change);
        };
        // Links out of the folders are never published, so never watched: a
        // link to / would otherwise put a watch on every folder of the system.
        let mut watcher = notify::RecommendedWatcher::new(
            handler,
            notify::Config::default().with_follow_symlinks(false),
        )?;
        watcher.watch(&inputs.content, RecursiveMode::Recursive)?;
        for dir in [&inputs.static_dir, templates_dir] {
            if dir.is_dir() {
                watcher.watch(dir, RecursiveMode::Recursive)?;
            }
        }
        Ok(FileWatch {
            _watcher: watcher,
            changes,
        })
    }
}

/// Runs until shutdown. Without a [`FileWatch`] (it could not start) only
/// scheduled posts trigger rebuilds.
pub async fn run(
    live: LiveSite,
    inputs: Arc<BuildInputs>,
    files: Option<FileWatch>,
    clock: SharedClock,
    shutdown: Shutdown,
) {
    let (_watcher, mut changes) = match files {
        Some(FileWatch { _watcher, changes }) => (Some(_watcher), changes),
        None => (None, mpsc::channel(1).1),
    };
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let next_publish = live.snapshot().summary.next_publish;
        let scheduled = async {
            match next_publish {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = scheduled => rebuild(&live, &inputs, &clock, "a scheduled post is due").await,
            Some(change) = changes.recv() => {
                let mut content_changed = note(change);
                // Collect the burst of events that one save produces.
                while let Ok(Some(change)) = tokio::time::timeout(SETTLE, changes.recv()).await {
                    content_changed |= note(change);
                }
                if content_changed {
                    rebuild(&live, &inputs, &clock, "files changed").await;
                }
            }
        }
    }
}

/// Logs template edits (they need a new binary); true for content changes.
fn note(change: Change) -> bool {
    match change {
        Change::Content => true,
        Change::Template(path) => {
            tracing::warn!(
                "{} changed, but templates are compiled into quire; rebuild the binary (cargo build --release) to use it",
                path.display()
            );
            false
        }
    }
}

/// Builds a new snapshot off the async runtime and swaps it in; on failure the
/// current snapshot keeps serving.
pub async fn rebuild(
    live: &LiveSite,
    inputs: &Arc<BuildInputs>,
    clock: &SharedClock,
    reason: &str,
) {
    let previous = live.snapshot();
    let now = clock.now();
    let inputs = inputs.clone();
    let built = tokio::task::spawn_blocking(move || build(&inputs, now, Some(&previous))).await;
    match built {
        Ok(Ok(snapshot)) => {
            // Live first: once a problem of this build is logged, readers
            // (and tests) get what this build made.
            let summary = snapshot.summary.clone();
            live.replace(snapshot);
            let s = &summary;
            for problem in &s.problems {
                tracing::warn!("{problem}");
            }
            tracing::info!(
                reason,
                posts = s.posts,
                pages = s.pages,
                problems = s.problems.len(),
                ms = s.took.as_millis() as u64,
                "site rebuilt"
            );
        }
        Ok(Err(e)) => tracing::error!("rebuild failed, still serving the previous version: {e}"),
        Err(e) => tracing::error!("rebuild panicked, still serving the previous version: {e}"),
    }
}
