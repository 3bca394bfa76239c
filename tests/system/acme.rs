//! Certificates by ACME: the site certifies itself against the in-process CA,
//! renews when the clock says so, keeps serving through CA outages, survives a
//! torn write, and reports it all in `quire cert status`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use quire::clock::{self, ManualClock};

use crate::support::*;

#[tokio::test]
async fn a_fresh_site_certifies_itself_against_the_local_ca() {
    let dir = tempfile::tempdir().unwrap();
    let hook_out = dir.path().join("hook.out");
    let site = local_site(&format!(
        "post_issue_hook = \"echo $QUIRE_DOMAINS $QUIRE_CERT_FILE > '{}'\"\n",
        hook_out.display()
    ));
    let server = Binary::serve(&site, &[]);
    wait_for_log(
        &server,
        "obtained a certificate for localhost from the local CA",
    );
    assert!(server.log().contains("curl --cacert"), "{}", server.log());
    let https = server.https.unwrap();

    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let stream = tls_connect(https, "localhost", &root, &[b"h2"])
        .await
        .unwrap();
    let (names, serial, chain_len) = peer_certificate(&stream);
    assert_eq!(names, ["localhost"]);
    assert_eq!(chain_len, 2, "leaf and intermediate");
    let mut client = TlsClient::new(stream).await;
    let reply = client.get("localhost", "/").await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("Test blog"));
    client.close().await;

    // The data layout, with private modes.
    assert_private(&site.path("data"));
    assert!(site.path("data/certs/localhost/privkey.pem").is_file());
    assert!(site.path("data/local-ca/root.key").is_file());
    let accounts = std::fs::read_dir(site.path("data/acme")).unwrap().count();
    assert_eq!(accounts, 1);
    // The hook runs once the certificate is backed up.
    wait_for_log(&server, "post-issue hook");
    assert!(std::fs::read_dir(site.path("data/backup")).unwrap().count() >= 1);
    let hook = std::fs::read_to_string(&hook_out).unwrap();
    assert!(
        hook.starts_with("localhost ")
            && hook.trim_end().ends_with("certs/localhost/fullchain.pem"),
        "{hook}"
    );

    let (code, out, err) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("days left"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("issued (7d)") && l.ends_with(" 1")),
        "{out}"
    );

    // A forced renewal goes through the running server and swaps the certificate.
    let (code, out, err) = site.run(&["cert", "renew", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("done by the running server"), "{out}");
    let stream = tls_connect(https, "localhost", &root, &[b"h2"])
        .await
        .unwrap();
    assert_ne!(
        peer_certificate(&stream).1,
        serial,
        "a new certificate is served"
    );
    drop(stream);
    assert_eq!(server.terminate(), 0);
}

#[tokio::test]
async fn a_torn_pair_is_restored_from_the_archive_without_a_new_order() {
    let site = local_site("");
    let server = Binary::serve(&site, &[]);
    wait_for_log(&server, "obtained a certificate");
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let stream = tls_connect(server.https.unwrap(), "localhost", &root, &[])
        .await
        .unwrap();
    let serial = peer_certificate(&stream).1;
    // Kill mid-write: the new key landed, the chain did not.
    server.kill();
    let stray = rcgen::KeyPair::generate().unwrap();
    std::fs::write(
        site.path("data/certs/localhost/privkey.pem"),
        stray.serialize_pem(),
    )
    .unwrap();

    let server = Binary::serve(&site, &[]);
    wait_for_log(&server, "good until");
    assert!(
        server.log().contains("restored the certificate"),
        "{}",
        server.log()
    );
    assert!(
        !server.log().contains("ordering a certificate"),
        "{}",
        server.log()
    );
    let stream = tls_connect(server.https.unwrap(), "localhost", &root, &[])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&stream).1, serial);
}

#[tokio::test]
async fn a_certificate_from_the_ca_of_another_mode_is_replaced_at_start() {
    let site = local_site("");
    let server = Binary::serve(&site, &[]);
    wait_for_log(&server, "obtained a certificate");
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let first = served_serial(server.https.unwrap(), "localhost", &root)
        .await
        .unwrap();
    assert_eq!(server.terminate(), 0);
    let (_, out, _) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert!(
        out.lines()
            .any(|l| l.contains("issued by") && l.ends_with(" local")),
        "{out}"
    );

    // As if the stored certificate came from Let's Encrypt's staging CA,
    // still valid for months, and the site now runs in another mode.
    let status_file = site.path("data/certs/localhost/status.json");
    let mut status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&status_file).unwrap()).unwrap();
    let staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
    status["issued_by"] = staging.into();
    std::fs::write(&status_file, status.to_string()).unwrap();

    let server = Binary::serve(&site, &[]);
    wait_for_log(&server, "obtained a certificate");
    assert!(
        server.log().contains(&format!(
            "ordering a certificate for localhost: the certificate comes from {staging}, and the configuration now names local"
        )),
        "{}",
        server.log()
    );
    let second = served_serial(server.https.unwrap(), "localhost", &root)
        .await
        .unwrap();
    assert_ne!(first, second, "the certificate was replaced");
}

