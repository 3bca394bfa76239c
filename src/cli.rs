//! The command line: parses arguments, loads the configuration, runs one
//! command, and turns the outcome into an exit code with a readable error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::clock::{self, SharedClock};
use crate::config::{Config, Overrides, process_env};
use crate::site;

#[derive(Parser, Debug)]
#[command(
    name = "quire",
    version,
    about = "A blog server that runs its own operations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// Config file (TOML); also QUIRE_CONFIG. Without one, built-in defaults serve ./content.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the site (and run its operations) until stopped.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// local, staging, production, acme, manual or off; also QUIRE_MODE.
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
        /// Data directory; also QUIRE_DATA_DIR.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Show draft posts.
        #[arg(long)]
        drafts: bool,
    },
    /// Check config, content and links; print every problem; exit 1 if any.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also check draft posts.
        #[arg(long)]
        drafts: bool,
    },
    /// Write a new draft post and print its path.
    New {
        /// The post's title.
        title: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve { .. }));
    match run(cli, clock::system()) {
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

fn init_logging(serving: bool) {
    let default = if serving { "quire=info,warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn load_config(config: &ConfigArgs, overrides: Overrides) -> anyhow::Result<Config> {
    let overrides = Overrides {
        config_file: config.config.clone(),
        ..overrides
    };
    Ok(Config::load(&overrides, &process_env)?)
}

pub fn run(cli: Cli, clock: SharedClock) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            mode,
            data_dir,
            drafts,
        } => {
            let config = load_config(
                &config,
                Overrides {
                    mode,
                    data_dir,
                    drafts,
                    ..Default::default()
                },
            )?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::system::serve(config, clock))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, drafts } => check(&config, drafts, &clock),
        Command::New { title, config } => {
            let config = load_config(&config, Overrides::default())?;
            let path = site::new_post::create(&config.paths.content, &title, clock.now())?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `quire check`: every problem at once, `file:line: what, what to do`.
fn check(config_args: &ConfigArgs, drafts: bool, clock: &SharedClock) -> anyhow::Result<ExitCode> {
    let config = match load_config(
        config_args,
        Overrides {
            drafts,
            ..Default::default()
        },
    ) {
        Ok(config) => config,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let inputs = site::BuildInputs::from_config(&config);
    let snapshot = match site::build(&inputs, clock.now(), None) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let s = &snapshot.summary;
    for problem in &s.problems {
        println!("{problem}");
    }
    eprintln!(
        "checked {} posts, {} pages, {} assets in {} ms: {} problem(s)",
        s.posts,
        s.pages,
        s.assets,
        s.took.as_millis(),
        s.problems.len()
    );
    Ok(if s.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
