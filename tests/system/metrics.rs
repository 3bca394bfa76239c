//! The operator's view through the whole system: /metrics read by a real
//! parser of the exposition format after real traffic, /health and /ready,
//! the token rule, and the dashboard, rendered empty and with data, and
//! looked at by a real browser (headless Chromium) whose screenshot is kept.

use std::net::SocketAddr;

use quire::clock;
use quire::tls::CertBundle;

use crate::support::{
    Binary, SiteDir, TestCa, artifacts, distinct_colours, eventually, post, request, scrape,
    screenshot, value,
};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn internal(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> crate::support::Reply {
    request(addr, "GET", path, headers).await
}

#[tokio::test]
async fn metrics_count_real_traffic_and_parse() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);
    let metrics = server.metrics.expect("metrics listener");
    let browser = [("user-agent", FIREFOX)];
    for _ in 0..5 {
        assert_eq!(request(server.addr, "GET", "/", &browser).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(
            request(server.addr, "GET", "/nope/", &browser).await.status,
            404
        );
    }
    assert_eq!(
        request(server.addr, "GET", "/style.css", &browser)
            .await
            .status,
        200
    );
    assert_eq!(
        request(server.addr, "GET", "/atom.xml", &browser)
            .await
            .status,
        200
    );

    // Prometheus asks for OpenMetrics first.
    let prometheus =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let reply = internal(metrics, "/metrics", &[("accept", prometheus)]).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let open_metrics = reply.text();
    assert!(
        open_metrics.ends_with("# EOF\n"),
        "OpenMetrics ends with EOF"
    );
    assert!(open_metrics.contains("# TYPE quire_http_requests counter\n"));

    // Anything else gets the classic text format, typed under sample names.
    let reply = internal(metrics, "/metrics", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = reply.text();
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    let parsed = scrape(&text);
    let requests = "quire_http_requests_total";
    assert!(
        parsed
            .samples
            .iter()
            .filter(|s| s.metric == requests)
            .all(|s| matches!(s.value, prometheus_parse::Value::Counter(_))),
        "{requests} is typed as a counter"
    );
    assert!(text.contains("# TYPE quire_build_info gauge\nquire_build_info{"));
    assert_eq!(
        value(&parsed, requests, &[("route", "page"), ("status", "2xx")]),
        5.0
    );
    assert_eq!(
        value(
            &parsed,
            requests,
            &[("route", "not_found"), ("status", "4xx")]
        ),
        2.0
    );
    assert_eq!(
        value(&parsed, requests, &[("route", "asset"), ("status", "2xx")]),
        1.0
    );
    assert_eq!(
        value(&parsed, requests, &[("route", "feed"), ("status", "2xx")]),
        1.0
    );
    assert_eq!(
        value(&parsed, "quire_stats_views_recorded", &[]),
        8.0,
        "5 pages, 2 404s, a feed"
    );
    assert!(value(&parsed, "quire_http_response_body_bytes_total", &[]) > 1000.0);
    assert_eq!(
        value(
            &parsed,
            "quire_connections_total",
            &[("listener", "http listener")]
        ),
        9.0
    );
    assert!(value(&parsed, "quire_process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&parsed, "quire_process_open_fds", &[]) >= 5.0);
    assert_eq!(
        value(
            &parsed,
            "quire_task_restarts",
            &[("task", "content watcher")]
        ),
        0.0
    );
    assert_eq!(value(&parsed, "quire_site_builds", &[]), 1.0);
    let latency = parsed
        .samples
        .iter()
        .find(|s| s.metric == "quire_http_request_duration_seconds")
        .expect("latency histogram");
    match &latency.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 9.0, "every request timed");
        }
        other => panic!("not a histogram: {other:?}"),
    }

    let health = internal(metrics, "/health", &[]).await;
    assert_eq!(health.status, 200);
    assert!(
        health.text().contains("\"status\": \"ok\""),
        "{}",
        health.text()
    );
    let ready = internal(metrics, "/ready", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let ready: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!(
        ready["checks"]["certificate"]["ok"], true,
        "mode off: {ready}"
    );
    assert_eq!(ready["checks"]["stats"]["ok"], true, "{ready}");
}

#[tokio::test]
async fn the_token_is_enforced_and_required_off_loopback() {
    let site = SiteDir::example("\n[metrics]\ntoken = \"0123456789abcdef-secret\"\n");
    let server = Binary::serve(&site, &[]);
    let metrics = server.metrics.unwrap();
    let refused = internal(metrics, "/metrics", &[]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("www-authenticate").starts_with("Bearer"));
    let wrong = internal(
        metrics,
        "/",
        &[("authorization", "Bearer 0123456789abcdef-guess")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let right = [("authorization", "Bearer 0123456789abcdef-secret")];
    assert_eq!(internal(metrics, "/metrics", &right).await.status, 200);
    assert_eq!(internal(metrics, "/", &right).await.status, 200);
    drop(server);

    let open = SiteDir::example("");
    std::fs::write(
        open.config(),
        "[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"0.0.0.0:9100\"\n[tls]\nmode = \"off\"\n",
    )
    .unwrap();
    let (code, out, err) = open.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    let said = out + &err;
    assert!(
        said.contains("quire.toml:3") && said.contains("[metrics] token"),
        "{said}"
    );
    let (code, _, err) = open.run(&["serve", "--config", "quire.toml"]);
    assert_eq!(code, 1, "refused at start: {err}");
    assert!(err.contains("[metrics] token"), "{err}");
}

#[tokio::test]
async fn ready_follows_the_certificate() {
    let site = SiteDir::example("");
    std::fs::write(
        site.config(),
        "[site]\ntitle = \"Test blog\"\n[domains]\nnames = [\"blog.test\"]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\ndirectory_url = \"https://127.0.0.1:9/directory\"\n",
    )
    .unwrap();
    let config = site.load_config();
    let server = quire::system::start(config, clock::system()).await.unwrap();
    let metrics = server.metrics_addr.unwrap();
    let ready = internal(metrics, "/ready", &[]).await;
    assert_eq!(ready.status, 503, "the CA is unreachable: {}", ready.text());
    assert!(
        ready.text().contains("temporary self-signed"),
        "{}",
        ready.text()
    );

    let issued = TestCa::new().issue(&["blog.test"]);
    let bundle =
        CertBundle::from_pem(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes()).unwrap();
    server.resolver.as_ref().unwrap().install(&[bundle]);
    let ready = internal(metrics, "/ready", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert!(ready.text().contains("days left"), "{}", ready.text());
    server.stop().await;
}

#[tokio::test]
async fn the_dashboard_renders_empty_and_with_data_in_a_browser() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);
    let metrics = server.metrics.unwrap();
    let empty = internal(metrics, "/", &[]).await;
    assert_eq!(empty.status, 200);
    let html = empty.text();
    assert!(html.contains("Readers, last 30 days") && html.matches("<svg").count() == 2);
    assert!(html.contains("Nothing yet."), "no pages read yet");

    for client in ["198.51.100.1", "198.51.100.2"] {
        let headers = [("user-agent", FIREFOX), ("x-forwarded-for", client)];
        request(server.addr, "GET", "/about/", &headers).await;
    }
    let full = internal(metrics, "/", &[]).await.text();
    assert!(full.contains("<td class=\"path\">/about/</td>"), "{full}");
    assert!(full.contains("<rect"), "bars for the views");
    assert!(full.contains("content watcher"), "tasks are listed");

    let file = artifacts().join("dashboard.png");
    let _ = std::fs::remove_file(&file);
    let log = screenshot(&format!("http://{metrics}/"), 1280, 1400, &file);
    assert!(!log.contains("Refused to"), "CSP violations:\n{log}");
    let colours = distinct_colours(&file);
    assert!(
        colours > 20,
        "the screenshot looks blank ({colours} colours): {}",
        file.display()
    );
    println!("dashboard screenshot: {}", file.display());

    // Every row of cards fills the width, on a desktop and on a phone; 40
    // pixels in is inside a card's padding, past its rounded corner.
    let phone = artifacts().join("dashboard-phone.png");
    let _ = std::fs::remove_file(&phone);
    screenshot(&format!("http://{metrics}/"), 390, 844, &phone);
    for (width, file) in [(1280, &file), (390, &phone)] {
        let lopsided = crate::support::lopsided_rows(file, 40);
        assert!(
            lopsided.is_empty(),
            "at {width} px, a row of cards leaves a blank column at y = {:?}..{:?}: {}",
            lopsided.first(),
            lopsided.last(),
            file.display()
        );
    }
}

/// The dashboard row (its `<td>`s) that mentions `file`, if any.
async fn problem_row(metrics: SocketAddr, file: &str) -> Option<String> {
    let html = internal(metrics, "/", &[]).await.text();
    let problems = html.split("<h2>Recent problems</h2>").nth(1)?.to_string();
    problems
        .split("<tr>")
        .find(|row| row.contains(file))
        .map(str::to_string)
}

#[tokio::test]
async fn a_fixed_or_deleted_post_s_problem_is_shown_resolved() {
    let site = SiteDir::empty("");
    site.write(
        "content/posts/2026-01-01-fixed.md",
        &post("Fixed", "2026-13-45", "", "A month that does not exist."),
    );
    let server = Binary::serve(&site, &[]);
    let metrics = server.metrics.unwrap();
    let row = problem_row(metrics, "2026-01-01-fixed.md").await;
    assert!(
        row.as_deref().is_some_and(|r| r.contains(">warning<")),
        "the broken post is listed: {row:?}"
    );

    site.write(
        "content/posts/2026-01-01-fixed.md",
        &post("Fixed", "2026-01-01", "", "Fixed."),
    );
    eventually("the fixed post's problem is shown resolved", || async {
        problem_row(metrics, "2026-01-01-fixed.md")
            .await
            .is_none_or(|r| r.contains(">resolved<"))
    })
    .await;

    site.write(
        "content/posts/2026-01-02-gone.md",
        &post("Gone", "2026-01-02", "draft = \"yes\"\n", "Soon deleted."),
    );
    eventually("the second broken post is listed", || async {
        problem_row(metrics, "2026-01-02-gone.md")
            .await
            .is_some_and(|r| r.contains(">warning<"))
    })
    .await;
    std::fs::remove_file(site.path("content/posts/2026-01-02-gone.md")).unwrap();
    eventually("the deleted post's problem is shown resolved", || async {
        problem_row(metrics, "2026-01-02-gone.md")
            .await
            .is_none_or(|r| r.contains(">resolved<"))
    })
    .await;
    let row = problem_row(metrics, "2026-01-01-fixed.md").await;
    assert!(
        row.as_deref().is_none_or(|r| r.contains(">resolved<")),
        "still resolved: {row:?}"
    );
}

#[tokio::test]
async fn certificate_and_acme_figures_are_exported() {
    let site = crate::support::local_site("");
    let server = Binary::serve(&site, &[]);
    crate::support::wait_for_log(&server, "obtained a certificate");
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let stream = crate::support::tls_connect(server.https.unwrap(), "localhost", &root, &[b"h2"])
        .await
        .unwrap();
    let mut client = crate::support::TlsClient::new(stream).await;
    assert_eq!(client.get("localhost", "/").await.status, 200);
    client.close().await;

    let parsed = scrape(
        &internal(server.metrics.unwrap(), "/metrics", &[])
            .await
            .text(),
    );
    assert_eq!(value(&parsed, "quire_certificate_orders_total", &[]), 1.0);
    assert_eq!(
        value(&parsed, "quire_certificate_order_failures_total", &[]),
        0.0
    );
    let days = value(
        &parsed,
        "quire_certificate_days_left",
        &[("domain", "localhost")],
    );
    assert!((89.0..=90.0).contains(&days), "{days}");
    assert!(value(&parsed, "quire_tls_handshakes_total", &[]) >= 1.0);
    let acme = parsed
        .samples
        .iter()
        .find(|s| s.metric == "quire_acme_request_duration_seconds")
        .expect("ACME latency histogram");
    match &acme.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(
                buckets.last().unwrap().count >= 5.0,
                "directory, nonce, account, order, ..."
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
}

/// A reader who takes the first bytes of a large file and leaves: the body
/// counter says what the connection took, not the file's size.
#[tokio::test]
async fn response_bytes_count_what_was_sent_not_what_was_asked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SIZE: usize = 48 << 20;
    let site = SiteDir::empty("");
    std::fs::write(site.path("static/big.bin"), vec![7u8; SIZE]).unwrap();
    let server = Binary::serve(&site, &[]);
    let metrics = server.metrics.expect("metrics listener");
    let sent = || async {
        let text = internal(metrics, "/metrics", &[]).await.text();
        value(&scrape(&text), "quire_http_response_body_bytes_total", &[])
    };
    let before = sent().await;

    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: blog.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 4096];
    stream.read_exact(&mut first).await.unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    drop(stream);

    // Whatever the timing, the server can only have handed over what fits
    // in its buffers and the socket's, a few MB on loopback.
    let counted = sent().await - before;
    assert!(counted > 0.0, "the bytes read were counted");
    assert!(
        counted < (SIZE / 4) as f64,
        "{counted} bytes counted for a reader who took 4 KiB of {SIZE}"
    );
}
