//! Manual mode: the operator's PEM files, checked at start (a bad pair stops
//! quire with the reason) and watched afterwards: a good new pair is swapped in
//! live, a bad one is refused with a log line while the current one serves on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{CertBundle, CertResolver};
use crate::clock::SharedClock;
use crate::config::Domain;
use crate::shutdown::Shutdown;

/// Where manual mode reads its certificate from.
#[derive(Clone)]
pub struct ManualFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub domains: Vec<Domain>,
}

impl ManualFiles {
    /// Loads and checks the pair as of `clock`'s now.
    pub fn load(&self, clock: &SharedClock) -> anyhow::Result<CertBundle> {
        let bundle = CertBundle::from_files(&self.cert_file, &self.key_file)
            .and_then(|b| b.check(&self.domains, clock.now()).map(|()| b))
            .map_err(|e| {
                anyhow::anyhow!(
                    "manual certificate {} with key {}: {e}",
                    self.cert_file.display(),
                    self.key_file.display()
                )
            })?;
        Ok(bundle)
    }
}

/// Editors and tools replace both files in a few steps; act once they settle.
const SETTLE: Duration = Duration::from_millis(200);

/// Notifications for changes to the two files, registered before they are
/// first read so that no replacement falls between the read and the watch.
pub struct CertFilesWatch {
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::Receiver<()>,
}

impl CertFilesWatch {
    pub fn start(files: &ManualFiles) -> notify::Result<CertFilesWatch> {
        let (tx, changes) = mpsc::channel::<()>(16);
        let names: Vec<PathBuf> = [&files.cert_file, &files.key_file]
            .iter()
            .filter_map(|p| p.file_name().map(PathBuf::from))
            .collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.kind.is_access() {
                    return;
                }
                if event
                    .paths
                    .iter()
                    .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
                {
                    let _ = tx.try_send(());
                }
            })?;
        // Watch the folders, not the files: tools replace files by renaming.
        let mut dirs: Vec<&Path> = [&files.cert_file, &files.key_file]
            .iter()
            .map(|p| {
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
            })
            .collect();
        dirs.dedup();
        for dir in dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(CertFilesWatch {
            _watcher: watcher,
            changes,
        })
    }
}

/// Installs each good new pair that `watch` notices, until shutdown.
pub async fn watch(
    files: ManualFiles,
    watch: CertFilesWatch,
    resolver: Arc<CertResolver>,
    clock: SharedClock,
    shutdown: Shutdown,
) {
    let CertFilesWatch {
        _watcher,
        mut changes,
    } = watch;
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            Some(()) = changes.recv() => {
                while let Ok(Some(())) = tokio::time::timeout(SETTLE, changes.recv()).await {}
                match files.load(&clock) {
                    Ok(bundle) => {
                        tracing::info!(names = ?bundle.names, not_after = %bundle.not_after, "installed the new manual certificate");
                        resolver.install(&[bundle]);
                    }
                    Err(e) => tracing::error!("refused the changed certificate files, still serving the previous certificate: {e:#}"),
                }
            }
        }
    }
}
