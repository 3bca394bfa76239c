//! Permalinks through the real binary: slugs as real blogs have them served
//! at exactly their URLs, `[site] post_url` patterns and sections, front
//! matter `path`, clashes named by both files, and `quire check` warning
//! about URLs a changed pattern would break (until aliases keep them).

use crate::support::{Binary, SiteDir, get, post, wait_for_log};

const CHECK: [&str; 3] = ["check", "--config", "quire.toml"];

/// A site whose `[site]` table holds `site_keys`.
fn site_with(site_keys: &str) -> SiteDir {
    let site = SiteDir::empty("");
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace("[site]\n", &format!("[site]\n{site_keys}")),
    )
    .unwrap();
    site
}

#[tokio::test]
async fn slugs_are_served_at_exactly_their_urls() {
    let site = SiteDir::empty("");
    let slugs = [
        ("2019-05-01-my_post.md", "", "/posts/my_post/"),
        (
            "2019-05-02-notes.md",
            "slug = \"v1.2-notes\"\n",
            "/posts/v1.2-notes/",
        ),
        ("2019-05-03-CamelCase.md", "", "/posts/CamelCase/"),
        (
            "2019-05-04-cafe.md",
            "slug = \"café\"\n",
            "/posts/caf%C3%A9/",
        ),
        (
            "2019-05-05-naive.md",
            "slug = \"na%C3%AFve\"\n",
            "/posts/na%C3%AFve/",
        ),
    ];
    for (i, (file, extra, _)) in slugs.iter().enumerate() {
        site.write(
            &format!("content/posts/{file}"),
            &post(
                &format!("Post {i}"),
                &format!("2019-05-0{}", i + 1),
                extra,
                "Text.",
            ),
        );
    }
    site.write(
        "content/posts/2019-05-06-bad.md",
        &post("Refused", "2019-05-06", "slug = \"a/b\"\n", "Never served."),
    );

    let (code, stdout, _) = site.run(&CHECK);
    assert_eq!(code, 1, "{stdout}");
    let problems: Vec<&str> = stdout.lines().collect();
    assert_eq!(problems.len(), 1, "only the refused slug: {stdout}");
    assert!(
        problems[0].contains("content/posts/2019-05-06-bad.md:4: slug `a/b` contains `/`")
            && problems[0].contains("use `a-b`"),
        "{stdout}"
    );

    let server = Binary::serve(&site, &[]);
    let home = get(server.addr, "/").await.text();
    for (i, (_, _, url)) in slugs.iter().enumerate() {
        let reply = get(server.addr, url).await;
        assert_eq!(reply.status, 200, "{url}");
        assert!(reply.text().contains(&format!("Post {i}")), "{url}");
        assert!(home.contains(&format!("href=\"{url}\"")), "{url}: {home}");
    }
    // Feeds and the sitemap print the same hrefs, absolute.
    for feed in ["/atom.xml", "/sitemap.xml"] {
        let text = get(server.addr, feed).await.text();
        assert!(
            text.contains("https://blog.test/posts/caf%C3%A9/")
                && text.contains("https://blog.test/posts/na%C3%AFve/"),
            "{feed}: {text}"
        );
    }
    // Exactly: not another case, and the refused post nowhere.
    assert_eq!(get(server.addr, "/posts/camelcase/").await.status, 404);
    assert_eq!(get(server.addr, "/posts/my-post/").await.status, 404);
    assert!(!home.contains("Refused"), "{home}");
    assert_eq!(get(server.addr, "/posts/a/b/").await.status, 404);
    assert_eq!(get(server.addr, "/posts/a-b/").await.status, 404);
}

#[tokio::test]
async fn patterns_sections_and_paths_place_posts() {
    let site = site_with("post_url = \"/{year}/{month}/{slug}.html\"\n");
    site.write(
        "content/posts/2019-05-01-my_post.md",
        &post(
            "Mine",
            "2019-05-01",
            "aliases = [\"/posts/my_post/\"]\n",
            "Text.",
        ),
    );
    site.write(
        "content/posts/2019-06-01-moved.md",
        &post("Moved", "2019-06-01", "path = \"/blog/hello/\"\n", "Text."),
    );
    site.write(
        "content/posts/2019-07-01-trip/index.md",
        &post("Trip", "2019-07-01", "", "![view](view.jpg)"),
    );
    site.write("content/posts/2019-07-01-trip/view.jpg", "jpeg");
    let (code, stdout, stderr) = site.run(&CHECK);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let server = Binary::serve(&site, &[]);
    let mine = get(server.addr, "/2019/05/my_post.html").await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.header("content-type"), "text/html; charset=utf-8");
    assert!(mine.text().contains("Mine"));
    let old = get(server.addr, "/posts/my_post/").await;
    assert_eq!(old.status, 301);
    assert_eq!(old.header("location"), "/2019/05/my_post.html");
    assert_eq!(get(server.addr, "/posts/my_post.html").await.status, 404);
    assert!(
        get(server.addr, "/blog/hello/")
            .await
            .text()
            .contains("Moved")
    );
    assert_eq!(get(server.addr, "/2019/06/moved.html").await.status, 404);
    let trip = get(server.addr, "/2019/07/trip.html").await.text();
    assert!(
        trip.contains("src=\"/posts/2019-07-01-trip/view.jpg\""),
        "{trip}"
    );
    assert_eq!(
        get(server.addr, "/posts/2019-07-01-trip/view.jpg")
            .await
            .status,
        200
    );
    drop(server);

    let section = site_with("post_url = \"/blog/{slug}/\"\n");
    section.write(
        "content/posts/2019-05-01-first.md",
        &post("First", "2019-05-01", "", "Text."),
    );
    let server = Binary::serve(&section, &[]);
    assert!(
        get(server.addr, "/blog/first/")
            .await
            .text()
            .contains("First")
    );
    assert_eq!(get(server.addr, "/posts/first/").await.status, 404);
    assert!(
        get(server.addr, "/")
            .await
            .text()
            .contains("href=\"/blog/first/\""),
        "the home page links to the section"
    );
}

