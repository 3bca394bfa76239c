//! dns-01 as `quire check` and start see it: `[tls.dns]` with its secret
//! from a file or the environment, wildcards in `[domains]`, and every
//! mistake named at its key with what to write.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::names::SiteName;

const SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn load(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    Config::from_parts(
        Some(Path::new("/etc/quire/quire.toml")),
        text,
        &Overrides::default(),
        env,
    )
}

fn with_secret(name: &str) -> Option<String> {
    (name == TSIG_SECRET_VAR).then(|| SECRET.to_string())
}

fn problems(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match load(text, env) {
        Err(ConfigError::Invalid(p)) => p.iter().map(ToString::to_string).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

fn acme(names: &str, tls: &str) -> String {
    format!(
        "[domains]\nnames = {names}\n\n[tls]\nmode = \"acme\"\ndirectory_url = \"https://ca.example/dir\"\n{tls}"
    )
}

const DNS: &str = "challenge = \"dns-01\"\n\n[tls.dns]\nserver = \"ns1.example.com:53\"\nzone = \"example.com\"\ntsig_key = \"quire-key\"\n";

#[test]
fn dns_01_takes_a_typed_table_and_wildcards() {
    let c = load(
        &acme(r#"["blog.example.com", "*.example.com"]"#, DNS),
        &with_secret,
    )
    .unwrap();
    assert_eq!(c.tls.challenge, Challenge::Dns01);
    let dns = c.tls.dns.clone().unwrap();
    assert_eq!(dns.server.to_string(), "ns1.example.com:53");
    assert_eq!(dns.zone.as_str(), "example.com");
    assert_eq!(dns.key.name.as_str(), "quire-key");
    assert_eq!(dns.key.algorithm, TsigAlgorithm::HmacSha256);
    assert_eq!(dns.key.source, SecretSource::Env);
    assert_eq!(dns.key.secret(), [0; 32]);
    assert_eq!(
        c.domains,
        [
            "blog.example.com".parse::<SiteName>().unwrap(),
            "*.example.com".parse().unwrap()
        ]
    );
    assert_eq!(c.canonical_domain().as_str(), "blog.example.com");
}

#[test]
fn the_secret_comes_from_its_file_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tsig.secret"), format!("{SECRET}\n")).unwrap();
    let text = acme(
        r#"["example.com"]"#,
        &format!("{DNS}tsig_algorithm = \"hmac-sha512\"\ntsig_secret_file = \"tsig.secret\"\n"),
    );
    let config_file = dir.path().join("quire.toml");
    let c = Config::from_parts(Some(&config_file), &text, &Overrides::default(), &no_env).unwrap();
    let key = c.tls.dns.unwrap().key;
    assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
    assert_eq!(
        key.source,
        SecretSource::File(dir.path().join("tsig.secret"))
    );
    assert_eq!(key.secret(), [0; 32]);

    // The variable wins over the file, as the environment does everywhere.
    let other = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let env = env_from(HashMap::from([(TSIG_SECRET_VAR, other)]));
    let c = Config::from_parts(Some(&config_file), &text, &Overrides::default(), &env).unwrap();
    assert_eq!(c.tls.dns.unwrap().key.secret(), [1; 32]);
}

#[test]
fn dns_01_mistakes_are_named_at_their_keys() {
    let p = problems(
        &acme(r#"["example.com"]"#, "challenge = \"dns-01\"\n"),
        &no_env,
    );
    assert_eq!(
        p,
        [
            "/etc/quire/quire.toml:7: tls.challenge: dns-01 needs a [tls.dns] table with server, zone, tsig_key and tsig_secret_file (or QUIRE_TSIG_SECRET); see config.example.toml"
        ]
    );

    let p = problems(
        &acme(
            r#"["example.com"]"#,
            "challenge = \"dns-01\"\n[tls.dns]\nserver = \"ns1:99999\"\ntsig_algorithm = \"hmac-md5\"\n",
        ),
        &no_env,
    );
    assert_eq!(
        p,
        [
            "/etc/quire/quire.toml:8: tls.dns.zone: is required in [tls.dns]; add zone = \"example.com\"",
            "/etc/quire/quire.toml:8: tls.dns.tsig_key: is required in [tls.dns]; add tsig_key = \"quire-key\"",
            "/etc/quire/quire.toml:8: tls.dns.tsig_secret_file: is required in [tls.dns] unless QUIRE_TSIG_SECRET holds the secret; add tsig_secret_file = \"/etc/quire/tsig.secret\"",
            "/etc/quire/quire.toml:9: tls.dns.server: `ns1:99999` is not a DNS server address; use a host or IP address with the port, such as \"ns1.example.com:53\" or \"192.0.2.53:53\"",
            "/etc/quire/quire.toml:10: tls.dns.tsig_algorithm: `hmac-md5` is not supported; use \"hmac-sha256\", \"hmac-sha384\" or \"hmac-sha512\"",
        ]
    );

    let p = problems(
        &acme(
            r#"["example.com"]"#,
            &format!("{DNS}tsig_secret_file = \"/nonexistent/tsig.secret\"\n"),
        ),
        &no_env,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("/etc/quire/quire.toml:13: tls.dns.tsig_secret_file: cannot read the TSIG secret file /nonexistent/tsig.secret"),
        "{p:?}"
    );

    let bad_secret = |name: &str| (name == TSIG_SECRET_VAR).then(|| "c2hvcnQ=".to_string());
    let p = problems(&acme(r#"["example.com"]"#, DNS), &bad_secret);
    assert_eq!(
        p,
        [
            "QUIRE_TSIG_SECRET: tls.dns.tsig_secret_file: QUIRE_TSIG_SECRET does not hold a TSIG secret (5 bytes; a TSIG secret has 16 to 512); write the base64 secret that `tsig-keygen -a hmac-sha256 quire-key` prints (its whole output works too)"
        ]
    );
}

#[test]
fn a_dns_table_without_dns_01_and_dns_01_in_local_mode_are_refused() {
    let p = problems(
        &acme(
            r#"["example.com"]"#,
            "\n[tls.dns]\nzone = \"example.com\"\n",
        ),
        &no_env,
    );
    assert_eq!(
        p,
        [
            "/etc/quire/quire.toml:8: tls.dns: is only used by the dns-01 challenge; set [tls] challenge = \"dns-01\", or remove [tls.dns]"
        ]
    );
    let p = problems(&format!("[tls]\n{DNS}"), &with_secret);
    assert_eq!(
        p,
        [
            "/etc/quire/quire.toml:2: tls.challenge: the local CA validates http-01 and tls-alpn-01 only; use dns-01 with mode \"acme\", \"staging\" or \"production\""
        ]
    );
}

#[test]
fn wildcards_need_dns_01_a_host_first_and_the_zone() {
    let p = problems(&acme(r#"["example.com", "*.example.com"]"#, ""), &no_env);
    assert_eq!(
        p,
        [
            "/etc/quire/quire.toml:2: domains.names: `*.example.com` is a wildcard, which a CA certifies only by dns-01; set [tls] challenge = \"dns-01\" with a [tls.dns] table, or list the hosts one by one"
        ]
    );
    let p = problems(
        &acme(r#"["*.example.com", "example.com"]"#, DNS),
        &with_secret,
    );
    assert_eq!(
        p,
        [
            "/etc/quire/quire.toml:2: domains.names: the first name is the canonical host the site is served at, so it cannot be a wildcard; put a host such as \"blog.example.com\" first"
        ]
    );
    let p = problems(
        &acme(r#"["example.com", "*.example.org", "notexample.com"]"#, DNS),
        &with_secret,
    );
    assert_eq!(
        p,
        [
            "/etc/quire/quire.toml:2: domains.names: `*.example.org` is not in the zone `example.com` of [tls.dns], where its dns-01 record would go; list names of that zone, or change tls.dns.zone",
            "/etc/quire/quire.toml:2: domains.names: `notexample.com` is not in the zone `example.com` of [tls.dns], where its dns-01 record would go; list names of that zone, or change tls.dns.zone",
        ]
    );
    // Manual mode serves the certificate it is given, wildcard or not.
    let manual = "[domains]\nnames = [\"example.com\", \"*.example.com\"]\n[tls]\nmode = \"manual\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";
    assert!(load(manual, &no_env).is_ok());
}
