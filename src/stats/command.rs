//! The text of `quire stats`: one report, rendered the same whether the
//! running server answers it (through the control socket, having flushed
//! first) or the command reads the store itself; in a cluster, also each
//! node's totals on request.

use super::schema::{Counts, Day};
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

/// Each node's totals over the last `days` days, as a table; `None` for a
/// store of one node.
pub fn by_node_text(stats: &Stats, days: u32) -> Result<Option<String>, StatsStoreError> {
    let today = Day::of(stats.clock().now());
    let from = today.minus(days.max(1) - 1);
    let Some(nodes) = stats.store().report_by_node(from, today)? else {
        return Ok(None);
    };
    let count = |v: u64| v.to_string();
    let row = |name: &str, c: &Counts| {
        vec![
            name.to_string(),
            count(c.views),
            count(c.visitors),
            count(c.feed_fetches),
            count(c.bot_views),
            count(c.not_found),
            count(c.dropped),
        ]
    };
    let rows: Vec<Vec<String>> = nodes.iter().map(|(node, c)| row(node, c)).collect();
    let mut out = String::from("\nPer node\n");
    super::report::table(
        &mut out,
        &[
            "node",
            "views",
            "visitors",
            "feed fetches",
            "bot requests",
            "404s",
            "dropped",
        ],
        &rows,
    );
    out.push_str(
        "a node's visitors are the readers it saw first each day; the nodes' visitors add up to the cluster's.\n",
    );
    Ok(Some(out))
}
