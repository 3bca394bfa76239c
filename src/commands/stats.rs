//! `quire stats [--days N] [--by-node]`: the report as tables. A running
//! server answers through the control socket (it holds the store open, and
//! flushes first); otherwise the store is read directly. A node of a
//! cluster reports from the shared tables, so its report is the cluster's
//! (read by the command itself, as an observer, when the node is not
//! running); `--by-node` adds each node's totals.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::{load_config, runtime};
use crate::cli::ConfigArgs;
use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::config::{ClusterConfig, Config, Overrides};
use crate::control::client;
use crate::control::protocol::Request;
use crate::datadir::DataDir;
use crate::stats::postgres::PgStats;
use crate::stats::{Stats, StatsSettings};

pub fn run(
    config: &ConfigArgs,
    data_dir: Option<PathBuf>,
    days: u32,
    by_node: bool,
    clock: SharedClock,
) -> anyhow::Result<ExitCode> {
    let config = load_config(config, Overrides::data_dir(data_dir))?;
    let text = runtime()?.block_on(report(&config, days, by_node, clock))?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn report(
    config: &Config,
    days: u32,
    by_node: bool,
    clock: SharedClock,
) -> anyhow::Result<String> {
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    if by_node && config.cluster.is_none() {
        anyhow::bail!(
            "--by-node is for a node of a cluster ([cluster] in the config); this one counts alone"
        );
    }
    let request = Request::Stats { days, by_node };
    if let Some(text) = client::ask_if_running(&config.paths.data, &request).await? {
        return Ok(format!("{text}\n(reported by the running server)"));
    }
    if let Some(cluster) = &config.cluster {
        return cluster_report(config, cluster, days, by_node, clock).await;
    }
    local_report(config, days, clock).await
}

/// The cluster's report read from the shared tables as an observer: not
/// as this node, which would heartbeat in its name while it is down (and
/// other nodes would wait for it to acknowledge challenges).
async fn cluster_report(
    config: &Config,
    cluster: &ClusterConfig,
    days: u32,
    by_node: bool,
    clock: SharedClock,
) -> anyhow::Result<String> {
    let backend = PgStats::new(
        Cluster::observe(cluster, clock.clone()),
        tokio::runtime::Handle::current(),
    );
    // No outbox: the node's own is its to add when it starts.
    let settings = StatsSettings {
        outbox: None,
        ..StatsSettings::from_config(config)
    };
    let text = tokio::task::spawn_blocking(move || {
        let stats = Stats::new(Box::new(backend), settings, clock)?;
        let mut text = crate::stats::command::report_text(&stats, days)?;
        if by_node && let Some(nodes) = crate::stats::command::by_node_text(&stats, days)? {
            text.push_str(&nodes);
        }
        Ok::<_, crate::stats::StatsStoreError>(text)
    })
    .await
    .context("the statistics query panicked")?
    .with_context(|| {
        format!(
            "no node of this cluster runs here, and reading its statistics in {} failed",
            cluster.postgres
        )
    })?;
    Ok(format!(
        "{text}\n(read from the shared tables: no node runs here)"
    ))
}

async fn local_report(config: &Config, days: u32, clock: SharedClock) -> anyhow::Result<String> {
    let dir = DataDir::new(&config.paths.data).stats();
    if !dir.is_dir() {
        anyhow::bail!(
            "no statistics yet: {} does not exist. Start the server (`quire serve`) and read a few pages first",
            dir.display()
        );
    }
    let settings = StatsSettings::from_config(config);
    let data = config.paths.data.clone();
    tokio::task::spawn_blocking(move || {
        let store = crate::stats::open_disk_store(&data)?;
        let stats = Stats::new(Box::new(store), settings, clock)?;
        crate::stats::command::report_text(&stats, days)
    })
    .await
    .context("the statistics query panicked")?
    .map_err(Into::into)
}
