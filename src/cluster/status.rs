//! The cluster as its operator reads it (`quire cluster status`, `/metrics`,
//! the dashboard): every node with its last contact, certificate serial and
//! content hash, every lease, and the two judgements made on them: which
//! nodes went silent, and which serve content that differs from the rest.

use std::time::Duration;

use tokio_postgres::Client;

use super::ClusterError;
use super::lease::{self, LeaseInfo};
use super::nodes::{self, NodeInfo};

/// A node not heard from for longer is called silent: six missed heartbeats.
pub const SILENT_AFTER: Duration = Duration::from_secs(30);

/// What the registry and the leases say, at one read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    pub nodes: Vec<NodeInfo>,
    pub leases: Vec<LeaseInfo>,
}

impl ClusterStatus {
    /// Reads the registry and the leases on `client` (a pooled connection
    /// derefs to one).
    pub async fn read(client: &Client) -> Result<ClusterStatus, ClusterError> {
        Ok(ClusterStatus {
            nodes: nodes::list_on(client).await?,
            leases: lease::holders_on(client).await?,
        })
    }

    pub fn is_silent(node: &NodeInfo) -> bool {
        node.last_contact_age > SILENT_AFTER
    }

    /// The nodes heard from lately.
    pub fn live(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| !Self::is_silent(n))
    }

    /// The content hash more than half of the live nodes that reported one
    /// serve. A silent node's old hash does not vote.
    pub fn majority_hash(&self) -> Option<&str> {
        let hashes: Vec<&str> = self
            .live()
            .filter_map(|n| n.content_hash.as_deref())
            .collect();
        hashes
            .iter()
            .copied()
            .find(|h| hashes.iter().filter(|other| *other == h).count() * 2 > hashes.len())
    }

    /// Whether `node` serves other content than the majority; with no
    /// majority (two nodes, two hashes) every node that reported one does,
    /// since nobody can tell which deploy is the right one.
    pub fn content_differs(&self, node: &NodeInfo) -> bool {
        match (node.content_hash.as_deref(), self.majority_hash()) {
            (None, _) => false,
            (Some(hash), Some(majority)) => hash != majority,
            (Some(_), None) => true,
        }
    }

    /// The nodes whose content differs, by name.
    pub fn differing(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| self.content_differs(n))
            .map(|n| n.node.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, age: u64, hash: Option<&str>) -> NodeInfo {
        NodeInfo {
            node: name.into(),
            last_contact_age: Duration::from_secs(age),
            started: chrono::DateTime::UNIX_EPOCH,
            version: "0.1.0".into(),
            cert_serial: None,
            content_hash: hash.map(Into::into),
        }
    }

    fn status(nodes: Vec<NodeInfo>) -> ClusterStatus {
        ClusterStatus {
            nodes,
            leases: Vec::new(),
        }
    }

    #[test]
    fn the_odd_node_out_differs_and_silent_nodes_do_not_vote() {
        let three = status(vec![
            node("a", 1, Some("x")),
            node("b", 2, Some("x")),
            node("c", 3, Some("y")),
        ]);
        assert_eq!(three.majority_hash(), Some("x"));
        assert_eq!(three.differing(), ["c"]);

        let agreeing = status(vec![node("a", 1, Some("x")), node("b", 1, Some("x"))]);
        assert!(agreeing.differing().is_empty());

        // Two silent nodes with an old deploy do not outvote the live one,
        // and are marked themselves.
        let stale = status(vec![
            node("a", 1, Some("new")),
            node("b", 31, Some("old")),
            node("c", 600, Some("old")),
            node("d", 1, None),
        ]);
        assert_eq!(stale.majority_hash(), Some("new"));
        assert_eq!(stale.differing(), ["b", "c"]);
        let live: Vec<&str> = stale.live().map(|n| n.node.as_str()).collect();
        assert_eq!(live, ["a", "d"]);
    }

    #[test]
    fn with_no_majority_every_node_that_reported_differs() {
        let split = status(vec![
            node("a", 1, Some("x")),
            node("b", 1, Some("y")),
            node("c", 1, None),
        ]);
        assert_eq!(split.majority_hash(), None);
        assert_eq!(split.differing(), ["a", "b"]);
        assert!(status(Vec::new()).differing().is_empty());
    }
}
