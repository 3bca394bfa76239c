//! One validated [`Config`], merged from built-in defaults, the TOML file, the
//! environment and command-line flags (in rising precedence). Every problem names
//! the key, the file and line, and the fix, and all of them are reported at once.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

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
    const NAMES: &'static str = "local, staging, production, acme, manual or off";

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
    fn is_local(self) -> bool {
        matches!(self, Mode::Local | Mode::Off)
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "local" => Mode::Local,
            "staging" => Mode::Staging,
            "production" => Mode::Production,
            "acme" => Mode::Acme,
            "manual" => Mode::Manual,
            "off" => Mode::Off,
            _ => return Err(format!("unknown mode `{s}`; use one of {}", Mode::NAMES)),
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DNS name the site answers to; the local CA checks its identifiers by the
/// same rules, so a configured name is one it will certify.
pub use crate::names::DnsName as Domain;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Http01,
    TlsAlpn01,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// Show drafts (`serve --drafts`).
    pub drafts: bool,
    pub site: SiteConfig,
    /// The first one is canonical; the others redirect to it.
    pub domains: Vec<Domain>,
    pub paths: Paths,
    pub listen: Listen,
    pub tls: TlsConfig,
    pub stats: StatsConfig,
    pub metrics: MetricsConfig,
    pub limits: Limits,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// The command-line layer it was loaded with, so that a reload reads the
    /// same file and keeps the same flags.
    pub overrides: Overrides,
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub title: String,
    /// Absolute, ends with `/`; feeds and the sitemap are built on it.
    pub base_url: Url,
    pub author: String,
    pub description: String,
    pub language: String,
    pub posts_per_page: NonZeroUsize,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub content: PathBuf,
    pub templates: PathBuf,
    pub static_dir: PathBuf,
    pub data: PathBuf,
}

#[derive(Debug, Clone)]
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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            h2_max_concurrent_streams: 100,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub directory_url: Option<Url>,
    pub contacts: Vec<String>,
    pub eab: Option<ExternalAccountBinding>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub renew_before_days: u32,
    pub check_every: Duration,
    pub challenge: Challenge,
    /// A shell command run after each new certificate, with the file paths in
    /// its environment.
    pub post_issue_hook: Option<String>,
    /// Lifetime of the certificates the local CA issues.
    pub local_ca_lifetime: Duration,
    /// Send Strict-Transport-Security (off by default in local mode, where a
    /// browser would otherwise pin HTTPS for `localhost`).
    pub hsts: bool,
}

#[derive(Debug, Clone)]
pub struct ExternalAccountBinding {
    pub kid: String,
    pub hmac: String,
}

#[derive(Debug, Clone)]
pub struct StatsConfig {
    pub enabled: bool,
    pub flush_every: Duration,
    pub hourly_retention_days: u32,
    pub daily_retention_days: u32,
    /// Readers who send `DNT: 1` or `Sec-GPC: 1` are counted as views only,
    /// never as visitors.
    pub respect_dnt: bool,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub token: Option<String>,
}

/// What the command line says; `None` leaves the lower layers in charge.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub mode: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub drafts: bool,
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

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// `file:line` or the name of the environment variable or flag.
    pub origin: String,
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    /// The line in the file, or 0 for problems that come from elsewhere.
    fn line(&self) -> usize {
        self.origin
            .rsplit(':')
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read config file {path}: {source}; check the path, or run without --config to use the built-in defaults"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems_text(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn problems_text(problems: &[ConfigProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!(
        "{} problem(s) in the configuration:\n{}",
        problems.len(),
        lines.join("\n")
    )
}

// ---- the file as written -------------------------------------------------

