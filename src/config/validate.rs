//! From the raw file, the environment and the flags to one [`Config`], one
//! section at a time. Every problem is collected with its origin rather than
//! returned early, so that one run lists them all; a refused value takes its
//! default so later sections can still be checked against it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml::Spanned;
use url::Url;

use super::defaults;
use super::dns::{self, DnsUpdateSettings, SecretSource, TSIG_SECRET_VAR, TsigKey};
use super::env;
use super::env::ListenFlag;
use super::post_url::PostUrl;
use super::problem::{ConfigError, ConfigProblem, Origin};
use super::raw::{
    AddressText, Field, RawCluster, RawDns, RawDomains, RawIssuer, RawLimits, RawListen,
    RawMetrics, RawPaths, RawSite, RawStats, RawTls, parse_file,
};
use super::types::{
    AlertConfig, Challenge, ClusterConfig, Config, ExternalAccountBinding, IssuerConfig, Limits,
    Listen, ListenOrigins, MetricsConfig, Mode, Overrides, Paths, SiteConfig, StatsConfig,
    TlsConfig,
};
use super::values::{self, ValueError};
use crate::names::{DnsName, SiteName};
use crate::source_text::line_of;

/// Merges the file text (may be empty) with the environment and flags.
pub(super) fn config(
    path: Option<&Path>,
    text: &str,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file = path.map(Path::to_path_buf);
    let (raw, refused) = parse_file(&file, text);
    let raw = raw.ok_or_else(|| ConfigError::Invalid(refused.clone()))?;
    // Relative paths in a file are relative to that file, so a service can be
    // started from any working directory.
    let resolver = Resolver {
        base_dir: path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut v = Validator {
        file,
        text,
        problems: refused,
    };

    let mode = mode(&mut v, &raw.tls, overrides, env);
    let domains = domains(&mut v, &raw.domains, mode);
    let listen = listen(&mut v, &raw.listen, mode, overrides, env);
    let site = site(&mut v, &raw.site, mode, &domains, &listen);
    let paths = paths(&raw.paths, &resolver, overrides, env);
    let tls = tls(&mut v, &raw.tls, mode, &resolver, env);
    wildcards_and_zone(&mut v, &raw.domains, &domains, mode, &tls);
    let limits = limits(&mut v, &raw.limits);
    let stats = stats(&mut v, &raw.stats);
    let metrics = metrics(&mut v, &raw.metrics);
    exposure(&mut v, mode, &listen, &metrics);
    let cluster = raw
        .cluster
        .as_ref()
        .and_then(|raw| cluster(&mut v, raw, &resolver));

    if !v.problems.is_empty() {
        v.problems.sort_by_key(|p| p.origin.line());
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
        cluster,
        source: path.map(Path::to_path_buf),
        overrides: overrides.clone(),
    })
}

/// Collects problems while the config is validated, locating each in the file.
struct Validator<'a> {
    file: Option<PathBuf>,
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

impl Validator<'_> {
    fn at<T>(&self, field: &Spanned<T>) -> Origin {
        Origin::Line {
            file: self.file.clone(),
            line: line_of(self.text, field.span().start),
        }
    }

    fn report(&mut self, origin: Origin, key: &str, message: impl fmt::Display) {
        self.problems.push(ConfigProblem {
            origin,
            key: key.to_string(),
            message: message.to_string(),
        });
    }

    /// Parses a file value with `parse`, reporting failures at its line.
    fn parse<T, U>(
        &mut self,
        key: &str,
        field: &Field<T>,
        parse: impl FnOnce(&T) -> Result<U, ValueError>,
    ) -> Option<U> {
        let field = field.as_ref()?;
        match parse(field.get_ref()) {
            Ok(value) => Some(value),
            Err(e) => {
                let origin = self.at(field);
                self.report(origin, key, e);
                None
            }
        }
    }

    /// Parses every item of a list value, reporting the first refusal.
    fn parse_each<U>(
        &mut self,
        key: &str,
        field: &Field<Vec<String>>,
        parse: impl Fn(&str) -> Result<U, ValueError>,
    ) -> Option<Vec<U>> {
        self.parse(key, field, |list| {
            list.iter().map(|item| parse(item)).collect()
        })
    }
}

