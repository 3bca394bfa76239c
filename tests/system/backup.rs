//! `quire backup` and `quire restore` through the whole system: a running
//! server archives its data directory (statistics included), a restore
//! refuses to overwrite state, and a restored directory serves the same
//! certificate without ordering a new one, with the statistics intact.

use std::os::unix::fs::PermissionsExt;

use crate::support::*;

fn stats_total(site: &SiteDir) -> String {
    let (code, out, err) = site.run(&["stats", "--config", "quire.toml", "--days", "1"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or_else(|| panic!("no total in {out}"))
        .to_string()
}

async fn read_home(server: &Binary, site: &SiteDir) -> String {
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let stream = tls_connect(server.https.unwrap(), "localhost", &root, &[b"h2"])
        .await
        .expect("TLS with the restored root");
    let (_, serial, _) = peer_certificate(&stream);
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("localhost", "/").await.status, 200);
    client.close().await;
    serial
}

#[tokio::test]
async fn a_backup_restores_certificates_and_statistics() {
    clear_of_utc_midnight();
    let site = local_site("");
    let server = Binary::serve(&site, &[]);
    wait_for_log(&server, "obtained a certificate");
    let serial = read_home(&server, &site).await;

    let (code, out, err) = site.run(&["backup", "saved.tar", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("made by the running server") && out.contains("statistics included"),
        "{out}"
    );
    let archive = site.path("saved.tar");
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = stats_total(&site);
    assert!(
        before.split_whitespace().nth(5) == Some("1"),
        "one bot request: {before}"
    );

    let (code, _, err) = site.run(&["restore", "saved.tar", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("stop it first"), "{err}");
    assert_eq!(server.terminate(), 0);
    let (code, _, err) = site.run(&["restore", "saved.tar", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("never overwrites") && err.contains("mv "),
        "{err}"
    );

    std::fs::rename(site.path("data"), site.path("data.lost")).unwrap();
    let (code, out, err) = site.run(&["restore", "saved.tar", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("statistics ("), "{out}");
    assert_private(&site.path("data"));
    assert!(site.path("data/local-ca/root.key").is_file());
    assert_eq!(stats_total(&site), before, "the statistics came back");

    let server = Binary::serve(&site, &[]);
    assert_eq!(
        read_home(&server, &site).await,
        serial,
        "the same certificate"
    );
    assert!(
        !server.log().contains("ordering a certificate"),
        "{}",
        server.log()
    );
}
