//! Configuration reload on the real binary: SIGHUP and `quire reload` apply
//! changed limits to new connections and order a certificate for a changed
//! domain list; a broken file is refused with its reason and the running
//! configuration stays.

use crate::support::*;

fn config(domains: &str, limits: &str) -> String {
    format!(
        "[site]\ntitle = \"Test blog\"\n\n[domains]\nnames = [{domains}]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\nlocal_ca = \"127.0.0.1:0\"\n\n[tls]\nmode = \"local\"\n\n[limits]\n{limits}"
    )
}

/// Waits for the server to log a line holding `what`, and checks its level:
/// the operator reads in the server's own log what every reload did.
fn assert_logged(server: &Binary, level: &str, what: &str) {
    wait_for_log(server, what);
    let log = server.log();
    let line = log.lines().find(|l| l.contains(what)).unwrap();
    assert!(line.contains(level), "not at {level}: {line}");
}

/// A request whose head is about 12 KiB: within the default limit (16 KiB).
async fn big_head_status(server: &Binary, site: &SiteDir) -> u16 {
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let stream = tls_connect(server.https.unwrap(), "localhost", &root, &[b"http/1.1"])
        .await
        .unwrap();
    let mut client = TlsClient::new(stream).await;
    let status = client
        .get_with("localhost", "/", &[("x-padding", &"p".repeat(12 * 1024))])
        .await
        .map_or(431, |reply| reply.status.as_u16());
    client.close().await;
    status
}

#[tokio::test]
async fn limits_and_domains_change_without_a_restart() {
    let site = local_site("");
    std::fs::write(site.config(), config("\"localhost\"", "")).unwrap();
    let server = Binary::serve(&site, &[]);
    wait_for_log(&server, "obtained a certificate for localhost from");
    assert_eq!(big_head_status(&server, &site).await, 200);

    // A broken file changes nothing, and says why.
    std::fs::write(
        site.config(),
        config("\"localhost\"", "max_header_bytes = 100\n"),
    )
    .unwrap();
    let (code, _, err) = site.run(&["reload", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("keeps its configuration") && err.contains("max_header_bytes"),
        "{err}"
    );
    server.hangup();
    wait_for_log(&server, "the configuration was not reloaded");
    assert_logged(
        &server,
        "WARN",
        "reload (SIGHUP): the configuration was not reloaded",
    );
    assert_eq!(big_head_status(&server, &site).await, 200);

    // Smaller limits apply to the next connection.
    std::fs::write(
        site.config(),
        config("\"localhost\"", "max_header_bytes = 8192\n"),
    )
    .unwrap();
    let (code, out, err) = site.run(&["reload", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("limits (for new connections)"), "{out}");
    assert_logged(
        &server,
        "INFO",
        "reload (quire reload): reloaded: limits (for new connections)",
    );
    assert_eq!(big_head_status(&server, &site).await, 431);

    // A new name: SIGHUP, and the certificate is ordered for both.
    std::fs::write(
        site.config(),
        config(
            "\"localhost\", \"www.localhost\"",
            "max_header_bytes = 8192\n",
        ),
    )
    .unwrap();
    server.hangup();
    wait_for_log(
        &server,
        "obtained a certificate for localhost, www.localhost",
    );
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let stream = tls_connect(server.https.unwrap(), "www.localhost", &root, &[b"h2"])
        .await
        .expect("the new name is certified");
    let (names, _, _) = peer_certificate(&stream);
    assert!(names.contains(&"www.localhost".to_string()), "{names:?}");
    let mut client = TlsClient::new(stream).await;
    let reply = client.get("www.localhost", "/about/").await;
    assert_eq!(
        reply.status, 301,
        "the new alias redirects to the canonical name"
    );
    client.close().await;
}

/// The status of `/` for a request whose head is about 12 KiB: 200 under the
/// default limit (16 KiB), 431 under 8 KiB.
async fn big_plain_head_status(server: &Binary) -> u16 {
    request(
        server.addr,
        "GET",
        "/",
        &[("x-padding", &"p".repeat(12 * 1024))],
    )
    .await
    .status
    .as_u16()
}

#[tokio::test]
async fn a_duration_out_of_range_is_refused_and_the_running_limits_stay() {
    let site = SiteDir::empty("");
    let server = Binary::serve(&site, &[]);
    assert_eq!(big_plain_head_status(&server).await, 200);

    // Applied, this made every new connection panic.
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        format!(
            "{config}\n[limits]\nmax_header_bytes = 8192\nidle_timeout = \"18446744073709551615s\"\n"
        ),
    )
    .unwrap();
    let (code, _, err) = site.run(&["reload", "--config", "quire.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("limits.idle_timeout: `18446744073709551615s` is out of range; use a duration from 1s to 1h")
            && err.contains("keeps its configuration"),
        "{err}"
    );
    assert_eq!(
        big_plain_head_status(&server).await,
        200,
        "the running max_header_bytes stays"
    );

    // Asked with a file that passes, the server reloads its own and refuses
    // it: the caller is told, and so is the server's log.
    std::fs::write(site.path("good.toml"), &config).unwrap();
    let (code, _, err) = site.run(&["reload", "--config", "good.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("limits.idle_timeout"), "{err}");
    assert_logged(
        &server,
        "WARN",
        "reload (quire reload): the configuration was not reloaded",
    );
    assert!(
        server
            .log()
            .contains("limits.idle_timeout: `18446744073709551615s` is out of range")
    );
    assert_eq!(big_plain_head_status(&server).await, 200);
    assert_eq!(server.terminate(), 0);
}
