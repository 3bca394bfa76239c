//! The verbs of the command line, one file each, and what they share: the
//! umask, logging, loading the configuration, the async runtime, and turning
//! the outcome into an exit code with the whole chain of causes. `cli` holds
//! only the clap types; verbs that need a running server reach it through
//! `control::client`.

mod backup;
mod cert;
mod check;
mod cluster;
mod import;
mod local_ca;
mod new;
mod reload;
mod serve;
mod stats;
mod upgrade;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tracing_subscriber::filter::Targets;

use crate::cli::{Cli, Command, ConfigArgs};
use crate::clock::{self, SharedClock};
use crate::config::{Config, Overrides, process_env};
use crate::control::client::{self, ClientError};
use crate::control::protocol::Request;

/// The binary's whole life: parse, run one command, exit.
pub fn main(cli: Cli) -> ExitCode {
    crate::memory::tune_allocator();
    // What quire writes under data/ is private to its user, including the
    // files sled creates on its own. A post made by `new` or `import` is the
    // author's to share, under the author's umask.
    if !matches!(cli.command, Command::New { .. } | Command::Import { .. }) {
        // SAFETY: umask(2) only sets this process's file creation mask.
        unsafe {
            libc::umask(0o077);
        }
    }
    let clock = clock::system();
    init_logging(
        matches!(cli.command, Command::Serve { .. } | Command::LocalCa(_)),
        clock.clone(),
    );
    match run(cli, clock) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  because: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli, clock: SharedClock) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            mode,
            data_dir,
            drafts,
            listen,
        } => serve::run(&config, mode, data_dir, drafts, listen, clock),
        Command::Check { config, drafts } => check::run(&config, drafts, &clock),
        Command::Cert { command } => cert::run(command, clock),
        Command::Cluster { command } => cluster::run(command),
        Command::LocalCa(args) => local_ca::run(args, clock),
        Command::Stats {
            config,
            data_dir,
            days,
            by_node,
        } => stats::run(&config, data_dir, days, by_node, clock),
        Command::Backup {
            file,
            config,
            data_dir,
        } => backup::backup(&file, &config, data_dir),
        Command::Restore {
            file,
            config,
            data_dir,
        } => backup::restore(&file, &config, data_dir),
        Command::Reload { config, data_dir } => reload::run(&config, data_dir),
        Command::Upgrade { config, data_dir } => upgrade::run(&config, data_dir),
        Command::New { title, config } => new::run(&title, &config, &clock),
        Command::Import {
            source,
            into,
            fetch_images,
            config,
        } => import::run(&source, into, fetch_images, &config),
    }
}

/// Log lines carry their time as people read it everywhere else in quire.
struct ForPeople(SharedClock);

impl tracing_subscriber::fmt::time::FormatTime for ForPeople {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", clock::for_people(self.0.now()))
    }
}

fn init_logging(serving: bool, clock: SharedClock) {
    let default = if serving { "quire=info,warn" } else { "warn" };
    // `target=level` directives, as RUST_LOG is commonly written; without
    // EnvFilter's span and field matching, which would link a regex engine.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().expect("the default directives parse"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_timer(ForPeople(clock));
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .with(crate::metrics::recent::RecentProblems)
        .init();
}

fn load_config(config: &ConfigArgs, overrides: Overrides) -> anyhow::Result<Config> {
    let overrides = Overrides {
        config_file: config.config.clone(),
        ..overrides
    };
    Ok(Config::load(&overrides, &process_env)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The blocking pool works in bursts (a site build, a store flush);
        // an idle thread keeps its stack and allocator arena resident.
        .thread_keep_alive(Duration::from_secs(1))
        // Its threads run the background work; the serving cores are
        // started from the calling thread and keep its priority.
        .on_thread_start(crate::priority::background_thread)
        .build()
        .context("starting the async runtime")
}

/// Sends `request` to the server running on `config`'s data directory; its
/// message, or an error saying there is none (`nothing`: what that means).
fn ask_running_server(config: &Config, request: Request, nothing: &str) -> anyhow::Result<String> {
    let data = &config.paths.data;
    match runtime()?.block_on(client::ask(data, &request)) {
        Err(ClientError::NotRunning { .. }) => anyhow::bail!(
            "no server is running on {} ({nothing}); start it with `quire serve`",
            data.display()
        ),
        answered => Ok(answered?),
    }
}
