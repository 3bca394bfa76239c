//! The whole merge, file text to [`Config`], as `quire check` and start see
//! it: every problem at once with its origin, defaults, precedence, ranges.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::values::*;
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
    let found: Vec<String> = p.iter().map(ToString::to_string).collect();
    let documented = "(every key is documented in config.example.toml)";
    assert_eq!(
        found,
        [
            format!(
                "/etc/quire/quire.toml:2: site: unknown key `titel`; [site] takes title, base_url, author, description, language, posts_per_page or post_url {documented}"
            ),
            "/etc/quire/quire.toml:3: site.posts_per_page: \"ten\" is text in quotes; use a whole number, such as 10".into(),
            format!(
                "/etc/quire/quire.toml:5: lisen: unknown section `lisen`; use [site], [domains], [paths], [listen], [tls], [stats], [metrics], [limits] or [cluster] {documented}"
            ),
            format!(
                "/etc/quire/quire.toml:10: listen: unknown key `htps`; [listen] takes http, https, metrics, local_ca, local_ca_public or trusted_proxies {documented}"
            ),
            "/etc/quire/quire.toml:11: listen.http: `bad` is not an address with a port from 0 to 65535; use a value such as \"127.0.0.1:8080\" or \"[::]:443\"".into(),
        ]
    );
}

