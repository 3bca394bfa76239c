//! `quire stats [--days N] [--by-node]`: the report as tables. A running
//! server answers through the control socket (it holds the store open, and
//! flushes first); otherwise the store is read directly. A node of a
//! cluster reports from the shared tables, so its report is the cluster's;
//! `--by-node` adds each node's totals.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::{load_config, runtime};
use crate::cli::ConfigArgs;
use crate::clock::SharedClock;
use crate::config::{Config, Overrides};
use crate::control::client;
use crate::control::protocol::Request;
use crate::datadir::DataDir;
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
    if config.cluster.is_some() {
        // Connecting as this node would heartbeat in its name, and other
        // nodes would wait for it (to acknowledge challenges) while it is down.
        anyhow::bail!(
            "the statistics of a cluster are read through a running node: start this one (`quire serve`), or run `quire stats` with the config of a node that runs"
        );
    }
    local_report(config, days, clock).await
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
