//! Whole-system tests: the real `quire` binary (or the real server stack in
//! process, where the clock must move) on loopback, spoken to over HTTP.

mod acme;
mod backup;
mod browser;
mod cli;
mod cluster;
mod config_reload;
mod dns01;
mod hostile;
mod http;
mod https;
mod import;
mod interop;
mod issuers;
mod metrics;
mod pages;
mod permalinks;
mod profiles;
mod publishing;
mod reload;
mod sharing;
mod stats;
mod support;
mod upgrade;
