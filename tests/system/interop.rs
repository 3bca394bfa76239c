//! ACME interop both ways, with the real peers from Debian on loopback:
//! quire's client against Pebble, and certbot against quire's local CA.

use std::net::SocketAddr;

use rustls::pki_types::pem::PemObject;

use crate::support::*;

#[tokio::test]
async fn quire_obtains_a_certificate_from_pebble() {
    let http = free_port();
    let pebble = Pebble::start(PebbleSettings {
        http_port: http,
        tls_port: free_port(),
        dns: None,
    });

    let site = pebble.site(
        http,
        "contacts = [\"admin@example.com\"]
",
    );
    let server = Binary::serve_with_env(&site, &[], &[("QUIRE_ACME_ROOTS", &pebble.ca_file)]);
    wait_for_log(&server, "obtained a certificate for localhost");

    let root = pebble.issuing_root();
    let https: SocketAddr = server.https.unwrap();
    let stream = tls_connect(https, "localhost", &root, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&stream).0, ["localhost"]);
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("localhost", "/").await.status, 200);
}

#[tokio::test]
async fn quire_serves_the_chain_it_prefers_among_those_pebble_offers() {
    let http = free_port();
    let pebble = Pebble::offering_chains(
        PebbleSettings {
            http_port: http,
            tls_port: free_port(),
            dns: None,
        },
        3,
        1,
    );
    let alternate_root = pebble.root(1);
    let preferred = common_name(&alternate_root);
    assert_ne!(preferred, common_name(&pebble.root(0)));

    let site = pebble.site(
        http,
        &format!(
            "preferred_chain = \"{preferred}\"
"
        ),
    );
    let server = Binary::serve_with_env(&site, &[], &[("QUIRE_ACME_ROOTS", &pebble.ca_file)]);
    wait_for_log(&server, "obtained a certificate for localhost");
    assert!(
        server.log().contains("serving the CA's alternate chain"),
        "{}",
        server.log()
    );

    // A four-certificate chain up to the alternate root, which a client
    // trusting only that root accepts.
    let stored = std::fs::read_to_string(site.path("data/certs/localhost/fullchain.pem")).unwrap();
    assert_eq!(stored.matches("BEGIN CERTIFICATE").count(), 4, "{stored}");
    let https: SocketAddr = server.https.unwrap();
    let stream = tls_connect(https, "localhost", &alternate_root, &[b"h2"])
        .await
        .unwrap();
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("localhost", "/").await.status, 200);
    assert!(
        tls_connect(https, "localhost", &pebble.root(0), &[b"h2"])
            .await
            .is_err(),
        "the default chain's root does not verify the chain served"
    );
}

/// The subject common name of a PEM certificate.
fn common_name(pem: &str) -> String {
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// Starts `quire local-ca` with `ca_args` and has certbot obtain a certificate
/// for `name` from it over loopback http-01.
fn certbot_from_local_ca(ca_args: &[&str], name: &str) -> quire::tls::CertBundle {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let mut ca = std::process::Command::new(BIN);
    ca.env("RUST_LOG", "quire=info")
        .args(["local-ca", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--http-port", &http.to_string()])
        .args(ca_args);
    let (_ca, line) = start_until(ca, "local CA at ");
    let directory = line
        .split("local CA at ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_string();
    let root = dir.path().join("data/local-ca/root.pem");

    let work = dir.path().join("certbot");
    let out = peer_command("certbot", "certbot")
        .env("REQUESTS_CA_BUNDLE", &root)
        .args([
            "certonly",
            "--standalone",
            "--non-interactive",
            "--agree-tos",
            "--register-unsafely-without-email",
            "--server",
            &directory,
            "--http-01-address",
            "127.0.0.1",
            "--http-01-port",
            &http.to_string(),
            "--key-type",
            "ecdsa",
            "-d",
            name,
        ])
        .arg("--config-dir")
        .arg(work.join("config"))
        .arg("--work-dir")
        .arg(work.join("work"))
        .arg("--logs-dir")
        .arg(work.join("logs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "certbot failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let live = work.join("config/live").join(name);
    let chain = std::fs::read(live.join("fullchain.pem")).unwrap();
    let key = std::fs::read(live.join("privkey.pem")).unwrap();
    let bundle = quire::tls::CertBundle::from_pem(&chain, &key).unwrap();
    assert!(
        bundle.issuer.contains("quire local CA"),
        "{}",
        bundle.issuer
    );
    bundle
}

#[test]
fn certbot_obtains_a_certificate_from_the_local_ca() {
    let bundle = certbot_from_local_ca(&["--lifetime", "7days"], "localhost");
    assert_eq!(bundle.names, ["localhost"]);
    let lifetime = bundle.not_after - bundle.not_before;
    assert_eq!(lifetime.num_days(), 7);
}

#[test]
fn the_standalone_local_ca_certifies_a_domain_given_with_dash_dash_domain() {
    let bundle = certbot_from_local_ca(&["--domain", "Blog.Example.com"], "blog.example.com");
    assert_eq!(bundle.names, ["blog.example.com"]);
}
