//! Statistics shared by the nodes of a cluster, against a real PostgreSQL:
//! a reader seen by two nodes is one visitor (and, as a negative control,
//! two when a node counts with a salt of its own), a replayed batch or
//! parcel counts once (and, in `lost_reply`, so do views whose write
//! committed unheard before an outage kept them in the outbox), three nodes
//! flushing at once report what one store fed the same views reports, and
//! two real quire nodes (sharing one certificate from Pebble) count one
//! reader once and every view through an outage of the engine, serving
//! every request over HTTPS with the same certificate meanwhile; `quire
//! stats` reads the shared tables when no node runs, without joining the
//! cluster.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use quire::clock::{ManualClock, SharedClock};
use quire::cluster::Cluster;
use quire::config::{Config, Overrides, no_env};
use quire::stats::backend::Merged;
use quire::stats::postgres::{AREA, PgStats};
use quire::stats::recorder::{View, ViewKind};
use quire::stats::schema::{Day, Hour};
use quire::stats::{
    Drained, Hit, HitKind, MemoryStore, Retention, Sealed, Stats, StatsBackend, StatsSettings,
};

use crate::support::*;

mod lost_reply;

const FIREFOX: &[u8] = b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
}

/// The config of node `node` on database `url`, with its data under `data`.
fn config(url: &str, node: &str, data: &std::path::Path) -> Config {
    let text = format!(
        "[paths]\ndata = \"{}\"\n\n[cluster]\npostgres = \"{url}\"\nnode = \"{node}\"\n",
        data.display()
    );
    Config::from_parts(None, &text, &Overrides::default(), &no_env).unwrap()
}

fn cluster(url: &str, node: &str, clock: &SharedClock) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let config = config(url, node, dir.path());
    Cluster::start(config.cluster.as_ref().unwrap(), clock.clone(), vec![&AREA])
}

fn read(stats: &Stats, client: &str) {
    stats.recorder().record(&Hit {
        kind: HitKind::Page,
        path: "/",
        client: client.parse::<IpAddr>().unwrap(),
        user_agent: FIREFOX,
        referer: None,
        opted_out: false,
    });
}

/// (views, visitors) of today.
fn today(stats: &Stats) -> (u64, u64) {
    let total = stats.report(1, 10).unwrap().total;
    (total.views, total.visitors)
}

#[test]
fn a_reader_seen_by_two_nodes_is_one_visitor() {
    let pg = Postgres::shared();
    let url = pg.database("stats_one_reader");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock: SharedClock = ManualClock::new(noon());
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let node = |name: &str, dir: &tempfile::TempDir| {
        let config = config(&url, name, dir.path());
        runtime.block_on(async {
            let cluster =
                Cluster::start(config.cluster.as_ref().unwrap(), clock.clone(), vec![&AREA]);
            Stats::open_shared(&config, &cluster, clock.clone()).await
        })
    };
    let a = node("a", &dirs[0]);
    let b = node("b", &dirs[1]);
    let salt = |stats: &Stats| stats.recorder().salts().current();
    assert_eq!(salt(&a), salt(&b), "one salt for the cluster");
    assert_eq!(salt(&a).len(), 2, "today's and tomorrow's, ahead of time");

    read(&a, "192.0.2.1");
    read(&b, "192.0.2.1");
    read(&b, "192.0.2.2");
    a.flush_now().unwrap();
    b.flush_now().unwrap();
    assert_eq!(today(&a), (3, 2), "the reader on both nodes is one visitor");
    assert_eq!(today(&b), today(&a), "both nodes report the cluster");
    let by_node = a
        .store()
        .report_by_node(Day::of(noon()), Day::of(noon()))
        .unwrap()
        .unwrap();
    let views: Vec<(String, u64, u64)> = by_node
        .iter()
        .map(|(node, counts)| (node.clone(), counts.views, counts.visitors))
        .collect();
    assert_eq!(
        views,
        [("a".into(), 1, 1), ("b".into(), 2, 1)],
        "first seen wins"
    );

    // The negative control: a node counting with a salt of its own (its
    // backend shares nothing but the tables) counts the reader again.
    let config_c = config(&url, "c", dirs[2].path());
    let c = runtime.block_on(async {
        let cluster = Cluster::start(
            config_c.cluster.as_ref().unwrap(),
            clock.clone(),
            vec![&AREA],
        );
        let backend = PgStats::new(cluster, tokio::runtime::Handle::current());
        Stats::new(
            Box::new(backend),
            StatsSettings::from_config(&config_c),
            clock.clone(),
        )
        .unwrap()
    });
    read(&c, "192.0.2.1");
    c.flush_now().unwrap();
    assert_eq!(
        today(&a),
        (4, 3),
        "with its own salt, the same reader is another visitor"
    );
    drop(runtime);
}

