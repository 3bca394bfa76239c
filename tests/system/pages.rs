//! Every page kind of the example site, served by the real binary.

use crate::support::{Binary, SiteDir, get};

fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_page_kind_is_served() {
    let site = SiteDir::example("");
    // Three posts a page, so the six example posts need pagination.
    std::fs::write(
        site.config(),
        std::fs::read_to_string(site.config())
            .unwrap()
            .replace("[site]\n", "[site]\nposts_per_page = 3\n"),
    )
    .unwrap();
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;

    let home = get(addr, "/").await;
    assert_eq!(home.status, 200);
    assert_eq!(home.header("content-type"), "text/html; charset=utf-8");
    let home_html = home.text();
    assert!(
        home_html.contains("<title>Test blog</title>"),
        "{home_html}"
    );
    assert!(
        home_html.contains("href=\"/posts/tags-and-feeds/\""),
        "newest post on page 1"
    );
    assert!(
        !home_html.contains("href=\"/posts/hello-quire/\""),
        "oldest post is on page 2"
    );
    assert!(home_html.contains("rel=\"next\" href=\"/page/2/\""));
    assert!(!home_html.contains("search-notes"), "drafts stay hidden");

    let page2 = get(addr, "/page/2/").await;
    assert_eq!(page2.status, 200);
    assert!(page2.text().contains("href=\"/posts/hello-quire/\""));
    assert!(page2.text().contains("rel=\"prev\" href=\"/\""));
    assert_eq!(get(addr, "/page/3/").await.status, 404);
    assert_eq!(get(addr, "/page/1/").await.header("location"), "/");

    let post = get(addr, "/posts/markdown-tour/").await;
    assert_eq!(post.status, 200);
    let html = post.text();
    assert!(html.contains("<h1>"), "{html}");
    assert!(html.contains("<table>"), "tables");
    assert!(html.contains("footnote-definition"), "footnotes");
    assert!(html.contains("<del>"), "strikethrough");
    assert!(html.contains("type=\"checkbox\""), "task lists");
    assert!(html.contains("<span class=\"hl-"), "highlighted code");
    assert!(html.contains("class=\"anchor\""), "heading anchors");
    assert!(html.contains("min read"), "reading time");
    assert!(
        html.contains("rel=\"prev\"") && html.contains("rel=\"next\""),
        "previous and next posts"
    );
    assert!(
        html.contains("href=\"/posts/tags-and-feeds/\""),
        "relative .md link resolved to the slug"
    );

    let toc = get(addr, "/posts/writing-posts/").await.text();
    assert!(toc.contains("class=\"toc\""), "table of contents");
    assert!(
        toc.contains("href=\"#front-matter-keys\"") && toc.contains("id=\"front-matter-keys\"")
    );

    let image_post = get(addr, "/posts/hello-quire/").await.text();
    let image = image_post
        .split("src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(image, "/images/quill.svg", "relative image resolved");
    let svg = get(addr, image).await;
    assert_eq!(svg.status, 200);
    assert_eq!(svg.header("content-type"), "image/svg+xml; charset=utf-8");

    let tags = get(addr, "/tags/").await.text();
    for tag in [
        "/tags/meta/",
        "/tags/writing/",
        "/tags/rust/",
        "/tags/operations/",
    ] {
        assert!(links(&tags).contains(&tag.to_string()), "{tag} in {tags}");
    }
    let meta = get(addr, "/tags/meta/").await.text();
    assert!(
        meta.contains("href=\"/posts/hello-quire/\"")
            && !meta.contains("href=\"/posts/markdown-tour/\"")
    );

    let archive = get(addr, "/archive/").await.text();
    assert!(
        archive.contains("<h2>2026</h2>") && archive.contains("<h2>2025</h2>"),
        "{archive}"
    );

    let about = get(addr, "/about/").await;
    assert_eq!(about.status, 200);
    assert!(
        home_html.contains("href=\"/about/\""),
        "pages are in the navigation"
    );

    let robots = get(addr, "/robots.txt").await;
    assert_eq!(robots.header("content-type"), "text/plain; charset=utf-8");
    assert!(
        robots
            .text()
            .contains("Sitemap: https://blog.test/sitemap.xml")
    );

    let missing = get(addr, "/no/such/page/").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("Page not found"));
    assert_eq!(missing.header("content-type"), "text/html; charset=utf-8");

    assert_eq!(get(addr, "/posts/search-notes/").await.status, 404, "draft");
    let alias = get(addr, "/blog/hello-world/?from=old").await;
    assert_eq!(alias.status, 301);
    assert_eq!(alias.header("location"), "/posts/hello-quire/?from=old");
    let slashless = get(addr, "/posts/hello-quire").await;
    assert_eq!(slashless.status, 301);
    assert_eq!(slashless.header("location"), "/posts/hello-quire/");

    // Every link on every listed page lands somewhere.
    for page in [
        "/",
        "/page/2/",
        "/posts/markdown-tour/",
        "/tags/",
        "/archive/",
        "/about/",
    ] {
        for link in links(&get(addr, page).await.text()) {
            if link.starts_with('/') && !link.starts_with("//") {
                let path = link.split('#').next().unwrap();
                let status = get(addr, path).await.status;
                assert!(
                    status == 200 || status == 301,
                    "{page} links to {link}: {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn drafts_flag_shows_drafts() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &["--drafts"]);
    let draft = get(server.addr, "/posts/search-notes/").await;
    assert_eq!(draft.status, 200);
    assert!(draft.text().contains("Draft"));
}

const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children()
        .find(|c| c.tag_name().name() == name && c.tag_name().namespace() == Some(ATOM_NS))
}

#[tokio::test]
async fn feeds_and_sitemap_parse_back() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);

    for (path, expected_entries) in [("/atom.xml", 6), ("/tags/rust/atom.xml", 2)] {
        let reply = get(server.addr, path).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            "application/atom+xml; charset=utf-8"
        );
        let text = reply.text();
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{path} is not XML: {e}\n{text}"));
        let feed = doc.root_element();
        assert_eq!(feed.tag_name().namespace(), Some(ATOM_NS));
        assert_eq!(feed.tag_name().name(), "feed");
        // RFC 4287: a feed has id, title, updated, an author, and a self link.
        for required in ["id", "title", "updated", "author"] {
            assert!(
                child(feed, required).is_some(),
                "{path}: feed lacks <{required}>"
            );
        }
        let updated = child(feed, "updated").unwrap().text().unwrap();
        chrono::DateTime::parse_from_rfc3339(updated).expect("feed updated is RFC 3339");
        let self_link = feed
            .children()
            .find(|c| c.tag_name().name() == "link" && c.attribute("rel") == Some("self"))
            .expect("self link");
        assert_eq!(
            self_link.attribute("href"),
            Some(format!("https://blog.test{path}").as_str())
        );

        let entries: Vec<_> = feed
            .children()
            .filter(|c| c.tag_name().name() == "entry")
            .collect();
        assert_eq!(entries.len(), expected_entries, "{path}");
        let mut ids = std::collections::HashSet::new();
        for entry in entries {
            let id = child(entry, "id").unwrap().text().unwrap();
            assert!(
                id.starts_with("https://blog.test/posts/"),
                "absolute id: {id}"
            );
            assert!(ids.insert(id.to_string()), "ids are unique");
            assert!(!child(entry, "title").unwrap().text().unwrap().is_empty());
            chrono::DateTime::parse_from_rfc3339(child(entry, "updated").unwrap().text().unwrap())
                .unwrap();
            let link = entry
                .children()
                .find(|c| c.tag_name().name() == "link")
                .unwrap();
            assert_eq!(link.attribute("href"), Some(id));
            let content = child(entry, "content").unwrap();
            assert_eq!(content.attribute("type"), Some("html"));
            assert!(
                content.text().unwrap().contains("<p>"),
                "content is escaped HTML"
            );
            let local = id.trim_start_matches("https://blog.test");
            assert_eq!(get(server.addr, local).await.status, 200, "{id}");
        }
    }

    let text = get(server.addr, "/sitemap.xml").await.text();
    let doc = roxmltree::Document::parse(&text).expect("sitemap is XML");
    assert_eq!(doc.root_element().tag_name().name(), "urlset");
    let locs: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "loc")
        .filter_map(|n| n.text())
        .collect();
    assert!(
        locs.contains(&"https://blog.test/")
            && locs.contains(&"https://blog.test/posts/hello-quire/")
    );
    assert!(
        locs.contains(&"https://blog.test/about/")
            && locs.contains(&"https://blog.test/tags/rust/")
    );
    assert!(
        !locs.iter().any(|l| l.contains("search-notes")),
        "no drafts in the sitemap"
    );
    for loc in locs {
        assert_eq!(
            get(server.addr, loc.trim_start_matches("https://blog.test"))
                .await
                .status,
            200,
            "{loc}"
        );
    }
}
