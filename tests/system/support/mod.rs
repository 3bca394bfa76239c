//! What the system tests share, one concern per file: `site` (throwaway
//! sites and fixtures), `binary` (the real quire, started and stopped by
//! PID), `notify` (what quire tells its service manager: readiness,
//! addresses, upgrades), `http` and `tls` (clients), `certs` (a test CA for
//! manual mode), `ports`, `time` (waiting on what the test does not
//! control), `metrics` (scraping), `peers` (other programs, with install
//! hints), `pebble` (the ACME test CA and its DNS server), `bind` (BIND
//! `named`, a zone's server taking dynamic updates), `postgres` (a
//! real PostgreSQL for the cluster tests) and `browser`. Everything is
//! re-exported here, so a test imports `crate::support::*` or the names it
//! uses.

mod binary;
mod bind;
mod browser;
mod certs;
mod http;
mod metrics;
mod notify;
mod pebble;
mod peers;
mod ports;
mod postgres;
mod site;
mod time;
mod tls;

use std::time::Duration;

pub use binary::*;
pub use bind::*;
pub use browser::*;
pub use certs::*;
pub use http::*;
pub use metrics::*;
pub use pebble::*;
pub use peers::*;
pub use ports::*;
pub use postgres::*;
pub use site::*;
pub use time::*;
pub use tls::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_quire");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Generous, for a loaded 2-core CI machine; only reached when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(30);
