//! Reading statistics through the whole system: real requests from varied
//! clients (behind a trusted proxy), counted exactly, reported by `quire
//! stats`, kept across a restart and a SIGKILL, rolled up and pruned as the
//! injected clock moves, and never in the way of the site when the store is
//! unusable.

use chrono::Duration;
use quire::clock::{Clock, ManualClock};
use quire::config::{Config, Overrides, no_env};
use quire::stats::schema::{Day, Meta};

use crate::support::{
    Binary, SiteDir, clear_of_utc_midnight, eventually, get, request, wait_for_log,
};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// The example site behind a trusted proxy on loopback; statistics flush only
/// when asked (`quire stats`) and at shutdown.
fn proxied_site() -> SiteDir {
    let site = SiteDir::example("");
    site.write(
        "quire.toml",
        "[site]\ntitle = \"Test blog\"\nbase_url = \"https://blog.test/\"\n\n\
         [listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n\
         [tls]\nmode = \"off\"\n\n[stats]\nflush_every = \"1h\"\n",
    );
    site
}

/// A request from `client` (as the proxy says) with a User-Agent and more headers.
async fn visit(
    server: &Binary,
    path: &str,
    client: &str,
    agent: &str,
    extra: &[(&str, &str)],
) -> u16 {
    let mut headers = vec![("x-forwarded-for", client), ("user-agent", agent)];
    headers.extend_from_slice(extra);
    request(server.addr, "GET", path, &headers)
        .await
        .status
        .as_u16()
}

/// The numbers of the `total` row of `quire stats --days 1`:
/// views, visitors, feed fetches, feed readers, bot requests, 404s.
fn totals(site: &SiteDir) -> (Vec<u64>, String) {
    let (code, out, err) = site.run(&["stats", "--config", "quire.toml", "--days", "1"]);
    assert_eq!(code, 0, "quire stats failed: {err}");
    let row = out
        .lines()
        .find(|line| line.starts_with("total"))
        .unwrap_or_else(|| panic!("no total row in:\n{out}"));
    let numbers = row
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    (numbers, out)
}

#[tokio::test]
async fn views_are_counted_exactly_and_survive_restarts_and_kills() {
    clear_of_utc_midnight();
    let site = proxied_site();
    let server = Binary::serve(&site, &[]);
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(visit(&server, "/", client, FIREFOX, &[]).await, 200);
    }
    // The same reader again, on two pages: views, not visitors.
    visit(&server, "/", "198.51.100.1", FIREFOX, &[]).await;
    visit(&server, "/about/", "198.51.100.1", FIREFOX, &[]).await;
    // Same address, another browser: another visitor.
    visit(&server, "/", "198.51.100.1", CHROME, &[]).await;
    let from_news = [("referer", "https://news.example/item?id=7")];
    visit(&server, "/", "198.51.100.4", FIREFOX, &from_news).await;
    // Do Not Track: a view, never a visitor.
    visit(&server, "/", "198.51.100.6", FIREFOX, &[("dnt", "1")]).await;
    // Not views: a bot, an asset, HEAD, a revalidation, a prefetch.
    visit(&server, "/", "198.51.100.9", "curl/8.5.0", &[]).await;
    visit(&server, "/style.css", "198.51.100.1", FIREFOX, &[]).await;
    let head = [("x-forwarded-for", "198.51.100.1"), ("user-agent", FIREFOX)];
    request(server.addr, "HEAD", "/", &head).await;
    let etag = get(server.addr, "/").await.header("etag").to_string();
    assert_eq!(
        visit(
            &server,
            "/",
            "198.51.100.1",
            FIREFOX,
            &[("if-none-match", &etag)]
        )
        .await,
        304
    );
    visit(
        &server,
        "/",
        "198.51.100.1",
        FIREFOX,
        &[("sec-purpose", "prefetch")],
    )
    .await;
    // A feed reader, fetching then revalidating; and a missing page.
    visit(
        &server,
        "/atom.xml",
        "198.51.100.5",
        "FeedReader/1.0 (like Mozilla)",
        &[],
    )
    .await;
    let feed_tag = get(server.addr, "/atom.xml")
        .await
        .header("etag")
        .to_string();
    let revalidate = [("if-none-match", feed_tag.as_str())];
    let reader = "FeedReader/1.0 (like Mozilla)";
    assert_eq!(
        visit(&server, "/atom.xml", "198.51.100.5", reader, &revalidate).await,
        304
    );
    assert_eq!(
        visit(&server, "/no-such-page/", "198.51.100.1", FIREFOX, &[]).await,
        404
    );

    // The `get` calls above came with no User-Agent: bots, like curl.
    let (numbers, report) = totals(&site);
    assert_eq!(numbers, vec![8, 5, 2, 1, 3, 1], "{report}");
    assert!(report.contains("running server"), "{report}");
    assert!(report.contains("news.example"), "{report}");
    assert!(report.contains("/no-such-page/"), "{report}");
    let about = report.lines().find(|l| l.starts_with("/about/")).unwrap();
    assert_eq!(
        about.split_whitespace().collect::<Vec<_>>(),
        ["/about/", "1", "1"]
    );

    // A view after the last flush is written at shutdown.
    visit(&server, "/", "198.51.100.7", FIREFOX, &[]).await;
    assert_eq!(server.terminate(), 0);
    let (numbers, report) = totals(&site);
    assert_eq!(numbers[..2], [9, 6], "{report}");
    assert!(
        !report.contains("running server"),
        "read from the store: {report}"
    );

    // The day's salt survived the restart: a returning reader is not new.
    let server = Binary::serve(&site, &[]);
    visit(&server, "/", "198.51.100.1", FIREFOX, &[]).await;
    assert_eq!(totals(&site).0[..2], [10, 6]);
    // What a flush wrote survives a crash.
    server.kill();
    let server = Binary::serve(&site, &[]);
    assert_eq!(totals(&site).0[..2], [10, 6]);
    drop(server);
}

