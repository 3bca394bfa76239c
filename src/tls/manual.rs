//! Manual mode: the operator's PEM files, checked at start (a bad pair stops
//! quire with the reason) and watched afterwards: a good new pair is swapped in
//! live, a bad one is refused with a log line while the current one serves on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::RecursiveMode;

use super::{CertBundle, CertResolver};
use crate::clock::SharedClock;
use crate::names::SiteName;
use crate::shutdown::Shutdown;
use crate::watch::Watch;

/// Where manual mode reads its certificate from.
#[derive(Clone)]
pub struct ManualFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub domains: Vec<SiteName>,
}

impl ManualFiles {
    /// Loads and checks the pair as of `clock`'s now.
    pub fn load(&self, clock: &SharedClock) -> anyhow::Result<CertBundle> {
        CertBundle::from_files(&self.cert_file, &self.key_file)
            .and_then(|b| b.check(&self.domains, clock.now()).map(|()| b))
            .with_context(|| {
                format!(
                    "manual certificate {} with key {}",
                    self.cert_file.display(),
                    self.key_file.display()
                )
            })
    }
}

/// Editors and tools replace both files in a few steps; act once they settle.
const SETTLE: Duration = Duration::from_millis(200);

/// Notifications for changes to the two files, registered before they are
/// first read so that no replacement falls between the read and the watch.
pub struct CertFilesWatch(Watch<()>);

impl CertFilesWatch {
    pub fn start(files: &ManualFiles) -> notify::Result<CertFilesWatch> {
        let names: Vec<PathBuf> = [&files.cert_file, &files.key_file]
            .iter()
            .filter_map(|p| p.file_name().map(PathBuf::from))
            .collect();
        let classify = move |event: &notify::Event| {
            event
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
                .then_some(())
        };
        // Watch the folders, not the files: tools replace files by renaming.
        let mut dirs: Vec<(&Path, RecursiveMode)> = [&files.cert_file, &files.key_file]
            .iter()
            .map(|p| {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                (dir, RecursiveMode::NonRecursive)
            })
            .collect();
        dirs.dedup();
        Watch::start(&dirs, SETTLE, classify).map(CertFilesWatch)
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
    let CertFilesWatch(mut watch) = watch;
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            Some(()) = watch.changed() => {
                watch.settle(|()| {}).await;
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
