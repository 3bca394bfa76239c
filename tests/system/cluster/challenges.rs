//! Challenges answered by nodes that did not order: three quire nodes on
//! 127.0.0.1, .2 and .3, all on the same two ports, share one PostgreSQL;
//! real Pebble validates wherever its DNS server (pebble-challtestsrv) says
//! the names are. Node 1 obtains the first certificate alone (the names are
//! its address then), then the names move to nodes 2 and 3 and node 1 is
//! made to renew: only nodes 2 and 3 can answer the CA, and they do only
//! with the answers node 1 published in the database. The negative control
//! gives the nodes databases of their own, and the same renewal fails.

use std::net::{Ipv4Addr, TcpListener};

use crate::support::*;

const NAMES: [&str; 3] = ["a.cluster.test", "b.cluster.test", "c.cluster.test"];

/// A port free on 127.0.0.1, .2 and .3 alike, for listeners on each.
fn port_on_every_node() -> u16 {
    loop {
        let port = free_port();
        if (2..=3).all(|n| TcpListener::bind((Ipv4Addr::new(127, 0, 0, n), port)).is_ok()) {
            return port;
        }
    }
}

/// Node `n` of the cluster: an ACME site listening on 127.0.0.`n`.
fn node_site(n: u8, http: u16, https: u16, pebble: &Pebble, challenge: &str, db: &str) -> SiteDir {
    let site = SiteDir::example("");
    let names = NAMES.map(|name| format!("\"{name}\"")).join(", ");
    std::fs::write(
        site.config(),
        format!(
            "[site]\ntitle = \"Cluster blog\"\n\n\
             [domains]\nnames = [{names}]\n\n\
             [listen]\nhttp = \"127.0.0.{n}:{http}\"\nhttps = \"127.0.0.{n}:{https}\"\nmetrics = \"127.0.0.1:0\"\n\n\
             [tls]\nmode = \"acme\"\ndirectory_url = \"{}\"\ncontacts = [\"admin@example.com\"]\nchallenge = \"{challenge}\"\n\n\
             [cluster]\npostgres = \"{db}\"\nnode = \"node-{n}\"\n",
            pebble.directory
        ),
    )
    .unwrap();
    site
}