type Field<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    site: RawSite,
    #[serde(default)]
    domains: RawDomains,
    #[serde(default)]
    paths: RawPaths,
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    stats: RawStats,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    title: Field<String>,
    base_url: Field<String>,
    author: Field<String>,
    description: Field<String>,
    language: Field<String>,
    posts_per_page: Field<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomains {
    names: Field<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    content: Field<String>,
    templates: Field<String>,
    #[serde(rename = "static")]
    static_dir: Field<String>,
    data: Field<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    http: Field<String>,
    https: Field<String>,
    metrics: Field<String>,
    local_ca: Field<String>,
    local_ca_public: Field<bool>,
    trusted_proxies: Field<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    handshake_timeout: Field<String>,
    header_read_timeout: Field<String>,
    idle_timeout: Field<String>,
    max_header_bytes: Field<i64>,
    max_connections: Field<i64>,
    h2_max_concurrent_streams: Field<i64>,
    shutdown_grace: Field<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    mode: Field<String>,
    directory_url: Field<String>,
    contacts: Field<Vec<String>>,
    eab_kid: Field<String>,
    eab_hmac: Field<String>,
    cert_file: Field<String>,
    key_file: Field<String>,
    renew_before_days: Field<i64>,
    check_every: Field<String>,
    challenge: Field<String>,
    post_issue_hook: Field<String>,
    local_ca_lifetime: Field<String>,
    hsts: Field<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStats {
    enabled: Field<bool>,
    flush_every: Field<String>,
    hourly_retention_days: Field<i64>,
    daily_retention_days: Field<i64>,
    respect_dnt: Field<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Field<bool>,
    token: Field<String>,
}

// ---- merging and validation ---------------------------------------------

/// Collects problems while the config is validated, locating each in the file.
struct Validator<'a> {
    file_name: String,
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Validator<'_> {
    fn origin_of<T>(&self, field: &Spanned<T>) -> String {
        let line = line_of(self.text, field.span().start);
        format!("{}:{line}", self.file_name)
    }

    fn report(&mut self, origin: String, key: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            origin,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Parses a file value with `parse`, reporting failures at its line.
    fn parse<T, U>(
        &mut self,
        key: &str,
        field: &Field<T>,
        parse: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        let field = field.as_ref()?;
        match parse(field.get_ref()) {
            Ok(value) => Some(value),
            Err(message) => {
                let origin = self.origin_of(field);
                self.report(origin, key, message);
                None
            }
        }
    }

    fn string(&self, field: &Field<String>) -> Option<String> {
        field.as_ref().map(|f| f.get_ref().clone())
    }
}

/// The file's tables, and a problem for each key that TOML's types or the
/// schema refuse. serde stops at the first; that key (or unknown table) is
/// blanked out, offsets kept so later lines keep their numbers, and the rest
/// parsed again, so that one run lists them all. `None` when the file cannot
/// be read at all: a syntax error, which TOML finds before any key.
fn parse_file(file_name: &str, text: &str) -> (Option<RawFile>, Vec<ConfigProblem>) {
    const MOST: usize = 100;
    let mut text = text.to_string();
    let mut problems = Vec::new();
    while problems.len() < MOST {
        let e = match toml::from_str::<RawFile>(&text) {
            Ok(raw) => return (Some(raw), problems),
            Err(e) => e,
        };
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        problems.push(ConfigProblem {
            origin: format!("{file_name}:{line}"),
            key: "toml".into(),
            message: format!(
                "{}; fix the file (every key is documented in config.example.toml)",
                e.message().trim_end()
            ),
        });
        let about_one_key = ["unknown field", "invalid type", "invalid value"]
            .iter()
            .any(|start| e.message().starts_with(start));
        match e.span() {
            Some(span) if about_one_key => blank_entry(&mut text, span.start),
            _ => break,
        }
    }
    (None, problems)
}

/// Spaces over the line holding `offset`, and over the whole table when that
/// line is a table header.
fn blank_entry(text: &mut String, offset: usize) {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let is_header = text[start..].trim_start().starts_with('[');
    let mut end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    if is_header {
        while end < text.len() && !text[end + 1..].trim_start().starts_with('[') {
            end = text[end + 1..]
                .find('\n')
                .map_or(text.len(), |i| end + 1 + i);
        }
    }
    let blank: String = text[start..end]
        .chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c => " ".repeat(c.len_utf8()),
        })
        .collect();
    text.replace_range(start..end, &blank);
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

// ---- the range of every duration and count --------------------------------

