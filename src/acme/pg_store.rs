//! The certificate [`Storage`] of a cluster: the same keys as the
//! [`FileStore`](super::store::FileStore) (account, certificates, archive,
//! status), in PostgreSQL's `quire_store`, shared by every node. Leases are
//! the cluster's (time-to-live by the database clock); every write checks
//! the writer's fencing token in its own transaction, so a node that lost the
//! lease cannot overwrite what the new holder stored.
//!
//! Writing a certificate (the live pair) stamps it with a version from one
//! sequence and sends `NOTIFY quire_certificate` in the same transaction:
//! the notification goes out only once the certificate is there to read, and
//! the version is what a node compares to tell whether its copy is current.
//! With the engine down every call fails at once with
//! [`StorageError::Unavailable`] (the pool's waits are bounded).

use std::sync::Arc;
use std::time::Duration;

use super::lease::{Lease, LeaseToken};
use super::store::{Storage, StorageError, StorageFuture};
use crate::cluster::lease::{self as db_lease, DbLease};
use crate::cluster::schema::Area;
use crate::cluster::{self, Channel, Cluster, ClusterError};

/// The largest value stored: certificates and accounts are a few KiB; a
/// bound keeps a bug (or a hostile caller) from filling the database.
pub const MAX_VALUE: usize = 1024 * 1024;

/// The schema of the shared certificate store.
pub const AREA: Area = Area {
    name: "certs",
    steps: &["CREATE TABLE quire_store (
            key text PRIMARY KEY,
            value bytea NOT NULL,
            version bigint NOT NULL,
            written_by text,
            written timestamptz
        );
        CREATE SEQUENCE quire_store_versions;"],
};

/// Whether writing `key` replaces a served certificate: the last of the
/// live pair's two writes (the key goes first), so a node that follows the
/// version reads a whole pair.
pub fn is_certificate(key: &str) -> bool {
    key.starts_with(crate::datadir::CERTS) && key.ends_with("/fullchain.pem")
}

/// [`Storage`] on the cluster's PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    cluster: Cluster,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.cluster.node().as_str())
            .finish()
    }
}

impl From<ClusterError> for StorageError {
    fn from(e: ClusterError) -> StorageError {
        match e {
            ClusterError::Unavailable { .. } => StorageError::Unavailable(e),
            ClusterError::Query(ref query) if lost_connection(query) => {
                StorageError::Unavailable(e)
            }
            other => StorageError::Shared(other),
        }
    }
}

/// Whether a query failed because the engine went away (a pooled
/// connection cut by a restart or an outage) rather than refused it: no
/// answer at all, or SQLSTATE class 08 (connection) or 57 (the operator
/// shut the server down).
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => matches!(&db.code().code()[..2], "08" | "57"),
    }
}

/// What the engine holds for a lease: given up (expired now, if still ours)
/// once the last copy of the [`Lease`] is dropped, so the next node need not
/// wait for the time-to-live.
struct Held {
    cluster: Cluster,
    lease: DbLease,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (cluster, lease) = (self.cluster.clone(), self.lease.clone());
        // Without a runtime (the process is ending) the time-to-live frees it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = db_lease::release(&cluster, &lease).await {
                    tracing::debug!("the lease {} runs out on its own: {e}", lease.name);
                }
            });
        }
    }
}

