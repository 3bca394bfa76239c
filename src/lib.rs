//! quire: a blog server that runs its own operations.
//!
//! # How it fits together
//!
//! Data flows one way, top to bottom; a module only imports from the rows
//! below it (or its own row's small shared types), never from above.
//!
//! ```text
//! main.rs -> cli        the command line's shape (clap types only)
//!            commands/  one file per verb: serve, check, new, cert, stats,
//!                       backup/restore, reload, upgrade, local-ca
//!              |  a running server is reached through control/client
//!              v
//! config/    the validated Config: raw TOML, defaults, environment and flags,
//!            every problem with its Origin (file:line, variable, flag)
//!              |
//!              v
//! system/    `quire serve` in one order: bind -> build -> prepare -> spawn,
//!            each activity under the supervisor; serve.rs adds the signals,
//!            handover.rs the data directory a successor takes over
//!              |
//!              v  activities, meeting through small named types
//! site/      content/ to an in-memory snapshot of pages (ResourceKind each)
//! web/       the routers that serve the snapshot; the response carries its
//!            ResourceKind, which measure/visits read
//! net/       binding, sockets given at start (SocketName), the accept loop
//!            and connection table, one Listeners builder
//! tls/       certificates in memory (CertBundle with its CertOrigin), the
//!            resolver, manual certificate files
//! acme/      obtaining certificates: client, manager, schedule, the Storage
//!            trait with its lease (FileStore; PgStore in a cluster, with
//!            follow, which brings another node's certificate in);
//!            challenges/ publishes answers (to every node in a cluster);
//!            local_ca/ is the in-process CA
//! stats/     reading statistics behind the StatsBackend seam (sled; the
//!            cluster's PostgreSQL tables in postgres/)
//! metrics/   /metrics, /health, /ready and the dashboard
//! import/    `quire import`: another blog's feed or source folder into
//!            content/, old URLs kept (html/ turns HTML bodies into markdown)
//! cluster/   the shared PostgreSQL of several nodes ([cluster]): the pool,
//!            the LISTEN keeper and its events, leases by the database's
//!            clock, the registry of nodes; acme/ and stats/ keep their own
//!            tables through it, and nothing in it knows about them
//! control/   the control socket: protocol (Request/Reply), server, client
//! upgrade/   handing the sockets to a new binary; sd_notify
//!
//! reload     a changed Config applied to net/ and web/ (SIGHUP, `quire reload`)
//! backup     one archive of acme/'s files and stats/'s dump
//!
//! shared below everything: clock (injected time), names (DnsName),
//! datadir (the data directory's layout and private writes), watch (the
//! settle-then-act file watcher), source_text (getting past a refused entry,
//! so the config and front matter parsers list every problem in one run),
//! serde_words (their refusals in the writer's words, not serde's types),
//! error_chain (an HTTP client error with every cause, on one line),
//! shutdown, supervisor, memory (the allocator kept small), priority
//! (background threads below the serving cores)
//! ```

pub mod acme;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod control;
pub mod datadir;
pub mod error_chain;
pub mod import;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod net;
pub mod priority;
pub mod reload;
pub mod serde_words;
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
