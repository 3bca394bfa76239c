//! One value at a time: the range every duration and count accepts, and the
//! parsers that turn a written value into a typed one or a [`ValueError`]
//! that says what to write instead. `validate` places each error at its key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::Url;

use super::defaults::{DAY, HOUR, MINUTE};
use super::dns::DnsValueError;
use super::post_url::BadPostUrl;
use super::types::{
    BadNodeName, BadProfileName, Challenge, NodeName, PostgresTarget, ProfileName, UnknownMode,
};
use crate::names::WrittenNameError;

/// Why one written value is refused; each message ends with what to use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("`{text}` is out of range; use a duration {range}")]
    DurationOutOfRange {
        text: String,
        range: Bounded<Duration>,
    },
    #[error("`{text}` is not a duration ({why}); use a duration {range}")]
    NotADuration {
        text: String,
        why: humantime::DurationError,
        range: Bounded<Duration>,
    },
    #[error("{n} is out of range; use a number {range}")]
    CountOutOfRange { n: i64, range: Bounded<i64> },
    #[error(
        "`{0}` is not an address with a port from 0 to 65535; use a value such as \"127.0.0.1:8080\" or \"[::]:443\""
    )]
    SocketAddr(String),
    #[error("`{text}` is not a URL ({why}); use a full URL such as \"https://blog.example.com/\"")]
    NotAUrl { text: String, why: url::ParseError },
    #[error(
        "`{0}` must be an http or https URL with a host, such as \"https://blog.example.com/\""
    )]
    NotAWebUrl(String),
    // Pages link to each other by root-relative paths, so the site must own
    // the root of its host.
    #[error(
        "`{0}` has a path, query or fragment; quire serves a site at the root of its host, so use just the origin, such as \"https://blog.example.com/\""
    )]
    NotAnOrigin(String),
    #[error("`{0}` is not a language tag; use a tag such as \"en\" or \"pt-BR\"")]
    Language(String),
    #[error(
        "`{0}` is not an IP address or network; use a value such as \"127.0.0.1\" or \"10.0.0.0/8\""
    )]
    TrustedProxy(String),
    #[error("`{0}` is not an https URL; use the CA's ACME directory URL")]
    DirectoryUrl(String),
    #[error("`{0}` is not an e-mail contact; use \"you@example.com\"")]
    Contact(String),
    #[error("`{0}` is not supported; use \"http-01\", \"tls-alpn-01\" or \"dns-01\"")]
    Challenge(String),
    #[error("is too short; use at least 16 random characters (e.g. `openssl rand -hex 24`)")]
    TokenTooShort,
    #[error(
        "is not a PostgreSQL connection string ({0}); use a URL such as \"postgres://quire:secret@db.example.com/quire?sslmode=require\" or \"host=db.example.com user=quire dbname=quire\""
    )]
    Postgres(String),
    #[error("{0}")]
    NodeName(#[from] BadNodeName),
    #[error("{0}")]
    Profile(#[from] BadProfileName),
    #[error(transparent)]
    Mode(#[from] UnknownMode),
    #[error(transparent)]
    PostUrl(#[from] BadPostUrl),
    #[error(transparent)]
    Domain(#[from] WrittenNameError),
    #[error(transparent)]
    Dns(#[from] DnsValueError),
}

/// The values one setting accepts: wide enough for any real operator, narrow
/// enough that no arithmetic on a configured value can overflow (an `Instant`
/// plus `18446744073709551615s` panics on every connection). `quire check`,
/// start and reload all validate through these, so none can apply a value
/// the others would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<T> {
    pub min: T,
    pub max: T,
}

const fn seconds(min: u64, max: u64) -> Bounded<Duration> {
    Bounded {
        min: Duration::from_secs(min),
        max: Duration::from_secs(max),
    }
}

const fn count(min: i64, max: i64) -> Bounded<i64> {
    Bounded { min, max }
}

pub const HANDSHAKE_TIMEOUT: Bounded<Duration> = seconds(1, 5 * MINUTE);
pub const HEADER_READ_TIMEOUT: Bounded<Duration> = seconds(1, 5 * MINUTE);
pub const IDLE_TIMEOUT: Bounded<Duration> = seconds(1, HOUR);
pub const SHUTDOWN_GRACE: Bounded<Duration> = seconds(1, HOUR);
pub const CHECK_EVERY: Bounded<Duration> = seconds(MINUTE, 7 * DAY);
pub const FLUSH_EVERY: Bounded<Duration> = seconds(1, HOUR);
/// Inside the local intermediate's one-year life, and no longer than the
/// CA/Browser Forum allows public certificates from 2026 (200 days).
pub const LOCAL_CA_LIFETIME: Bounded<Duration> = seconds(MINUTE, 200 * DAY);

/// Most `[[tls.issuers]]`: each one that is down costs an order its time.
pub const MAX_ISSUERS: usize = 8;
pub const POSTS_PER_PAGE: Bounded<i64> = count(1, 1000);
pub const MAX_HEADER_BYTES: Bounded<i64> = count(8192, 1 << 20);
pub const MAX_CONNECTIONS: Bounded<i64> = count(1, 1_000_000);
pub const H2_MAX_CONCURRENT_STREAMS: Bounded<i64> = count(1, 10_000);
pub const RENEW_BEFORE_DAYS: Bounded<i64> = count(1, 365);
pub const ALERT_AFTER_FAILURES: Bounded<i64> = count(1, 100);
pub const ALERT_DAYS_LEFT: Bounded<i64> = count(1, 60);
pub const HOURLY_RETENTION_DAYS: Bounded<i64> = count(1, 3650);
pub const DAILY_RETENTION_DAYS: Bounded<i64> = count(1, 36500);

impl Bounded<Duration> {
    /// A duration such as "10s" or "8h", within range.
    pub fn parse(self, text: &str) -> Result<Duration, ValueError> {
        match humantime::parse_duration(text) {
            Ok(d) if (self.min..=self.max).contains(&d) => Ok(d),
            Ok(_) => Err(ValueError::DurationOutOfRange {
                text: text.to_string(),
                range: self,
            }),
            Err(why) => Err(ValueError::NotADuration {
                text: text.to_string(),
                why,
                range: self,
            }),
        }
    }
}

impl fmt::Display for Bounded<Duration> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "from {} to {}",
            whole_units(self.min),
            whole_units(self.max)
        )
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

/// `quire local-ca --lifetime` (and the other profiles' lifetimes): the
/// range of `[tls] local_ca_lifetime`.
pub fn local_ca_lifetime(text: &str) -> Result<Duration, ValueError> {
    LOCAL_CA_LIFETIME.parse(text)
}

impl Bounded<i64> {
    /// A whole number within range; the caller's type holds every such value.
    pub fn check<U: TryFrom<i64>>(self, n: i64) -> Result<U, ValueError> {
        (self.min..=self.max)
            .contains(&n)
            .then(|| U::try_from(n).ok())
            .flatten()
            .ok_or(ValueError::CountOutOfRange { n, range: self })
    }
}

impl fmt::Display for Bounded<i64> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from {} to {}", self.min, self.max)
    }
}

pub fn socket_addr(text: &str) -> Result<SocketAddr, ValueError> {
    text.parse()
        .map_err(|_| ValueError::SocketAddr(text.to_string()))
}

pub fn base_url(text: &str) -> Result<Url, ValueError> {
    let url = Url::parse(text).map_err(|why| ValueError::NotAUrl {
        text: text.to_string(),
        why,
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ValueError::NotAWebUrl(text.to_string()));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(ValueError::NotAnOrigin(text.to_string()));
    }
    Ok(url)
}

/// A BCP 47 tag, loosely: what a `lang` attribute can carry.
pub fn language(tag: &str) -> Result<String, ValueError> {
    let ok = !tag.is_empty()
        && tag.len() <= 35
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(tag.to_string())
    } else {
        Err(ValueError::Language(tag.to_string()))
    }
}