#[tokio::test]
async fn renewal_follows_the_clock_and_swaps_while_connections_continue() {
    let site = local_site("local_ca_lifetime = \"1day\"\n");
    // The clock starts 17 hours back, so that both certificates are also valid
    // in real time, which the TLS client checks.
    let start: DateTime<Utc> = Utc::now() - chrono::Duration::hours(17);
    let clock = ManualClock::new(start);
    let server = quire::system::start(site.load_config(), clock.clone())
        .await
        .unwrap();
    let resolver = server.resolver.clone().unwrap();
    let mut installs = first_certificate(&resolver).await;
    let https = server.https_addr.unwrap();
    let root = std::fs::read_to_string(server.local_ca_root.clone().unwrap()).unwrap();
    let first = served_serial(https, "localhost", &root).await.unwrap();
    let stream = tls_connect(https, "localhost", &root, &[b"http/1.1"])
        .await
        .unwrap();
    let mut open = TlsClient::new(stream).await;
    assert_eq!(open.get("localhost", "/").await.status, 200);

    // A one-day certificate is renewed at half its life, in the window the
    // CA suggests (from 12 hours for 2): not at 11 hours, once the manager
    // has looked...
    clock.advance(chrono::Duration::hours(11));
    let status_file = site.path("data/certs/localhost/status.json");
    eventually("the check at 11 hours", || async {
        let status: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&status_file).unwrap_or_default())
                .unwrap_or_default();
        status["ari"]["window"].is_object()
    })
    .await;
    assert!(!installs.has_changed().unwrap());
    // ...but by 14.
    clock.advance(chrono::Duration::hours(3));
    installed(&mut installs, "the renewal").await;
    assert_ne!(
        served_serial(https, "localhost", &root).await.unwrap(),
        first
    );
    assert_eq!(
        open.get("localhost", "/").await.status,
        200,
        "old connection lives on"
    );
    server.stop().await;
}

/// When the tests with an unreachable CA start their clock.
const UNREACHABLE_START: &str = "2031-01-01T00:00:00Z";

/// A site whose CA is unreachable (nothing listens on port 9), with a stored
/// certificate for blog.test expiring ten days after [`UNREACHABLE_START`]:
/// inside the renewal window. `tls` is added to its `[tls]` table.
fn site_with_unreachable_ca(tls: &str) -> (SiteDir, TestCa) {
    let ca = TestCa::new();
    let site = SiteDir::example("");
    std::fs::write(
        site.config(),
        format!(
            "[domains]\nnames = [\"blog.test\"]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\ndirectory_url = \"https://127.0.0.1:9/directory\"\n{tls}"
        ),
    )
    .unwrap();
    let issued = ca.issue_with(
        &["blog.test"],
        rcgen::KeyPair::generate().unwrap(),
        Some((2031, 1, 11)),
    );
    site.write("data/certs/blog.test/fullchain.pem", &issued.chain_pem);
    site.write("data/certs/blog.test/privkey.pem", &issued.key_pem);
    (site, ca)
}

