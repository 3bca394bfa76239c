//! Certificates by ACME (RFC 8555): the client workflow, the renewal schedule,
//! the on-disk store and backups; `local_ca` is the in-process CA that local
//! mode certifies itself against.

pub mod local_ca;
