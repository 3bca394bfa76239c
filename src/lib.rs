//! quire: a blog server that runs its own operations. `cli` is the command
//! line's shape and `commands` runs its verbs, reaching a running server
//! through `control`; `system` starts the activities under the `supervisor`;
//! each folder owns one
//! activity: `site` (content to pages), `web` (routers), `tls` (listeners and
//! certificates), `acme` (obtaining them), `stats` (reading statistics),
//! `metrics` (the operator's view), `upgrade` (handing the sockets to a new
//! binary). `watch` is the settle-then-act file watcher that `site` and `tls`
//! share; `source_text` lets the config and front matter parsers get past a
//! refused entry, so that each lists every problem in one run.

pub mod acme;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod control;
pub mod datadir;
pub mod metrics;
pub mod names;
pub mod reload;
pub mod shutdown;
pub mod site;
pub mod source_text;
pub mod stats;
pub mod supervisor;
pub mod system;
pub mod tls;
pub mod upgrade;
pub mod watch;
pub mod web;
