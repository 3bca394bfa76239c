//! Several quire nodes sharing one PostgreSQL (issue 16), one file per
//! concern: `foundation` (the schema, the LISTEN keeper, leases), `ops`
//! (the PostgreSQL harness itself, `quire cluster status`, /ready and
//! /metrics with the engine up and down).

mod foundation;
mod ops;