/// A batch of `views` named `seq`.
fn drained<'v>(views: &'v [View], batches: &'v [Sealed]) -> Drained<'v> {
    Drained { views, batches }
}

fn page(visitor: u64) -> View {
    View {
        hour: Hour::of(noon()),
        kind: ViewKind::Page,
        path: "/".into(),
        referrer: Some("news.example".into()),
        visitor: Some(visitor),
    }
}

#[test]
fn a_replayed_batch_or_parcel_counts_once() {
    let pg = Postgres::shared();
    let url = pg.database("stats_replay");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock: SharedClock = ManualClock::new(noon());
    let (a, b) = runtime.block_on(async {
        let handle = tokio::runtime::Handle::current();
        (
            PgStats::new(cluster(&url, "a", &clock), handle.clone()),
            PgStats::new(cluster(&url, "b", &clock), handle),
        )
    });
    let day = Day::of(noon());
    let views = |backend: &PgStats| {
        let report = backend.report(day, day, 10).unwrap();
        (
            report.total.views,
            report.total.visitors,
            report.total.dropped,
        )
    };
    let first = [page(1), page(2), page(2)];
    let sealed = [Sealed {
        seq: 7,
        views: 3,
        dropped: 1,
    }];
    a.flush(&drained(&first, &sealed), &[], noon()).unwrap();
    assert_eq!(views(&a), (3, 2, 1));
    // The reply was lost: the flush is retried with the same batch.
    a.flush(&drained(&first, &sealed), &[], noon()).unwrap();
    assert_eq!(views(&a), (3, 2, 1), "replayed: counted once");
    // Retried along with a batch drained since: only that one is added.
    let both = [page(1), page(2), page(2), page(3)];
    let sealed = [
        sealed[0],
        Sealed {
            seq: 8,
            views: 1,
            dropped: 0,
        },
    ];
    a.flush(&drained(&both, &sealed), &[], noon()).unwrap();
    assert_eq!(views(&a), (4, 3, 1));
    // Another node's sequence 7 is another batch.
    b.flush(
        &drained(
            &both[3..],
            &[Sealed {
                seq: 7,
                views: 1,
                dropped: 0,
            }],
        ),
        &[],
        noon(),
    )
    .unwrap();
    assert_eq!(views(&a), (5, 3, 1));
    let page_row = pg.sql(
        "stats_replay",
        "SELECT views, visitors FROM quire_stats_hourly WHERE metric = 1 AND name = '/'",
    );
    assert_eq!(page_row, "5|3");

    // An outbox parcel, merged twice (stopped before the outbox was emptied).
    let parcel = quire::stats::parcel::Parcel::new([(page(9), 2)], 0, Vec::new());
    assert!(matches!(
        a.merge(&parcel, &[3; 32], &[], noon()).unwrap(),
        Merged::Added(_)
    ));
    assert_eq!(
        a.merge(&parcel, &[3; 32], &[], noon()).unwrap(),
        Merged::AlreadyAdded
    );
    assert_eq!(views(&a), (7, 4, 1));
    drop(runtime);
}

