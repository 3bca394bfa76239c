//! The registry of nodes in `quire_nodes`: each node's last contact (by the
//! database's clock), when it started, its version, the certificate serial it
//! serves and the hash of its content, written by its heartbeat. Publishing
//! challenges waits for the live nodes; `quire cluster status` and the
//! dashboard list them all.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::{Area, Cluster, ClusterError, NodeName};

pub const AREA: Area = Area {
    name: "nodes",
    steps: &["CREATE TABLE quire_nodes (
        node text PRIMARY KEY,
        last_contact timestamptz NOT NULL,
        started timestamptz NOT NULL,
        version text NOT NULL,
        cert_serial text,
        content_hash text
    )"],
};

/// What this node says about itself at each heartbeat.
#[derive(Debug, Clone, Default)]
pub(super) struct Report {
    pub cert_serial: Option<String>,
    pub content_hash: Option<String>,
}

/// One node, as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub node: String,
    /// How long ago it was last heard from, by the database's clock.
    pub last_contact_age: Duration,
    pub started: DateTime<Utc>,
    pub version: String,
    pub cert_serial: Option<String>,
    pub content_hash: Option<String>,
}

/// Writes this node's row, with the database's now as its last contact.
pub(super) async fn heartbeat(
    client: &Client,
    node: &NodeName,
    started: DateTime<Utc>,
    report: &Report,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO quire_nodes (node, last_contact, started, version, cert_serial, content_hash)
             VALUES ($1, now(), $2, $3, $4, $5)
             ON CONFLICT (node) DO UPDATE SET
                last_contact = now(),
                started = excluded.started,
                version = excluded.version,
                cert_serial = coalesce(excluded.cert_serial, quire_nodes.cert_serial),
                content_hash = coalesce(excluded.content_hash, quire_nodes.content_hash)",
            &[
                &node.as_str(),
                &started,
                &env!("CARGO_PKG_VERSION"),
                &report.cert_serial,
                &report.content_hash,
            ],
        )
        .await?;
    Ok(())
}

/// The nodes heard from within `within`, by the database's clock.
pub async fn live_nodes(
    cluster: &Cluster,
    within: Duration,
) -> Result<Vec<NodeName>, ClusterError> {
    let rows = cluster
        .client()
        .await?
        .query(
            "SELECT node FROM quire_nodes
             WHERE last_contact > now() - make_interval(secs => $1) ORDER BY node",
            &[&within.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| row.get::<_, String>(0).parse().ok())
        .collect())
}

/// Every node the registry knows, by name.
pub async fn list(cluster: &Cluster) -> Result<Vec<NodeInfo>, ClusterError> {
    let client = cluster.client().await?;
    list_on(&client).await
}

/// [`list`] on a given connection: a command's own, which is no node.
pub async fn list_on(client: &Client) -> Result<Vec<NodeInfo>, ClusterError> {
    let rows = client
        .query(
            "SELECT node, greatest(extract(epoch FROM now() - last_contact), 0)::float8,
                    started, version, cert_serial, content_hash
             FROM quire_nodes ORDER BY node",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| NodeInfo {
            node: row.get(0),
            last_contact_age: Duration::from_secs_f64(row.get(1)),
            started: row.get(2),
            version: row.get(3),
            cert_serial: row.get(4),
            content_hash: row.get(5),
        })
        .collect())
}
