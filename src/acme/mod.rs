//! Certificates by ACME (RFC 8555): the client workflow, where its challenge
//! answers go (every node's memory in a cluster), the renewal schedule, the
//! on-disk store and backups (`dns01` publishes dns-01 answers by dynamic
//! update); `local_ca` is the in-process CA that local
//! mode certifies itself against. In a cluster the store is `pg_store`
//! (shared in PostgreSQL) and `follow` brings each new certificate to every
//! node.

pub mod alert;
pub mod backup;
pub mod caa;
pub mod certs;
pub mod chains;
pub mod challenges;
pub mod client;
pub mod dns01;
pub mod follow;
pub mod hook;
pub mod http;
pub mod issuers;
pub mod lease;
pub mod local_ca;
pub mod manager;
pub mod pg_store;
pub mod schedule;
pub mod service;
pub mod store;
