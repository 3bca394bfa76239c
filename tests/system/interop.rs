//! ACME interop both ways, with the real peers from Debian on loopback:
//! quire's client against Pebble, and certbot against quire's local CA.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;

use crate::support::*;

/// Starts `command` and waits for a line of its output containing `ready`;
/// returns the peer and that line.
pub(crate) fn start_until(mut command: std::process::Command, ready: &str) -> (Peer, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start peer");
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (tx, ready) = (tx.clone(), ready.to_string());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(line);
                }
            }
        });
    }
    let peer = Peer(child);
    let line = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("the peer never printed `{ready}`"));
    (peer, line)
}

/// A certificate for Pebble's own HTTPS endpoint, from a CA made now.
pub(crate) fn pebble_tls(dir: &Path) -> String {
    let ca = TestCa::new();
    let issued = ca.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.join("pebble.pem"), &issued.chain_pem).unwrap();
    std::fs::write(dir.join("pebble.key"), &issued.key_pem).unwrap();
    std::fs::write(dir.join("pebble-ca.pem"), &ca.root_pem).unwrap();
    dir.join("pebble-ca.pem").display().to_string()
}

#[tokio::test]
async fn quire_obtains_a_certificate_from_pebble() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = pebble_tls(dir.path());
    let (acme, management, http) = (free_port(), free_port(), free_port());
    let config = format!(
        r#"{{"pebble":{{"listenAddress":"127.0.0.1:{acme}","managementListenAddress":"127.0.0.1:{management}","certificate":"{0}/pebble.pem","privateKey":"{0}/pebble.key","httpPort":{http},"tlsPort":{tls},"ocspResponderURL":"","externalAccountBindingRequired":false}}}}"#,
        dir.path().display(),
        tls = free_port(),
    );
    std::fs::write(dir.path().join("pebble.json"), config).unwrap();
    let mut pebble = peer_command("pebble", "pebble");
    pebble
        .arg("-config")
        .arg(dir.path().join("pebble.json"))
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0");
    let (_pebble, _) = start_until(pebble, "ACME directory available");
    // Pebble says so just before it listens.
    for port in [acme, management] {
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < DEADLINE,
                "pebble never listened on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    let site = SiteDir::example("");
    std::fs::write(
        site.config(),
        format!(
            "[domains]\nnames = [\"localhost\"]\n\n[listen]\nhttp = \"127.0.0.1:{http}\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\ndirectory_url = \"https://127.0.0.1:{acme}/dir\"\ncontacts = [\"admin@example.com\"]\n"
        ),
    )
    .unwrap();
    let server = Binary::serve_with_env(&site, &[], &[("QUIRE_ACME_ROOTS", &ca_file)]);
    wait_for_log(&server, "obtained a certificate for localhost");

    // Pebble's issuing root, from its management interface.
    let root = peer_command("curl", "curl")
        .args(["-sS", "--fail", "--cacert", &ca_file])
        .arg(format!("https://127.0.0.1:{management}/roots/0"))
        .output()
        .unwrap();
    assert!(
        root.status.success(),
        "{}",
        String::from_utf8_lossy(&root.stderr)
    );
    let root = String::from_utf8(root.stdout).unwrap();
    let https: SocketAddr = server.https.unwrap();
    let stream = tls_connect(https, "localhost", &root, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&stream).0, ["localhost"]);
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("localhost", "/").await.status, 200);
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