/// Views of one day from a small world: 6 pages, 4 referrers, 12 readers.
fn arb_view() -> impl Strategy<Value = View> {
    (0u32..24, 0u8..6, 0u8..6, 0u8..5, 0u64..12).prop_map(
        |(hour, kind, page, referrer, visitor)| {
            let hour = Hour(Hour::of(noon()).0 - 12 + hour);
            let (kind, visitor) = match kind {
                0..=2 => (ViewKind::Page, Some(visitor)),
                3 => (ViewKind::Feed, Some(visitor)),
                4 => (ViewKind::NotFound, None),
                _ => (ViewKind::Bot, None),
            };
            View {
                hour,
                kind,
                path: match kind {
                    ViewKind::Bot => "".into(),
                    ViewKind::Feed => "/atom.xml".into(),
                    _ => format!("/p{page}/").into(),
                },
                referrer: (kind == ViewKind::Page && referrer < 4)
                    .then(|| format!("r{referrer}.example").into()),
                visitor,
            }
        },
    )
}

#[test]
fn three_nodes_flushing_at_once_report_what_one_store_fed_the_same_views_reports() {
    let pg = Postgres::shared();
    let url = pg.database("stats_three_nodes");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clock: SharedClock = ManualClock::new(noon());
    let nodes: Vec<Arc<PgStats>> = runtime.block_on(async {
        ["a", "b", "c"]
            .iter()
            .map(|name| {
                let handle = tokio::runtime::Handle::current();
                Arc::new(PgStats::new(cluster(&url, name, &clock), handle))
            })
            .collect()
    });
    let day = Day::of(noon());
    let end_of_day = day.next().first_hour().start() - chrono::Duration::minutes(1);
    let next_day = day.next().first_hour().start() + chrono::Duration::hours(2);
    let retention = Retention {
        hourly_days: 3650,
        daily_days: 3650,
        settle: std::time::Duration::from_secs(80),
    };
    let seq = std::sync::atomic::AtomicU64::new(0);
    // Waits for the tables to be migrated.
    nodes[0].report(day, day, 1).unwrap();
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        // The same cases on every run: a test that passes here passes in CI.
        rng_seed: proptest::test_runner::RngSeed::Fixed(18),
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        views in proptest::collection::vec((arb_view(), 0usize..3, 0u64..3), 1..120),
        chunk in 1usize..20,
        roll_up_first in any::<bool>(),
    )| {
        pg.sql(
            "stats_three_nodes",
            "TRUNCATE quire_stats_hourly, quire_stats_daily, quire_stats_node_daily, \
             quire_stats_seen, quire_stats_batches, quire_stats_parcels; \
             UPDATE quire_stats_meta SET aggregated_until = NULL, remembered_from = NULL",
        );
        let one = MemoryStore::default();
        let all: Vec<View> = views.iter().map(|(v, _, _)| v.clone()).collect();
        let dropped: u64 = views.iter().map(|(_, _, d)| d).sum();
        quire::stats::flush::flush(&one, &all, dropped, &[], end_of_day).unwrap();

        // Each node flushes its share in batches, all three at once.
        let mut shares: Vec<Vec<(View, u64)>> = vec![Vec::new(); 3];
        for (view, node, dropped) in &views {
            shares[*node].push((view.clone(), *dropped));
        }
        let mut work = Vec::new();
        for (node, share) in nodes.iter().zip(shares) {
            let mut batches = Vec::new();
            for part in share.chunks(chunk) {
                let seq = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let views: Vec<View> = part.iter().map(|(v, _)| v.clone()).collect();
                let sealed = Sealed { seq, views: views.len(), dropped: part.iter().map(|(_, d)| d).sum() };
                batches.push((views, sealed));
            }
            work.push((node.clone(), batches));
        }
        if roll_up_first {
            // A roll-up of the hours already settled, racing the flushes.
            nodes[0].maintain(noon(), &retention).unwrap();
        }
        std::thread::scope(|scope| {
            for (node, batches) in &work {
                scope.spawn(move || {
                    for (views, sealed) in batches {
                        let sealed = [*sealed];
                        node.flush(&Drained { views, batches: &sealed }, &[], end_of_day).unwrap();
                    }
                });
            }
        });
        let expected = quire::stats::report::report(&one, day, day, 50).unwrap();
        prop_assert_eq!(&nodes[1].report(day, day, 50).unwrap(), &expected);
        nodes[2].maintain(next_day, &retention).unwrap();
        quire::stats::maintain::maintain(&one, next_day, &retention).unwrap();
        let rolled = quire::stats::report::report(&one, day, day, 50).unwrap();
        prop_assert_eq!(&rolled, &expected);
        prop_assert_eq!(&nodes[0].report(day, day, 50).unwrap(), &rolled);
    });
    drop(runtime);
}

