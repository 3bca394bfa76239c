//! The text of `quire stats`: one report, rendered the same whether the
//! running server answers it (through the control socket, having flushed
//! first) or the command reads the store itself.

use super::{Stats, StatsStoreError};

/// Rows shown in each ranking.
const TOP: usize = 20;

/// The last `days` days (today included), naming the store they come from.
pub fn report_text(stats: &Stats, days: u32) -> Result<String, StatsStoreError> {
    let report = stats.report(days, TOP)?;
    Ok(format!(
        "from {}\n{}",
        stats.store().describe(),
        report.render()
    ))
}
