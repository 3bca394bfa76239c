//! dns-01 end to end with real servers on loopback: BIND `named` holding the
//! zone and taking TSIG-signed updates, Pebble resolving through it, and the
//! real quire binary certifying a name and a wildcard; then the same site
//! with a wrong TSIG secret, which must say so and keep serving.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use crate::support::*;

fn config(pebble: &Pebble, bind: &Bind) -> String {
    format!(
        r#"[site]
title = "Test blog"
base_url = "https://blog.example.test/"

[domains]
names = ["blog.example.test", "*.example.test"]

[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
metrics = "127.0.0.1:0"

[tls]
mode = "acme"
directory_url = "{directory}"
contacts = ["admin@example.test"]
challenge = "dns-01"

[tls.dns]
server = "{server}"
zone = "{zone}"
tsig_key = "{key}"
tsig_secret_file = "tsig.secret"
"#,
        directory = pebble.directory,
        server = bind.addr,
        zone = bind.zone,
        key = bind.key_name,
    )
}

fn write_secret(site: &SiteDir, secret: &str, mode: u32) {
    let path = site.path("tsig.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn quire_certifies_a_name_and_a_wildcard_by_dns_01_through_bind() {
    let bind = Bind::start("example.test");
    let pebble = Pebble::start(PebbleSettings {
        http_port: free_port(),
        tls_port: free_port(),
        dns: Some(bind.addr),
    });
    let site = SiteDir::example("");
    std::fs::write(site.config(), config(&pebble, &bind)).unwrap();
    write_secret(&site, &bind.secret, 0o600);
    let env = [("QUIRE_ACME_ROOTS", pebble.ca_file.as_str())];
    // What a crash between adding a record and deleting it leaves: the
    // record in the zone, and the note of it in the store.
    let stale = "_acme-challenge.stale.example.test";
    bind.add_txt(stale, "left-behind");
    assert_eq!(bind.txt(stale), ["left-behind"]);
    site.write(
        "data/acme/dns-pending/records.json",
        &format!(r#"{{"records":[{{"owner":"{stale}","value":"left-behind"}}]}}"#),
    );

    let server = Binary::serve_with_env(&site, &[], &env);
    wait_for_log(&server, "obtained a certificate for");
    let log = server.log();
    assert!(
        log.contains("added 2 dns-01 record(s) to zone example.test"),
        "{log}"
    );
    // ns1.example.test is listed at 127.0.0.1:53, where nothing answers.
    assert!(
        log.contains("skipping the authoritative server 127.0.0.1:53"),
        "{log}"
    );
    assert!(!log.contains("can be read by other users"), "{log}");

    // The records are gone from the zone, the crash's leftover too, and so
    // is the note of them.
    assert!(
        log.contains(&format!("an earlier order left behind: {stale}")),
        "{log}"
    );
    for owner in [
        "_acme-challenge.blog.example.test",
        "_acme-challenge.example.test",
        stale,
    ] {
        assert_eq!(bind.txt(owner), Vec::<String>::new(), "{owner}");
    }
    assert!(!site.path("data/acme/dns-pending/records.json").exists());

    // One certificate for both; a host under the wildcard gets it by SNI,
    // and is sent to the canonical host like any other name.
    let root = pebble.issuing_root();
    let https: SocketAddr = server.https.unwrap();
    let stream = tls_connect(https, "blog.example.test", &root, &[b"h2"])
        .await
        .unwrap();
    let (mut names, serial, _) = peer_certificate(&stream);
    names.sort();
    assert_eq!(names, ["*.example.test", "blog.example.test"]);
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("blog.example.test", "/").await.status, 200);
    let stream = tls_connect(https, "www.example.test", &root, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&stream).1, serial);
    let mut client = TlsClient::new(stream).await;
    let reply = client.get("www.example.test", "/about/?x=1").await;
    assert_eq!(reply.status, 301);
    assert_eq!(
        reply.header("location"),
        "https://blog.example.test/about/?x=1"
    );
    assert_eq!(server.terminate(), 0);

    // A wrong secret, in a file others may read: the renewal fails saying
    // which key and server and what to check, nothing is left in the zone,
    // and the stored certificate keeps being served.
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    write_secret(&site, &wrong, 0o644);
    let server = Binary::serve_with_env(&site, &[], &env);
    wait_for_log(&server, "can be read by other users (mode 644)");
    let (code, out, err) = site.run(&["cert", "renew", "--config", "quire.toml"]);
    assert_ne!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    let expected = format!(
        "updating zone example.test at the DNS server {} with TSIG key `quire-key`: the server rejected the signature (BADSIG): the secret in {} is not the server's secret for key `quire-key`",
        bind.addr,
        site.path("tsig.secret").display()
    );
    assert!(said.contains(&expected), "{said}");
    assert!(!said.contains(&wrong), "{said}");
    assert!(!server.log().contains(&wrong), "the log shows the secret");
    for owner in [
        "_acme-challenge.blog.example.test",
        "_acme-challenge.example.test",
    ] {
        assert_eq!(bind.txt(owner), Vec::<String>::new(), "{owner}");
    }
    let stream = tls_connect(server.https.unwrap(), "blog.example.test", &root, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(peer_certificate(&stream).1, serial);
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("blog.example.test", "/").await.status, 200);
}
