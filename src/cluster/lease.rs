//! Leases by the database's clock: a name, a holder, a time-to-live and a
//! fencing token that grows with each new holder, in `quire_leases`. Only the
//! database's `now()` decides whether a lease is live, since the nodes' clocks
//! are not trusted across machines; a node learns how long it has left and
//! counts that on its own injected clock. A writer checks its token with
//! [`check_fence`] in the same transaction as the write, so a node that lost
//! its lease (paused past its expiry, then taken over) cannot overwrite what
//! the new holder wrote.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{Area, Cluster, ClusterError};

pub const AREA: Area = Area {
    name: "leases",
    steps: &["CREATE TABLE quire_leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        token bigint NOT NULL,
        expires timestamptz NOT NULL
    )"],
};

/// A lease this node took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLease {
    pub name: String,
    pub holder: String,
    /// Grows with each new holder.
    pub token: u64,
    pub ttl: Duration,
    /// When it runs out, on this node's clock: its clock when the database
    /// answered, plus what the database said was left.
    pub expires_local: DateTime<Utc>,
}

/// Any lease, as `quire cluster status` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub name: String,
    pub holder: String,
    pub token: u64,
    /// By the database's clock.
    pub expires: DateTime<Utc>,
    pub live: bool,
}

fn seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

fn expires_local(cluster: &Cluster, left_seconds: f64) -> DateTime<Utc> {
    let left = chrono::Duration::milliseconds((left_seconds * 1000.0) as i64);
    cluster.clock().now() + left
}

/// Takes `name` for `ttl` if it is free or has expired by the database's
/// clock, with a token one above the last holder's.
pub async fn acquire(
    cluster: &Cluster,
    name: &str,
    ttl: Duration,
) -> Result<DbLease, ClusterError> {
    let client = cluster.client().await?;
    let taken = client
        .query_opt(
            "INSERT INTO quire_leases AS l (name, holder, token, expires)
             VALUES ($1, $2, 1, now() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE
                SET holder = excluded.holder, token = l.token + 1, expires = excluded.expires
                WHERE l.expires <= now()
             RETURNING token, extract(epoch FROM expires - now())::float8",
            &[&name, &cluster.node().as_str(), &seconds(ttl)],
        )
        .await?;
    match taken {
        Some(row) => Ok(DbLease {
            name: name.to_string(),
            holder: cluster.node().to_string(),
            token: row.get::<_, i64>(0) as u64,
            ttl,
            expires_local: expires_local(cluster, row.get(1)),
        }),
        None => {
            let row = client
                .query_one(
                    "SELECT holder, expires FROM quire_leases WHERE name = $1",
                    &[&name],
                )
                .await?;
            Err(ClusterError::Held {
                name: name.to_string(),
                holder: row.get(0),
                until: row.get(1),
            })
        }
    }
}

/// Extends `lease` by its time-to-live from the database's now, as long as
/// nobody has taken it since (even past its expiry).
pub async fn renew(cluster: &Cluster, lease: &DbLease) -> Result<DbLease, ClusterError> {
    let client = cluster.client().await?;
    let renewed = client
        .query_opt(
            "UPDATE quire_leases SET expires = now() + make_interval(secs => $3)
             WHERE name = $1 AND token = $2
             RETURNING extract(epoch FROM expires - now())::float8",
            &[&lease.name, &(lease.token as i64), &seconds(lease.ttl)],
        )
        .await?;
    match renewed {
        Some(row) => Ok(DbLease {
            expires_local: expires_local(cluster, row.get(0)),
            ..lease.clone()
        }),
        None => Err(ClusterError::LeaseLost {
            name: lease.name.clone(),
        }),
    }
}

/// Gives `lease` up at once, if it is still ours.
pub async fn release(cluster: &Cluster, lease: &DbLease) -> Result<(), ClusterError> {
    cluster
        .client()
        .await?
        .execute(
            "UPDATE quire_leases SET expires = now() WHERE name = $1 AND token = $2",
            &[&lease.name, &(lease.token as i64)],
        )
        .await?;
    Ok(())
}

/// Inside a write's transaction: refuses unless `token` is the current holder's
/// and unexpired by the database's clock. The row stays share-locked until the
/// transaction ends, so nobody takes the lease over in the middle of the write.
pub async fn check_fence(
    transaction: &impl GenericClient,
    name: &str,
    token: u64,
) -> Result<(), ClusterError> {
    let row = transaction
        .query_opt(
            "SELECT token, expires > now() FROM quire_leases WHERE name = $1 FOR SHARE",
            &[&name],
        )
        .await?;
    let lost = || ClusterError::LeaseLost {
        name: name.to_string(),
    };
    let row = row.ok_or_else(lost)?;
    if row.get::<_, i64>(0) as u64 != token {
        return Err(lost());
    }
    match row.get::<_, bool>(1) {
        true => Ok(()),
        false => Err(ClusterError::LeaseExpired {
            name: name.to_string(),
        }),
    }
}

/// Every lease, by name.
pub async fn holders(cluster: &Cluster) -> Result<Vec<LeaseInfo>, ClusterError> {
    let client = cluster.client().await?;
    holders_on(&client).await
}

/// [`holders`] on a given connection: a command's own, which is no node.
pub async fn holders_on(client: &tokio_postgres::Client) -> Result<Vec<LeaseInfo>, ClusterError> {
    let rows = client
        .query(
            "SELECT name, holder, token, expires, expires > now() FROM quire_leases ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| LeaseInfo {
            name: row.get(0),
            holder: row.get(1),
            token: row.get::<_, i64>(2) as u64,
            expires: row.get(3),
            live: row.get(4),
        })
        .collect())
}
