//! The one DNS name type: what `local-ca --domain` and the local CA's order
//! identifiers accept, checked by one set of rules so a name the config takes
//! is a name the local CA will certify. [`SiteName`] is what the config's
//! `domains.names` holds: such a host, or (with dns-01) a wildcard over one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why a text is not a DNS name; each reads after "cannot certify NAME: ".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a wildcard is not a host name")]
    Wildcard,
    #[error(
        "a wildcard covers the names under a domain of two labels or more, such as *.example.com"
    )]
    WildcardBase,
    #[error("IP addresses are not DNS names")]
    IpAddress,
    #[error("leave out the trailing dot")]
    TrailingDot,
    #[error("a DNS name has 1 to 253 characters")]
    Length,
    #[error("each label must be 1 to 63 letters, digits or inner hyphens")]
    Label,
    // RFC 3696 section 2: a name like `127.1` would otherwise pass here and
    // then be read as an IPv4 address by inet_aton-style resolvers.
    #[error("the last label must not be all digits")]
    NumericTopLabel,
}

/// A name someone wrote (config file, flag) that is not a DNS name, told back
/// with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a domain name ({why}); use a host name such as blog.example.com")]
pub struct WrittenNameError {
    pub text: String,
    pub why: NameError,
}

/// A lowercase host name of LDH labels (RFC 1035/5890): 1 to 63 bytes a label,
/// at most 253 in all, no trailing dot, not an IP address, no wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// The name exactly as given, up to case: what an ACME identifier must be.
    pub fn parse(text: &str) -> Result<DnsName, NameError> {
        let name = text.to_ascii_lowercase();
        if name.starts_with("*.") {
            return Err(NameError::Wildcard);
        }
        if name.parse::<IpAddr>().is_ok() {
            return Err(NameError::IpAddress);
        }
        if name.ends_with('.') {
            return Err(NameError::TrailingDot);
        }
        if name.is_empty() || name.len() > 253 {
            return Err(NameError::Length);
        }
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !name.split('.').all(label_ok) {
            return Err(NameError::Label);
        }
        if name
            .rsplit('.')
            .next()
            .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(NameError::NumericTopLabel);
        }
        Ok(DnsName(name))
    }

    /// A name as a person writes it in a config file or on the command line:
    /// surrounding spaces and the root's one trailing dot are dropped.
    pub fn parse_written(text: &str) -> Result<DnsName, WrittenNameError> {
        let trimmed = text.trim();
        DnsName::parse(trimmed.strip_suffix('.').unwrap_or(trimmed)).map_err(|why| {
            WrittenNameError {
                text: text.to_owned(),
                why,
            }
        })
    }

    pub fn localhost() -> DnsName {
        DnsName("localhost".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A name the site answers to and its certificate covers: a host, or a
/// wildcard `*.<base>` covering every host one label under `base`. Its own
/// type, so that a [`DnsName`] is always a host a request can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SiteName {
    Host(DnsName),
    /// Holds the base: `example.com` for `*.example.com`.
    Wildcard(DnsName),
}

impl SiteName {
    /// A name as a person writes it, as [`DnsName::parse_written`] takes it,
    /// or `*.` before such a name.
    pub fn parse_written(text: &str) -> Result<SiteName, WrittenNameError> {
        let trimmed = text.trim();
        let Some(base) = trimmed.strip_prefix("*.") else {
            return DnsName::parse_written(text).map(SiteName::Host);
        };
        let refused = |why| WrittenNameError {
            text: text.to_owned(),
            why,
        };
        let base = DnsName::parse_written(base).map_err(|e| refused(e.why))?;
        if !base.as_str().contains('.') {
            return Err(refused(NameError::WildcardBase));
        }
        Ok(SiteName::Wildcard(base))
    }

    /// The host, unless this is a wildcard.
    pub fn host(&self) -> Option<&DnsName> {
        match self {
            SiteName::Host(host) => Some(host),
            SiteName::Wildcard(_) => None,
        }
    }

    /// The name whose `_acme-challenge` label holds the dns-01 answer (RFC
    /// 8555 section 8.4): the host, or a wildcard's base.
    pub fn base(&self) -> &DnsName {
        match self {
            SiteName::Host(name) | SiteName::Wildcard(name) => name,
        }
    }

    pub fn is_wildcard(&self) -> bool {
        matches!(self, SiteName::Wildcard(_))
    }

    /// Whether a request for `host` (lowercase, no port) is for this name.
    pub fn covers(&self, host: &str) -> bool {
        match self {
            SiteName::Host(name) => name.as_str() == host,
            SiteName::Wildcard(base) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == base.as_str()),
        }
    }
}

impl From<DnsName> for SiteName {
    fn from(host: DnsName) -> SiteName {
        SiteName::Host(host)
    }
}

impl FromStr for SiteName {
    type Err = WrittenNameError;
    fn from_str(text: &str) -> Result<SiteName, WrittenNameError> {
        SiteName::parse_written(text)
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiteName::Host(host) => f.write_str(host.as_str()),
            SiteName::Wildcard(base) => write!(f, "*.{base}"),
        }
    }
}

