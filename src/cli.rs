//! The command line's shape: the clap types, and nothing else. What each
//! verb does is in `commands`. `--mode` stays a string, not a clap value
//! enum: it goes through the configuration like QUIRE_MODE, so a bad one is
//! reported as `--mode: mode: unknown mode ...` with exit code 1, as config
//! problems are, rather than as a clap usage error (exit code 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

/// `serve`'s addresses, over `[listen]` in the config. Strings, not
/// addresses: they go through the configuration like QUIRE_HTTP, so a bad one
/// is reported as `--http: listen.http: ...` as config problems are.
#[derive(Args, Debug, Clone, Default)]
pub struct ListenArgs {
    /// Plain HTTP address, such as 127.0.0.1:8081; also QUIRE_HTTP.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// HTTPS address; also QUIRE_HTTPS.
    #[arg(long, value_name = "ADDR")]
    pub https: Option<String>,
    /// Metrics and dashboard address; also QUIRE_METRICS.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
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
        #[command(flatten)]
        listen: ListenArgs,
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
    /// Several nodes on one PostgreSQL ([cluster]): their state.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Run only the local ACME CA, to try other ACME clients (certbot, lego) against it.
    LocalCa(LocalCaArgs),
    /// Reading statistics: daily views and visitors, top pages, referrers, 404s.
    Stats {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// How many days back, today included.
        #[arg(long, value_name = "N", default_value_t = 7)]
        days: u32,
        /// In a cluster, also each node's totals.
        #[arg(long)]
        by_node: bool,
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
    /// Bring a blog in from an Atom/RSS feed (file or URL) or a Hugo, Zola
    /// or Jekyll folder, keeping its old URLs; never overwrites a file.
    Import {
        /// A feed file, a feed URL (http or https), or a site's folder.
        source: String,
        /// Where to write (default: the config's content folder).
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
        /// Download remote images into the posts' folders.
        #[arg(long)]
        fetch_images: bool,
        #[command(flatten)]
        config: ConfigArgs,
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

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Nodes, their last contact, certificate serial and content hash; lease holders.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Args, Debug)]
pub struct LocalCaArgs {
    /// Where its root lives (DIR/local-ca/root.pem).
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data_dir: PathBuf,
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8444")]
    pub listen: std::net::SocketAddr,
    /// Where http-01 validation connects (on 127.0.0.1).
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    pub http_port: u16,
    /// Where tls-alpn-01 validation connects (on 127.0.0.1).
    #[arg(long, value_name = "PORT", default_value_t = 443)]
    pub tls_port: u16,
    /// Lifetime of `classic` certificates, and of orders naming no profile
    /// (1m to 200days).
    #[arg(long, value_name = "DURATION", default_value = "90days", value_parser = crate::config::local_ca_lifetime)]
    pub lifetime: std::time::Duration,
    /// Lifetime of `tlsserver` certificates (1m to 200days).
    #[arg(long, value_name = "DURATION", default_value = "45days", value_parser = crate::config::local_ca_lifetime)]
    pub tlsserver_lifetime: std::time::Duration,
    /// Lifetime of `shortlived` certificates (1m to 200days).
    #[arg(long, value_name = "DURATION", default_value = "160h", value_parser = crate::config::local_ca_lifetime)]
    pub shortlived_lifetime: std::time::Duration,
    /// A name to certify besides localhost and .test (with the names below
    /// it); repeat for more. The root is constrained to these names.
    #[arg(long = "domain", value_name = "NAME")]
    pub domains: Vec<crate::names::DnsName>,
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
        let Command::LocalCa(LocalCaArgs { domains, .. }) =
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
