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
    /// Certificates: status, renewal.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Run only the local ACME CA, to try other ACME clients (certbot, lego) against it.
    LocalCa {
        /// Where its root lives (DIR/local-ca/root.pem).
        #[arg(long, value_name = "DIR", default_value = "data")]
        data_dir: PathBuf,
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8444")]
        listen: std::net::SocketAddr,
        /// Where http-01 validation connects (on 127.0.0.1).
        #[arg(long, value_name = "PORT", default_value_t = 80)]
        http_port: u16,
        /// Where tls-alpn-01 validation connects (on 127.0.0.1).
        #[arg(long, value_name = "PORT", default_value_t = 443)]
        tls_port: u16,
        /// Lifetime of issued certificates (1m to 200days).
        #[arg(long, value_name = "DURATION", default_value = "90days", value_parser = crate::config::local_ca_lifetime)]
        lifetime: std::time::Duration,
        /// A name to certify besides localhost and .test (with the names below
        /// it); repeat for more. The root is constrained to these names.
        #[arg(long = "domain", value_name = "NAME")]
        domains: Vec<crate::config::Domain>,
    },
    /// Reading statistics: daily views and visitors, top pages, referrers, 404s.
    Stats {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// How many days back, today included.
        #[arg(long, value_name = "N", default_value_t = 7)]
        days: u32,
    },
    /// Archive the data directory (certificates, accounts, statistics) into FILE.
    Backup {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Restore a `quire backup` archive into an empty data directory (server stopped).
    Restore {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Make the running server read its config file again (as SIGHUP does).
    Reload {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Hand the running server's sockets to the binary now installed at its
    /// path, with no request lost (as SIGUSR2 does); waits until it serves.
    Upgrade {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Write a new draft post and print its path.
    New {
        /// The post's title.
        title: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Domains, issuer, expiry, next renewal and last error, from the data dir.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Renew now, through the running server if there is one.
    Renew {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Order from the staging CA (production mode) and keep the stored
        /// certificate: tests a configuration safely.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // What quire writes under data/ is private to its user, including the
    // files sled creates on its own. A post made by `new` is the author's to
    // share, under the author's umask.
    if !matches!(cli.command, Command::New { .. }) {
        // SAFETY: umask(2) only sets this process's file creation mask.
        unsafe {
            libc::umask(0o077);
        }
    }
    init_logging(matches!(
        cli.command,
        Command::Serve { .. } | Command::LocalCa { .. }
    ));
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

/// Sends `request` to the server running on `config`'s data directory; its
/// message, or an error saying there is none (`nothing`: what that means).
fn ask_running_server(config: &Config, request: &str, nothing: &str) -> anyhow::Result<String> {
    let reply = runtime()?.block_on(crate::control::request(&config.paths.data, request))?;
    let Some(reply) = reply else {
        anyhow::bail!(
            "no server is running on {} ({nothing}); start it with `quire serve`",
            config.paths.data.display()
        );
    };
    crate::control::into_result(&reply)
}

fn init_logging(serving: bool) {
    let default = if serving { "quire=info,warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
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
            runtime()?.block_on(crate::system::serve(config, clock))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, drafts } => check(&config, drafts, &clock),
        Command::Cert { command } => cert(command, clock),
        Command::LocalCa {
            data_dir,
            listen,
            http_port,
            tls_port,
            lifetime,
            domains,
        } => {
            let loopback = std::net::Ipv4Addr::LOCALHOST;
            let settings = crate::acme::commands::StandaloneCa {
                data: data_dir,
                listen,
                validation: crate::acme::local_ca::ValidationTarget {
                    http: (loopback, http_port).into(),
                    tls: (loopback, tls_port).into(),
                },
                lifetime,
                domains,
            };
            runtime()?.block_on(crate::acme::commands::serve_local_ca(settings, clock))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats {
            config,
            data_dir,
            days,
        } => {
            let config = load_config(&config, Overrides::data_dir(data_dir))?;
            let text = runtime()?.block_on(crate::stats::command::run(&config, days, clock))?;
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            file,
            config,
            data_dir,
        } => {
            let config = load_config(&config, Overrides::data_dir(data_dir))?;
            println!(
                "{}",
                runtime()?.block_on(crate::backup::backup(&config, &file))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            file,
            config,
            data_dir,
        } => {
            let config = load_config(&config, Overrides::data_dir(data_dir))?;
            println!(
                "{}",
                runtime()?.block_on(crate::backup::restore(&config, &file))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload { config, data_dir } => {
            let config = load_config(&config, Overrides::data_dir(data_dir))
                .context("not reloading: the running server keeps its configuration")?;
            println!(
                "{}",
                ask_running_server(&config, "reload", "nothing to reload")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Upgrade { config, data_dir } => {
            let config = load_config(&config, Overrides::data_dir(data_dir))?;
            println!(
                "{}",
                ask_running_server(&config, "upgrade", "nothing to upgrade")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::New { title, config } => {
            let config = load_config(&config, Overrides::default())?;
            let path = site::new_post::create(&config.paths.content, &title, clock.now())?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn cert(command: CertCommand, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let (config, mode, data_dir) = match &command {
        CertCommand::Status {
            config,
            mode,
            data_dir,
        }
        | CertCommand::Renew {
            config,
            mode,
            data_dir,
            ..
        } => (config, mode, data_dir),
    };
    let config = load_config(
        config,
        Overrides {
            mode: mode.clone(),
            data_dir: data_dir.clone(),
            ..Default::default()
        },
    )?;
    match command {
        CertCommand::Status { .. } => {
            print!(
                "{}",
                runtime()?.block_on(crate::acme::commands::status(&config, clock))?
            );
        }
        CertCommand::Renew { dry_run, .. } => {
            let message =
                runtime()?.block_on(crate::acme::commands::renew(&config, dry_run, clock))?;
            println!("{message}");
        }
    }
    Ok(ExitCode::SUCCESS)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ca_lifetime_has_the_range_of_the_config_key() {
        let parse = |lifetime: &str| {
            Cli::try_parse_from(["quire", "local-ca", "--lifetime", lifetime])
                .map_err(|e| e.to_string())
        };
        assert!(parse("200days").is_ok());
        let e = parse("500000000y").unwrap_err();
        assert!(
            e.contains("`500000000y` is out of range; use a duration from 1m to 200days"),
            "{e}"
        );
    }

    #[test]
    fn local_ca_domains_are_repeatable_and_checked() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["quire", "local-ca"], args].concat()).map_err(|e| e.to_string())
        };
        let Command::LocalCa { domains, .. } =
            parse(&["--domain", "Blog.Example.com", "--domain", "x.org"])
                .unwrap()
                .command
        else {
            panic!("not local-ca");
        };
        let domains: Vec<&str> = domains.iter().map(|d| d.as_str()).collect();
        assert_eq!(domains, ["blog.example.com", "x.org"]);
        let e = parse(&["--domain", "exa mple.com"]).unwrap_err();
        assert!(
            e.contains("use a host name such as blog.example.com"),
            "{e}"
        );
    }
}
