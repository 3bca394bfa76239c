//! Certificates shared by the nodes of a cluster, with a real PostgreSQL
//! and real Pebble (validation always passes here: which node answers the CA
//! is the challenges tests' part): one holder of the lease among racing
//! nodes, fencing of a stale holder, a killed holder's order finished by
//! another node, a renewal on one node served by the others within 2 s (also
//! after a node's notification connection is cut), and, as the negative
//! control, nodes on separate databases that do not converge.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quire::acme::pg_store::{MAX_VALUE, PgStore};
use quire::acme::store::{Storage, StorageError};
use quire::cluster::Cluster;

use crate::support::*;

const LEASE: &str = "certificates/localhost";
const TTL: Duration = Duration::from_secs(60);
const CERT: &str = "certs/localhost/fullchain.pem";

/// A node of the cluster on `url`, in this test process.
fn node(url: &str, name: &str) -> PgStore {
    let site = SiteDir::empty(&format!(
        "\n[cluster]\npostgres = \"{url}\"\nnode = \"{name}\"\n"
    ));
    let config = site.load_config();
    PgStore::new(Cluster::start(
        config.cluster.as_ref().unwrap(),
        quire::clock::system(),
        vec![&quire::acme::pg_store::AREA],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_nodes_get_exactly_one_holder() {
    let url = Postgres::shared().database("certs_racing_nodes");
    let nodes: Vec<PgStore> = (0..8).map(|i| node(&url, &format!("n{i}"))).collect();
    // Connected and migrated before the race.
    for node in &nodes {
        node.get("nothing/here").await.unwrap();
    }
    let start = Arc::new(tokio::sync::Barrier::new(nodes.len()));
    let racers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let (node, start) = (node.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                node.acquire(LEASE, TTL).await
            })
        })
        .collect();
    let mut won = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(lease) => won.push(lease),
            Err(StorageError::Held { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(won[0].token(), 1);
    // Dropping the lease gives it up at once, for the next holder.
    drop(won);
    let started = Instant::now();
    let next = loop {
        match nodes[0].acquire(LEASE, TTL).await {
            Ok(lease) => break lease,
            Err(StorageError::Held { .. }) if started.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(next.token(), 2);
}

#[tokio::test]
async fn a_stale_holders_fenced_write_is_refused() {
    let pg = Postgres::shared();
    let db = "certs_stale_holder";
    let url = pg.database(db);
    let (a, b) = (node(&url, "a"), node(&url, "b"));
    let old = a.acquire(LEASE, TTL).await.unwrap();
    a.put(CERT, b"from a", &old).await.unwrap();
    assert!(matches!(
        a.put(CERT, &vec![b'x'; MAX_VALUE + 1], &old).await,
        Err(StorageError::TooLarge { .. })
    ));
    // a pauses past its time-to-live, by the database's clock.
    pg.sql(
        db,
        "UPDATE quire_leases SET expires = now() - interval '1 second'",
    );
    assert!(matches!(
        a.put(CERT, b"late", &old).await,
        Err(StorageError::LeaseExpired { .. })
    ));
    let new = b.acquire(LEASE, TTL).await.unwrap();
    assert!(new.token() > old.token());
    b.put(CERT, b"from b", &new).await.unwrap();
    assert!(matches!(
        a.put(CERT, b"stale", &old).await,
        Err(StorageError::LeaseLost { .. })
    ));
    assert!(matches!(
        a.delete(CERT, &old).await,
        Err(StorageError::LeaseLost { .. })
    ));
    assert!(matches!(
        a.renew(&old).await,
        Err(StorageError::LeaseLost { .. })
    ));
    assert_eq!(a.get(CERT).await.unwrap().unwrap(), b"from b");
    assert_eq!(
        pg.sql(
            db,
            &format!("SELECT written_by FROM quire_store WHERE key = '{CERT}'")
        ),
        "b"
    );
    // The holder's own writes go on, renewed or not.
    let renewed = b.renew(&new).await.unwrap();
    b.put(CERT, b"again", &renewed).await.unwrap();
    assert_eq!(
        b.list("certs/localhost").await.unwrap(),
        vec![CERT.to_string()]
    );
}

#[tokio::test]
async fn with_the_engine_down_the_store_says_so_at_once() {
    let pg = Postgres::start();
    let url = pg.database("certs_engine_down");
    let store = node(&url, "a");
    let lease = store.acquire(LEASE, TTL).await.unwrap();
    store.put(CERT, b"stored", &lease).await.unwrap();
    // Durable before the crash: the test server commits asynchronously.
    pg.sql("certs_engine_down", "CHECKPOINT");
    pg.stop_immediate();
    let started = Instant::now();
    assert!(matches!(
        store.get(CERT).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        store.put(CERT, b"during", &lease).await,
        Err(StorageError::Unavailable(_))
    ));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "{took:?}");
    pg.restart();
    let started = Instant::now();
    loop {
        match store.get(CERT).await {
            Ok(value) => break assert_eq!(value.unwrap(), b"stored"),
            Err(e) => assert!(started.elapsed() < DEADLINE, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node's site: the fixture, certified by `directory`, in the cluster on
/// `postgres` as `node`.
fn node_site(directory: &str, postgres: &str, node: &str) -> SiteDir {
    let site = SiteDir::example("");
    std::fs::write(
        site.config(),
        format!(
            "[domains]\nnames = [\"localhost\"]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"acme\"\ndirectory_url = \"{directory}\"\ncontacts = [\"admin@example.com\"]\npost_issue_hook = \"echo issued >> '{hook}'\"\n\n[cluster]\npostgres = \"{postgres}\"\nnode = \"{node}\"\n",
            hook = site.path("hook.log").display()
        ),
    )
    .unwrap();
    site
}

fn serve(site: &SiteDir, pebble: &Pebble) -> Binary {
    Binary::serve_with_env(site, &[], &[("QUIRE_ACME_ROOTS", &pebble.ca_file)])
}

/// Waits until every node in `https` serves a serial other than `old`;
/// returns it and how long that took.
async fn converged(https: &[SocketAddr], root: &str, old: Option<&str>) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let mut serials = Vec::new();
        for addr in https {
            // None while a node serves none Pebble signed (its temporary
            // certificate).
            serials.push(served_serial(*addr, "localhost", root).await.ok());
        }
        if let Some(Some(first)) = serials.first()
            && Some(first.as_str()) != old
            && serials.iter().all(|s| s.as_deref() == Some(first.as_str()))
        {
            return (first.clone(), started.elapsed());
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the nodes never served one new serial (old {old:?}): {serials:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn renew(site: &SiteDir) -> String {
    let config = site.config().display().to_string();
    let (code, out, err) = site.run(&["cert", "renew", "--config", &config]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("done by the running server"), "{out}");
    out
}

fn hook_runs(site: &SiteDir) -> usize {
    std::fs::read_to_string(site.path("hook.log"))
        .map(|log| log.lines().count())
        .unwrap_or(0)
}

/// How many times `server` ordered.
fn orders(server: &Binary) -> usize {
    server.log().matches("obtained a certificate").count()
}

#[tokio::test]
async fn a_renewal_on_one_node_is_served_by_the_others_within_two_seconds() {
    let pg = Postgres::shared();
    let db = "certs_renewal_reaches_every_node";
    let url = pg.database(db);
    let pebble = Pebble::always_valid();
    let root = pebble.issuing_root();
    let sites: Vec<SiteDir> = ["a", "b", "c"]
        .iter()
        .map(|node| node_site(&pebble.directory, &url, node))
        .collect();
    let a = serve(&sites[0], &pebble);
    wait_for_log(&a, "obtained a certificate");
    let b = serve(&sites[1], &pebble);
    let c = serve(&sites[2], &pebble);
    let https: Vec<SocketAddr> = [&a, &b, &c].iter().map(|n| n.https.unwrap()).collect();
    let (first, _) = converged(&https, &root, None).await;
    for (server, site) in [(&b, &sites[1]), (&c, &sites[2])] {
        wait_for_log(server, "serving the cluster's certificate");
        assert_eq!(orders(server), 0, "only node a orders:\n{}", server.log());
        // The local copy, in the single node's layout.
        assert!(site.path("data/certs/localhost/fullchain.pem").is_file());
    }

    // Forced on a: b and c follow by notification.
    renew(&sites[0]);
    let (second, took) = converged(&https, &root, Some(&first)).await;
    println!("a renewal on node a was served by all three nodes after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    for (server, site) in [(&b, &sites[1]), (&c, &sites[2])] {
        assert_eq!(orders(server), 0, "{}", server.log());
        eventually("the hook ran on every new version", || {
            let ran = hook_runs(site) >= 2;
            async move { ran }
        })
        .await;
    }

    // c's notifications are cut: it still converges, on reconnection and
    // by its periodic version check.
    let cut = pg.terminate_backends(db, "quire/c/listen");
    assert_eq!(cut, 1, "c listens on one connection");
    renew(&sites[0]);
    let (_, took) = converged(&https, &root, Some(&second)).await;
    println!("after its LISTEN connection was cut, node c converged after {took:?}");

    let (code, out, err) = sites[1].run(&[
        "cert",
        "status",
        "--config",
        &sites[1].config().display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("up: reading the shared store"), "{out}");
    assert!(out.contains("the shared one"), "{out}");
    assert_eq!(
        pg.sql(
            db,
            "SELECT count(*) FROM quire_store WHERE key LIKE 'acme/%/account.json'"
        ),
        "1",
        "one account for the cluster"
    );
}

#[tokio::test]
async fn nodes_on_separate_databases_do_not_converge() {
    let pg = Postgres::shared();
    let pebble = Pebble::always_valid();
    let root = pebble.issuing_root();
    let a_site = node_site(&pebble.directory, &pg.database("certs_separate_a"), "a");
    let b_site = node_site(&pebble.directory, &pg.database("certs_separate_b"), "b");
    let a = serve(&a_site, &pebble);
    wait_for_log(&a, "obtained a certificate");
    let b = serve(&b_site, &pebble);
    // Without the shared store, b orders its own.
    wait_for_log(&b, "obtained a certificate");
    let (a_https, b_https) = (a.https.unwrap(), b.https.unwrap());
    let b_serial = served_serial(b_https, "localhost", &root).await.unwrap();
    assert_ne!(
        served_serial(a_https, "localhost", &root).await.unwrap(),
        b_serial
    );
    renew(&a_site);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            served_serial(b_https, "localhost", &root).await.unwrap(),
            b_serial
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_killed_holders_lease_expires_and_another_node_finishes_the_order() {
    let pg = Postgres::shared();
    let db = "certs_killed_holder";
    let url = pg.database(db);
    let pebble = Pebble::always_valid();
    // Node a's CA never answers: it takes the lease and is stuck mid-order.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("https://{}/dir", silent.local_addr().unwrap());
    let a_site = node_site(&silent_url, &url, "a");
    let a = serve(&a_site, &pebble);
    let holder = || {
        pg.sql(
            db,
            &format!("SELECT holder, token FROM quire_leases WHERE name = '{LEASE}'"),
        )
    };
    eventually("node a taking the lease", || {
        let took = holder() == "a|1";
        async move { took }
    })
    .await;
    a.kill();

    let b = serve(&node_site(&pebble.directory, &url, "b"), &pebble);
    wait_for_log(&b, "node a is ordering the certificate for localhost");
    assert_eq!(orders(&b), 0);
    // a's time-to-live runs out, by the database's clock.
    pg.sql(
        db,
        &format!(
            "UPDATE quire_leases SET expires = now() - interval '1 second' WHERE name = '{LEASE}'"
        ),
    );
    wait_for_log(&b, "obtained a certificate");
    let (holder_after, token) = holder()
        .split_once('|')
        .map(|(h, t)| (h.to_string(), t.to_string()))
        .unwrap();
    assert_eq!((holder_after.as_str(), token.as_str()), ("b", "2"));
    assert_eq!(
        pg.sql(
            db,
            &format!("SELECT written_by FROM quire_store WHERE key = '{CERT}'")
        ),
        "b"
    );
}
