//! `quire stats [--days N]`: the report as tables. A running server answers
//! through the control socket (it holds the store open, and flushes first);
//! otherwise the store is read directly.

use anyhow::Context;

use super::{Stats, StatsSettings};
use crate::clock::SharedClock;
use crate::config::Config;

/// Rows shown in each ranking.
pub const TOP: usize = 20;

pub async fn run(config: &Config, days: u32, clock: SharedClock) -> anyhow::Result<String> {
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    if let Some(reply) =
        crate::control::request(&config.paths.data, &format!("stats {days}")).await?
    {
        let text = crate::control::into_result(&reply)?;
        return Ok(format!("{text}\n(reported by the running server)"));
    }
    let dir = crate::datadir::DataDir::new(&config.paths.data).stats();
    if !dir.is_dir() {
        anyhow::bail!(
            "no statistics yet: {} does not exist. Start the server (`quire serve`) and read a few pages first",
            dir.display()
        );
    }
    let settings = StatsSettings::from_config(config);
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let store = super::open_disk_store(&config.paths.data)?;
        let stats = Stats::new(Box::new(store), settings, clock)?;
        let report = stats.report(days, TOP)?;
        Ok::<_, super::StatsStoreError>(format!(
            "from {}\n{}",
            stats.store().describe(),
            report.render()
        ))
    })
    .await
    .context("the statistics query panicked")?
    .map_err(Into::into)
}
