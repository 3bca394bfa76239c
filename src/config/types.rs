//! The validated configuration the rest of quire reads: [`Config`] and its
//! sections, each field already parsed, in range and defaulted. Nothing here
//! parses or reports; `validate` builds these from the raw file.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use super::dns::DnsUpdateSettings;
use super::post_url::PostUrl;
use super::problem::Origin;
use crate::names::{DnsName, SiteName};

/// Where certificates come from; also picks the default ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Local,
    Staging,
    Production,
    Acme,
    Manual,
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Staging => "staging",
            Mode::Production => "production",
            Mode::Acme => "acme",
            Mode::Manual => "manual",
            Mode::Off => "off",
        }
    }

    /// Modes for a laptop or a proxy: loopback ports and `localhost` by default.
    pub(super) fn is_local(self) -> bool {
        matches!(self, Mode::Local | Mode::Off)
    }
}

/// A mode name that is none of [`Mode`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode `{0}`; use one of local, staging, production, acme, manual or off")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, UnknownMode> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "local" => Mode::Local,
            "staging" => Mode::Staging,
            "production" => Mode::Production,
            "acme" => Mode::Acme,
            "manual" => Mode::Manual,
            "off" => Mode::Off,
            _ => return Err(UnknownMode(s.to_string())),
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Http01,
    TlsAlpn01,
    /// A TXT record published by dynamic update ([`TlsConfig::dns`]).
    Dns01,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// Show drafts (`serve --drafts`).
    pub drafts: bool,
    pub site: SiteConfig,
    /// The first one is canonical (always a host); the others redirect to it.
    pub domains: Vec<SiteName>,
    pub paths: Paths,
    pub listen: Listen,
    pub tls: TlsConfig,
    pub stats: StatsConfig,
    pub metrics: MetricsConfig,
    pub limits: Limits,
    /// Several nodes sharing one PostgreSQL; `None` for a single node.
    pub cluster: Option<ClusterConfig>,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// The command-line layer it was loaded with, so that a reload reads the
    /// same file and keeps the same flags.
    pub overrides: Overrides,
}

impl Config {
    pub fn canonical_domain(&self) -> &DnsName {
        self.domains[0]
            .host()
            .expect("validated: the canonical name is a host")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    pub title: String,
    /// Absolute, ends with `/`; feeds and the sitemap are built on it.
    pub base_url: Url,
    pub author: String,
    pub description: String,
    pub language: String,
    pub posts_per_page: NonZeroUsize,
    /// Where posts are published, unless one sets `path`.
    pub post_url: PostUrl,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub content: PathBuf,
    pub templates: PathBuf,
    pub static_dir: PathBuf,
    pub data: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub metrics: SocketAddr,
    /// The in-process ACME CA of local mode.
    pub local_ca: SocketAddr,
    /// The operator's explicit consent to the local CA on a non-loopback address.
    pub local_ca_public: bool,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where each address was chosen.
    pub origins: ListenOrigins,
}

/// Where each [`Listen`] address was chosen (a flag, a variable, a line of
/// the file), so that an address that cannot be bound is explained where the
/// operator can change it; `None` is the built-in default.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListenOrigins {
    pub http: Option<Origin>,
    pub https: Option<Origin>,
    pub metrics: Option<Origin>,
    pub local_ca: Option<Origin>,
}

/// Protection against slow and abusive clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub handshake_timeout: Duration,
    /// Time allowed to send a request head (slowloris): the first request on
    /// any protocol, and the next one on an HTTP/1.1 connection.
    pub header_read_timeout: Duration,
    /// A connection without progress for this long is closed (see
    /// `tls::connections`): pings and dribbled bytes are not progress.
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub h2_max_concurrent_streams: u32,
    /// How long in-flight requests may run on after SIGTERM.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub directory_url: Option<Url>,
    pub contacts: Vec<String>,
    pub eab: Option<ExternalAccountBinding>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Renew when fewer days than this remain, for certificates of 10 days
    /// or more (a third of the lifetime when that is shorter).
    pub renew_before_days: u32,
    pub check_every: Duration,
    pub challenge: Challenge,
    /// The ACME profile to order (draft-ietf-acme-profiles); the CA's default
    /// when `None`.
    pub profile: Option<ProfileName>,
    /// A shell command run after each new certificate, with the file paths in
    /// its environment.
    pub post_issue_hook: Option<String>,
    /// When the operator hears about trouble with the certificate.
    pub alerts: AlertConfig,
    /// The common name of the root (or cross-signing certificate) the
    /// served chain should go up to, among those the CA offers.
    pub preferred_chain: Option<String>,
    /// Lifetime of the certificates the local CA issues for its `classic`
    /// profile, and for orders that name none.
    pub local_ca_lifetime: Duration,
    /// Lifetime of the local CA's `tlsserver` certificates.
    pub local_ca_tlsserver_lifetime: Duration,
    /// Lifetime of the local CA's `shortlived` certificates.
    pub local_ca_shortlived_lifetime: Duration,
    /// Send Strict-Transport-Security (off by default in local mode, where a
    /// browser would otherwise pin HTTPS for `localhost`).
    pub hsts: bool,
    /// `[tls.dns]`: set exactly when the challenge is dns-01.
    pub dns: Option<DnsUpdateSettings>,
    /// `[[tls.issuers]]`: the CAs of the production and acme modes, in the
    /// order they are tried; empty for the mode's own CA.
    pub issuers: Vec<IssuerConfig>,
}

