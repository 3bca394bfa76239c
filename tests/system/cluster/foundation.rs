//! The cluster's foundation against a real PostgreSQL: racing nodes migrate
//! the schema once, a newer schema is refused, a cut LISTEN connection comes
//! back and says so (subscribers re-read what they missed), and a node whose
//! engine is down starts at once and is told so within seconds.

use std::time::{Duration, Instant};

use quire::cluster::{self, Area, Cluster, ClusterError, ClusterEvent, EngineHealth};
use quire::config::{Config, Overrides, no_env};

use crate::support::{Postgres, TestCa};

fn cluster_config(url: &str, node: &str) -> quire::config::ClusterConfig {
    cluster_config_with(url, node, "")
}

fn cluster_config_with(url: &str, node: &str, extra: &str) -> quire::config::ClusterConfig {
    let text = format!("[cluster]\npostgres = \"{url}\"\nnode = \"{node}\"\n{extra}");
    Config::from_parts(None, &text, &Overrides::default(), &no_env)
        .unwrap()
        .cluster
        .unwrap()
}

/// The events of `cluster` until `wanted`, within a bounded time.
async fn wait_for_event(
    events: &mut tokio::sync::broadcast::Receiver<ClusterEvent>,
    wanted: &ClusterEvent,
) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if &events.recv().await.unwrap() == wanted {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} within 15 s"));
}

const NOTES: Area = Area {
    name: "notes",
    steps: &[
        "CREATE TABLE notes (id serial PRIMARY KEY)",
        "ALTER TABLE notes ADD COLUMN text text NOT NULL DEFAULT ''",
    ],
};

