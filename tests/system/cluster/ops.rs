//! The operator's side of a cluster: the PostgreSQL harness the cluster
//! tests stand on, checked against a real server and a real client; `quire
//! cluster status` against real nodes; and what `/ready`, `/metrics` and the
//! dashboard say when the engine goes down under a node holding a
//! certificate, and that a node restarted while it is down serves its local
//! copy.

use tokio_postgres::NoTls;

use crate::support::{
    Binary, Postgres, SiteDir, eventually, local_site, peer_certificate, post, request, sample,
    scrape, tls_connect,
};

fn cluster_section(url: &str, node: &str) -> String {
    format!("\n[cluster]\npostgres = \"{url}\"\nnode = \"{node}\"\n")
}

/// `quire cluster status` run on `site`'s config: (exit code, stdout, stderr).
fn cluster_status(site: &SiteDir) -> (i32, String, String) {
    site.run(&["cluster", "status", "--config", "quire.toml"])
}

/// The line of `node` in the status table.
fn node_line<'a>(status: &'a str, node: &str) -> Option<&'a str> {
    status
        .lines()
        .find(|line| line.split_whitespace().next() == Some(node))
}

async fn metric(server: &Binary, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let reply = request(server.metrics.unwrap(), "GET", "/metrics", &[]).await;
    sample(&scrape(&String::from_utf8_lossy(&reply.body)), name, labels)
}

