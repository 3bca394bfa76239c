//! The shared schema, versioned per area (`leases`, `nodes`, and each
//! activity's own tables) in `quire_schema`, so that an activity's tables
//! change without renumbering the others'. Every (re)connection migrates
//! under a transaction-level advisory lock, so racing nodes migrate once and
//! a node never sees half a step; a database migrated by a newer quire is
//! refused rather than written in a layout this binary does not know.

use tokio_postgres::Client;

use super::ClusterError;

/// One area's tables: step `i` brings the area from version `i` to `i + 1`.
/// A step is one SQL text and may hold several statements.
#[derive(Debug)]
pub struct Area {
    pub name: &'static str,
    pub steps: &'static [&'static str],
}

impl Area {
    fn version(&self) -> i32 {
        self.steps.len() as i32
    }
}

/// Arbitrary, fixed: the advisory lock that orders migrations.
const MIGRATION_LOCK: i64 = 0x7175_6972_6501;

/// Brings every area to this binary's version; returns the steps taken
/// (`area vN`), for the log.
pub async fn migrate(client: &mut Client, areas: &[&Area]) -> Result<Vec<String>, ClusterError> {
    let fail = |area: &'static str| move |source| ClusterError::Migration { area, source };
    let transaction = client.transaction().await.map_err(fail("quire_schema"))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail("quire_schema"))?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS quire_schema (area text PRIMARY KEY, version integer NOT NULL)",
        )
        .await
        .map_err(fail("quire_schema"))?;
    let mut taken = Vec::new();
    for area in areas {
        let found: i32 = transaction
            .query_opt(
                "SELECT version FROM quire_schema WHERE area = $1",
                &[&area.name],
            )
            .await
            .map_err(fail(area.name))?
            .map_or(0, |row| row.get(0));
        if found > area.version() {
            return Err(ClusterError::Newer {
                area: area.name,
                found,
                known: area.version(),
            });
        }
        for (done, step) in area.steps.iter().enumerate().skip(found as usize) {
            transaction
                .batch_execute(step)
                .await
                .map_err(fail(area.name))?;
            taken.push(format!("{} v{}", area.name, done + 1));
        }
        if found < area.version() {
            transaction
                .execute(
                    "INSERT INTO quire_schema (area, version) VALUES ($1, $2) \
                     ON CONFLICT (area) DO UPDATE SET version = excluded.version",
                    &[&area.name, &area.version()],
                )
                .await
                .map_err(fail(area.name))?;
        }
    }
    transaction.commit().await.map_err(fail("quire_schema"))?;
    Ok(taken)
}