#[tokio::test]
async fn an_unusable_store_costs_the_statistics_not_the_site() {
    let site = proxied_site();
    std::fs::create_dir_all(site.path("data/stats")).unwrap();
    std::fs::write(site.path("data/stats/conf"), b"\xff\xfe not sled").unwrap();
    std::fs::write(site.path("data/stats/db"), vec![0xA5u8; 4096]).unwrap();
    let server = Binary::serve(&site, &[]);
    assert_eq!(visit(&server, "/", "198.51.100.1", FIREFOX, &[]).await, 200);
    // The harness reads the log on a thread of its own.
    wait_for_log(&server, "cannot open the statistics store");
    let log = server.log();
    assert!(log.contains("move it aside"), "{log}");
    let (numbers, report) = totals(&site);
    assert_eq!(numbers[..2], [1, 1], "counted in memory: {report}");
    assert!(report.contains("from memory"), "{report}");
    assert_eq!(
        std::fs::read(site.path("data/stats/db")).unwrap(),
        vec![0xA5u8; 4096],
        "the damaged store is left for the operator"
    );
}

#[tokio::test]
async fn counts_survive_roll_up_and_pruning_as_the_clock_moves() {
    let site = proxied_site();
    let clock = ManualClock::new("2026-03-01T10:15:00Z".parse().unwrap());
    let overrides = Overrides {
        config_file: Some(site.path("quire.toml")),
        ..Default::default()
    };
    let config = Config::load(&overrides, &no_env).unwrap();
    let server = quire::system::start(config, clock.clone()).await.unwrap();
    let stats = server.stats.clone().expect("stats are on by default");
    for client in ["198.51.100.1", "198.51.100.2"] {
        let headers = [("x-forwarded-for", client), ("user-agent", FIREFOX)];
        request(server.http_addr, "GET", "/", &headers).await;
    }
    let flusher = stats.clone();
    tokio::task::spawn_blocking(move || flusher.flush_now())
        .await
        .unwrap()
        .unwrap();
    let store = stats.store().as_key_value().expect("a key-value store");
    let day = Day::of(clock.now());
    let report_of_day = || {
        let report = quire::stats::report::report(store, day, day, 10).unwrap();
        (
            report.total.views,
            report.total.visitors,
            report.pages.len(),
        )
    };
    assert_eq!(report_of_day(), (2, 2, 1));

    // The next day, maintenance (asleep on the clock) rolls the hours up.
    clock.advance(Duration::days(1));
    let next_day_hour = (day.0 + 1) * 24;
    eventually("the day is rolled up", || async {
        Meta::AggregatedUntil.read(store).unwrap() >= Some(next_day_hour)
    })
    .await;
    assert_eq!(report_of_day(), (2, 2, 1));

    // Past hourly retention (14 days) only the daily buckets remain.
    clock.advance(Duration::days(15));
    eventually("hourly buckets are pruned", || async {
        store.range(b"h", b"i", 1).unwrap().is_empty()
    })
    .await;
    assert_eq!(report_of_day(), (2, 2, 1));

    // Past daily retention (730 days) the day is gone.
    clock.advance(Duration::days(730));
    eventually("daily buckets are pruned", || async {
        report_of_day() == (0, 0, 0)
    })
    .await;
    server.stop().await;
}
