//! HTTPS in manual mode with a test CA made at run time: h1 and h2 by ALPN, the
//! chain, redirects, SNI, live certificate swaps, slow clients, SIGTERM drain,
//! and curl and openssl as interop peers.

use std::io::Read;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    Binary, SiteDir, TestCa, TlsClient, eventually, get, install_pair, manual_site,
    peer_certificate, peer_command, request, tls_connect, wait_for_log,
};
use quire::clock;
use quire::tls::CertBundle;

#[tokio::test]
async fn serves_h1_and_h2_by_alpn_with_the_full_chain_and_redirects_http() {
    let ca = TestCa::new();
    let site = manual_site(&ca, "");
    let server = Binary::serve(&site, &[]);
    let https = server.https.expect("https listener");

    let stream = tls_connect(https, "blog.test", &ca.root_pem, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    let (names, _, chain_len) = peer_certificate(&stream);
    assert_eq!(names, ["blog.test", "www.blog.test"]);
    assert_eq!(chain_len, 2, "leaf and intermediate are sent");
    let mut h2 = TlsClient::new(stream).await;
    assert_eq!(h2.protocol, "h2");
    let home = h2.get("blog.test", "/").await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("Test blog"));
    assert_eq!(
        home.header("strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(home.header("x-content-type-options"), "nosniff");
    assert!(
        home.header("content-security-policy")
            .contains("default-src 'self'")
    );
    assert_eq!(
        h2.get("blog.test", "/posts/hello-quire/").await.status,
        200,
        "several streams on one connection"
    );

    let stream = tls_connect(https, "blog.test", &ca.root_pem, &[b"http/1.1"])
        .await
        .unwrap();
    let mut h1 = TlsClient::new(stream).await;
    assert_eq!(h1.protocol, "http/1.1");
    assert_eq!(h1.get("blog.test", "/about/").await.status, 200);
    assert_eq!(
        h1.get("blog.test", "/tags/").await.status,
        200,
        "keep-alive"
    );

    let canonical = h1.get("www.blog.test", "/posts/hello-quire/?ref=x").await;
    assert_eq!(canonical.status, 301);
    assert_eq!(
        canonical.header("location"),
        "https://blog.test/posts/hello-quire/?ref=x"
    );

    let redirect = get(server.addr, "/posts/hello-quire/?utm=1&b=2").await;
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.header("location"),
        "https://blog.test/posts/hello-quire/?utm=1&b=2"
    );
    let challenge = get(server.addr, "/.well-known/acme-challenge/unknown-token").await;
    assert_eq!(challenge.status, 404);

    let body = request(server.addr, "POST", "/", &[("content-length", "5")]).await;
    assert_eq!(body.status, 301, "the HTTP side only redirects");
}

#[tokio::test]
async fn request_bodies_are_refused() {
    let ca = TestCa::new();
    let site = manual_site(&ca, "");
    let server = Binary::serve(&site, &[]);
    let stream = tls_connect(
        server.https.unwrap(),
        "blog.test",
        &ca.root_pem,
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    let mut stream = stream;
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: blog.test\r\nContent-Length: 4\r\n\r\nabcd")
        .await
        .unwrap();
    let mut reply = vec![0; 64];
    let n = stream.read(&mut reply).await.unwrap();
    assert!(
        String::from_utf8_lossy(&reply[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&reply[..n])
    );
}

#[tokio::test]
async fn sni_picks_the_certificate_and_rsa_and_ecdsa_both_work() {
    let ca = TestCa::new();
    let site = manual_site(&ca, "");
    let config = site.load_config();
    let server = quire::system::start(config, clock::system()).await.unwrap();
    let https = server.https_addr.unwrap();

    let rsa_key = {
        let out = peer_command("openssl", "openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        rcgen::KeyPair::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap()
    };
    let ecdsa = ca.issue(&["blog.test", "www.blog.test"]);
    let rsa = ca.issue_with(&["other.test"], rsa_key, None);
    let bundles = [
        CertBundle::from_pem(ecdsa.chain_pem.as_bytes(), ecdsa.key_pem.as_bytes()).unwrap(),
        CertBundle::from_pem(rsa.chain_pem.as_bytes(), rsa.key_pem.as_bytes()).unwrap(),
    ];
    server.resolver.as_ref().unwrap().install(&bundles);

    let other = tls_connect(https, "other.test", &ca.root_pem, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&other).0, ["other.test"]);
    let mut other = TlsClient::new(other).await;
    assert_eq!(
        other.get("other.test", "/").await.status,
        200,
        "served with the RSA certificate"
    );

    let blog = tls_connect(https, "blog.test", &ca.root_pem, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&blog).0, ["blog.test", "www.blog.test"]);
    // A name no certificate has gets the canonical one (which the client then rejects).
    let unknown = tls_connect(https, "unknown.test", &ca.root_pem, &[b"h2"]).await;
    let error = unknown
        .expect_err("certificate does not name unknown.test")
        .to_string();
    assert!(
        error.contains("NotValidForName") || error.contains("not valid for name"),
        "{error}"
    );
    server.stop().await;
}

#[tokio::test]
async fn certificates_swap_live_and_bad_files_are_refused() {
    let ca = TestCa::new();
    let site = manual_site(&ca, "");
    let server = Binary::serve(&site, &[]);
    let https = server.https.unwrap();

    let old = tls_connect(https, "blog.test", &ca.root_pem, &[b"http/1.1"])
        .await
        .unwrap();
    let (_, old_serial, _) = peer_certificate(&old);
    let mut old = TlsClient::new(old).await;
    assert_eq!(old.get("blog.test", "/").await.status, 200);

    install_pair(
        &site,
        &ca.issue(&["blog.test", "www.blog.test", "new.blog.test"]),
    );
    eventually("a new connection gets the new certificate", || {
        let root = ca.root_pem.clone();
        async move {
            let stream = tls_connect(https, "blog.test", &root, &[b"h2"])
                .await
                .unwrap();
            peer_certificate(&stream)
                .0
                .contains(&"new.blog.test".to_string())
        }
    })
    .await;
    let stream = tls_connect(https, "blog.test", &ca.root_pem, &[b"h2"])
        .await
        .unwrap();
    assert_ne!(peer_certificate(&stream).1, old_serial);
    assert_eq!(
        old.get("blog.test", "/about/").await.status,
        200,
        "the old connection keeps working"
    );

    // An expired certificate and a key that does not match are both refused.
    install_pair(
        &site,
        &ca.issue_with(
            &["blog.test", "www.blog.test"],
            rcgen::KeyPair::generate().unwrap(),
            Some((2021, 1, 1)),
        ),
    );
    eventually("the expired pair is refused", || async {
        server
            .log()
            .contains("refused the changed certificate files")
            && server.log().contains("expired")
    })
    .await;
    let mismatched = ca.issue(&["blog.test", "www.blog.test"]);
    site.write("tls/fullchain.pem", &mismatched.chain_pem);
    eventually("the mismatched key is refused", || async {
        server.log().contains("does not belong to the certificate")
    })
    .await;
    let stream = tls_connect(https, "blog.test", &ca.root_pem, &[b"h2"])
        .await
        .unwrap();
    assert!(
        peer_certificate(&stream)
            .0
            .contains(&"new.blog.test".to_string()),
        "still the last good certificate"
    );
}

#[test]
fn a_bad_certificate_stops_the_start_with_the_reason() {
    let ca = TestCa::new();
    let site = manual_site(&ca, "");
    install_pair(&site, &ca.issue(&["elsewhere.test"]));
    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("does not cover blog.test, www.blog.test"),
        "{stderr}"
    );

    let issued = ca.issue(&["blog.test", "www.blog.test"]);
    let mut parts: Vec<&str> = issued
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    parts.reverse();
    site.write("tls/fullchain.pem", &parts.concat());
    site.write("tls/privkey.pem", &issued.key_pem);
    let (code, _, stderr) = site.run(&["serve", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("order the chain") || stderr.contains("does not belong"),
        "{stderr}"
    );
}

/// Reads until the server closes the connection; true if it did so in time.
async fn closed_by_server(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut sink = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .is_ok()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off() {
    let ca = TestCa::new();
    let site = manual_site(
        &ca,
        // Long enough for this test's own handshakes on a busy machine.
        "\n[limits]\nhandshake_timeout = \"2s\"\nheader_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n",
    );
    let server = Binary::serve(&site, &[]);
    let https = server.https.unwrap();

    // No TLS handshake at all.
    let mut silent = TcpStream::connect(https).await.unwrap();
    assert!(closed_by_server(&mut silent).await, "handshake timeout");

    // Slowloris: a request head that never ends.
    let mut slow = tls_connect(https, "blog.test", &ca.root_pem, &[b"http/1.1"])
        .await
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: blog.test\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut slow).await, "header read timeout");

    // The same on plain HTTP.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: blog.test\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut plain).await,
        "header read timeout on http"
    );

    // An idle HTTP/2 connection.
    let mut idle = tls_connect(https, "blog.test", &ca.root_pem, &[b"h2"])
        .await
        .unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert!(closed_by_server(&mut idle).await, "idle timeout");

    // Meanwhile, everyone else is served.
    let stream = tls_connect(https, "blog.test", &ca.root_pem, &[b"h2"])
        .await
        .unwrap();
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("blog.test", "/").await.status, 200);
    client.close().await;
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);
    let mut in_flight = TcpStream::connect(server.addr).await.unwrap();
    // A first answered request proves the server took the connection.
    in_flight
        .write_all(b"HEAD / HTTP/1.1\r\nHost: blog.test\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        in_flight.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    in_flight
        .write_all(b"GET /posts/markdown-tour/ HTTP/1.1\r\nHost: blog.test\r\n")
        .await
        .unwrap();
    server.signal(libc::SIGTERM);
    wait_for_log(&server, "shutting down");
    in_flight
        .write_all(b"Connection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    in_flight.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("</html>"), "the whole page arrives");
    assert_eq!(server.terminate(), 0, "clean exit");
}

#[tokio::test]
async fn curl_and_openssl_interoperate() {
    let ca = TestCa::new();
    let site = manual_site(&ca, "");
    std::fs::write(site.path("root.pem"), &ca.root_pem).unwrap();
    let server = Binary::serve(&site, &[]);
    let https = server.https.unwrap();
    let resolve = format!("blog.test:{}:127.0.0.1", https.port());
    let url = format!("https://blog.test:{}/posts/hello-quire/", https.port());

    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = peer_command("curl", "curl")
            .args(["--silent", "--show-error", flag, "--cacert"])
            .arg(site.path("root.pem"))
            .args([
                "--resolve",
                &resolve,
                "--write-out",
                "%{http_version} %{http_code}",
                "--output",
                "/dev/null",
                &url,
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{version} 200"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    for (version, alpn) in [("-tls1_3", "h2"), ("-tls1_2", "http/1.1")] {
        let mut child = peer_command("openssl", "openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", https.port()),
                "-servername",
                "blog.test",
                "-alpn",
                alpn,
                version,
                "-showcerts",
                "-CAfile",
            ])
            .arg(site.path("root.pem"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut output = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut output)
            .unwrap();
        child.wait().unwrap();
        assert!(
            output.contains(&format!("ALPN protocol: {alpn}")),
            "{output}"
        );
        assert!(output.contains("Verify return code: 0 (ok)"), "{output}");
        assert_eq!(
            output.matches("BEGIN CERTIFICATE").count(),
            2,
            "leaf and intermediate: {output}"
        );
    }
    // Session resumption: a ticket from the first connection resumes the second.
    let session = site.path("session.pem");
    let connect = format!("127.0.0.1:{}", https.port());
    let mut resumed = String::new();
    for flag in ["-sess_out", "-sess_in"] {
        let out = peer_command("openssl", "openssl")
            .args([
                "s_client",
                "-connect",
                &connect,
                "-servername",
                "blog.test",
                "-tls1_2",
                flag,
            ])
            .arg(&session)
            .arg("-CAfile")
            .arg(site.path("root.pem"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        resumed = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    assert!(
        resumed.contains("Reused, TLSv1.2"),
        "the session is resumed: {resumed}"
    );
    let rejected = peer_command("openssl", "openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", https.port()),
            "-servername",
            "blog.test",
            "-tls1_1",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!rejected.status.success(), "TLS 1.1 is refused");
}