#[test]
fn a_syntax_error_is_listed_alone_as_nothing_else_can_be_read() {
    let p = problems("[site]\ntitel = 1\ntitle = \"unclosed\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].origin.to_string(), "/etc/quire/quire.toml:3");
    assert!(p[0].message.contains("expected `\"`"), "{p:?}");
}

#[test]
fn defaults_serve_localhost_in_local_mode() {
    let c = Config::from_parts(None, "", &Overrides::default(), &no_env).unwrap();
    assert_eq!(c.mode, Mode::Local);
    assert_eq!(c.domains[0].to_string(), "localhost");
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
    assert!(
        p[0].origin.to_string().ends_with("quire.toml:3"),
        "{:?}",
        p[0]
    );
    assert!(p[0].message.contains("titel"), "{:?}", p[0]);
}

#[test]
fn wrong_type_names_the_line() {
    let p = problems("[site]\n\nposts_per_page = \"ten\"\n");
    assert!(p[0].origin.to_string().ends_with(":3"), "{:?}", p[0]);
}

#[test]
fn impossible_values_are_all_reported_with_lines() {
    let p = problems(
        "[site]\nbase_url = \"not a url\"\n[listen]\nhttp = \"127.0.0.1:70000\"\n[stats]\nhourly_retention_days = 0\nflush_every = \"soon\"\n",
    );
    let found: Vec<(&str, String)> = p
        .iter()
        .map(|p| (p.key.as_str(), p.origin.to_string()))
        .collect();
    let found: Vec<(&str, &str)> = found
        .iter()
        .map(|(k, o)| (*k, o.rsplit(':').next().unwrap()))
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
const DURATIONS: [(&str, &str, &str); 9] = [
    ("limits", "handshake_timeout", "from 1s to 5m"),
    ("limits", "header_read_timeout", "from 1s to 5m"),
    ("limits", "idle_timeout", "from 1s to 1h"),
    ("limits", "shutdown_grace", "from 1s to 1h"),
    ("tls", "check_every", "from 1m to 7days"),
    ("tls", "local_ca_lifetime", "from 1m to 200days"),
    ("stats", "flush_every", "from 1s to 1h"),
    ("tls", "local_ca_tlsserver_lifetime", "from 1m to 200days"),
    ("tls", "local_ca_shortlived_lifetime", "from 1m to 200days"),
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
            assert_eq!(p[0].origin.to_string(), "/etc/quire/quire.toml:2");
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
        LOCAL_CA_LIFETIME,
        LOCAL_CA_LIFETIME,
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
        ("tls", "alert_after_failures", ALERT_AFTER_FAILURES),
        ("tls", "alert_days_left", ALERT_DAYS_LEFT),
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
fn listen_flags_beat_their_variables_beat_the_file() {
    let file = "[listen]\nhttp = \"127.0.0.1:8001\"\nhttps = \"127.0.0.1:8002\"\nmetrics = \"127.0.0.1:8003\"\n";
    let env = env_from(HashMap::from([
        ("QUIRE_HTTP", "127.0.0.1:9001"),
        ("QUIRE_HTTPS", "[::1]:9002"),
    ]));
    let flags = Overrides {
        http: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let path = Path::new("/etc/quire/quire.toml");
    let c = Config::from_parts(Some(path), file, &flags, &env).unwrap();
    assert_eq!(c.listen.http.to_string(), "127.0.0.1:0");
    assert_eq!(c.listen.https.to_string(), "[::1]:9002");
    assert_eq!(c.listen.metrics.to_string(), "127.0.0.1:8003");
    assert_eq!(c.listen.origins.http, Some(Origin::Flag("--http")));
    assert_eq!(c.listen.origins.https, Some(Origin::Env("QUIRE_HTTPS")));
    assert_eq!(
        c.listen.origins.metrics.map(|o| o.to_string()).as_deref(),
        Some("/etc/quire/quire.toml:4")
    );
    assert_eq!(c.listen.origins.local_ca, None, "the default");
    // The base URL follows the HTTPS address, wherever it was chosen.
    assert_eq!(c.site.base_url.as_str(), "https://localhost:9002/");
}

#[test]
fn bad_listen_flags_and_variables_are_reported_where_they_were_given() {
    let env = env_from(HashMap::from([("QUIRE_METRICS", "9100")]));
    let flags = Overrides {
        https: Some("localhost:8443".into()),
        ..Default::default()
    };
    let p = match Config::from_parts(None, "", &flags, &env) {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    };
    let said: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        [
            "--https: listen.https: `localhost:8443` is not an address with a port from 0 to 65535; use a value such as \"127.0.0.1:8080\" or \"[::]:443\"",
            "QUIRE_METRICS: listen.metrics: `9100` is not an address with a port from 0 to 65535; use a value such as \"127.0.0.1:8080\" or \"[::]:443\"",
        ]
    );
}

#[test]
fn a_metrics_flag_reachable_from_elsewhere_is_refused_at_the_flag() {
    let flags = Overrides {
        metrics: Some("0.0.0.0:9100".into()),
        ..Default::default()
    };
    let err = Config::from_parts(None, "", &flags, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--metrics: listen.metrics: 0.0.0.0:9100 is reachable from other machines"),
        "{err}"
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
    let text = include_str!("../../config.example.toml");
    let path = Path::new("/srv/quire/config.toml");
    let mut example = Config::from_parts(Some(path), text, &Overrides::default(), &no_env).unwrap();
    let defaults = Config::from_parts(Some(path), "", &Overrides::default(), &no_env).unwrap();
    // The example writes some addresses out; the values are what must agree.
    example.listen.origins = ListenOrigins::default();
    assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
}

#[test]
fn a_local_ca_reachable_from_other_machines_needs_consent() {
    let p = problems("[listen]\nlocal_ca = \"0.0.0.0:8444\"\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "listen.local_ca");
    assert_eq!(p[0].origin.to_string(), "/etc/quire/quire.toml:2");
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

#[test]
fn a_cluster_needs_a_postgres_string_and_names_the_node() {
    assert_eq!(parse("").unwrap().cluster, None);
    let c = parse(
        "[cluster]\npostgres = \"postgres://quire:pw@db.example.com:5433/blog\"\nnode = \"web-1\"\n",
    )
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.node.as_str(), "web-1");
    // The password never reaches a message or a debug print.
    assert_eq!(c.postgres.to_string(), "db.example.com:5433/blog");
    assert!(!format!("{c:?}").contains("pw"), "{c:?}");
    let kv = parse("[cluster]\npostgres = \"host=10.0.0.5 user=quire dbname=blog\"\n").unwrap();
    assert!(
        kv.cluster.unwrap().node.as_str().len() <= 63,
        "named after the host"
    );

    let p = problems("[cluster]\nnode = \"web-1\"\n");
    assert_eq!(p[0].key, "cluster.postgres");
    assert!(p[0].message.contains("remove [cluster]"), "{p:?}");
    let p =
        problems("[cluster]\npostgres = \"postgres://db/x?sslmode=sometimes\"\nnode = \"a b\"\n");
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].key, "cluster.postgres");
    assert_eq!(p[0].origin.to_string(), "/etc/quire/quire.toml:2");
    assert!(p[0].message.contains("sslmode=require"), "{p:?}");
    assert_eq!(p[1].key, "cluster.node");
    assert!(p[1].message.contains("web-1"), "{p:?}");
}

#[test]
fn a_profile_is_a_name_and_the_local_ca_lifetimes_default_like_lets_encrypt() {
    let c = parse("").unwrap();
    assert_eq!(c.tls.profile, None);
    assert_eq!(c.tls.local_ca_lifetime, Duration::from_secs(90 * 86400));
    assert_eq!(
        c.tls.local_ca_tlsserver_lifetime,
        Duration::from_secs(45 * 86400)
    );
    assert_eq!(
        c.tls.local_ca_shortlived_lifetime,
        Duration::from_secs(160 * 3600)
    );
    let c =
        parse("[tls]\nprofile = \"shortlived\"\nlocal_ca_shortlived_lifetime = \"10m\"\n").unwrap();
    assert_eq!(
        c.tls.profile.as_ref().map(|p| p.as_str()),
        Some("shortlived")
    );
    assert_eq!(c.tls.local_ca_shortlived_lifetime, Duration::from_secs(600));
    for bad in ["\"\"", "\"short lived\""] {
        let p = problems(&format!("[tls]\nprofile = {bad}\n"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "tls.profile");
        assert!(p[0].message.contains("not a profile name"), "{p:?}");
    }
}

#[test]
fn issuers_are_kept_in_order_each_with_its_own_binding_profile_and_roots() {
    let config = parse(
        "[domains]\nnames = [\"example.com\"]\n[tls]\nmode = \"production\"\nprofile = \"tlsserver\"\n\
         [[tls.issuers]]\ndirectory_url = \"https://acme-v02.api.letsencrypt.org/directory\"\n\
         [[tls.issuers]]\ndirectory_url = \"https://acme.zerossl.com/v2/DV90\"\neab_kid = \"kid\"\neab_hmac = \"hmac\"\nprofile = \"classic\"\nroots = \"zerossl.pem\"\n",
    )
    .unwrap();
    let issuers = &config.tls.issuers;
    assert_eq!(issuers.len(), 2);
    assert_eq!(
        issuers[0].directory_url.as_str(),
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(issuers[0].eab, None);
    assert_eq!(issuers[0].profile, None, "the table names none");
    assert_eq!(issuers[1].eab.as_ref().unwrap().kid, "kid");
    assert_eq!(issuers[1].profile.as_ref().unwrap().as_str(), "classic");
    assert_eq!(
        issuers[1].roots.as_deref(),
        Some(Path::new("/etc/quire/zerossl.pem")),
        "relative to the config file"
    );
}

#[test]
fn issuers_replace_the_single_ca_keys_and_are_checked_table_by_table() {
    let p = problems(
        "[tls]\nmode = \"staging\"\ndirectory_url = \"https://ca.example/dir\"\n\
         [[tls.issuers]]\neab_kid = \"kid\"\n\
         [[tls.issuers]]\ndirectory_url = \"https://ca.example/dir\"\n\
         [[tls.issuers]]\ndirectory_url = \"https://ca.example/dir\"\nprofile = \"no spaces\"\n\
         [domains]\nnames = [\"example.com\"]\n",
    );
    let found: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "/etc/quire/quire.toml:3: tls.directory_url: cannot be set beside [[tls.issuers]]; move it into the [[tls.issuers]] table of that CA",
            "/etc/quire/quire.toml:4: tls.issuers[1].directory_url: is required in each [[tls.issuers]] table; set it to the CA's ACME directory URL",
            "/etc/quire/quire.toml:5: tls.issuers[1].eab_kid/eab_hmac: set both or neither; your CA gives you the pair",
            "/etc/quire/quire.toml:8: tls.issuers[3].directory_url: names the same CA as [[tls.issuers]] 2; list each CA once",
            "/etc/quire/quire.toml:10: tls.issuers[3].profile: `no spaces` is not a profile name; use a name your CA's directory lists, such as \"classic\", \"tlsserver\" or \"shortlived\"",
        ]
    );
}

#[test]
fn acme_mode_takes_issuers_instead_of_a_directory_and_no_more_than_eight() {
    let one = "[[tls.issuers]]\ndirectory_url = \"https://127.0.0.1:14000/dir\"\n";
    let domains = "[domains]\nnames = [\"example.com\"]\n";
    let config = parse(&format!("{domains}[tls]\nmode = \"acme\"\n{one}")).unwrap();
    assert_eq!(config.tls.issuers.len(), 1);
    assert_eq!(config.tls.directory_url, None);

    let nine: String = (0..9)
        .map(|n| format!("[[tls.issuers]]\ndirectory_url = \"https://ca{n}.example/dir\"\n"))
        .collect();
    let p = problems(&format!("{domains}[tls]\nmode = \"acme\"\n{nine}"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "tls.issuers");
    assert_eq!(p[0].origin.to_string(), "/etc/quire/quire.toml:21");
    assert!(p[0].message.contains("more than 8"), "{p:?}");
}