#[test]
fn a_bad_pattern_is_refused_at_its_line() {
    let site = site_with("post_url = \"/posts/\"\n");
    let (code, stdout, _) = site.run(&CHECK);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("quire.toml:2: site.post_url: `/posts/` has no `{slug}`"),
        "{stdout}"
    );
}

#[test]
fn two_posts_on_one_url_name_both_files() {
    let site = site_with("post_url = \"/{year}/{slug}/\"\n");
    site.write(
        "content/posts/2019-05-01-same.md",
        &post("One", "2019-05-01", "", "Text."),
    );
    site.write(
        "content/posts/2019-06-01-other.md",
        &post("Two", "2019-06-01", "slug = \"same\"\n", "Text."),
    );
    site.write(
        "content/about.md",
        "+++\ntitle = \"About\"\naliases = [\"/about/\", \"/2019/same/\"]\n+++\nMe.\n",
    );
    let (code, stdout, _) = site.run(&CHECK);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("2019-06-01-other.md:1: duplicate URL: /2019/same/ is the URL of both content/posts/2019-05-01-same.md and content/posts/2019-06-01-other.md; set `slug` or `path`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("about.md: alias /about/ is the page's own URL"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("about.md: alias /2019/same/ would shadow content/posts/2019-05-01-same.md"),
        "{stdout}"
    );

    // Negative control: apart, the two posts pass.
    site.write(
        "content/posts/2019-06-01-other.md",
        &post("Two", "2019-06-01", "", "Text."),
    );
    site.write("content/about.md", "+++\ntitle = \"About\"\n+++\nMe.\n");
    let (code, stdout, _) = site.run(&CHECK);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn check_warns_about_urls_a_new_pattern_breaks_until_aliases_keep_them() {
    let site = SiteDir::empty("");
    site.write(
        "content/posts/2019-05-01-my_post.md",
        &post("Mine", "2019-05-01", "", "Text."),
    );
    site.write(
        "content/posts/2019-06-01-caf\u{e9}.md",
        &post("Cafe", "2019-06-01", "", "Text."),
    );
    site.write("content/about.md", "+++\ntitle = \"About\"\n+++\nMe.\n");
    {
        let server = Binary::serve(&site, &[]);
        wait_for_log(&server, "recorded the served URLs");
    }
    let record = std::fs::read_to_string(site.path("data/site/served-urls")).unwrap();
    assert_eq!(
        record,
        "/about/\tabout.md\n/posts/caf%C3%A9/\tposts/2019-06-01-café.md\n/posts/my_post/\tposts/2019-05-01-my_post.md\n"
    );
    let (code, stdout, stderr) = site.run(&CHECK);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");

    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace("[site]\n", "[site]\npost_url = \"/{year}/{slug}.html\"\n"),
    )
    .unwrap();
    let (code, stdout, stderr) = site.run(&CHECK);
    assert_eq!(code, 0, "warnings do not fail the check: {stdout}");
    assert!(stderr.contains("0 problem(s), 2 warning(s)"), "{stderr}");
    let warnings: Vec<&str> = stdout.lines().collect();
    assert_eq!(warnings.len(), 2, "{stdout}");
    assert!(
        warnings[0].contains("content/posts/2019-06-01-café.md:1: warning: /posts/caf%C3%A9/")
            && warnings[0].contains("add `aliases = [\"/posts/caf%C3%A9/\"]`"),
        "{stdout}"
    );
    assert!(
        warnings[1].contains("content/posts/2019-05-01-my_post.md:1: warning: /posts/my_post/")
            && warnings[1].contains("add `aliases = [\"/posts/my_post/\"]`"),
        "{stdout}"
    );

    // The fix the warnings give silences them.
    site.write(
        "content/posts/2019-05-01-my_post.md",
        &post(
            "Mine",
            "2019-05-01",
            "aliases = [\"/posts/my_post/\"]\n",
            "Text.",
        ),
    );
    site.write(
        "content/posts/2019-06-01-caf\u{e9}.md",
        &post(
            "Cafe",
            "2019-06-01",
            "aliases = [\"/posts/caf%C3%A9/\"]\n",
            "Text.",
        ),
    );
    let (code, stdout, stderr) = site.run(&CHECK);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(stderr.contains("0 problem(s), 0 warning(s)"), "{stderr}");
}