fn string(field: &Field<String>) -> Option<String> {
    field.as_ref().map(|f| f.get_ref().clone())
}

fn flag(field: &Field<bool>) -> Option<bool> {
    field.as_ref().map(|f| *f.get_ref())
}

/// Paths as written, made absolute against the config file's folder.
struct Resolver {
    base_dir: PathBuf,
}

impl Resolver {
    fn path(&self, written: &str) -> PathBuf {
        let p = PathBuf::from(written);
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }

    fn field_or(&self, field: &Field<String>, default: &str) -> PathBuf {
        self.path(field.as_ref().map_or(default, |f| f.get_ref().as_str()))
    }

    fn field(&self, field: &Field<String>) -> Option<PathBuf> {
        field.as_ref().map(|f| self.path(f.get_ref()))
    }
}

fn mode(
    v: &mut Validator,
    raw: &RawTls,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Mode {
    match env::mode(overrides, env) {
        Some((origin, text)) => text.parse().unwrap_or_else(|e| {
            v.report(origin, "mode", e);
            defaults::MODE
        }),
        None => v
            .parse("tls.mode", &raw.mode, |m| Ok(m.parse()?))
            .unwrap_or(defaults::MODE),
    }
}

fn domains(v: &mut Validator, raw: &RawDomains, mode: Mode) -> Vec<SiteName> {
    let Some(names) = &raw.names else {
        if mode.is_local() {
            return defaults::domains();
        }
        v.report(
            Origin::Missing,
            "domains.names",
            format!("is required in {mode} mode; add [domains] names = [\"blog.example.com\"]"),
        );
        return Vec::new();
    };
    let mut parsed = Vec::new();
    for name in names.get_ref() {
        match name.parse::<SiteName>() {
            Ok(d) => parsed.push(d),
            Err(e) => {
                let origin = v.at(names);
                v.report(origin, "domains.names", e);
            }
        }
    }
    if names.get_ref().is_empty() {
        let origin = v.at(names);
        v.report(
            origin,
            "domains.names",
            "is empty; list at least one domain, the canonical one first",
        );
    }
    if parsed.first().is_some_and(SiteName::is_wildcard) {
        let origin = v.at(names);
        v.report(
            origin,
            "domains.names",
            "the first name is the canonical host the site is served at, so it cannot be a wildcard; put a host such as \"blog.example.com\" first",
        );
        parsed.clear();
    }
    parsed
}

fn listen(
    v: &mut Validator,
    raw: &RawListen,
    mode: Mode,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Listen {
    let outside = |which: ListenFlag| env::listen(which, overrides, env);
    let (http, http_origin) = address(
        v,
        ListenFlag::Http.key(),
        outside(ListenFlag::Http),
        &raw.http,
        defaults::http_addr(mode),
    );
    let (https, https_origin) = address(
        v,
        ListenFlag::Https.key(),
        outside(ListenFlag::Https),
        &raw.https,
        defaults::https_addr(mode),
    );
    let (metrics, metrics_origin) = address(
        v,
        ListenFlag::Metrics.key(),
        outside(ListenFlag::Metrics),
        &raw.metrics,
        defaults::METRICS_ADDR,
    );
    let (local_ca, local_ca_origin) = address(
        v,
        "listen.local_ca",
        None,
        &raw.local_ca,
        defaults::LOCAL_CA_ADDR,
    );
    Listen {
        http,
        https,
        metrics,
        local_ca,
        local_ca_public: flag(&raw.local_ca_public).unwrap_or(defaults::LOCAL_CA_PUBLIC),
        trusted_proxies: v
            .parse_each(
                "listen.trusted_proxies",
                &raw.trusted_proxies,
                values::trusted_proxy,
            )
            .unwrap_or_default(),
        origins: ListenOrigins {
            http: http_origin,
            https: https_origin,
            metrics: metrics_origin,
            local_ca: local_ca_origin,
        },
    }
}

/// One listen address and where it was chosen: named `outside` the file (a
/// flag or a variable), else in the file, else `default` (no origin). A
/// refused one is reported where it was written and the default stands in.
fn address(
    v: &mut Validator,
    key: &str,
    outside: Option<(Origin, String)>,
    field: &Field<AddressText>,
    default: SocketAddr,
) -> (SocketAddr, Option<Origin>) {
    let (origin, parsed) = match (outside, field) {
        (Some((origin, text)), _) => (origin, values::socket_addr(&text)),
        (None, Some(written)) => (v.at(written), values::socket_addr(written.get_ref())),
        (None, None) => return (default, None),
    };
    match parsed {
        Ok(addr) => (addr, Some(origin)),
        Err(e) => {
            v.report(origin, key, e);
            (default, None)
        }
    }
}

fn site(
    v: &mut Validator,
    raw: &RawSite,
    mode: Mode,
    domains: &[SiteName],
    listen: &Listen,
) -> SiteConfig {
    let canonical = domains
        .first()
        .and_then(SiteName::host)
        .map_or("localhost", DnsName::as_str);
    let base_url = v
        .parse("site.base_url", &raw.base_url, |t| values::base_url(t))
        .unwrap_or_else(|| {
            let default = defaults::base_url(mode, canonical, listen.http, listen.https);
            Url::parse(&default).expect("default base url")
        });
    let posts_per_page = v
        .parse("site.posts_per_page", &raw.posts_per_page, |&n| {
            values::POSTS_PER_PAGE.check(n)
        })
        .and_then(std::num::NonZeroUsize::new)
        .unwrap_or(defaults::POSTS_PER_PAGE);
    let language = v
        .parse("site.language", &raw.language, |l| values::language(l))
        .unwrap_or_else(|| defaults::LANGUAGE.into());
    let post_url = v
        .parse("site.post_url", &raw.post_url, |t| {
            PostUrl::parse(t).map_err(ValueError::from)
        })
        .unwrap_or_else(defaults::post_url);
    SiteConfig {
        title: string(&raw.title).unwrap_or_else(|| defaults::TITLE.into()),
        base_url,
        author: string(&raw.author).unwrap_or_else(|| defaults::AUTHOR.into()),
        description: string(&raw.description).unwrap_or_else(|| defaults::DESCRIPTION.into()),
        language,
        posts_per_page,
        post_url,
    }
}

fn paths(
    raw: &RawPaths,
    resolver: &Resolver,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Paths {
    Paths {
        content: resolver.field_or(&raw.content, defaults::CONTENT_DIR),
        templates: resolver.field_or(&raw.templates, defaults::TEMPLATES_DIR),
        static_dir: resolver.field_or(&raw.static_dir, defaults::STATIC_DIR),
        data: env::data_dir(overrides, env)
            .unwrap_or_else(|| resolver.field_or(&raw.data, defaults::DATA_DIR)),
    }
}

/// A shell command, or none when the key is absent or blank.
fn hook(raw: &Field<String>) -> Option<String> {
    raw.as_ref()
        .map(|h| h.get_ref().trim().to_string())
        .filter(|h| !h.is_empty())
}

fn tls(
    v: &mut Validator,
    raw: &RawTls,
    mode: Mode,
    resolver: &Resolver,
    env: &dyn Fn(&str) -> Option<String>,
) -> TlsConfig {
    let directory_url = v.parse("tls.directory_url", &raw.directory_url, |u| {
        values::directory_url(u)
    });
    let issuers = tls_issuers(v, raw, resolver);
    if mode == Mode::Acme && raw.directory_url.is_none() && issuers.is_empty() {
        v.report(
            Origin::Missing,
            "tls.directory_url",
            "is required in acme mode; set it to your CA's ACME directory URL (or list CAs in [[tls.issuers]] tables)",
        );
    }
    let contacts = v
        .parse_each("tls.contacts", &raw.contacts, values::contact)
        .unwrap_or_default();
    let eab = binding(v, "tls.eab_kid/eab_hmac", &raw.eab_kid, &raw.eab_hmac);
    let cert_file = resolver.field(&raw.cert_file);
    let key_file = resolver.field(&raw.key_file);
    if mode == Mode::Manual && (cert_file.is_none() || key_file.is_none()) {
        v.report(
            Origin::Missing,
            "tls.cert_file/key_file",
            "manual mode needs both; point them at your PEM certificate chain and private key",
        );
    }
    let challenge = v
        .parse("tls.challenge", &raw.challenge, |c| values::challenge(c))
        .unwrap_or(defaults::CHALLENGE);
    let dns = tls_dns(v, raw, mode, challenge, resolver, env);
    TlsConfig {
        directory_url,
        contacts,
        eab,
        cert_file,
        key_file,
        renew_before_days: v
            .parse("tls.renew_before_days", &raw.renew_before_days, |&n| {
                values::RENEW_BEFORE_DAYS.check(n)
            })
            .unwrap_or(defaults::RENEW_BEFORE_DAYS),
        check_every: v
            .parse("tls.check_every", &raw.check_every, |t| {
                values::CHECK_EVERY.parse(t)
            })
            .unwrap_or(defaults::CHECK_EVERY),
        challenge,
        profile: v.parse("tls.profile", &raw.profile, |p| values::profile(p)),
        post_issue_hook: hook(&raw.post_issue_hook),
        preferred_chain: raw
            .preferred_chain
            .as_ref()
            .map(|name| name.get_ref().trim().to_string())
            .filter(|name| !name.is_empty()),
        alerts: AlertConfig {
            hook: hook(&raw.alert_hook),
            after_failures: v
                .parse(
                    "tls.alert_after_failures",
                    &raw.alert_after_failures,
                    |&n| values::ALERT_AFTER_FAILURES.check(n),
                )
                .unwrap_or(defaults::ALERT_AFTER_FAILURES),
            days_left: v
                .parse("tls.alert_days_left", &raw.alert_days_left, |&n| {
                    values::ALERT_DAYS_LEFT.check(n)
                })
                .unwrap_or(defaults::ALERT_DAYS_LEFT),
        },
        local_ca_lifetime: v
            .parse("tls.local_ca_lifetime", &raw.local_ca_lifetime, |t| {
                values::LOCAL_CA_LIFETIME.parse(t)
            })
            .unwrap_or(defaults::LOCAL_CA_LIFETIME),
        local_ca_tlsserver_lifetime: v
            .parse(
                "tls.local_ca_tlsserver_lifetime",
                &raw.local_ca_tlsserver_lifetime,
                |t| values::LOCAL_CA_LIFETIME.parse(t),
            )
            .unwrap_or(defaults::LOCAL_CA_TLSSERVER_LIFETIME),
        local_ca_shortlived_lifetime: v
            .parse(
                "tls.local_ca_shortlived_lifetime",
                &raw.local_ca_shortlived_lifetime,
                |t| values::LOCAL_CA_LIFETIME.parse(t),
            )
            .unwrap_or(defaults::LOCAL_CA_SHORTLIVED_LIFETIME),
        hsts: flag(&raw.hsts).unwrap_or(defaults::hsts(mode)),
        dns,
        issuers,
    }
}

/// An External Account Binding: both halves, or neither.
fn binding(
    v: &mut Validator,
    key: &str,
    kid: &Field<String>,
    hmac: &Field<String>,
) -> Option<ExternalAccountBinding> {
    match (kid, hmac) {
        (Some(kid), Some(hmac)) => Some(ExternalAccountBinding {
            kid: kid.get_ref().clone(),
            hmac: hmac.get_ref().clone(),
        }),
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => {
            let origin = v.at(f);
            v.report(
                origin,
                key,
                "set both or neither; your CA gives you the pair",
            );
            None
        }
    }
}

/// `[[tls.issuers]]`: each CA once, each with a directory; the single-CA
/// keys of `[tls]` are refused beside them, since which of the two lists
/// would win is not something to guess.
fn tls_issuers(v: &mut Validator, raw: &RawTls, resolver: &Resolver) -> Vec<IssuerConfig> {
    let Some(tables) = raw.issuers.as_ref().filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    for (key, field) in [
        ("tls.directory_url", &raw.directory_url),
        ("tls.eab_kid", &raw.eab_kid),
        ("tls.eab_hmac", &raw.eab_hmac),
    ] {
        if let Some(field) = field {
            let origin = v.at(field);
            v.report(
                origin,
                key,
                "cannot be set beside [[tls.issuers]]; move it into the [[tls.issuers]] table of that CA",
            );
        }
    }
    if let Some(extra) = tables.get(values::MAX_ISSUERS) {
        let origin = v.at(extra);
        v.report(
            origin,
            "tls.issuers",
            format!(
                "lists more than {} CAs; keep the ones you trust to answer, in order",
                values::MAX_ISSUERS
            ),
        );
    }
    let mut issuers: Vec<(usize, IssuerConfig)> = Vec::new();
    for (n, table) in tables.iter().take(values::MAX_ISSUERS).enumerate() {
        let origin = v.at(table);
        let raw: &RawIssuer = table.get_ref();
        let key = |name: &str| format!("tls.issuers[{}].{name}", n + 1);
        let directory_url = v.parse(&key("directory_url"), &raw.directory_url, |u| {
            values::directory_url(u)
        });
        if raw.directory_url.is_none() {
            v.report(
                origin.clone(),
                &key("directory_url"),
                "is required in each [[tls.issuers]] table; set it to the CA's ACME directory URL",
            );
        }
        let eab = binding(v, &key("eab_kid/eab_hmac"), &raw.eab_kid, &raw.eab_hmac);
        let profile = v.parse(&key("profile"), &raw.profile, |p| values::profile(p));
        let roots = resolver.field(&raw.roots);
        let Some(directory_url) = directory_url else {
            continue;
        };
        if let Some((earlier, _)) = issuers
            .iter()
            .find(|(_, i)| i.directory_url == directory_url)
        {
            v.report(
                origin,
                &key("directory_url"),
                format!(
                    "names the same CA as [[tls.issuers]] {}; list each CA once",
                    earlier + 1
                ),
            );
            continue;
        }
        issuers.push((
            n,
            IssuerConfig {
                directory_url,
                eab,
                profile,
                roots,
            },
        ));
    }
    issuers.into_iter().map(|(_, issuer)| issuer).collect()
}

/// `[tls.dns]`: required by dns-01 and refused without it (a table that
/// would go unused is a forgotten `challenge` line, and its wildcards could
/// not be certified); the secret is read now, from `QUIRE_TSIG_SECRET` or
/// else the file.
fn tls_dns(
    v: &mut Validator,
    raw: &RawTls,
    mode: Mode,
    challenge: Challenge,
    resolver: &Resolver,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<DnsUpdateSettings> {
    let challenge_origin =
        |v: &Validator| raw.challenge.as_ref().map_or(Origin::Missing, |c| v.at(c));
    if challenge == Challenge::Dns01 && mode == Mode::Local {
        let origin = challenge_origin(v);
        v.report(
            origin,
            "tls.challenge",
            "the local CA validates http-01 and tls-alpn-01 only; use dns-01 with mode \"acme\", \"staging\" or \"production\"",
        );
    }
    let table = match (&raw.dns, challenge) {
        (Some(table), Challenge::Dns01) => table,
        (None, Challenge::Dns01) => {
            let origin = challenge_origin(v);
            v.report(
                origin,
                "tls.challenge",
                "dns-01 needs a [tls.dns] table with server, zone, tsig_key and tsig_secret_file (or QUIRE_TSIG_SECRET); see config.example.toml",
            );
            return None;
        }
        (Some(table), _) => {
            let origin = v.at(table);
            v.report(
                origin,
                "tls.dns",
                "is only used by the dns-01 challenge; set [tls] challenge = \"dns-01\", or remove [tls.dns]",
            );
            return None;
        }
        (None, _) => return None,
    };
    let origin = v.at(table);
    let d: &RawDns = table.get_ref();
    let required = |v: &mut Validator, key: &str, field: &Field<String>, example: &str| {
        if field.is_none() {
            v.report(
                origin.clone(),
                key,
                format!("is required in [tls.dns]; add {example}"),
            );
        }
    };
    required(
        v,
        "tls.dns.server",
        &d.server,
        "server = \"ns1.example.com:53\"",
    );
    required(v, "tls.dns.zone", &d.zone, "zone = \"example.com\"");
    required(
        v,
        "tls.dns.tsig_key",
        &d.tsig_key,
        "tsig_key = \"quire-key\"",
    );
    let server = v.parse("tls.dns.server", &d.server, |t| Ok(dns::server(t)?));
    let zone = v.parse("tls.dns.zone", &d.zone, |t| Ok(t.parse::<DnsName>()?));
    let name = v.parse("tls.dns.tsig_key", &d.tsig_key, |t| Ok(t.parse()?));
    let algorithm = match &d.tsig_algorithm {
        Some(_) => v.parse("tls.dns.tsig_algorithm", &d.tsig_algorithm, |t| {
            Ok(t.parse()?)
        }),
        None => Some(defaults::TSIG_ALGORITHM),
    };
    let secret = match (env(TSIG_SECRET_VAR), &d.tsig_secret_file) {
        (Some(text), _) => match dns::secret(&text, SecretSource::Env) {
            Ok(secret) => Some((secret, SecretSource::Env)),
            Err(e) => {
                v.report(Origin::Env(TSIG_SECRET_VAR), "tls.dns.tsig_secret_file", e);
                None
            }
        },
        (None, Some(_)) => v.parse("tls.dns.tsig_secret_file", &d.tsig_secret_file, |t| {
            let path = resolver.path(t);
            Ok((dns::secret_file(&path)?, SecretSource::File(path)))
        }),
        (None, None) => {
            v.report(
                origin.clone(),
                "tls.dns.tsig_secret_file",
                format!(
                    "is required in [tls.dns] unless {TSIG_SECRET_VAR} holds the secret; add tsig_secret_file = \"/etc/quire/tsig.secret\""
                ),
            );
            None
        }
    };
    let (secret, source) = secret?;
    Some(DnsUpdateSettings {
        server: server?,
        zone: zone?,
        key: TsigKey::new(name?, algorithm?, secret, source),
    })
}

/// Wildcards only where a certificate for them can be had (dns-01), or
/// where none is ordered (manual and off modes serve what they are given);
/// with dns-01 every name must lie in the zone the updates go to.
fn wildcards_and_zone(
    v: &mut Validator,
    raw: &RawDomains,
    domains: &[SiteName],
    mode: Mode,
    tls: &TlsConfig,
) {
    let Some(names) = &raw.names else {
        return;
    };
    let orders = !matches!(mode, Mode::Manual | Mode::Off);
    if orders && tls.challenge != Challenge::Dns01 {
        if let Some(wildcard) = domains.iter().find(|d| d.is_wildcard()) {
            let origin = v.at(names);
            v.report(
                origin,
                "domains.names",
                format!(
                    "`{wildcard}` is a wildcard, which a CA certifies only by dns-01; set [tls] challenge = \"dns-01\" with a [tls.dns] table, or list the hosts one by one"
                ),
            );
        }
    }
    let Some(dns) = &tls.dns else {
        return;
    };
    let zone = dns.zone.as_str();
    for name in domains {
        let base = name.base().as_str();
        let inside = base == zone
            || base
                .strip_suffix(zone)
                .is_some_and(|head| head.ends_with('.'));
        if !inside {
            let origin = v.at(names);
            v.report(
                origin,
                "domains.names",
                format!(
                    "`{name}` is not in the zone `{zone}` of [tls.dns], where its dns-01 record would go; list names of that zone, or change tls.dns.zone"
                ),
            );
        }
    }
}

fn limits(v: &mut Validator, raw: &RawLimits) -> Limits {
    let d = Limits::default();
    Limits {
        handshake_timeout: v
            .parse("limits.handshake_timeout", &raw.handshake_timeout, |t| {
                values::HANDSHAKE_TIMEOUT.parse(t)
            })
            .unwrap_or(d.handshake_timeout),
        header_read_timeout: v
            .parse(
                "limits.header_read_timeout",
                &raw.header_read_timeout,
                |t| values::HEADER_READ_TIMEOUT.parse(t),
            )
            .unwrap_or(d.header_read_timeout),
        idle_timeout: v
            .parse("limits.idle_timeout", &raw.idle_timeout, |t| {
                values::IDLE_TIMEOUT.parse(t)
            })
            .unwrap_or(d.idle_timeout),
        max_header_bytes: v
            .parse("limits.max_header_bytes", &raw.max_header_bytes, |&n| {
                values::MAX_HEADER_BYTES.check(n)
            })
            .unwrap_or(d.max_header_bytes),
        max_connections: v
            .parse("limits.max_connections", &raw.max_connections, |&n| {
                values::MAX_CONNECTIONS.check(n)
            })
            .unwrap_or(d.max_connections),
        h2_max_concurrent_streams: v
            .parse(
                "limits.h2_max_concurrent_streams",
                &raw.h2_max_concurrent_streams,
                |&n| values::H2_MAX_CONCURRENT_STREAMS.check(n),
            )
            .unwrap_or(d.h2_max_concurrent_streams),
        shutdown_grace: v
            .parse("limits.shutdown_grace", &raw.shutdown_grace, |t| {
                values::SHUTDOWN_GRACE.parse(t)
            })
            .unwrap_or(d.shutdown_grace),
    }
}

fn stats(v: &mut Validator, raw: &RawStats) -> StatsConfig {
    StatsConfig {
        enabled: flag(&raw.enabled).unwrap_or(defaults::STATS_ENABLED),
        flush_every: v
            .parse("stats.flush_every", &raw.flush_every, |t| {
                values::FLUSH_EVERY.parse(t)
            })
            .unwrap_or(defaults::FLUSH_EVERY),
        hourly_retention_days: v
            .parse(
                "stats.hourly_retention_days",
                &raw.hourly_retention_days,
                |&n| values::HOURLY_RETENTION_DAYS.check(n),
            )
            .unwrap_or(defaults::HOURLY_RETENTION_DAYS),
        daily_retention_days: v
            .parse(
                "stats.daily_retention_days",
                &raw.daily_retention_days,
                |&n| values::DAILY_RETENTION_DAYS.check(n),
            )
            .unwrap_or(defaults::DAILY_RETENTION_DAYS),
        respect_dnt: flag(&raw.respect_dnt).unwrap_or(defaults::RESPECT_DNT),
    }
}

fn metrics(v: &mut Validator, raw: &RawMetrics) -> MetricsConfig {
    MetricsConfig {
        enabled: flag(&raw.enabled).unwrap_or(defaults::METRICS_ENABLED),
        token: v.parse("metrics.token", &raw.token, |t| values::metrics_token(t)),
    }
}

fn cluster(v: &mut Validator, raw: &RawCluster, resolver: &Resolver) -> Option<ClusterConfig> {
    if raw.postgres.is_none() {
        v.report(
            Origin::Missing,
            "cluster.postgres",
            "is required in [cluster]; set it to the shared PostgreSQL, such as \"postgres://quire:secret@db.example.com/quire?sslmode=require\", or remove [cluster] to run a single node",
        );
    }
    let postgres = v.parse("cluster.postgres", &raw.postgres, |t| values::postgres(t));
    let node = match &raw.node {
        Some(_) => v.parse("cluster.node", &raw.node, |t| values::node_name(t)),
        None => match defaults::node_name() {
            Ok(node) => Some(node),
            Err(e) => {
                v.report(
                    Origin::Missing,
                    "cluster.node",
                    format!("the hostname cannot name this node ({e}); set [cluster] node"),
                );
                None
            }
        },
    };
    Some(ClusterConfig {
        postgres: postgres?,
        node: node?,
        ca_file: resolver.field(&raw.ca_file),
    })
}

/// Listeners that other machines could reach, refused unless the operator
/// has said how they are protected.
fn exposure(v: &mut Validator, mode: Mode, listen: &Listen, metrics: &MetricsConfig) {
    // Where the address was chosen, or the file as a whole for a default.
    let origin = |v: &Validator, chosen: &Option<Origin>| {
        chosen
            .clone()
            .unwrap_or_else(|| Origin::File(v.file.clone()))
    };
    if metrics.enabled && !listen.metrics.ip().is_loopback() && metrics.token.is_none() {
        let origin = origin(v, &listen.origins.metrics);
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
        let origin = origin(v, &listen.origins.local_ca);
        v.report(
            origin,
            "listen.local_ca",
            format!(
                "{} is reachable from other machines, who could then order certificates from the local CA; bind it to 127.0.0.1, or set [listen] local_ca_public = true if that is intended",
                listen.local_ca
            ),
        );
    }
}