/// Gives `to` the local copy of the live certificate pair of `from`, a
/// running node that has written it. The two files are only ever replaced
/// by a rename, so each read is whole.
fn copy_live_pair(from: &SiteDir, to: &SiteDir) {
    let dir = format!("data/certs/{}", NAMES[0]);
    std::fs::create_dir_all(to.path(&dir)).unwrap();
    for file in ["fullchain.pem", "privkey.pem"] {
        let file = format!("{dir}/{file}");
        std::fs::copy(from.path(&file), to.path(&file)).unwrap();
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

const OBTAINED: &str = "obtained a certificate for a.cluster.test";
const ANSWERING: &str = "new challenge(s) published in the cluster";

/// Three nodes after node 1's forced renewal, the names at nodes 2 and 3.
struct Renewed {
    nodes: [Binary; 3],
    /// `quire cert renew` on node 1: exit code and what it printed.
    code: i32,
    output: String,
    /// What node 1 served before the renewal, and Pebble's issuing root.
    first_serial: String,
    root: String,
    _sites: [SiteDir; 3],
    _pebble: Pebble,
    _dns: TestDns,
}

/// Runs the scenario with `challenge`, node `n` on `databases[n - 1]`.
async fn renew_with_names_at_other_nodes(challenge: &str, databases: [&str; 3]) -> Renewed {
    let pg = Postgres::shared();
    // Every name at node 1 first, so that it certifies alone.
    let dns = TestDns::start("127.0.0.1");
    let (http, https) = (port_on_every_node(), port_on_every_node());
    let pebble = Pebble::start(PebbleSettings {
        http_port: http,
        tls_port: https,
        dns: Some(dns.addr),
    });
    let roots = [("QUIRE_ACME_ROOTS", pebble.ca_file.as_str())];
    let sites = [1, 2, 3].map(|n| {
        let db = pg.url(databases[n as usize - 1]);
        node_site(n, http, https, &pebble, challenge, &db)
    });
    let node1 = Binary::serve_with_env(&sites[0], &[], &roots);
    wait_for_log(&node1, OBTAINED);
    // Its local copy is written when the new version reaches its follower.
    wait_for_log(&node1, "serving the cluster's certificate");
    let root = pebble.issuing_root();
    let first_serial = served_serial(node1.https.unwrap(), NAMES[0], &root)
        .await
        .unwrap();

    // Nodes 2 and 3 start with node 1's certificate as their local copy; on
    // node 1's database they find it current too, so that nothing but the
    // forced renewal orders. From now on the CA finds the names only at
    // their addresses.
    for site in &sites[1..] {
        copy_live_pair(&sites[0], site);
    }
    dns.set_a(NAMES[0], &["127.0.0.2"]);
    dns.set_a(NAMES[1], &["127.0.0.3"]);
    dns.set_a(NAMES[2], &["127.0.0.2", "127.0.0.3"]);
    let node2 = Binary::serve_with_env(&sites[1], &[], &roots);
    let node3 = Binary::serve_with_env(&sites[2], &[], &roots);
    for (n, db) in [(2, databases[1]), (3, databases[2])] {
        let registered = format!(
            "SELECT count(*) FROM quire_nodes WHERE node = 'node-{n}' AND last_contact > now() - interval '15 seconds'"
        );
        eventually(&format!("node-{n} in its database's registry"), || {
            let tables = pg.sql(
                db,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'quire_nodes'",
            );
            let live = tables == "1" && pg.sql(db, &registered) == "1";
            async move { live }
        })
        .await;
    }

    let config = sites[0].config().display().to_string();
    let (code, stdout, stderr) = sites[0].run(&["cert", "renew", "--config", &config]);
    Renewed {
        nodes: [node1, node2, node3],
        code,
        output: format!("{stdout}{stderr}"),
        first_serial,
        root,
        _sites: sites,
        _pebble: pebble,
        _dns: dns,
    }
}

async fn nodes_that_did_not_order_answer_the_ca(challenge: &str, db: &str) {
    let pg = Postgres::shared();
    pg.database(db);
    let renewed = renew_with_names_at_other_nodes(challenge, [db; 3]).await;
    let [node1, node2, node3] = &renewed.nodes;
    assert_eq!(
        renewed.code,
        0,
        "{}\nnode 1:\n{}\nnode 2:\n{}\nnode 3:\n{}",
        renewed.output,
        node1.log(),
        node2.log(),
        node3.log()
    );
    assert!(
        renewed.output.contains("done by the running server"),
        "{}",
        renewed.output
    );

    // Node 1 ordered twice (alone, then the renewal) and waited for no one
    // in vain; nodes 2 and 3 ordered nothing and took in its answers.
    let log1 = node1.log();
    assert_eq!(count(&log1, OBTAINED), 2, "{log1}");
    // It waited for both before it told the CA.
    assert!(log1.contains("node-2, node-3 hold them"), "{log1}");
    assert!(!log1.contains("did not acknowledge"), "{log1}");
    for node in [node2, node3] {
        let log = node.log();
        assert_eq!(count(&log, OBTAINED), 0, "{log}");
        assert!(log.contains(ANSWERING), "{log}");
    }
    let renewed_serial = served_serial(node1.https.unwrap(), NAMES[0], &renewed.root)
        .await
        .unwrap();
    assert_ne!(renewed_serial, renewed.first_serial);
    // The one certificate reaches the nodes that answered for it.
    let started = std::time::Instant::now();
    for node in [node2, node3] {
        eventually("every node serving node 1's new certificate", || async {
            served_serial(node.https.unwrap(), NAMES[1], &renewed.root)
                .await
                .unwrap()
                == renewed_serial
        })
        .await;
    }
    eprintln!(
        "nodes 2 and 3 served the renewed serial {:?} after the renewal returned",
        started.elapsed()
    );
    // Withdrawn once validated: nothing stands for the followers to answer.
    assert_eq!(pg.sql(db, "SELECT count(*) FROM quire_challenges"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_is_answered_by_nodes_that_did_not_order() {
    nodes_that_did_not_order_answer_the_ca("http-01", "challenges_http01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_is_answered_by_nodes_that_did_not_order() {
    nodes_that_did_not_order_answer_the_ca("tls-alpn-01", "challenges_tls_alpn01").await;
}

/// The negative control: the same nodes and renewal, but each node on a
/// database of its own, so the answers never reach the nodes the CA asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_separate_databases_fail_validation() {
    let pg = Postgres::shared();
    let databases = [
        "challenges_apart_1",
        "challenges_apart_2",
        "challenges_apart_3",
    ];
    for db in databases {
        pg.database(db);
    }
    let renewed = renew_with_names_at_other_nodes("http-01", databases).await;
    let node1 = &renewed.nodes[0];
    assert_ne!(renewed.code, 0, "{}", renewed.output);
    // The CA reached a node that did not order, and it knew no answer.
    assert!(
        renewed.output.contains("/.well-known/acme-challenge/")
            && renewed.output.contains("returned 404"),
        "{}",
        renewed.output
    );
    // Node 1 found no other node to hand its answers to. Nodes 2 and 3 are
    // not checked: alone in their databases they find no certificate there
    // and order their own (which fails the same way), at a moment this test
    // does not control.
    let log1 = node1.log();
    assert_eq!(count(&log1, OBTAINED), 1, "{log1}");
    assert!(log1.contains("no other node is live"), "{log1}");
    assert_eq!(
        served_serial(node1.https.unwrap(), NAMES[0], &renewed.root)
            .await
            .unwrap(),
        renewed.first_serial
    );
}
