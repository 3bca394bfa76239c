//! The operator's side of a cluster: the PostgreSQL harness the cluster
//! tests stand on, checked against a real server and a real client.

use tokio_postgres::NoTls;

use crate::support::Postgres;

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
