//! Building the parts of `quire serve` from its configuration, each ready for
//! [`super::start_with`] to spawn: manual mode's certificate, the first site
//! build with its watcher, the statistics, the public routers, the local CA's
//! listener, and the lines that say where the server listens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::activities::{CertificateFiles, ContentWatcher};
use crate::acme::service::LocalCaEndpoint;
use crate::clock::SharedClock;
use crate::cluster::{self, Cluster};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::net::{App, Listeners, SocketName};
use crate::site::snapshot::BuildSummary;
use crate::site::watcher::FileWatch;
use crate::site::{self, BuildInputs, LiveSite};
use crate::stats::privacy::Salt;
use crate::stats::schema::Day;
use crate::stats::{Stats, StatsSettings};
use crate::supervisor::Prepared;
use crate::tls::CertResolver;
use crate::tls::manual::{CertFilesWatch, ManualFiles};
use crate::web::{self, ChallengeMap, LivePolicy};

/// Manual mode's certificate pair, read now, and the activity that installs
/// the pairs written later.
/// The shared PostgreSQL of a cluster, with every activity's tables; `None`
/// for a single node. Reaching it happens in the background.
pub fn cluster(config: &Config, clock: &SharedClock) -> Option<Cluster> {
    let areas: Vec<&'static cluster::Area> = vec![
        &crate::acme::pg_store::AREA,
        &crate::acme::challenges::AREA,
        &crate::stats::postgres::AREA,
    ];
    let cluster = Cluster::start(config.cluster.as_ref()?, clock.clone(), areas);
    tracing::info!(
        "node {} of a cluster on {}",
        cluster.node(),
        cluster.target()
    );
    Some(cluster)
}

pub fn manual_certificates(
    config: &Config,
    serves_tls: bool,
    clock: &SharedClock,
) -> anyhow::Result<Option<CertificateFiles>> {
    let (Some(cert_file), Some(key_file), true) =
        (&config.tls.cert_file, &config.tls.key_file, serves_tls)
    else {
        return Ok(None);
    };
    let files = ManualFiles {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
        domains: config.domains.clone(),
    };
    // Watch before the first read, so a pair replaced meanwhile is still seen.
    let first_watch = Prepared::new(CertFilesWatch::start(&files).ok());
    let resolver = CertResolver::new(files.load(clock)?);
    Ok(Some(CertificateFiles {
        files,
        first_watch,
        resolver,
        clock: clock.clone(),
    }))
}

/// The site, built once, in the watcher that rebuilds it.
pub async fn site(
    config: &Config,
    clock: &SharedClock,
) -> anyhow::Result<(ContentWatcher, BuildSummary)> {
    let inputs = Arc::new(BuildInputs::from_config(config));
    // Watch before the first build, so an edit made meanwhile still triggers a rebuild.
    let files = match FileWatch::start(&inputs, &config.paths.templates) {
        Ok(files) => Some(files),
        Err(e) => {
            tracing::error!(
                "cannot watch {} for changes ({e}); the site is served, but edits need a restart. On Linux, raising fs.inotify.max_user_watches usually helps",
                config.paths.content.display()
            );
            None
        }
    };
    let first = {
        let inputs = inputs.clone();
        let now = clock.now();
        tokio::task::spawn_blocking(move || site::build(&inputs, now, None))
            .await
            .context("the first site build panicked")??
    };
    for problem in &first.summary.problems {
        problem.log();
    }
    let summary = first.summary.clone();
    let watcher = ContentWatcher {
        site: LiveSite::new(first),
        inputs,
        templates: config.paths.templates.clone(),
        first_watch: Prepared::new(files),
        clock: clock.clone(),
    };
    Ok((watcher, summary))
}

/// Reading statistics, unless disabled. After an upgrade the store opens
/// once the predecessor has let go of it; meanwhile views are counted with
/// its salts, so that a reader stays one visitor. A node of a cluster keeps
/// them in the shared tables, which no process holds alone.
pub async fn stats(
    config: &Config,
    clock: &SharedClock,
    cluster: Option<&Cluster>,
    predecessor_salts: Option<&[(Day, Salt)]>,
) -> Option<Stats> {
    if !config.stats.enabled {
        return None;
    }
    if let Some(cluster) = cluster {
        return Some(Stats::open_shared(config, cluster, clock.clone()).await);
    }
    Some(match predecessor_salts {
        Some(salts) => Stats::awaiting_store(
            StatsSettings::from_config(config),
            clock.clone(),
            salts.to_vec(),
        ),
        None => Stats::open(config, clock.clone()),
    })
}

/// What the public listeners serve: the site, and on the HTTP listener
/// (when serving TLS) challenges and redirects to HTTPS, else the site too.
pub fn public_apps(
    site: &LiveSite,
    policy: &LivePolicy,
    stats: Option<&Stats>,
    challenges: &ChallengeMap,
    metrics: &Metrics,
    serves_tls: bool,
) -> (App, App) {
    let site_app = App::Direct(Arc::new(web::Site {
        site: site.clone(),
        policy: policy.clone(),
        recorder: stats.map(|s| s.recorder().clone()),
        metrics: metrics.clone(),
    }));
    let http_app = match serves_tls {
        true => App::Direct(Arc::new(web::HttpSide {
            challenges: challenges.clone(),
            policy: policy.clone(),
            metrics: metrics.clone(),
        })),
        false => site_app.clone(),
    };
    (site_app, http_app)
}

/// The local CA's listener, added to `listeners`; where its root is.
pub fn local_ca(ca: LocalCaEndpoint, config: &Config, listeners: &mut Listeners) -> PathBuf {
    let root = ca.ca.root_pem_path();
    tracing::info!(
        "local CA at {}; its root is {} (trust it with: curl --cacert {} {})",
        ca.directory,
        root.display(),
        root.display(),
        config.site.base_url
    );
    let tls = ca.ca.server_config();
    listeners.add(
        SocketName::LocalCa,
        ca.socket,
        Some(tls.into()),
        App::Router(ca.app),
    );
    root
}

/// Says where the server listens and what it serves.
pub fn log_serving(
    config: &Config,
    http: SocketAddr,
    https: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    summary: &BuildSummary,
) {
    tracing::info!("listening on http://{http}");
    if let Some(addr) = https {
        tracing::info!("listening on https://{addr}");
    }
    if let Some(addr) = metrics {
        tracing::info!("metrics and dashboard on http://{addr}/");
    }
    tracing::info!(
        posts = summary.posts,
        pages = summary.pages,
        problems = summary.problems.len(),
        ms = summary.took.as_millis() as u64,
        "serving {} at {} (open {})",
        config.paths.content.display(),
        config.site.base_url,
        config.site.base_url,
    );
}