/// A network, or one address as the network of just itself.
pub fn trusted_proxy(text: &str) -> Result<ipnet::IpNet, ValueError> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| ValueError::TrustedProxy(text.to_string()))
}

/// An https directory; plain http only on loopback, where test CAs run.
pub fn directory_url(text: &str) -> Result<Url, ValueError> {
    Url::parse(text)
        .ok()
        .filter(|u| {
            u.scheme() == "https"
                || u.host_str() == Some("127.0.0.1")
                || u.host_str() == Some("localhost")
        })
        .ok_or_else(|| ValueError::DirectoryUrl(text.to_string()))
}

/// An ACME contact: `mailto:` is added to a bare address.
pub fn contact(text: &str) -> Result<String, ValueError> {
    let contact = if text.contains(':') {
        text.to_string()
    } else {
        format!("mailto:{text}")
    };
    if contact.starts_with("mailto:") && contact.contains('@') {
        Ok(contact)
    } else {
        Err(ValueError::Contact(contact))
    }
}

pub fn challenge(text: &str) -> Result<Challenge, ValueError> {
    match text {
        "http-01" => Ok(Challenge::Http01),
        "tls-alpn-01" => Ok(Challenge::TlsAlpn01),
        "dns-01" => Ok(Challenge::Dns01),
        other => Err(ValueError::Challenge(other.to_string())),
    }
}

pub fn metrics_token(token: &str) -> Result<String, ValueError> {
    if token.len() >= 16 {
        Ok(token.to_string())
    } else {
        Err(ValueError::TokenTooShort)
    }
}

pub fn postgres(text: &str) -> Result<PostgresTarget, ValueError> {
    PostgresTarget::parse(text).map_err(|e| ValueError::Postgres(e.to_string()))
}

pub fn node_name(text: &str) -> Result<NodeName, ValueError> {
    Ok(text.parse()?)
}

pub fn profile(text: &str) -> Result<ProfileName, ValueError> {
    Ok(text.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_print_in_the_units_an_operator_writes() {
        assert_eq!(LOCAL_CA_LIFETIME.to_string(), "from 1m to 200days");
        assert_eq!(HANDSHAKE_TIMEOUT.to_string(), "from 1s to 5m");
        assert_eq!(IDLE_TIMEOUT.to_string(), "from 1s to 1h");
        assert_eq!(seconds(90, 90).to_string(), "from 90s to 90s");
        assert_eq!(MAX_HEADER_BYTES.to_string(), "from 8192 to 1048576");
    }

    #[test]
    fn a_bare_address_becomes_a_mailto_contact() {
        assert_eq!(
            contact("you@example.com").unwrap(),
            "mailto:you@example.com"
        );
        assert_eq!(
            contact("https://x").unwrap_err().to_string(),
            "`https://x` is not an e-mail contact; use \"you@example.com\""
        );
    }

    #[test]
    fn a_single_address_is_a_trusted_network_of_one() {
        assert_eq!(
            trusted_proxy("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(trusted_proxy("::1/128").unwrap().to_string(), "::1/128");
        assert!(trusted_proxy("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_lifetime_flag_has_the_config_keys_range() {
        assert_eq!(
            local_ca_lifetime("90days").unwrap(),
            Duration::from_secs(90 * DAY)
        );
        assert_eq!(
            local_ca_lifetime("201days").unwrap_err().to_string(),
            "`201days` is out of range; use a duration from 1m to 200days"
        );
    }
}