/// The certificate status the manager last wrote (`Null` before it has).
fn status_json(site: &SiteDir) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(site.path("data/certs/blog.test/status.json")).unwrap_or_default(),
    )
    .unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn an_unreachable_ca_backs_off_and_the_old_certificate_keeps_serving() {
    let (site, ca) = site_with_unreachable_ca("");
    let start: DateTime<Utc> = UNREACHABLE_START.parse().unwrap();
    let clock = ManualClock::new(start);
    let server = quire::system::start(site.load_config(), clock.clone())
        .await
        .unwrap();
    let https = server.https_addr.unwrap();
    let status = || status_json(&site);
    eventually("the first failure recorded", || async {
        status()["consecutive_failures"] == 1
    })
    .await;
    let expected = ca.root_pem.clone();
    let served = served_serial(https, "blog.test", &expected).await.unwrap();
    let (code, out, _) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert_eq!(code, 0);
    assert!(out.contains("127.0.0.1:9"), "{out}");
    assert!(out.contains("1 in a row"), "{out}");
    // The CA is down: no CAA identity to print, and a word on why.
    assert!(
        out.contains("CAA: https://127.0.0.1:9/directory names no CAA identity"),
        "{out}"
    );
    let first_retry = status()["next_check"].as_str().unwrap().to_string();
    let first_retry: DateTime<Utc> = first_retry.parse().unwrap();
    assert_eq!(
        (first_retry - start).num_seconds(),
        60,
        "first retry after a minute"
    );

    // Nothing happens before the retry time; then the second attempt backs off further.
    clock.advance(chrono::Duration::seconds(59));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(status()["consecutive_failures"], 1);
    clock.advance(chrono::Duration::seconds(2));
    eventually("the second failure recorded", || async {
        status()["consecutive_failures"] == 2
    })
    .await;
    let second: DateTime<Utc> = status()["next_check"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (second - (start + chrono::Duration::seconds(61))).num_seconds(),
        120
    );
    assert_eq!(
        served_serial(https, "blog.test", &expected).await.unwrap(),
        served
    );
    server.stop().await;
}

#[tokio::test]
async fn the_alert_hook_runs_once_per_change_of_state() {
    let dir = tempfile::tempdir().unwrap();
    let told = dir.path().join("alerts.txt");
    let (site, _ca) = site_with_unreachable_ca(&format!(
        "alert_after_failures = 2\nalert_days_left = 7\nalert_hook = \"echo $QUIRE_ALERT $QUIRE_FAILURES $QUIRE_DOMAIN >> '{}'\"\n",
        told.display()
    ));
    let start: DateTime<Utc> = UNREACHABLE_START.parse().unwrap();
    let clock = ManualClock::new(start);
    let server = quire::system::start(site.load_config(), clock.clone())
        .await
        .unwrap();
    let status = || status_json(&site);
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&told)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    eventually("the first failure recorded", || async {
        status()["consecutive_failures"] == 1
    })
    .await;
    assert_eq!(status()["alert"], serde_json::Value::Null);

    // The second failure in a row raises the alert.
    clock.advance(chrono::Duration::seconds(61));
    eventually("the hook told of the failures", || async {
        lines() == ["failing 2 blog.test"]
    })
    .await;
    assert_eq!(status()["alert"], "failing");
    // The third says nothing new.
    clock.advance(chrono::Duration::seconds(121));
    eventually("the third failure recorded", || async {
        status()["consecutive_failures"] == 3
    })
    .await;

    // Six days before expiry, still failing: the alert becomes "expiring",
    // and the hook hears that, and only that.
    clock.set(start + chrono::Duration::days(4));
    eventually("the hook told of the expiry", || async {
        lines().len() >= 2
    })
    .await;
    assert_eq!(lines()[1..], ["expiring 4 blog.test"]);
    assert_eq!(status()["alert"], "expiring");
    let (code, out, _) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("EXPIRING: the certificate expires on"),
        "{out}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_https_port_serves_a_temporary_certificate_before_the_first_one() {
    let site = SiteDir::example("");
    std::fs::write(
        site.config(),
        "[domains]\nnames = [\"blog.test\"]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\ndirectory_url = \"https://127.0.0.1:9/directory\"\n",
    )
    .unwrap();
    let server = quire::system::start(site.load_config(), clock::system())
        .await
        .unwrap();
    let chain = server.resolver.as_ref().unwrap().canonical();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain.cert[0]).unwrap();
    assert!(
        leaf.subject()
            .to_string()
            .contains("quire temporary certificate")
    );
    // The port answers a TLS handshake at once (an untrusted one, as it should be).
    let refused = tls_connect(
        server.https_addr.unwrap(),
        "blog.test",
        &TestCa::new().root_pem,
        &[],
    )
    .await;
    let Err(error) = refused else {
        panic!("a self-signed certificate must not be trusted");
    };
    let error = error.to_string();
    assert!(error.contains("certificate"), "{error}");
    server.stop().await;
}

#[tokio::test]
async fn tls_alpn_01_validates_through_the_https_listener() {
    let site = local_site("challenge = \"tls-alpn-01\"\n");
    let server = Binary::serve(&site, &[]);
    wait_for_log(
        &server,
        "obtained a certificate for localhost from the local CA",
    );
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let stream = tls_connect(server.https.unwrap(), "localhost", &root, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&stream).0, ["localhost"]);
    // An acme-tls/1 handshake without a pending challenge gets no certificate.
    let refused = tls_connect(server.https.unwrap(), "localhost", &root, &[b"acme-tls/1"]).await;
    assert!(refused.is_err());
}