/// The values one setting accepts: wide enough for any real operator, narrow
/// enough that no arithmetic on a configured value can overflow (an `Instant`
/// plus `18446744073709551615s` panics on every connection). `quire check`,
/// start and reload all validate through these, so none can apply a value
/// the others would refuse.
#[derive(Debug, Clone, Copy)]
struct Bounded<T> {
    min: T,
    max: T,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

const fn seconds(min: u64, max: u64) -> Bounded<Duration> {
    Bounded {
        min: Duration::from_secs(min),
        max: Duration::from_secs(max),
    }
}

const fn count(min: i64, max: i64) -> Bounded<i64> {
    Bounded { min, max }
}

const HANDSHAKE_TIMEOUT: Bounded<Duration> = seconds(1, 5 * MINUTE);
const HEADER_READ_TIMEOUT: Bounded<Duration> = seconds(1, 5 * MINUTE);
const IDLE_TIMEOUT: Bounded<Duration> = seconds(1, HOUR);
const SHUTDOWN_GRACE: Bounded<Duration> = seconds(1, HOUR);
const CHECK_EVERY: Bounded<Duration> = seconds(MINUTE, 7 * DAY);
const FLUSH_EVERY: Bounded<Duration> = seconds(1, HOUR);
/// Inside the local intermediate's one-year life, and no longer than the
/// CA/Browser Forum allows public certificates from 2026 (200 days).
const LOCAL_CA_LIFETIME: Bounded<Duration> = seconds(MINUTE, 200 * DAY);

const POSTS_PER_PAGE: Bounded<i64> = count(1, 1000);
const MAX_HEADER_BYTES: Bounded<i64> = count(8192, 1 << 20);
const MAX_CONNECTIONS: Bounded<i64> = count(1, 1_000_000);
const H2_MAX_CONCURRENT_STREAMS: Bounded<i64> = count(1, 10_000);
const RENEW_BEFORE_DAYS: Bounded<i64> = count(1, 365);
const HOURLY_RETENTION_DAYS: Bounded<i64> = count(1, 3650);
const DAILY_RETENTION_DAYS: Bounded<i64> = count(1, 36500);

impl Bounded<Duration> {
    /// A duration such as "10s" or "8h", within range.
    fn parse(self, text: &str) -> Result<Duration, String> {
        let range = format!(
            "use a duration from {} to {}",
            whole_units(self.min),
            whole_units(self.max)
        );
        match humantime::parse_duration(text) {
            Ok(d) if (self.min..=self.max).contains(&d) => Ok(d),
            Ok(_) => Err(format!("`{text}` is out of range; {range}")),
            Err(e) => Err(format!("`{text}` is not a duration ({e}); {range}")),
        }
    }
}

/// A bound as an operator writes it, "200days" rather than humantime's
/// "6months 17days 8h 38m 24s" (its months are 30.44 days).
fn whole_units(d: Duration) -> String {
    let secs = d.as_secs();
    [(DAY, "days"), (HOUR, "h"), (MINUTE, "m")]
        .into_iter()
        .find(|&(unit, _)| secs >= unit && secs % unit == 0)
        .map_or_else(
            || format!("{secs}s"),
            |(unit, name)| format!("{}{name}", secs / unit),
        )
}

/// `quire local-ca --lifetime`: the range of `[tls] local_ca_lifetime`.
pub fn local_ca_lifetime(text: &str) -> Result<Duration, String> {
    LOCAL_CA_LIFETIME.parse(text)
}

impl Bounded<i64> {
    /// A whole number within range; the caller's type holds every such value.
    fn check<U: TryFrom<i64>>(self, n: i64) -> Result<U, String> {
        (self.min..=self.max)
            .contains(&n)
            .then(|| U::try_from(n).ok())
            .flatten()
            .ok_or_else(|| {
                format!(
                    "{n} is out of range; use a number from {} to {}",
                    self.min, self.max
                )
            })
    }
}

fn socket_addr(text: &String) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "`{text}` is not an address with a port from 0 to 65535; use a value such as \"127.0.0.1:8080\" or \"[::]:443\""
        )
    })
}