#[tokio::test(flavor = "multi_thread")]
async fn racing_nodes_migrate_once_and_a_newer_schema_is_refused() {
    let pg = Postgres::shared();
    let url = pg.database("foundation_migrate");
    let clock = quire::clock::system();
    let nodes: Vec<Cluster> = (1..=4)
        .map(|n| {
            let config = cluster_config(&url, &format!("node-{n}"));
            Cluster::start(&config, clock.clone(), vec![&NOTES])
        })
        .collect();
    for node in &nodes {
        let _client = node
            .client()
            .await
            .expect("every node gets a migrated schema");
    }
    assert_eq!(
        pg.sql(
            "foundation_migrate",
            "SELECT area, version FROM quire_schema ORDER BY area"
        ),
        "leases|1\nnodes|1\nnotes|2"
    );
    assert_eq!(
        pg.sql(
            "foundation_migrate",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes'"
        ),
        "2"
    );
    let live = cluster::nodes::live_nodes(&nodes[0], Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(live.len(), 4, "{live:?}");

    // A node whose binary knows only the first step refuses the database.
    const OLDER: Area = Area {
        name: "notes",
        steps: &["CREATE TABLE notes (id serial PRIMARY KEY)"],
    };
    let old = Cluster::start(&cluster_config(&url, "old"), clock.clone(), vec![&OLDER]);
    let refused = old.client().await.unwrap_err();
    let mut health = old.health();
    let said = tokio::time::timeout(
        Duration::from_secs(10),
        health.wait_for(|h| matches!(h, EngineHealth::Down { .. })),
    )
    .await
    .expect("the refusal shows as the engine's state")
    .unwrap()
    .clone();
    let EngineHealth::Down { error, .. } = said else {
        unreachable!()
    };
    assert!(
        error.contains("notes at schema version 2, newer than this binary's 1"),
        "{error}"
    );
    assert!(
        matches!(refused, ClusterError::Unavailable { .. }),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_listen_connection_comes_back_and_says_so() {
    let pg = Postgres::shared();
    let url = pg.database("foundation_reconnect");
    let node = Cluster::start(
        &cluster_config(&url, "cut"),
        quire::clock::system(),
        Vec::new(),
    );
    let mut events = node.subscribe();
    wait_for_event(&mut events, &ClusterEvent::Connected).await;
    let mut health = node.health();
    assert!(health.borrow_and_update().is_up());

    let cut = pg.terminate_backends("foundation_reconnect", "quire/cut/listen");
    assert_eq!(cut, 1, "one LISTEN connection per node");
    let started = Instant::now();
    wait_for_event(&mut events, &ClusterEvent::Connected).await;
    println!(
        "reconnected {} ms after the cut",
        started.elapsed().as_millis()
    );

    // Notifications flow on the new connection.
    let client = node.client().await.unwrap();
    cluster::notify(&client, cluster::Channel::Certificate, "42")
        .await
        .unwrap();
    wait_for_event(
        &mut events,
        &ClusterEvent::Notified {
            channel: cluster::Channel::Certificate,
            payload: "42".into(),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_engine_is_down_starts_at_once_and_says_so() {
    let pg = Postgres::start();
    let url = pg.database("foundation_down");
    pg.stop_immediate();
    let started = Instant::now();
    let node = Cluster::start(
        &cluster_config(&url, "alone"),
        quire::clock::system(),
        Vec::new(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start never waits"
    );
    let refused = node.client().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "callers are refused within the bound"
    );
    let message = refused.to_string();
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("keeps serving"), "{message}");
    assert!(matches!(*node.health().borrow(), EngineHealth::Down { .. }));

    pg.restart();
    let mut events = node.subscribe();
    wait_for_event(&mut events, &ClusterEvent::Connected).await;
    let _client = node.client().await.expect("back once the engine is");
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_follow_the_database_clock_and_fence_stale_holders() {
    let pg = Postgres::shared();
    let url = pg.database("foundation_leases");
    let clock = quire::clock::system();
    let a = Cluster::start(&cluster_config(&url, "a"), clock.clone(), Vec::new());
    let b = Cluster::start(&cluster_config(&url, "b"), clock.clone(), Vec::new());
    let ttl = Duration::from_secs(600);
    let held = cluster::lease::acquire(&a, "orders", ttl).await.unwrap();
    assert_eq!(held.token, 1);
    match cluster::lease::acquire(&b, "orders", ttl).await {
        Err(ClusterError::Held { holder, .. }) => assert_eq!(holder, "a"),
        other => panic!("b took a held lease: {other:?}"),
    }
    // Time passes on the database's clock, not on either node's.
    pg.sql(
        "foundation_leases",
        "UPDATE quire_leases SET expires = now() - interval '1 second'",
    );
    let taken = cluster::lease::acquire(&b, "orders", ttl).await.unwrap();
    assert_eq!(taken.token, 2);
    assert!(matches!(
        cluster::lease::renew(&a, &held).await,
        Err(ClusterError::LeaseLost { .. })
    ));
    let mut client = a.client().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    assert!(matches!(
        cluster::lease::check_fence(&transaction, "orders", held.token).await,
        Err(ClusterError::LeaseLost { .. })
    ));
    cluster::lease::check_fence(&transaction, "orders", taken.token)
        .await
        .expect("the new holder's token is current");
    drop(transaction);
    cluster::lease::release(&b, &taken).await.unwrap();
    let holders = cluster::lease::holders(&a).await.unwrap();
    assert_eq!(holders.len(), 1);
    assert!(!holders[0].live, "released");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_to_postgres_is_verified_against_the_configured_roots() {
    let pg = Postgres::start();
    let ca = TestCa::new();
    let issued = ca.issue(&["127.0.0.1"]);
    pg.enable_tls(&issued.chain_pem, &issued.key_pem);
    let url = format!("{}?sslmode=require", pg.database("foundation_tls"));
    let roots = tempfile::tempdir().unwrap();
    let ours = roots.path().join("ours.pem");
    std::fs::write(&ours, &ca.root_pem).unwrap();
    let theirs = roots.path().join("theirs.pem");
    std::fs::write(&theirs, &TestCa::new().root_pem).unwrap();
    let clock = quire::clock::system();

    let trusted = Cluster::start(
        &cluster_config_with(&url, "tls", &format!("ca_file = \"{}\"\n", ours.display())),
        clock.clone(),
        Vec::new(),
    );
    let _client = trusted.client().await.expect("connects over verified TLS");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT bool_and(s.ssl) || '/' || count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'quire/tls/%'"
        ),
        "true/2",
        "the LISTEN connection and the pooled one both use TLS"
    );

    // Another CA's root: the server's certificate is refused, nothing falls
    // back to plain TCP, and the engine's state says why.
    let refused = Cluster::start(
        &cluster_config_with(
            &url,
            "stranger",
            &format!("ca_file = \"{}\"\n", theirs.display()),
        ),
        clock,
        Vec::new(),
    );
    let error = refused.client().await.unwrap_err().to_string();
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'quire/stranger/%'"
        ),
        "0"
    );
}
