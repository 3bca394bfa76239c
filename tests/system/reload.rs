//! Hot reload: edits under content/ reach readers without a restart, broken
//! files are reported and skipped, and scheduled posts appear when the
//! (injected) clock passes their date.

use std::time::Duration;

use chrono::{DateTime, Utc};
use quire::clock::ManualClock;

use crate::support::{Binary, SiteDir, eventually, get, post, wait_for_log};

#[tokio::test]
async fn added_edited_broken_and_fixed_posts() {
    let site = SiteDir::empty("");
    site.write(
        "content/posts/2026-01-01-first.md",
        &post("First", "2026-01-01", "", "Hello."),
    );
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;
    assert_eq!(get(addr, "/posts/first/").await.status, 200);

    site.write(
        "content/posts/2026-01-02-second.md",
        &post("Second", "2026-01-02", "", "Added."),
    );
    eventually("the added post is served", || async {
        get(addr, "/posts/second/").await.status == 200
    })
    .await;
    assert!(get(addr, "/").await.text().contains("Second"));

    site.write(
        "content/posts/2026-01-02-second.md",
        &post("Second, edited", "2026-01-02", "", "Edited."),
    );
    eventually("the edit is served", || async {
        get(addr, "/posts/second/")
            .await
            .text()
            .contains("Second, edited")
    })
    .await;

    site.write(
        "content/posts/2026-01-02-second.md",
        "+++\ntitle = \"Broken\ndate = 2026-01-02\n+++\nOops.\n",
    );
    eventually("the broken post is taken down", || async {
        get(addr, "/posts/second/").await.status == 404
    })
    .await;
    assert_eq!(
        get(addr, "/posts/first/").await.status,
        200,
        "the rest keeps serving"
    );
    // The log names file and line.
    wait_for_log(&server, "2026-01-02-second.md:2:");

    site.write(
        "content/posts/2026-01-02-second.md",
        &post("Second, fixed", "2026-01-02", "", "Fixed."),
    );
    eventually("the fixed post is back", || async {
        get(addr, "/posts/second/")
            .await
            .text()
            .contains("Second, fixed")
    })
    .await;

    std::fs::remove_file(site.path("content/posts/2026-01-02-second.md")).unwrap();
    eventually("the deleted post is gone", || async {
        get(addr, "/posts/second/").await.status == 404
    })
    .await;

    site.write("static/extra.css", "body { color: red; }");
    eventually("a new static file is served", || async {
        get(addr, "/extra.css").await.status == 200
    })
    .await;
    assert_eq!(server.terminate(), 0, "SIGTERM exits cleanly");
}

#[tokio::test]
async fn scheduled_post_appears_when_the_clock_passes_its_date() {
    let site = SiteDir::empty("");
    site.write(
        "content/posts/2026-01-01-now.md",
        &post("Now", "2026-01-01", "", "Already out."),
    );
    site.write(
        "content/posts/2026-03-01-later.md",
        &post("Later", "2026-03-01T09:00:00Z", "", "Scheduled."),
    );
    let start: DateTime<Utc> = "2026-02-01T00:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let config = site.load_config();
    let server = quire::system::start(config, clock.clone()).await.unwrap();
    let addr = server.http_addr;
    assert_eq!(get(addr, "/posts/later/").await.status, 404);
    assert!(!get(addr, "/atom.xml").await.text().contains("Later"));

    let mut generations = server.site.subscribe();
    clock.set("2026-03-01T08:59:59Z".parse().unwrap());
    tokio::task::yield_now().await;
    assert!(
        !generations.has_changed().unwrap(),
        "no rebuild before the date"
    );

    clock.set("2026-03-01T09:00:00Z".parse().unwrap());
    tokio::time::timeout(Duration::from_secs(30), generations.changed())
        .await
        .expect("rebuilt in time")
        .unwrap();
    assert_eq!(get(addr, "/posts/later/").await.status, 200);
    assert!(get(addr, "/atom.xml").await.text().contains("Later"));
    assert!(
        get(addr, "/")
            .await
            .text()
            .contains("href=\"/posts/later/\"")
    );
    server.stop().await;
}
