//! Keeps the live site current: rebuilds in the background when files under
//! content/ or static/ change, and when a scheduled post's date arrives (read
//! from the injected clock). The old snapshot serves until the new one is ready.
//! After each build it writes the record of the URLs it served (see `served`)
//! to the data directory, off the request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;

use super::served::Record;
use super::{BuildInputs, LiveSite, SiteSnapshot, build};
use crate::clock::SharedClock;
use crate::datadir::DataDir;
use crate::shutdown::Shutdown;
use crate::watch::Watch;

/// Editors write a file in several steps; wait for a quiet moment before building.
const SETTLE: Duration = Duration::from_millis(100);

enum Change {
    Content,
    Template(PathBuf),
}

/// File system notifications for content/, static/ and templates/, registered
/// before the first build so that no edit falls between the build and the watch.
pub struct FileWatch(Watch<Change>);

impl FileWatch {
    pub fn start(inputs: &BuildInputs, templates_dir: &Path) -> notify::Result<FileWatch> {
        let templates = templates_dir.to_path_buf();
        let data = inputs.data.clone();
        let classify = move |event: &notify::Event| {
            // The data directory may sit inside content/; what quire writes
            // there is never published, so it must not cause rebuilds.
            if event.paths.iter().all(|p| p.starts_with(&data)) {
                return None;
            }
            Some(
                match event.paths.iter().find(|p| p.starts_with(&templates)) {
                    Some(path) if event.paths.iter().all(|p| p.starts_with(&templates)) => {
                        Change::Template(path.clone())
                    }
                    _ => Change::Content,
                },
            )
        };
        let mut paths = vec![(inputs.content.as_path(), RecursiveMode::Recursive)];
        for dir in [&inputs.static_dir, templates_dir] {
            if dir.is_dir() {
                paths.push((dir, RecursiveMode::Recursive));
            }
        }
        Watch::start(&paths, SETTLE, classify).map(FileWatch)
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
    let mut files = files;
    record_served(&inputs, live.snapshot()).await;
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
            Some(change) = next_change(&mut files) => {
                let mut content_changed = note(change);
                if let Some(FileWatch(watch)) = &mut files {
                    watch.settle(|change| content_changed |= note(change)).await;
                }
                if content_changed {
                    rebuild(&live, &inputs, &clock, "files changed").await;
                }
            }
        }
    }
}

/// Without a watch there is never a change, which disables its `select!` branch.
async fn next_change(files: &mut Option<FileWatch>) -> Option<Change> {
    match files {
        Some(FileWatch(watch)) => watch.changed().await,
        None => None,
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
    let previous_served = previous.served.clone();
    let now = clock.now();
    let built = tokio::task::spawn_blocking({
        let inputs = inputs.clone();
        move || build(&inputs, now, Some(&previous))
    })
    .await;
    match built {
        Ok(Ok(snapshot)) => {
            // Live first: once a problem of this build is logged, readers
            // (and tests) get what this build made.
            let summary = snapshot.summary.clone();
            let changed_urls = snapshot.served != previous_served;
            live.replace(snapshot);
            let s = &summary;
            for problem in &s.problems {
                problem.log();
            }
            tracing::info!(
                reason,
                posts = s.posts,
                pages = s.pages,
                problems = s.problems.len(),
                ms = s.took.as_millis() as u64,
                "site rebuilt"
            );
            if changed_urls {
                record_served(inputs, live.snapshot()).await;
            }
        }
        Ok(Err(e)) => tracing::error!("rebuild failed, still serving the previous version: {e}"),
        Err(e) => tracing::error!("rebuild panicked, still serving the previous version: {e}"),
    }
    crate::memory::release_free();
}

/// Writes what the live site serves to the data directory, so that `quire
/// check` can tell which URLs a change would break. The URLs the record had
/// and the site no longer answers are logged first: a server restarted on a
/// new version or config replaces the record, and its log is then the only
/// place that says so. A failure costs only those warnings, so it is logged
/// and serving goes on.
async fn record_served(inputs: &BuildInputs, snapshot: Arc<SiteSnapshot>) {
    let path = DataDir::new(&inputs.data).served_urls();
    let content = inputs.content.clone();
    let written = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            let broken = match Record::read(&path) {
                Ok(Some(previous)) => previous.warnings(
                    |route| snapshot.routes.contains_key(route),
                    &snapshot.sources,
                    &content,
                ),
                _ => Vec::new(),
            };
            snapshot.served.write(&path).map(|()| broken)
        }
    })
    .await;
    match written {
        Ok(Ok(broken)) => {
            for warning in &broken {
                tracing::warn!("{warning}");
            }
            tracing::info!(path = %path.display(), "recorded the served URLs");
        }
        Ok(Err(e)) => tracing::warn!(
            "could not record the served URLs in {}: {e}; `quire check` will not warn about URLs a change breaks until this works (check the data directory's permissions)",
            path.display()
        ),
        Err(e) => tracing::warn!("recording the served URLs panicked: {e}"),
    }
}