/// Parsing from text is for what people write (config, flags), hence lenient.
impl FromStr for DnsName {
    type Err = WrittenNameError;
    fn from_str(text: &str) -> Result<DnsName, WrittenNameError> {
        DnsName::parse_written(text)
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_validated() {
        assert!("exa mple.com".parse::<DnsName>().is_err());
        assert!("127.0.0.1".parse::<DnsName>().is_err());
        assert!("-x.com".parse::<DnsName>().is_err());
        assert_eq!(
            "Example.COM.".parse::<DnsName>().unwrap().as_str(),
            "example.com"
        );
    }

    #[test]
    fn written_names_drop_spaces_and_one_root_dot_only() {
        assert_eq!(
            DnsName::parse_written(" blog.example.com \n").unwrap(),
            DnsName::parse("blog.example.com").unwrap()
        );
        let why = |text| DnsName::parse_written(text).unwrap_err().why;
        assert_eq!(why("example.com.."), NameError::TrailingDot);
        assert_eq!(why("."), NameError::Length);
    }

    #[test]
    fn written_names_say_what_to_write() {
        let e = "exa mple.com".parse::<DnsName>().unwrap_err().to_string();
        assert!(
            e.starts_with("`exa mple.com` is not a domain name ("),
            "{e}"
        );
        assert!(
            e.ends_with("use a host name such as blog.example.com"),
            "{e}"
        );
    }

    #[test]
    fn identifiers_must_be_exact() {
        assert_eq!(DnsName::parse("a.test."), Err(NameError::TrailingDot));
        assert_eq!(DnsName::parse(" a.test"), Err(NameError::Label));
        assert_eq!(DnsName::parse("B.Test").unwrap().as_str(), "b.test");
    }

    #[test]
    fn each_rule_has_its_reason() {
        let cases = [
            ("*.a.test", NameError::Wildcard),
            ("127.0.0.1", NameError::IpAddress),
            ("::1", NameError::IpAddress),
            ("", NameError::Length),
            ("-a.test", NameError::Label),
            ("a-.test", NameError::Label),
            ("a_b.test", NameError::Label),
            ("a..test", NameError::Label),
            ("a.*.test", NameError::Label),
            ("127.1", NameError::NumericTopLabel),
            ("a.123", NameError::NumericTopLabel),
        ];
        for (text, why) in cases {
            assert_eq!(DnsName::parse(text), Err(why), "{text:?}");
            let written = DnsName::parse_written(text).unwrap_err();
            assert_eq!(written.why, why, "{text:?}");
        }
    }

    #[test]
    fn length_limits_are_63_a_label_and_253_in_all() {
        let label = "a".repeat(63);
        assert!(DnsName::parse(&format!("{label}.test")).is_ok());
        assert_eq!(
            DnsName::parse(&format!("a{label}.test")),
            Err(NameError::Label)
        );
        let longest = format!("{0}.{0}.{0}.{1}", label, "b".repeat(61));
        assert_eq!(longest.len(), 253);
        assert!(DnsName::parse(&longest).is_ok());
        assert_eq!(
            DnsName::parse(&format!("a{longest}")),
            Err(NameError::Length)
        );
    }

    #[test]
    fn site_names_are_hosts_or_wildcards_over_one() {
        let host: SiteName = " Blog.Example.com. ".parse().unwrap();
        assert_eq!(host.host().unwrap().as_str(), "blog.example.com");
        let wildcard: SiteName = "*.Example.com".parse().unwrap();
        assert!(wildcard.is_wildcard());
        assert_eq!(wildcard.host(), None);
        assert_eq!(wildcard.base().as_str(), "example.com");
        assert_eq!(wildcard.to_string(), "*.example.com");
        assert_eq!(wildcard.to_string().parse::<SiteName>().unwrap(), wildcard);
        let why = |text: &str| text.parse::<SiteName>().unwrap_err().why;
        assert_eq!(why("*.com"), NameError::WildcardBase);
        assert_eq!(why("*.*.example.com"), NameError::Wildcard);
        assert_eq!(why("a.*.example.com"), NameError::Label);
        assert_eq!(why("*example.com"), NameError::Label);
        // A DnsName never holds a wildcard, however it is written.
        assert_eq!(
            DnsName::parse_written("*.example.com").unwrap_err().why,
            NameError::Wildcard
        );
    }

    #[test]
    fn a_wildcard_covers_one_label_below_its_base_only() {
        let wildcard: SiteName = "*.example.com".parse().unwrap();
        assert!(wildcard.covers("www.example.com"));
        assert!(!wildcard.covers("example.com"));
        assert!(!wildcard.covers("a.b.example.com"));
        assert!(!wildcard.covers(".example.com"));
        assert!(!wildcard.covers("wwwexample.com"));
        let host: SiteName = "example.com".parse().unwrap();
        assert!(host.covers("example.com"));
        assert!(!host.covers("www.example.com"));
    }

    #[test]
    fn digits_are_fine_below_the_top_label() {
        assert!(DnsName::parse("1.example.com").is_ok());
        assert!(DnsName::parse("123.test").is_ok());
        assert!(DnsName::parse("xn--bcher-kva.example").is_ok());
    }
}