/// A node of a cluster on database `url`: the example site over HTTPS for
/// `localhost` with a certificate from `pebble` (whose validation reaches
/// `ports`, the node's HTTP and HTTPS ports, or any free ones for a node
/// that does not order), behind a trusted proxy on loopback, flushing
/// every second.
fn node_site(url: &str, node: &str, pebble: &Pebble, ports: Option<(u16, u16)>) -> SiteDir {
    let (http, https) = ports.unwrap_or((0, 0));
    let site = SiteDir::example("");
    site.write(
        "quire.toml",
        &format!(
            "[domains]\nnames = [\"localhost\"]\n\n\
             [listen]\nhttp = \"127.0.0.1:{http}\"\nhttps = \"127.0.0.1:{https}\"\nmetrics = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n\
             [tls]\nmode = \"acme\"\ndirectory_url = \"{directory}\"\ncontacts = [\"admin@example.com\"]\n\n\
             [stats]\nflush_every = \"1s\"\n\n\
             [cluster]\npostgres = \"{url}\"\nnode = \"{node}\"\n",
            directory = pebble.directory,
        ),
    );
    site
}

/// A page read over HTTPS by the reader at `client` through `server`, on a
/// new connection trusting only `root`: the status, and the serial of the
/// certificate the node presented.
async fn visit(server: &Binary, root: &str, path: &str, client: &str) -> (u16, String) {
    let stream = tls_connect(server.https.unwrap(), "localhost", root, &[])
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {path} for {client}: {e}"));
    let serial = peer_certificate(&stream).1;
    let mut tls = TlsClient::new(stream).await;
    let headers = [
        ("x-forwarded-for", client),
        ("user-agent", std::str::from_utf8(FIREFOX).unwrap()),
    ];
    let reply = tls
        .get_with("localhost", path, &headers)
        .await
        .unwrap_or_else(|e| panic!("GET {path} for {client}: {e}"));
    tls.close().await;
    (reply.status.as_u16(), serial)
}