/// A CA to order from: one `[[tls.issuers]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub directory_url: Url,
    pub eab: Option<ExternalAccountBinding>,
    /// The ACME profile to order from this CA; `[tls] profile` when `None`.
    pub profile: Option<ProfileName>,
    /// A PEM file of the roots this CA's HTTPS endpoint is trusted by (a
    /// private CA); the system's when `None`.
    pub roots: Option<PathBuf>,
}

/// `[tls] alert_hook` and when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// A shell command run when an alert is raised or resolved.
    pub hook: Option<String>,
    /// Failed orders in a row that raise the alert.
    pub after_failures: u32,
    /// Days left before expiry that raise the alert (for a certificate whose
    /// whole life is shorter, a quarter of it).
    pub days_left: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAccountBinding {
    pub kid: String,
    pub hmac: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsConfig {
    pub enabled: bool,
    pub flush_every: Duration,
    pub hourly_retention_days: u32,
    pub daily_retention_days: u32,
    /// Readers who send `DNT: 1` or `Sec-GPC: 1` are counted as views only,
    /// never as visitors.
    pub respect_dnt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub token: Option<String>,
}

/// What the command line says; `None` leaves the lower layers in charge.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub mode: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub drafts: bool,
    /// `serve --http`, `--https`, `--metrics`: addresses as written, checked
    /// with the file's so a bad one is reported like any config problem.
    pub http: Option<String>,
    pub https: Option<String>,
    pub metrics: Option<String>,
}

impl Overrides {
    /// Only a data directory, as commands that read the data dir take.
    pub fn data_dir(data_dir: Option<PathBuf>) -> Overrides {
        Overrides {
            data_dir,
            ..Overrides::default()
        }
    }
}

/// The name of an ACME profile, as a CA's directory lists it: 1 to 64
/// letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileName(String);

/// A profile name with other characters, or none, or too many.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a profile name; use a name your CA's directory lists, such as \"classic\", \"tlsserver\" or \"shortlived\""
)]
pub struct BadProfileName(pub String);

impl ProfileName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ProfileName {
    type Err = BadProfileName;
    fn from_str(s: &str) -> Result<ProfileName, BadProfileName> {
        let fits = (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        match fits {
            true => Ok(ProfileName(s.to_string())),
            false => Err(BadProfileName(s.to_string())),
        }
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[cluster]`: the shared PostgreSQL and this node's name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub postgres: PostgresTarget,
    pub node: NodeName,
    /// Roots to trust for TLS to PostgreSQL, beside the platform's.
    pub ca_file: Option<PathBuf>,
}

/// A connection string that tokio-postgres accepts (a `postgres://` URL or
/// libpq's `key=value` form). It may hold a password, so it is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    text: String,
    /// Host and database, for messages.
    shown: String,
}

impl PostgresTarget {
    pub fn parse(text: &str) -> Result<PostgresTarget, tokio_postgres::Error> {
        let config = tokio_postgres::Config::from_str(text)?;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(host, port)| match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        Ok(PostgresTarget {
            text: text.to_string(),
            shown: format!(
                "{}/{}",
                hosts.join(","),
                config.get_dbname().unwrap_or("(default database)")
            ),
        })
    }

    /// What tokio-postgres connects with.
    pub fn config(&self) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(&self.text).expect("validated when the config was loaded")
    }
}

impl fmt::Display for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresTarget({})", self.shown)
    }
}

/// A node's name in the cluster: 1 to 63 letters, digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

/// A node name with other characters, or none, or too many.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a node name; use 1 to 63 letters, digits, `-`, `_` or `.`, such as \"web-1\""
)]
pub struct BadNodeName(pub String);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = BadNodeName;
    fn from_str(s: &str) -> Result<NodeName, BadNodeName> {
        let fits = (1..=63).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        match fits {
            true => Ok(NodeName(s.to_string())),
            false => Err(BadNodeName(s.to_string())),
        }
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
