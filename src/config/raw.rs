//! The config file as written: serde structs that keep every value's span, so
//! a problem can name its line, and the parse that collects every key TOML's
//! types or the schema refuse instead of stopping at the first.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::problem::{ConfigProblem, Origin};
use super::words::Refusal;
use crate::source_text::{blank_entry, line_of};

/// A key as written, with where it was written; `None` when absent.
pub(super) type Field<T> = Option<Spanned<T>>;

/// Text that stands for a value TOML has no type for. Its own type, so that a
/// value of another TOML type (`flush_every = 10`) is refused in words that
/// name the kind (see `words`) rather than as "expected a string".
macro_rules! written_as_text {
    ($(#[$doc:meta])* $name:ident, $expecting:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(super) struct $name(String);

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = String;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E>(self, text: &str) -> Result<String, E> {
                        Ok(text.to_string())
                    }
                }
                d.deserialize_str(Text).map($name)
            }
        }
    };
}

written_as_text!(
    /// A duration such as "10s"; `values` parses it.
    DurationText,
    "a duration in quotes, such as \"10s\" or \"8h\""
);
written_as_text!(
    /// A socket address such as "127.0.0.1:8080"; `values` parses it.
    AddressText,
    "an address in quotes, such as \"127.0.0.1:8080\" or \"[::]:443\""
);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) site: RawSite,
    #[serde(default)]
    pub(super) domains: RawDomains,
    #[serde(default)]
    pub(super) paths: RawPaths,
    #[serde(default)]
    pub(super) listen: RawListen,
    #[serde(default)]
    pub(super) tls: RawTls,
    #[serde(default)]
    pub(super) stats: RawStats,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) limits: RawLimits,
    pub(super) cluster: Option<RawCluster>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub(super) title: Field<String>,
    pub(super) base_url: Field<String>,
    pub(super) author: Field<String>,
    pub(super) description: Field<String>,
    pub(super) language: Field<String>,
    pub(super) posts_per_page: Field<i64>,
    pub(super) post_url: Field<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomains {
    pub(super) names: Field<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPaths {
    pub(super) content: Field<String>,
    pub(super) templates: Field<String>,
    #[serde(rename = "static")]
    pub(super) static_dir: Field<String>,
    pub(super) data: Field<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub(super) http: Field<AddressText>,
    pub(super) https: Field<AddressText>,
    pub(super) metrics: Field<AddressText>,
    pub(super) local_ca: Field<AddressText>,
    pub(super) local_ca_public: Field<bool>,
    pub(super) trusted_proxies: Field<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) handshake_timeout: Field<DurationText>,
    pub(super) header_read_timeout: Field<DurationText>,
    pub(super) idle_timeout: Field<DurationText>,
    pub(super) max_header_bytes: Field<i64>,
    pub(super) max_connections: Field<i64>,
    pub(super) h2_max_concurrent_streams: Field<i64>,
    pub(super) shutdown_grace: Field<DurationText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) mode: Field<String>,
    pub(super) directory_url: Field<String>,
    pub(super) contacts: Field<Vec<String>>,
    pub(super) eab_kid: Field<String>,
    pub(super) eab_hmac: Field<String>,
    pub(super) cert_file: Field<String>,
    pub(super) key_file: Field<String>,
    pub(super) renew_before_days: Field<i64>,
    pub(super) check_every: Field<DurationText>,
    pub(super) challenge: Field<String>,
    pub(super) post_issue_hook: Field<String>,
    pub(super) alert_hook: Field<String>,
    pub(super) alert_after_failures: Field<i64>,
    pub(super) alert_days_left: Field<i64>,
    pub(super) preferred_chain: Field<String>,
    pub(super) local_ca_lifetime: Field<DurationText>,
    pub(super) local_ca_tlsserver_lifetime: Field<DurationText>,
    pub(super) local_ca_shortlived_lifetime: Field<DurationText>,
    pub(super) profile: Field<String>,
    pub(super) hsts: Field<bool>,
    pub(super) dns: Field<RawDns>,
    /// `[[tls.issuers]]`, each table with its own line.
    pub(super) issuers: Option<Vec<Spanned<RawIssuer>>>,
}

/// One `[[tls.issuers]]` table: a CA to order from, in the order written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    pub(super) directory_url: Field<String>,
    pub(super) eab_kid: Field<String>,
    pub(super) eab_hmac: Field<String>,
    pub(super) profile: Field<String>,
    pub(super) roots: Field<String>,
}

/// `[tls.dns]`: where dns-01 answers are published.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    pub(super) server: Field<String>,
    pub(super) zone: Field<String>,
    pub(super) tsig_key: Field<String>,
    pub(super) tsig_algorithm: Field<String>,
    pub(super) tsig_secret_file: Field<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStats {
    pub(super) enabled: Field<bool>,
    pub(super) flush_every: Field<DurationText>,
    pub(super) hourly_retention_days: Field<i64>,
    pub(super) daily_retention_days: Field<i64>,
    pub(super) respect_dnt: Field<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) enabled: Field<bool>,
    pub(super) token: Field<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) postgres: Field<String>,
    pub(super) node: Field<String>,
    pub(super) ca_file: Field<String>,
}

/// The file's tables, and a problem for each key that TOML's types or the
/// schema refuse. serde stops at the first; that key (or unknown table) is
/// blanked out, offsets kept so later lines keep their numbers, and the rest
/// parsed again, so that one run lists them all. `None` when the file cannot
/// be read at all: a syntax error, which TOML finds before any key.
pub(super) fn parse_file(
    file: &Option<PathBuf>,
    text: &str,
) -> (Option<RawFile>, Vec<ConfigProblem>) {
    const MOST: usize = 100;
    let mut text = text.to_string();
    let mut problems = Vec::new();
    while problems.len() < MOST {
        let e = match toml::from_str::<RawFile>(&text) {
            Ok(raw) => return (Some(raw), problems),
            Err(e) => e,
        };
        let line = e.span().map_or(1, |s| line_of(&text, s.start));
        let Refusal { key, message } = Refusal::of(&e);
        problems.push(ConfigProblem {
            origin: Origin::Line {
                file: file.clone(),
                line,
            },
            key,
            message,
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
