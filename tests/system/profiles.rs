//! Certificates as CAs issue them now: a profile ordered and kept, renewal
//! driven by the certificate (half of a short life, the CA's renewal window
//! when it moves earlier), the renewal naming the certificate it replaces.
//! The local CA offers profiles and renewal information; Debian's Pebble
//! (2.4.0) offers neither, so against it quire must refuse a profile at start;
//! a CA that does not answer at all holds the start up for seconds only.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use instant_acme::{Account, AccountCredentials, CertificateIdentifier, Identifier, NewOrder};
use quire::clock::{Clock, ManualClock};
use rustls::pki_types::{CertificateDer, Der};
use x509_parser::prelude::*;

use crate::support::*;

fn status(site: &SiteDir) -> serde_json::Value {
    let file = site.path("data/certs/localhost/status.json");
    serde_json::from_slice(&std::fs::read(file).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

fn time(value: &serde_json::Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// The certificate being served: its DER, validity and ARI CertID.
struct Served {
    der: CertificateDer<'static>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    id: CertificateIdentifier<'static>,
}

fn served(server: &quire::system::RunningServer) -> Served {
    let der = server.resolver.as_ref().unwrap().canonical().cert[0].clone();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                Some(aki.key_identifier.clone().unwrap().0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    let at = |t: ASN1Time| DateTime::from_timestamp(t.timestamp(), 0).unwrap();
    let id = CertificateIdentifier::new(Der::from_slice(&aki), Der::from_slice(cert.raw_serial()))
        .into_owned();
    Served {
        not_before: at(cert.validity().not_before),
        not_after: at(cert.validity().not_after),
        id,
        der,
    }
}

/// The ACME account quire made at the local CA, as an ACME client outside
/// quire holds it (the credentials in the data directory, the CA's root).
async fn quire_account(site: &SiteDir) -> Account {
    let dir = std::fs::read_dir(site.path("data/acme"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let credentials: AccountCredentials =
        serde_json::from_slice(&std::fs::read(dir.join("account.json")).unwrap()).unwrap();
    Account::builder_with_root(site.path("data/local-ca/root.pem"))
        .unwrap()
        .from_credentials(credentials)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_shortlived_certificate_renews_at_half_its_life_and_names_the_one_it_replaces() {
    let site = local_site("profile = \"shortlived\"\nlocal_ca_shortlived_lifetime = \"10m\"\n");
    // Five minutes back, so that both certificates are valid in real time
    // too, which the TLS client checks.
    let start = Utc::now() - chrono::Duration::minutes(5);
    let clock = ManualClock::new(start);
    let server = quire::system::start(site.load_config(), clock.clone())
        .await
        .unwrap();
    let mut installs = first_certificate(server.resolver.as_ref().unwrap()).await;
    let first = served(&server);
    assert_eq!(
        first.not_after - first.not_before,
        chrono::Duration::minutes(10),
        "the shortlived profile's lifetime"
    );
    let https = server.https_addr.unwrap();
    let root = std::fs::read_to_string(server.local_ca_root.clone().unwrap()).unwrap();
    let first_serial = served_serial(https, "localhost", &root).await.unwrap();

    // A minute on, the manager asks the CA for the renewal window: it opens
    // at half the life. At 40% of the life, nothing is renewed.
    clock.set(first.not_before + chrono::Duration::minutes(4));
    eventually("the renewal window is known", || async {
        status(&site)["ari"]["window"].is_object()
    })
    .await;
    let status_now = status(&site);
    assert_eq!(status_now["profile"], "shortlived");
    let half = first.not_before + chrono::Duration::minutes(5);
    assert_eq!(time(&status_now["ari"]["window"]["start"]), half);
    let renew_after = time(&status_now["renew_after"]);
    assert!(
        renew_after >= half && renew_after <= time(&status_now["ari"]["window"]["end"]),
        "{status_now}"
    );
    tokio::task::yield_now().await;
    assert!(!installs.has_changed().unwrap(), "renewed too early");

    // Past the window: renewed, with the same profile.
    clock.set(first.not_before + chrono::Duration::minutes(6));
    installed(&mut installs, "the renewed certificate").await;
    let second = served(&server);
    assert_eq!(
        second.not_after - second.not_before,
        chrono::Duration::minutes(10),
        "the profile is kept"
    );
    assert_ne!(
        served_serial(https, "localhost", &root).await.unwrap(),
        first_serial
    );
    assert!(second.not_before >= renew_after - chrono::Duration::minutes(1));

    // The CA recorded the renewal as replacing the first certificate: no
    // other order may now claim to replace it.
    let account = quire_account(&site).await;
    let identifiers = [Identifier::Dns("localhost".into())];
    let refused = account
        .new_order(&NewOrder::new(&identifiers).replaces(first.id.clone()))
        .await
        .map(|_| ())
        .unwrap_err();
    let instant_acme::Error::Api(problem) = refused else {
        panic!("not a problem document: {refused}");
    };
    assert_eq!(
        problem.r#type.as_deref(),
        Some("urn:ietf:params:acme:error:alreadyReplaced")
    );
    // While the second one is free to be replaced.
    account
        .new_order(&NewOrder::new(&identifiers).replaces(second.id.clone()))
        .await
        .unwrap();

    let (_, out, _) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("profile") && l.ends_with(" shortlived")),
        "{out}"
    );
    assert!(out.contains("ARI check"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn a_renewal_window_the_ca_moves_earlier_renews_before_the_lifetime_would() {
    let site = local_site("local_ca_lifetime = \"30days\"\n");
    let start = Utc::now();
    let clock = ManualClock::new(start);
    let server = quire::system::start(site.load_config(), clock.clone())
        .await
        .unwrap();
    let mut installs = first_certificate(server.resolver.as_ref().unwrap()).await;
    let first = served(&server);

    // The window, once asked for, opens 20 days in.
    clock.advance(chrono::Duration::minutes(2));
    eventually("the renewal window is known", || async {
        status(&site)["ari"]["window"].is_object()
    })
    .await;
    let asked = status(&site);
    assert_eq!(
        time(&asked["ari"]["window"]["start"]),
        first.not_before + chrono::Duration::days(20)
    );
    let next_ari = time(&asked["ari"]["next_check"]);
    assert!(
        next_ari <= clock.now() + chrono::Duration::hours(6),
        "asked again within 6 hours: {asked}"
    );

    // The CA learns the key leaked: the certificate is revoked, and its
    // window moves into the past (as a CA does before revoking).
    quire_account(&site)
        .await
        .revoke(&instant_acme::RevocationRequest {
            certificate: &first.der,
            reason: Some(instant_acme::RevocationReason::KeyCompromise),
        })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    assert!(!installs.has_changed().unwrap());

    // At the next renewal information check, hours later, not weeks.
    clock.set(next_ari + chrono::Duration::seconds(1));
    installed(&mut installs, "the early renewal").await;
    let second = served(&server);
    assert_ne!(second.id, first.id);
    assert!(second.not_before < first.not_before + chrono::Duration::hours(7));
    server.stop().await;
}

/// Runs `quire serve` on `site`, which must refuse to start: its exit code
/// and what it printed.
fn refused_start(site: &SiteDir, env: &[(&str, &str)]) -> (i32, String) {
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(site.config())
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_LOG", "quire=info")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if started.elapsed() > DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("quire started, or did not stop, despite its profile");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (code, err)
}

#[tokio::test]
async fn a_profile_the_ca_does_not_offer_is_refused_at_start_with_what_it_offers() {
    let pebble = Pebble::start(PebbleSettings {
        http_port: free_port(),
        tls_port: free_port(),
        dns: None,
    });
    let site = pebble.site(
        0,
        "profile = \"x\"
",
    );
    let (code, err) = refused_start(&site, &[("QUIRE_ACME_ROOTS", &pebble.ca_file)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "[tls] profile = \"x\", but the CA at {} offers no profiles; remove [tls] profile",
            pebble.directory
        )),
        "{err}"
    );
    assert!(!err.contains("obtained a certificate"), "{err}");

    // The local CA offers three, and says which.
    let local = local_site("profile = \"x\"\n");
    let (code, err) = refused_start(&local, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("offers only classic, shortlived, tlsserver; change [tls] profile to one of them, or remove it"),
        "{err}"
    );
}

/// Two CAs that take the connection and never answer: the start reads both
/// directories at once and gives up on them in seconds, where one request
/// may otherwise wait 30 s (each), longer than a user waits for the site.
#[tokio::test]
async fn cas_that_never_answer_do_not_hold_up_the_start() {
    let silent = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let addrs = silent.each_ref().map(|l| l.local_addr().unwrap());
    let tables: String = addrs
        .iter()
        .map(|addr| format!("[[tls.issuers]]\ndirectory_url = \"https://{addr}/dir\"\n"))
        .collect();
    let site = SiteDir::example("");
    std::fs::write(
        site.config(),
        format!(
            "[domains]\nnames = [\"localhost\"]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\nprofile = \"shortlived\"\n{tables}"
        ),
    )
    .unwrap();
    let server = Binary::serve(&site, &[]);
    for addr in addrs {
        wait_for_log(
            &server,
            &format!(
                "cannot read the profiles {addr} offers (no answer within 5s); profile \"shortlived\" is checked again before each order"
            ),
        );
    }
    assert_eq!(get(server.addr, "/").await.status, 301);
}

#[tokio::test]
async fn a_certificate_from_a_ca_without_renewal_information_still_renews() {
    let http = free_port();
    let pebble = Pebble::start(PebbleSettings {
        http_port: http,
        tls_port: free_port(),
        dns: None,
    });
    let site = pebble.site(http, "");
    let server = Binary::serve_with_env(&site, &[], &[("QUIRE_ACME_ROOTS", &pebble.ca_file)]);
    wait_for_log(&server, "obtained a certificate for localhost");
    let root = pebble.issuing_root();
    let https = server.https.unwrap();
    let first = served_serial(https, "localhost", &root).await.unwrap();
    let status = status(&site);
    assert_eq!(status["profile"], serde_json::Value::Null, "{status}");

    // The renewal names the certificate it replaces only to a CA with
    // renewal information; Pebble has none, and issues all the same.
    let (code, out, err) = site.run(&["cert", "renew", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_ne!(
        served_serial(https, "localhost", &root).await.unwrap(),
        first
    );
    assert!(
        !server.log().contains("refused the order naming"),
        "{}",
        server.log()
    );
    let (_, out, _) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("profile") && l.ends_with("the CA's default")),
        "{out}"
    );
}