/// `quire stats --days 1 --by-node` through a node: its total row (views,
/// visitors, ...) and the whole text; `None` when it failed.
fn cluster_totals(site: &SiteDir) -> Option<(Vec<u64>, String)> {
    let (code, out, _) = site.run(&[
        "stats",
        "--config",
        "quire.toml",
        "--days",
        "1",
        "--by-node",
    ]);
    let row = out.lines().find(|line| line.starts_with("total"))?;
    let numbers = row
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    (code == 0).then_some((numbers, out))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_count_a_reader_once_and_every_view_through_an_outage() {
    clear_of_utc_midnight();
    let pg = Postgres::start();
    let url = pg.database("stats_two_nodes");
    // As in production: a commit a node was told of survives the crash (the
    // harness commits asynchronously, and an immediate stop loses the last
    // commits it acknowledged, with the views they added).
    pg.sql(
        "stats_two_nodes",
        "ALTER DATABASE stats_two_nodes SET synchronous_commit = on",
    );
    // Pebble validates at node a's ports: a orders, b follows.
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(PebbleSettings {
        http_port: http,
        tls_port: https,
        dns: None,
    });
    let root = pebble.issuing_root();
    let env = [("QUIRE_ACME_ROOTS", pebble.ca_file.as_str())];
    let site_a = node_site(&url, "a", &pebble, Some((http, https)));
    let a = Binary::serve_with_env(&site_a, &[], &env);
    wait_for_log(&a, "obtained a certificate");
    let site_b = node_site(&url, "b", &pebble, None);
    let b = Binary::serve_with_env(&site_b, &[], &env);
    wait_for_log(&b, "serving the cluster's certificate");

    // The same reader (address and browser) on both nodes, and one more on b.
    let (status, serial) = visit(&a, &root, "/", "198.51.100.1").await;
    assert_eq!(status, 200);
    for (path, client) in [("/about/", "198.51.100.1"), ("/", "198.51.100.2")] {
        assert_eq!(
            visit(&b, &root, path, client).await,
            (200, serial.clone()),
            "b serves the cluster's certificate"
        );
    }
    let (_, _) = cluster_totals(&site_b).expect("b flushes and reports");
    let (numbers, report) = cluster_totals(&site_a).expect("a flushes and reports");
    assert_eq!(
        numbers[..2],
        [3, 2],
        "one reader on two nodes is one visitor:\n{report}"
    );
    // Per node: what each served, and the readers it saw first (whichever
    // flushed the shared reader first), adding up to the cluster's.
    let per_node: Vec<(String, u64, u64)> = report
        .lines()
        .skip_while(|l| !l.starts_with("Per node"))
        .skip(2)
        .take(2)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (
                cells[0].to_string(),
                cells[1].parse().unwrap(),
                cells[2].parse().unwrap(),
            )
        })
        .collect();
    let views: Vec<(&str, u64)> = per_node.iter().map(|(n, v, _)| (n.as_str(), *v)).collect();
    assert_eq!(views, [("a", 1), ("b", 2)], "{report}");
    assert_eq!(
        per_node.iter().map(|(_, _, v)| v).sum::<u64>(),
        2,
        "{report}"
    );

    // The engine stops during traffic: every request over HTTPS is still
    // served, with the same certificate, and the views wait in memory on
    // both nodes; then it comes back during traffic.
    let mut made = 3;
    for round in 0..30u32 {
        match round {
            5 => pg.stop_immediate(),
            20 => {
                assert!(cluster_totals(&site_a).is_none(), "the engine is down");
                pg.restart();
            }
            _ => {}
        }
        for (node, client) in [(&a, "198.51.100.3"), (&b, "198.51.100.4")] {
            assert_eq!(
                visit(node, &root, "/", client).await,
                (200, serial.clone()),
                "round {round}"
            );
            made += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Driven by the engine coming back: the retried flushes land, once.
    let mut last = String::new();
    let started = std::time::Instant::now();
    loop {
        let _ = cluster_totals(&site_b);
        if let Some((numbers, report)) = cluster_totals(&site_a) {
            if numbers[0] >= made {
                assert_eq!(numbers[..2], [made, 4], "exact, once:\n{report}");
                break;
            }
            last = report;
        }
        assert!(
            started.elapsed() < DEADLINE * 2,
            "the counts never reached {made} views after the engine came back:\n{last}\na: {}\nb: {}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    for node in [&a, &b] {
        assert_eq!(
            visit(node, &root, "/", "198.51.100.3").await,
            (200, serial.clone()),
            "the same certificate after the outage"
        );
        made += 1;
    }
    // Stopped, the nodes flush what they hold.
    drop((a, b));

    // `quire stats` where no node runs reads the shared tables, without
    // joining the cluster: node c never appears in the registry.
    let site_c = node_site(&url, "c", &pebble, None);
    let (numbers, report) = cluster_totals(&site_c).expect("read without a running node");
    assert_eq!(numbers[..2], [made, 4], "{report}");
    assert!(report.contains("no node runs here"), "{report}");
    assert!(report.contains("Per node"), "{report}");
    assert_eq!(
        pg.sql(
            "stats_two_nodes",
            "SELECT string_agg(node, ',' ORDER BY node) FROM quire_nodes"
        ),
        "a,b"
    );
}