/// Connects as quire does: over TCP, with the role's password.
async fn connect(url: &str, application_name: &str) -> tokio_postgres::Client {
    let config = format!("{url}?application_name={application_name}");
    let (client, connection) = tokio_postgres::connect(&config, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn the_postgres_harness_keeps_data_across_an_immediate_stop_and_a_restart() {
    let pg = Postgres::start();
    let first = pg.database("harness_first");
    pg.database("harness_second");

    // The connection string works with a password, as a role that owns its
    // database (so it can migrate it) and is no superuser.
    let client = connect(&first, "harness").await;
    client
        .batch_execute("CREATE TABLE note (text text); INSERT INTO note VALUES ('kept')")
        .await
        .unwrap();
    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!superuser);
    pg.sql("harness_second", "CREATE TABLE note (text text)");
    assert_eq!(pg.sql("harness_first", "SELECT text FROM note"), "kept");
    assert_eq!(pg.sql("harness_second", "SELECT count(*) FROM note"), "0");
    let wrong_password = first.replacen("quire:", "quire:x", 1);
    assert!(
        tokio_postgres::connect(&wrong_password, NoTls)
            .await
            .is_err()
    );

    let pid = pg.pid().expect("running");
    pg.stop_immediate();
    assert!(client.is_closed() || client.simple_query("SELECT 1").await.is_err());
    assert!(
        tokio_postgres::connect(&first, NoTls).await.is_err(),
        "the engine is down: connecting must fail"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    pg.restart();
    assert_eq!(pg.sql("harness_first", "SELECT text FROM note"), "kept");
    let again = connect(&first, "harness").await;
    let text: String = again
        .query_one("SELECT text FROM note", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(text, "kept");

    let pid = pg.pid().expect("running");
    drop(again);
    drop(pg);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "dropping the harness stops its server"
    );
}

#[tokio::test]
async fn the_postgres_harness_cuts_the_connections_it_is_told_to() {
    let pg = Postgres::shared();
    let url = pg.database("harness_cut");
    let listen = connect(&url, "quire/node-a/listen").await;
    let pool = connect(&url, "quire/node-a/pool").await;
    let other = connect(&url, "quire/node-b/listen").await;

    assert_eq!(
        pg.terminate_backends("harness_cut", "quire/node-a/listen"),
        1
    );
    assert!(listen.simple_query("SELECT 1").await.is_err());
    assert!(pool.simple_query("SELECT 1").await.is_ok());
    assert!(other.simple_query("SELECT 1").await.is_ok());
    assert_eq!(pg.terminate_backends("harness_cut", "quire/node-a/%"), 1);
    assert!(pool.simple_query("SELECT 1").await.is_err());
    assert!(other.simple_query("SELECT 1").await.is_ok());
    assert_eq!(Postgres::shared().port(), pg.port());
}

#[tokio::test]
async fn cluster_status_shows_every_node_and_the_content_that_differs() {
    let pg = Postgres::shared();
    let url = pg.database("ops_status");
    let a = SiteDir::example(&cluster_section(&url, "node-a"));
    let b = SiteDir::example(&cluster_section(&url, "node-b"));
    let _node_a = Binary::serve(&a, &[]);
    let _node_b = Binary::serve(&b, &[]);

    // Both report the same content, which nobody marks.
    let mut status = String::new();
    eventually(
        "both nodes in `quire cluster status` with one content hash",
        || {
            let (code, out, err) = cluster_status(&a);
            assert_eq!(code, 0, "{err}");
            status = out;
            let hash = |node| {
                node_line(&status, node).map(|l| l.split_whitespace().nth(5).map(String::from))
            };
            let ready = hash("node-a").flatten().is_some_and(|h| h != "-")
                && hash("node-a") == hash("node-b");
            async move { ready }
        },
    )
    .await;
    assert!(status.contains("2 nodes, 2 heard from"), "{status}");
    assert!(
        !status.contains("DIFFERS") && !status.contains("SILENT"),
        "{status}"
    );
    assert!(!status.contains(&url), "the password stays out: {status}");

    // A post deployed to one node only.
    b.write(
        "content/posts/only-on-b.md",
        &post("Only on b", "2024-03-01", "", "Deployed to one node."),
    );
    eventually("the differing content in `quire cluster status`", || {
        let (_, out, _) = cluster_status(&a);
        status = out;
        let marked = status.contains("content differs on node-a, node-b");
        async move { marked }
    })
    .await;
    for node in ["node-a", "node-b"] {
        let line = node_line(&status, node).unwrap();
        assert!(line.contains("CONTENT DIFFERS"), "{status}");
    }
    // The command reads without joining: still two nodes.
    assert_eq!(
        pg.sql("ops_status", "SELECT count(*) FROM quire_nodes"),
        "2"
    );
}

#[test]
fn cluster_status_without_a_cluster_says_how_to_configure_one() {
    let site = SiteDir::empty("");
    let (code, _, stderr) = cluster_status(&site);
    assert_eq!(code, 1);
    assert!(stderr.contains("has no [cluster] section"), "{stderr}");
    assert!(
        stderr.contains("[cluster]\npostgres = \"postgres://"),
        "{stderr}"
    );
}

#[tokio::test]
async fn with_the_engine_down_a_node_holding_a_certificate_stays_ready_and_says_so() {
    let pg = Postgres::start();
    let url = pg.database("ops_outage");
    let site = local_site(&cluster_section(&url, "solo"));
    let server = Binary::serve(&site, &[]);
    let metrics = server.metrics.unwrap();

    eventually(
        "the engine up, the node in the registry, and ready",
        || async {
            metric(&server, "quire_cluster_engine_up", &[]).await == Some(1.0)
                && metric(&server, "quire_cluster_nodes", &[]).await == Some(1.0)
                && request(metrics, "GET", "/ready", &[]).await.status == 200
        },
    )
    .await;
    let age = metric(
        &server,
        "quire_cluster_last_contact_seconds",
        &[("node", "solo")],
    )
    .await
    .expect("the node's last contact");
    assert!(age < 30.0, "{age}");
    assert_eq!(
        metric(&server, "quire_cluster_content_mismatch", &[]).await,
        Some(0.0)
    );
    let (code, status, _) = cluster_status(&site);
    assert_eq!(code, 0);
    assert!(node_line(&status, "solo").is_some(), "{status}");

    pg.stop_immediate();
    eventually("quire_cluster_engine_up 0", || async {
        metric(&server, "quire_cluster_engine_up", &[]).await == Some(0.0)
    })
    .await;
    let ready = request(metrics, "GET", "/ready", &[]).await;
    let body = String::from_utf8_lossy(&ready.body);
    assert_eq!(ready.status, 200, "{body}");
    assert!(body.contains("is down since"), "{body}");
    assert!(
        body.contains("serving the certificate this node holds"),
        "{body}"
    );
    let dashboard = request(metrics, "GET", "/", &[]).await;
    let page = String::from_utf8_lossy(&dashboard.body);
    assert!(
        page.contains("<h2>Cluster</h2>") && page.contains("is down since"),
        "{page}"
    );
    assert!(page.contains("As last read at"), "{page}");
    assert!(
        page.contains("which this node cannot reach: views wait in memory"),
        "the readers' section says why it has no figures: {page}"
    );
    let (code, _, stderr) = cluster_status(&site);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "cannot reach the cluster's PostgreSQL at 127.0.0.1:{}",
            pg.port()
        )),
        "{stderr}"
    );

    // Restarted while the engine is down, the node serves its local copy.
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let serial = |https| {
        let root = root.clone();
        async move {
            let stream = tls_connect(https, "localhost", &root, &[]).await.unwrap();
            peer_certificate(&stream).1
        }
    };
    let held = serial(server.https.unwrap()).await;
    server.terminate();
    let (code, out, _) = site.run(&["cert", "status", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the shared store is unreachable") && out.contains("local copy"),
        "{out}"
    );
    let server = Binary::serve(&site, &[]);
    assert_eq!(
        serial(server.https.unwrap()).await,
        held,
        "the certificate this node held, from its data directory"
    );
    let ready = request(server.metrics.unwrap(), "GET", "/ready", &[]).await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );

    pg.restart();
    eventually("quire_cluster_engine_up 1 again", || async {
        metric(&server, "quire_cluster_engine_up", &[]).await == Some(1.0)
    })
    .await;
}