fn base_url(text: &String) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| {
        format!("`{text}` is not a URL ({e}); use a full URL such as \"https://blog.example.com/\"")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{text}` must be an http or https URL with a host, such as \"https://blog.example.com/\""
        ));
    }
    // Pages link to each other by root-relative paths, so the site must own the
    // root of its host.
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a path, query or fragment; quire serves a site at the root of its host, so use just the origin, such as \"https://blog.example.com/\""
        ));
    }
    Ok(url)
}

impl Config {
    /// Loads the configuration: the file from `--config` or `QUIRE_CONFIG` (if any),
    /// then the environment (read through `env`), then the flags.
    pub fn load(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = overrides
            .config_file
            .clone()
            .or_else(|| env("QUIRE_CONFIG").map(PathBuf::from));
        let text = match &path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?,
            None => String::new(),
        };
        Config::from_parts(path.as_deref(), &text, overrides, env)
    }

    /// Merges the file text (may be empty) with the environment and flags.
    pub fn from_parts(
        path: Option<&Path>,
        text: &str,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file_name = path.map_or_else(|| "config".to_string(), |p| p.display().to_string());
        let (raw, refused) = parse_file(&file_name, text);
        let raw = raw.ok_or_else(|| ConfigError::Invalid(refused.clone()))?;
        // Relative paths in a file are relative to that file, so a service can be
        // started from any working directory.
        let base_dir = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut v = Validator {
            file_name,
            text,
            problems: refused,
        };

        let mode = match overrides
            .mode
            .clone()
            .map(|m| ("--mode", m))
            .or_else(|| env("QUIRE_MODE").map(|m| ("QUIRE_MODE", m)))
            .or_else(|| env("MODE").map(|m| ("MODE", m)))
        {
            Some((origin, text)) => text.parse().unwrap_or_else(|e| {
                v.report(origin.into(), "mode", e);
                Mode::Local
            }),
            None => v
                .parse("tls.mode", &raw.tls.mode, |m| m.parse())
                .unwrap_or(Mode::Local),
        };

        let domains = match &raw.domains.names {
            Some(names) => {
                let parsed: Vec<Domain> = names
                    .get_ref()
                    .iter()
                    .filter_map(|n| match n.parse::<Domain>() {
                        Ok(d) => Some(d),
                        Err(e) => {
                            let origin = v.origin_of(names);
                            v.report(origin, "domains.names", e.to_string());
                            None
                        }
                    })
                    .collect();
                if names.get_ref().is_empty() {
                    let origin = v.origin_of(names);
                    v.report(
                        origin,
                        "domains.names",
                        "is empty; list at least one domain, the canonical one first",
                    );
                }
                parsed
            }
            None if mode.is_local() => vec![Domain::localhost()],
            None => {
                v.report(
                    "config".into(),
                    "domains.names",
                    format!(
                        "is required in {mode} mode; add [domains] names = [\"blog.example.com\"]"
                    ),
                );
                Vec::new()
            }
        };

        let (http_default, https_default) = if mode.is_local() {
            ("127.0.0.1:8080", "127.0.0.1:8443")
        } else {
            ("[::]:80", "[::]:443")
        };
        let listen_field = |v: &mut Validator, key: &str, field: &Field<String>, default: &str| {
            v.parse(key, field, socket_addr)
                .unwrap_or_else(|| default.parse().expect("default address"))
        };
        let listen = Listen {
            http: listen_field(&mut v, "listen.http", &raw.listen.http, http_default),
            https: listen_field(&mut v, "listen.https", &raw.listen.https, https_default),
            metrics: listen_field(
                &mut v,
                "listen.metrics",
                &raw.listen.metrics,
                "127.0.0.1:9100",
            ),
            local_ca: listen_field(
                &mut v,
                "listen.local_ca",
                &raw.listen.local_ca,
                "127.0.0.1:8444",
            ),
            local_ca_public: raw
                .listen
                .local_ca_public
                .as_ref()
                .is_some_and(|p| *p.get_ref()),
            trusted_proxies: v
                .parse("listen.trusted_proxies", &raw.listen.trusted_proxies, |list| {
                    list.iter()
                        .map(|p| {
                            p.parse::<ipnet::IpNet>()
                                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                                .map_err(|_| format!("`{p}` is not an IP address or network; use a value such as \"127.0.0.1\" or \"10.0.0.0/8\""))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };

        let canonical = domains.first().map_or("localhost", Domain::as_str);
        let default_base = match mode {
            Mode::Off => with_port("http", canonical, listen.http.port(), 80),
            _ if mode.is_local() => with_port("https", canonical, listen.https.port(), 443),
            _ => format!("https://{canonical}/"),
        };
        let base_url = v
            .parse("site.base_url", &raw.site.base_url, base_url)
            .unwrap_or_else(|| Url::parse(&default_base).expect("default base url"));

        let posts_per_page = v
            .parse("site.posts_per_page", &raw.site.posts_per_page, |&n| {
                POSTS_PER_PAGE.check(n)
            })
            .and_then(NonZeroUsize::new)
            .unwrap_or(NonZeroUsize::new(10).expect("nonzero"));
        let language = v
            .parse("site.language", &raw.site.language, |l| {
                let ok = !l.is_empty()
                    && l.len() <= 35
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if ok {
                    Ok(l.clone())
                } else {
                    Err(format!(
                        "`{l}` is not a language tag; use a tag such as \"en\" or \"pt-BR\""
                    ))
                }
            })
            .unwrap_or_else(|| "en".into());
        let site = SiteConfig {
            title: v
                .string(&raw.site.title)
                .unwrap_or_else(|| "A quire blog".into()),
            base_url,
            author: v.string(&raw.site.author).unwrap_or_default(),
            description: v.string(&raw.site.description).unwrap_or_default(),
            language,
            posts_per_page,
        };

        let resolve = |field: &Field<String>, default: &str| -> PathBuf {
            let p = PathBuf::from(field.as_ref().map_or(default, |f| f.get_ref().as_str()));
            if p.is_absolute() { p } else { base_dir.join(p) }
        };
        let data = match overrides
            .data_dir
            .clone()
            .or_else(|| env("QUIRE_DATA_DIR").map(PathBuf::from))
        {
            Some(dir) => dir,
            None => resolve(&raw.paths.data, "data"),
        };
        let paths = Paths {
            content: resolve(&raw.paths.content, "content"),
            templates: resolve(&raw.paths.templates, "templates"),
            static_dir: resolve(&raw.paths.static_dir, "static"),
            data,
        };

        let tls = validate_tls(&mut v, &raw.tls, mode, &resolve);
        let limits = validate_limits(&mut v, &raw.limits);

        let stats = StatsConfig {
            enabled: raw.stats.enabled.as_ref().is_none_or(|e| *e.get_ref()),
            flush_every: v
                .parse("stats.flush_every", &raw.stats.flush_every, |t| {
                    FLUSH_EVERY.parse(t)
                })
                .unwrap_or(Duration::from_secs(10)),
            hourly_retention_days: v
                .parse(
                    "stats.hourly_retention_days",
                    &raw.stats.hourly_retention_days,
                    |&n| HOURLY_RETENTION_DAYS.check(n),
                )
                .unwrap_or(14),
            daily_retention_days: v
                .parse(
                    "stats.daily_retention_days",
                    &raw.stats.daily_retention_days,
                    |&n| DAILY_RETENTION_DAYS.check(n),
                )
                .unwrap_or(730),
            respect_dnt: raw.stats.respect_dnt.as_ref().is_none_or(|e| *e.get_ref()),
        };

        let metrics = MetricsConfig {
            enabled: raw.metrics.enabled.as_ref().is_none_or(|e| *e.get_ref()),
            token: v.parse("metrics.token", &raw.metrics.token, |t| {
                if t.len() >= 16 {
                    Ok(t.clone())
                } else {
                    Err("is too short; use at least 16 random characters (e.g. `openssl rand -hex 24`)".into())
                }
            }),
        };

        if metrics.enabled && !listen.metrics.ip().is_loopback() && metrics.token.is_none() {
            let origin = match &raw.listen.metrics {
                Some(field) => v.origin_of(field),
                None => v.file_name.clone(),
            };
            v.report(
                origin,
                "listen.metrics",
                format!(
                    "{} is reachable from other machines, so the metrics endpoint needs [metrics] token (a bearer token of 16+ random characters, e.g. `openssl rand -hex 24`); or bind it to 127.0.0.1",
                    listen.metrics
                ),
            );
        }

        // The local CA issues for any account that asks: other machines have no business there.
        if mode == Mode::Local && !listen.local_ca.ip().is_loopback() && !listen.local_ca_public {
            let origin = match &raw.listen.local_ca {
                Some(field) => v.origin_of(field),
                None => v.file_name.clone(),
            };
            v.report(
                origin,
                "listen.local_ca",
                format!(
                    "{} is reachable from other machines, who could then order certificates from the local CA; bind it to 127.0.0.1, or set [listen] local_ca_public = true if that is intended",
                    listen.local_ca
                ),
            );
        }

        if !v.problems.is_empty() {
            v.problems.sort_by_key(|p| p.line());
            return Err(ConfigError::Invalid(v.problems));
        }
        Ok(Config {
            mode,
            drafts: overrides.drafts,
            site,
            domains,
            paths,
            listen,
            tls,
            stats,
            metrics,
            limits,
            source: path.map(Path::to_path_buf),
            overrides: overrides.clone(),
        })
    }

    pub fn canonical_domain(&self) -> &Domain {
        &self.domains[0]
    }
}

fn with_port(scheme: &str, host: &str, port: u16, default_port: u16) -> String {
    if port == default_port {
        format!("{scheme}://{host}/")
    } else {
        format!("{scheme}://{host}:{port}/")
    }
}

fn validate_limits(v: &mut Validator, raw: &RawLimits) -> Limits {
    let d = Limits::default();
    Limits {
        handshake_timeout: v
            .parse("limits.handshake_timeout", &raw.handshake_timeout, |t| {
                HANDSHAKE_TIMEOUT.parse(t)
            })
            .unwrap_or(d.handshake_timeout),
        header_read_timeout: v
            .parse(
                "limits.header_read_timeout",
                &raw.header_read_timeout,
                |t| HEADER_READ_TIMEOUT.parse(t),
            )
            .unwrap_or(d.header_read_timeout),
        idle_timeout: v
            .parse("limits.idle_timeout", &raw.idle_timeout, |t| {
                IDLE_TIMEOUT.parse(t)
            })
            .unwrap_or(d.idle_timeout),
        max_header_bytes: v
            .parse("limits.max_header_bytes", &raw.max_header_bytes, |&n| {
                MAX_HEADER_BYTES.check(n)
            })
            .unwrap_or(d.max_header_bytes),
        max_connections: v
            .parse("limits.max_connections", &raw.max_connections, |&n| {
                MAX_CONNECTIONS.check(n)
            })
            .unwrap_or(d.max_connections),
        h2_max_concurrent_streams: v
            .parse(
                "limits.h2_max_concurrent_streams",
                &raw.h2_max_concurrent_streams,
                |&n| H2_MAX_CONCURRENT_STREAMS.check(n),
            )
            .unwrap_or(d.h2_max_concurrent_streams),
        shutdown_grace: v
            .parse("limits.shutdown_grace", &raw.shutdown_grace, |t| {
                SHUTDOWN_GRACE.parse(t)
            })
            .unwrap_or(d.shutdown_grace),
    }
}

fn validate_tls(
    v: &mut Validator,
    raw: &RawTls,
    mode: Mode,
    resolve: &dyn Fn(&Field<String>, &str) -> PathBuf,
) -> TlsConfig {
    let directory_url = v.parse("tls.directory_url", &raw.directory_url, |u| {
        Url::parse(u)
            .ok()
            .filter(|u| {
                u.scheme() == "https"
                    || u.host_str() == Some("127.0.0.1")
                    || u.host_str() == Some("localhost")
            })
            .ok_or_else(|| format!("`{u}` is not an https URL; use the CA's ACME directory URL"))
    });
    if mode == Mode::Acme && raw.directory_url.is_none() {
        v.report(
            "config".into(),
            "tls.directory_url",
            "is required in acme mode; set it to your CA's ACME directory URL",
        );
    }
    let contacts = v
        .parse("tls.contacts", &raw.contacts, |list| {
            list.iter()
                .map(|c| {
                    let c = if c.contains(':') {
                        c.clone()
                    } else {
                        format!("mailto:{c}")
                    };
                    if c.starts_with("mailto:") && c.contains('@') {
                        Ok(c)
                    } else {
                        Err(format!(
                            "`{c}` is not an e-mail contact; use \"you@example.com\""
                        ))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let eab = match (&raw.eab_kid, &raw.eab_hmac) {
        (Some(kid), Some(hmac)) => Some(ExternalAccountBinding {
            kid: kid.get_ref().clone(),
            hmac: hmac.get_ref().clone(),
        }),
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => {
            let origin = v.origin_of(f);
            v.report(
                origin,
                "tls.eab_kid/eab_hmac",
                "set both or neither; your CA gives you the pair",
            );
            None
        }
    };
    let cert_file = raw.cert_file.as_ref().map(|_| resolve(&raw.cert_file, ""));
    let key_file = raw.key_file.as_ref().map(|_| resolve(&raw.key_file, ""));
    if mode == Mode::Manual && (cert_file.is_none() || key_file.is_none()) {
        v.report(
            "config".into(),
            "tls.cert_file/key_file",
            "manual mode needs both; point them at your PEM certificate chain and private key",
        );
    }
    let challenge = v
        .parse("tls.challenge", &raw.challenge, |c| match c.as_str() {
            "http-01" => Ok(Challenge::Http01),
            "tls-alpn-01" => Ok(Challenge::TlsAlpn01),
            other => Err(format!(
                "`{other}` is not supported; use \"http-01\" or \"tls-alpn-01\""
            )),
        })
        .unwrap_or(Challenge::Http01);
    TlsConfig {
        directory_url,
        contacts,
        eab,
        cert_file,
        key_file,
        renew_before_days: v
            .parse("tls.renew_before_days", &raw.renew_before_days, |&n| {
                RENEW_BEFORE_DAYS.check(n)
            })
            .unwrap_or(30),
        check_every: v
            .parse("tls.check_every", &raw.check_every, |t| {
                CHECK_EVERY.parse(t)
            })
            .unwrap_or(Duration::from_secs(8 * 3600)),
        challenge,
        post_issue_hook: raw
            .post_issue_hook
            .as_ref()
            .map(|h| h.get_ref().trim().to_string())
            .filter(|h| !h.is_empty()),
        local_ca_lifetime: v
            .parse("tls.local_ca_lifetime", &raw.local_ca_lifetime, |t| {
                LOCAL_CA_LIFETIME.parse(t)
            })
            .unwrap_or(Duration::from_secs(90 * 86400)),
        hsts: raw.hsts.as_ref().map_or(!mode.is_local(), |h| *h.get_ref()),
    }
}

/// The process environment, for [`Config::load`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads no environment at all; for tests.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// A fixed environment; for tests.
pub fn env_from(map: HashMap<&'static str, &'static str>) -> impl Fn(&str) -> Option<String> {
    move |name| map.get(name).map(|v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_parts(
            Some(Path::new("/etc/quire/quire.toml")),
            text,
            &Overrides::default(),
            &no_env,
        )
    }

    fn problems(text: &str) -> Vec<ConfigProblem> {
        match parse(text) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn every_refused_key_is_listed_with_its_line_in_one_run() {
        let p = problems(
            "[site]\ntitel = \"x\"\nposts_per_page = \"ten\"\n\n[lisen]\nhttp = \"127.0.0.1:80\"\nhttps = \"127.0.0.1:443\"\n\n[listen]\nhtps = \"1\"\nhttp = \"bad\"\n",
        );
        let found: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.origin.as_str(), p.message.split(',').next().unwrap()))
            .collect();
        assert_eq!(
            found,
            [
                ("/etc/quire/quire.toml:2", "unknown field `titel`"),
                ("/etc/quire/quire.toml:3", "invalid type: string \"ten\""),
                ("/etc/quire/quire.toml:5", "unknown field `lisen`"),
                ("/etc/quire/quire.toml:10", "unknown field `htps`"),
                (
                    "/etc/quire/quire.toml:11",
                    "`bad` is not an address with a port from 0 to 65535; use a value such as \"127.0.0.1:8080\" or \"[::]:443\""
                ),
            ]
        );
    }

    #[test]
    fn a_syntax_error_is_listed_alone_as_nothing_else_can_be_read() {
        let p = problems("[site]\ntitel = 1\ntitle = \"unclosed\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].origin, "/etc/quire/quire.toml:3");
        assert!(p[0].message.contains("expected `\"`"), "{p:?}");
    }

    #[test]
    fn defaults_serve_localhost_in_local_mode() {
        let c = Config::from_parts(None, "", &Overrides::default(), &no_env).unwrap();
        assert_eq!(c.mode, Mode::Local);
        assert_eq!(c.domains[0].as_str(), "localhost");
        assert_eq!(c.listen.http.to_string(), "127.0.0.1:8080");
        assert_eq!(c.listen.https.to_string(), "127.0.0.1:8443");
        assert_eq!(c.listen.metrics.to_string(), "127.0.0.1:9100");
        assert_eq!(c.site.base_url.as_str(), "https://localhost:8443/");
        assert_eq!(c.paths.content, PathBuf::from("content"));
        assert_eq!(c.stats.hourly_retention_days, 14);
        assert_eq!(c.tls.check_every, Duration::from_secs(8 * 3600));
    }

    #[test]
    fn production_needs_domains_and_uses_public_ports() {
        let p = problems("[tls]\nmode = \"production\"\n");
        assert_eq!(p[0].key, "domains.names");
        let c = parse("[tls]\nmode = \"production\"\n[domains]\nnames = [\"Blog.Example.com\", \"www.example.com\"]\n").unwrap();
        assert_eq!(c.listen.https.port(), 443);
        assert_eq!(c.canonical_domain().as_str(), "blog.example.com");
        assert_eq!(c.site.base_url.as_str(), "https://blog.example.com/");
    }

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let c = parse("[paths]\ncontent = \"posts\"\ndata = \"/var/lib/quire\"\n").unwrap();
        assert_eq!(c.paths.content, PathBuf::from("/etc/quire/posts"));
        assert_eq!(c.paths.data, PathBuf::from("/var/lib/quire"));
        assert_eq!(c.paths.static_dir, PathBuf::from("/etc/quire/static"));
    }

    #[test]
    fn unknown_key_names_the_line() {
        let p = problems("[site]\ntitle = \"x\"\ntitel = \"y\"\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].origin.ends_with("quire.toml:3"), "{:?}", p[0]);
        assert!(p[0].message.contains("titel"), "{:?}", p[0]);
    }

    #[test]
    fn wrong_type_names_the_line() {
        let p = problems("[site]\n\nposts_per_page = \"ten\"\n");
        assert!(p[0].origin.ends_with(":3"), "{:?}", p[0]);
    }

    #[test]
    fn impossible_values_are_all_reported_with_lines() {
        let p = problems(
            "[site]\nbase_url = \"not a url\"\n[listen]\nhttp = \"127.0.0.1:70000\"\n[stats]\nhourly_retention_days = 0\nflush_every = \"soon\"\n",
        );
        let found: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.origin.rsplit(':').next().unwrap()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("site.base_url", "2"),
                ("listen.http", "4"),
                ("stats.hourly_retention_days", "6"),
                ("stats.flush_every", "7"),
            ]
        );
        assert!(
            p.iter().all(|p| p.message.contains("use")),
            "every problem says what to do: {p:?}"
        );
    }

    /// Every duration key, with its section and range as the message gives it.
    const DURATIONS: [(&str, &str, &str); 7] = [
        ("limits", "handshake_timeout", "from 1s to 5m"),
        ("limits", "header_read_timeout", "from 1s to 5m"),
        ("limits", "idle_timeout", "from 1s to 1h"),
        ("limits", "shutdown_grace", "from 1s to 1h"),
        ("tls", "check_every", "from 1m to 7days"),
        ("tls", "local_ca_lifetime", "from 1m to 200days"),
        ("stats", "flush_every", "from 1s to 1h"),
    ];

    fn one_key(section: &str, key: &str, value: &str) -> String {
        format!("[{section}]\n{key} = {value}\n")
    }

    #[test]
    fn durations_that_would_overflow_are_refused_with_their_range() {
        for (section, key, range) in DURATIONS {
            for huge in ["\"18446744073709551615s\"", "\"500000000y\""] {
                let p = problems(&one_key(section, key, huge));
                assert_eq!(p.len(), 1, "{p:?}");
                assert_eq!(p[0].key, format!("{section}.{key}"));
                assert_eq!(p[0].origin, "/etc/quire/quire.toml:2");
                assert!(
                    p[0].message
                        .ends_with(&format!("is out of range; use a duration {range}")),
                    "{p:?}"
                );
            }
        }
    }

    #[test]
    fn each_duration_takes_its_bounds_and_nothing_beyond() {
        let bounds = [
            HANDSHAKE_TIMEOUT,
            HEADER_READ_TIMEOUT,
            IDLE_TIMEOUT,
            SHUTDOWN_GRACE,
            CHECK_EVERY,
            LOCAL_CA_LIFETIME,
            FLUSH_EVERY,
        ];
        for ((section, key, _), range) in DURATIONS.into_iter().zip(bounds) {
            let text = |d: Duration| format!("\"{}ms\"", d.as_millis());
            for inside in [range.min, range.max] {
                parse(&one_key(section, key, &text(inside)))
                    .unwrap_or_else(|e| panic!("{key} = {inside:?}: {e}"));
            }
            let millisecond = Duration::from_millis(1);
            for outside in [
                range.min - millisecond,
                range.max + millisecond,
                Duration::ZERO,
            ] {
                let p = problems(&one_key(section, key, &text(outside)));
                assert!(p[0].message.contains("out of range"), "{p:?}");
            }
        }
    }

    #[test]
    fn counts_take_their_bounds_and_nothing_beyond() {
        let counts = [
            ("site", "posts_per_page", POSTS_PER_PAGE),
            ("limits", "max_header_bytes", MAX_HEADER_BYTES),
            ("limits", "max_connections", MAX_CONNECTIONS),
            (
                "limits",
                "h2_max_concurrent_streams",
                H2_MAX_CONCURRENT_STREAMS,
            ),
            ("tls", "renew_before_days", RENEW_BEFORE_DAYS),
            ("stats", "hourly_retention_days", HOURLY_RETENTION_DAYS),
            ("stats", "daily_retention_days", DAILY_RETENTION_DAYS),
        ];
        for (section, key, range) in counts {
            for inside in [range.min, range.max] {
                parse(&one_key(section, key, &inside.to_string()))
                    .unwrap_or_else(|e| panic!("{key} = {inside}: {e}"));
            }
            for outside in [range.min - 1, range.max + 1, i64::MIN, i64::MAX] {
                let p = problems(&one_key(section, key, &outside.to_string()));
                assert_eq!(
                    p[0].message,
                    format!(
                        "{outside} is out of range; use a number from {} to {}",
                        range.min, range.max
                    )
                );
            }
        }
    }

    #[test]
    fn a_word_where_a_duration_belongs_gets_the_range() {
        let p = problems("[stats]\nflush_every = \"soon\"\n");
        assert!(
            p[0].message.starts_with("`soon` is not a duration (")
                && p[0].message.ends_with("; use a duration from 1s to 1h"),
            "{p:?}"
        );
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let env = env_from(HashMap::from([
            ("MODE", "manual"),
            ("QUIRE_DATA_DIR", "/srv/data"),
        ]));
        let file = "[tls]\nmode = \"local\"\n";
        let c = Config::from_parts(None, file, &Overrides::default(), &env);
        assert!(
            matches!(c, Err(ConfigError::Invalid(ref p)) if p.iter().any(|p| p.key == "tls.cert_file/key_file"))
        );
        let flags = Overrides {
            mode: Some("off".into()),
            ..Default::default()
        };
        let c = Config::from_parts(None, file, &flags, &env).unwrap();
        assert_eq!(c.mode, Mode::Off);
        assert_eq!(c.paths.data, PathBuf::from("/srv/data"));
        assert_eq!(c.site.base_url.as_str(), "http://localhost:8080/");
        let env = env_from(HashMap::from([("QUIRE_MODE", "off"), ("MODE", "manual")]));
        assert_eq!(
            Config::from_parts(None, "", &Overrides::default(), &env)
                .unwrap()
                .mode,
            Mode::Off
        );
    }

    #[test]
    fn bad_mode_from_flag_is_reported() {
        let flags = Overrides {
            mode: Some("prod".into()),
            ..Default::default()
        };
        let err = Config::from_parts(None, "", &flags, &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--mode: mode: unknown mode `prod`"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid_and_matches_the_defaults() {
        let text = include_str!("../config.example.toml");
        let path = Path::new("/srv/quire/config.toml");
        let example = Config::from_parts(Some(path), text, &Overrides::default(), &no_env).unwrap();
        let defaults = Config::from_parts(Some(path), "", &Overrides::default(), &no_env).unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn a_local_ca_reachable_from_other_machines_needs_consent() {
        let p = problems("[listen]\nlocal_ca = \"0.0.0.0:8444\"\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "listen.local_ca");
        assert_eq!(p[0].origin, "/etc/quire/quire.toml:2");
        assert!(p[0].message.contains("local_ca_public = true"), "{p:?}");
        let c = parse("[listen]\nlocal_ca = \"[::]:8444\"\nlocal_ca_public = true\n").unwrap();
        assert!(c.listen.local_ca_public);
        parse("[listen]\nlocal_ca = \"[::1]:8444\"\n").unwrap();
        parse("[tls]\nmode = \"off\"\n[listen]\nlocal_ca = \"0.0.0.0:8444\"\n").unwrap();
    }

    #[test]
    fn base_url_must_be_an_origin() {
        let c = parse("[site]\nbase_url = \"https://example.com\"\n").unwrap();
        assert_eq!(c.site.base_url.as_str(), "https://example.com/");
        let p = problems("[site]\nbase_url = \"https://example.com/blog/\"\n");
        assert_eq!(p[0].key, "site.base_url");
    }
}