impl PgStore {
    pub fn new(cluster: Cluster) -> PgStore {
        PgStore { cluster }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn lease(&self, db: DbLease) -> Lease {
        let (name, token, ttl, expires) = (
            db.name.clone(),
            db.token as LeaseToken,
            db.ttl,
            db.expires_local,
        );
        let held = Held {
            cluster: self.cluster.clone(),
            lease: db,
        };
        Lease::new(name, token, ttl, expires, Some(Arc::new(held)))
    }

    /// The version of the certificate stored under `key` (its `fullchain.pem`),
    /// `None` when there is none.
    pub async fn version(&self, key: &str) -> Result<Option<i64>, StorageError> {
        let client = self.cluster.client().await?;
        let row = client
            .query_opt("SELECT version FROM quire_store WHERE key = $1", &[&key])
            .await
            .map_err(ClusterError::from)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Who holds the lease `name` and until when, if anyone does.
    pub async fn holder(
        &self,
        name: &str,
    ) -> Result<Option<(String, chrono::DateTime<chrono::Utc>)>, StorageError> {
        let client = self.cluster.client().await?;
        let row = client
            .query_opt(
                "SELECT holder, expires FROM quire_leases WHERE name = $1 AND expires > now()",
                &[&name],
            )
            .await
            .map_err(ClusterError::from)?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }
}

/// A fenced write's refusal, in the terms of the [`Storage`] contract.
fn fenced(e: ClusterError, lease: &Lease) -> StorageError {
    match e {
        ClusterError::LeaseLost { name } => StorageError::LeaseLost {
            name,
            presented: lease.token(),
            current: "a newer holder's".into(),
        },
        ClusterError::LeaseExpired { name } => StorageError::LeaseExpired {
            name,
            expires: lease.expires(),
        },
        other => other.into(),
    }
}

fn check_key(key: &str) -> Result<(), StorageError> {
    let valid = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    match valid {
        true => Ok(()),
        false => Err(StorageError::BadKey(key.to_string())),
    }
}

impl Storage for PgStore {
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            check_key(key)?;
            let client = self.cluster.client().await?;
            let row = client
                .query_opt("SELECT value FROM quire_store WHERE key = $1", &[&key])
                .await
                .map_err(ClusterError::from)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], lease: &'a Lease) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            check_key(key)?;
            if value.len() > MAX_VALUE {
                return Err(StorageError::TooLarge {
                    key: key.to_string(),
                    size: value.len(),
                });
            }
            let mut client = self.cluster.client().await?;
            let transaction = client.transaction().await.map_err(ClusterError::from)?;
            db_lease::check_fence(&transaction, lease.name(), lease.token())
                .await
                .map_err(|e| fenced(e, lease))?;
            let node = self.cluster.node().as_str();
            let version: i64 = transaction
                .query_one(
                    "INSERT INTO quire_store (key, value, version, written_by, written)
                     VALUES ($1, $2, nextval('quire_store_versions'), $3, now())
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                        version = excluded.version, written_by = excluded.written_by,
                        written = excluded.written
                     RETURNING version",
                    &[&key, &value, &node],
                )
                .await
                .map_err(ClusterError::from)?
                .get(0);
            if is_certificate(key) {
                cluster::notify(&transaction, Channel::Certificate, &version.to_string()).await?;
            }
            transaction.commit().await.map_err(ClusterError::from)?;
            Ok(())
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        Box::pin(async move {
            check_key(prefix.trim_end_matches('/'))?;
            let dir = format!("{}/", prefix.trim_end_matches('/'));
            let client = self.cluster.client().await?;
            // Directly under the prefix, as the file store lists a directory;
            // LIKE's wildcards in a key are escaped.
            let pattern = format!(
                "{}%",
                dir.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            let rows = client
                .query(
                    "SELECT DISTINCT split_part(substr(key, $2), '/', 1) AS name
                     FROM quire_store WHERE key LIKE $1 ORDER BY name",
                    &[&pattern, &(dir.len() as i32 + 1)],
                )
                .await
                .map_err(ClusterError::from)?;
            Ok(rows
                .iter()
                .map(|row| format!("{dir}{}", row.get::<_, String>(0)))
                .collect())
        })
    }

    fn delete<'a>(&'a self, key: &'a str, lease: &'a Lease) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            check_key(key)?;
            let mut client = self.cluster.client().await?;
            let transaction = client.transaction().await.map_err(ClusterError::from)?;
            db_lease::check_fence(&transaction, lease.name(), lease.token())
                .await
                .map_err(|e| fenced(e, lease))?;
            transaction
                .execute("DELETE FROM quire_store WHERE key = $1", &[&key])
                .await
                .map_err(ClusterError::from)?;
            transaction.commit().await.map_err(ClusterError::from)?;
            Ok(())
        })
    }

    fn acquire<'a>(&'a self, name: &'a str, ttl: Duration) -> StorageFuture<'a, Lease> {
        Box::pin(async move {
            match db_lease::acquire(&self.cluster, name, ttl).await {
                Ok(db) => Ok(self.lease(db)),
                Err(ClusterError::Held {
                    name,
                    holder,
                    until,
                }) => Err(StorageError::Held {
                    name,
                    holder,
                    until,
                }),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn renew<'a>(&'a self, lease: &'a Lease) -> StorageFuture<'a, Lease> {
        Box::pin(async move {
            let db = DbLease {
                name: lease.name().to_string(),
                token: lease.token(),
                holder: self.cluster.node().as_str().to_string(),
                ttl: lease.ttl(),
                expires_local: lease.expires(),
            };
            // The renewed lease keeps the same hold: the token is the same,
            // and giving it up is for when its last copy goes.
            match db_lease::renew(&self.cluster, &db).await {
                Ok(renewed) => Ok(lease.renewed(renewed.expires_local)),
                Err(e) => Err(fenced(e, lease)),
            }
        })
    }
}
