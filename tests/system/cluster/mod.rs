//! Several quire nodes sharing one PostgreSQL (issue 16), one file per
//! concern: `foundation` (the schema, the LISTEN keeper, leases), `certs`
//! (the shared certificate store, one node ordering, every node following),
//! `challenges` (ACME validation answered by nodes that did not order),
//! `ops` (the PostgreSQL harness itself, `quire cluster status`, /ready and
//! /metrics with the engine up and down), `stats` (statistics shared by the
//! nodes).

mod certs;
mod challenges;
mod foundation;
mod ops;
mod stats;
