//! Every built-in default, in one place: what a key is when neither the file,
//! the environment nor a flag sets it. config.example.toml shows the same
//! values (a test holds them together).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use super::dns::TsigAlgorithm;
use super::post_url::PostUrl;
use super::types::{Challenge, Limits, Mode};
use crate::names::{DnsName, SiteName};

pub(super) const MINUTE: u64 = 60;
pub(super) const HOUR: u64 = 60 * MINUTE;
pub(super) const DAY: u64 = 24 * HOUR;

pub const MODE: Mode = Mode::Local;

/// `[domains] names` in local and off mode; the other modes require it.
pub fn domains() -> Vec<SiteName> {
    vec![SiteName::Host(DnsName::localhost())]
}

pub const TITLE: &str = "A quire blog";
pub const AUTHOR: &str = "";
pub const DESCRIPTION: &str = "";
pub const LANGUAGE: &str = "en";
pub const POSTS_PER_PAGE: NonZeroUsize = NonZeroUsize::new(10).expect("nonzero");
/// `[site] post_url`: the scheme quire has always used.
pub fn post_url() -> PostUrl {
    PostUrl::parse("/posts/{slug}/").expect("the default pattern is valid")
}

/// `[paths]`, relative to the config file's folder.
pub const CONTENT_DIR: &str = "content";
pub const TEMPLATES_DIR: &str = "templates";
pub const STATIC_DIR: &str = "static";
pub const DATA_DIR: &str = "data";

const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// `[::]` binds IPv6 and IPv4 both (see `net`), IPv4 alone without IPv6.
const fn every_address(port: u16) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

/// `[listen] http`: loopback for a laptop or a proxy, the public port otherwise.
pub fn http_addr(mode: Mode) -> SocketAddr {
    if mode.is_local() {
        loopback(8080)
    } else {
        every_address(80)
    }
}

/// `[listen] https`, by the same rule as [`http_addr`].
pub fn https_addr(mode: Mode) -> SocketAddr {
    if mode.is_local() {
        loopback(8443)
    } else {
        every_address(443)
    }
}

pub const METRICS_ADDR: SocketAddr = loopback(9100);
pub const LOCAL_CA_ADDR: SocketAddr = loopback(8444);
pub const LOCAL_CA_PUBLIC: bool = false;

/// `[site] base_url` when unset: the canonical domain on the scheme and port
/// the mode serves it on, the port left out when it is the scheme's own.
pub fn base_url(mode: Mode, canonical: &str, http: SocketAddr, https: SocketAddr) -> String {
    let with_port = |scheme: &str, port: u16, default_port: u16| {
        if port == default_port {
            format!("{scheme}://{canonical}/")
        } else {
            format!("{scheme}://{canonical}:{port}/")
        }
    };
    match mode {
        Mode::Off => with_port("http", http.port(), 80),
        _ if mode.is_local() => with_port("https", https.port(), 443),
        _ => format!("https://{canonical}/"),
    }
}

pub const RENEW_BEFORE_DAYS: u32 = 30;
/// Three failed orders in a row: with the retry backoff (1, 2, 4 minutes)
/// a passing outage of the CA stays quiet, a broken setup does not.
pub const ALERT_AFTER_FAILURES: u32 = 3;
pub const ALERT_DAYS_LEFT: u32 = 7;
pub const CHECK_EVERY: Duration = Duration::from_secs(8 * HOUR);
pub const CHALLENGE: Challenge = Challenge::Http01;
pub const TSIG_ALGORITHM: TsigAlgorithm = TsigAlgorithm::HmacSha256;
/// The local CA's profiles last as Let's Encrypt's do in 2026: `classic`
/// 90 days, `tlsserver` 45 days, `shortlived` 160 hours (6 days and some).
pub const LOCAL_CA_LIFETIME: Duration = Duration::from_secs(90 * DAY);
pub const LOCAL_CA_TLSSERVER_LIFETIME: Duration = Duration::from_secs(45 * DAY);
pub const LOCAL_CA_SHORTLIVED_LIFETIME: Duration = Duration::from_secs(160 * HOUR);

/// `[tls] hsts`: off where a browser would pin HTTPS for `localhost`.
pub fn hsts(mode: Mode) -> bool {
    !mode.is_local()
}

pub const STATS_ENABLED: bool = true;
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
pub const HOURLY_RETENTION_DAYS: u32 = 14;
pub const DAILY_RETENTION_DAYS: u32 = 730;
pub const RESPECT_DNT: bool = true;

pub const METRICS_ENABLED: bool = true;

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

/// A node is named after its machine unless `[cluster] node` says otherwise.
pub fn node_name() -> Result<super::types::NodeName, super::types::BadNodeName> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into our buffer.
    let written = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = match written {
        0 => String::from_utf8_lossy(&buffer[..end]).into_owned(),
        _ => String::new(),
    };
    name.parse()
}
