//! Pages that share well, served by the real binary from a generated site:
//! Open Graph, Twitter card and JSON-LD read back with a real HTML parser,
//! and the RSS 2.0 and JSON Feed 1.1 feeds (site-wide and per tag) parsed
//! back and followed.

use std::collections::HashSet;
use std::net::SocketAddr;

use scraper::{Html, Selector};

use crate::support::{Binary, SiteDir, get, post};

const ORIGIN: &str = "https://blog.test";
/// A title that tries to end the JSON-LD script element and the attributes.
const TRICKY_TITLE: &str = "Breaking </script> \"out\" & in";

/// A real PNG of the given size.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer
            .write_image_data(&vec![90; (width * height * 3) as usize])
            .unwrap();
    }
    out
}

fn write_bytes(site: &SiteDir, rel: &str, bytes: &[u8]) {
    let path = site.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Five posts (front matter image with alt and author; a first inline
/// image; an image beside the post; a remote image; none) and a page.
fn sharing_site() -> SiteDir {
    let site = SiteDir::empty("");
    std::fs::write(
        site.config(),
        std::fs::read_to_string(site.config()).unwrap().replace(
            "[site]\n",
            "[site]\nlanguage = \"en-GB\"\ndescription = \"Notes from the test bench.\"\n",
        ),
    )
    .unwrap();
    write_bytes(&site, "static/images/cover.png", &png(120, 63));
    write_bytes(&site, "content/images/chart.png", &png(30, 20));
    write_bytes(&site, "content/posts/beside.png", &png(40, 10));
    let title = TRICKY_TITLE.replace('"', "\\\"");
    site.write(
        "content/posts/2026-03-01-cover.md",
        &post(
            &title,
            "2026-03-01T09:00:00Z",
            "updated = 2026-03-05T10:00:00Z\ndescription = \"Cover & more.\"\ntags = [\"Rust\", \"Sharing\"]\nimage = \"/images/cover.png\"\nimage_alt = \"A grey cover\"\nauthor = \"Guest Writer\"\n",
            "The cover post links [home](/) and [inline](2026-02-01-inline.md).\n\nSecond paragraph.[^1]\n\n[^1]: A note.",
        ),
    );
    site.write(
        "content/posts/2026-02-01-inline.md",
        &post(
            "Inline",
            "2026-02-01",
            "tags = [\"Rust\"]\n",
            "Text before the chart.\n\n![A small chart](../images/chart.png)\n\n![Later](/images/cover.png)",
        ),
    );
    site.write(
        "content/posts/2026-01-15-beside.md",
        &post(
            "Beside",
            "2026-01-15",
            "image = \"beside.png\"\n",
            "A post with its picture next to it.",
        ),
    );
    site.write(
        "content/posts/2026-01-10-remote.md",
        &post(
            "Remote",
            "2026-01-10",
            "image = \"https://cdn.example/pic.png\"\n",
            "A post whose picture lives elsewhere.",
        ),
    );
    let long = "word ".repeat(80);
    site.write(
        "content/posts/2026-01-05-plain.md",
        &post(
            "Plain",
            "2026-01-05",
            "",
            &format!("Start *of* the {long}end.\n\nNot in the summary."),
        ),
    );
    site.write(
        "content/about.md",
        "+++\ntitle = \"About\"\n+++\n\nAbout this blog.\n",
    );
    site
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

/// The contents of every `<meta property=...>` or `<meta name=...>`.
fn metas(doc: &Html, key: &str) -> Vec<String> {
    select(
        doc,
        &format!("meta[property=\"{key}\"], meta[name=\"{key}\"]"),
    )
    .iter()
    .map(|m| m.value().attr("content").unwrap().to_string())
    .collect()
}

/// The one content of a meta tag; panics unless there is exactly one.
fn meta(doc: &Html, key: &str) -> String {
    let found = metas(doc, key);
    assert_eq!(found.len(), 1, "{key}: {found:?}");
    found[0].clone()
}

async fn page(addr: SocketAddr, path: &str) -> Html {
    let reply = get(addr, path).await;
    assert_eq!(reply.status, 200, "{path}");
    Html::parse_document(&reply.text())
}

/// Fetches an absolute URL of the site from the server.
async fn follow(addr: SocketAddr, url: &str) -> u16 {
    let path = url
        .strip_prefix(ORIGIN)
        .unwrap_or_else(|| panic!("{url} is not absolute on {ORIGIN}"));
    get(addr, path).await.status.as_u16()
}

#[tokio::test]
async fn posts_and_pages_carry_open_graph_twitter_and_json_ld() {
    let site = sharing_site();
    let (code, stdout, stderr) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;

    let doc = page(addr, "/posts/cover/").await;
    let url = format!("{ORIGIN}/posts/cover/");
    assert_eq!(
        select(&doc, "link[rel=canonical]")[0].value().attr("href"),
        Some(url.as_str())
    );
    for (key, expected) in [
        ("og:type", "article"),
        ("og:title", TRICKY_TITLE),
        ("og:description", "Cover & more."),
        ("og:url", &url),
        ("og:site_name", "Test blog"),
        ("og:locale", "en_GB"),
        ("article:published_time", "2026-03-01T09:00:00Z"),
        ("article:modified_time", "2026-03-05T10:00:00Z"),
        ("article:author", "Guest Writer"),
        ("og:image", &format!("{ORIGIN}/images/cover.png")),
        ("og:image:width", "120"),
        ("og:image:height", "63"),
        ("og:image:alt", "A grey cover"),
        ("twitter:card", "summary_large_image"),
        ("twitter:title", TRICKY_TITLE),
        ("twitter:description", "Cover & more."),
        ("twitter:image", &format!("{ORIGIN}/images/cover.png")),
    ] {
        assert_eq!(meta(&doc, key), expected, "{key}");
    }
    assert_eq!(metas(&doc, "article:tag"), ["Rust", "Sharing"]);
    assert_eq!(follow(addr, &meta(&doc, "og:image")).await, 200);

    // The title tried to close the script element: one script, whole JSON.
    let scripts = select(&doc, "script");
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert_eq!(scripts[0].value().attr("type"), Some("application/ld+json"));
    let json: serde_json::Value =
        serde_json::from_str(&scripts[0].text().collect::<String>()).expect("JSON-LD parses");
    assert_eq!(json["@context"], "https://schema.org");
    assert_eq!(json["@type"], "BlogPosting");
    assert_eq!(json["headline"], TRICKY_TITLE);
    assert_eq!(json["datePublished"], "2026-03-01T09:00:00Z");
    assert_eq!(json["dateModified"], "2026-03-05T10:00:00Z");
    assert_eq!(json["author"]["name"], "Guest Writer");
    assert_eq!(json["publisher"]["name"], "Test blog");
    assert_eq!(json["description"], "Cover & more.");
    assert_eq!(json["image"], format!("{ORIGIN}/images/cover.png"));
    assert_eq!(json["url"], url);
    assert_eq!(json["mainEntityOfPage"]["@id"], url);
    assert_eq!(json["keywords"], "Rust, Sharing");

    // The first image of the body, with its size and its alt text; no
    // author of its own, so the site's.
    let doc = page(addr, "/posts/inline/").await;
    assert_eq!(meta(&doc, "og:image"), format!("{ORIGIN}/images/chart.png"));
    assert_eq!(
        (meta(&doc, "og:image:width"), meta(&doc, "og:image:height")),
        ("30".into(), "20".into())
    );
    assert_eq!(meta(&doc, "og:image:alt"), "A small chart");
    assert_eq!(meta(&doc, "og:description"), "Text before the chart.");
    assert_eq!(meta(&doc, "article:author"), "Tess Ter");
    assert!(metas(&doc, "article:modified_time") == metas(&doc, "article:published_time"));

    // Front matter `image` beside the post resolves from the post's folder.
    let doc = page(addr, "/posts/beside/").await;
    let beside = meta(&doc, "og:image");
    assert_eq!(beside, format!("{ORIGIN}/posts/beside.png"));
    assert_eq!(follow(addr, &beside).await, 200);
    assert_eq!(meta(&doc, "og:image:width"), "40");
    assert_eq!(meta(&doc, "og:image:alt"), "Beside", "the title stands in");

    // A remote image is used as written, without dimensions.
    let doc = page(addr, "/posts/remote/").await;
    assert_eq!(meta(&doc, "og:image"), "https://cdn.example/pic.png");
    assert!(metas(&doc, "og:image:width").is_empty());
    assert_eq!(meta(&doc, "twitter:card"), "summary_large_image");

    // No image: a summary card; no description: the first paragraph, cut.
    let doc = page(addr, "/posts/plain/").await;
    assert!(metas(&doc, "og:image").is_empty() && metas(&doc, "twitter:image").is_empty());
    assert_eq!(meta(&doc, "twitter:card"), "summary");
    let description = meta(&doc, "og:description");
    assert!(
        description.starts_with("Start of the word") && description.ends_with("word…"),
        "{description}"
    );
    assert!(description.chars().count() <= 201, "{description}");
    assert!(!description.contains("summary"), "{description}");

    // A page and the listings are websites, without article tags or JSON-LD.
    let doc = page(addr, "/about/").await;
    assert_eq!(meta(&doc, "og:type"), "website");
    assert_eq!(meta(&doc, "og:url"), format!("{ORIGIN}/about/"));
    assert!(metas(&doc, "article:published_time").is_empty());
    assert!(select(&doc, "script").is_empty());
    for (path, title) in [
        ("/", "Test blog"),
        ("/tags/rust/", "Posts tagged “Rust”"),
        ("/archive/", "Archive"),
    ] {
        let doc = page(addr, path).await;
        assert_eq!(meta(&doc, "og:type"), "website", "{path}");
        assert_eq!(meta(&doc, "og:title"), title, "{path}");
        assert_eq!(
            meta(&doc, "og:description"),
            "Notes from the test bench.",
            "{path}"
        );
        assert_eq!(meta(&doc, "og:url"), format!("{ORIGIN}{path}"));
        assert_eq!(meta(&doc, "twitter:card"), "summary", "{path}");
        assert!(select(&doc, "script").is_empty(), "{path}");
    }
}

/// (content type, URL) of every `<link rel="alternate">` in a page's head.
fn alternates(doc: &Html) -> Vec<(String, String)> {
    select(doc, "head link[rel=alternate]")
        .iter()
        .map(|l| {
            (
                l.value().attr("type").unwrap().to_string(),
                l.value().attr("href").unwrap().to_string(),
            )
        })
        .collect()
}

const FEEDS: [(&str, &str); 3] = [
    ("atom.xml", "application/atom+xml"),
    ("rss.xml", "application/rss+xml"),
    ("feed.json", "application/feed+json"),
];

fn feed_links(base: &str) -> Vec<(String, String)> {
    FEEDS
        .iter()
        .map(|(file, kind)| (kind.to_string(), format!("{ORIGIN}{base}{file}")))
        .collect()
}

#[tokio::test]
async fn feeds_are_advertised_and_answer_with_their_types() {
    let site = sharing_site();
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;

    let site_feeds = feed_links("/");
    for path in ["/", "/posts/cover/", "/about/", "/archive/"] {
        assert_eq!(alternates(&page(addr, path).await), site_feeds, "{path}");
    }
    let mut tag_feeds = feed_links("/tags/rust/");
    tag_feeds.extend(site_feeds.clone());
    assert_eq!(alternates(&page(addr, "/tags/rust/").await), tag_feeds);

    for (_, url) in &tag_feeds {
        let reply = get(addr, url.strip_prefix(ORIGIN).unwrap()).await;
        assert_eq!(reply.status, 200, "{url}");
        let kind = FEEDS
            .iter()
            .find(|(file, _)| url.ends_with(file))
            .unwrap()
            .1;
        assert_eq!(
            reply.header("content-type"),
            format!("{kind}; charset=utf-8"),
            "{url}"
        );
    }
    // Negative control: a tag nobody used has no feed.
    assert_eq!(get(addr, "/tags/nothing/rss.xml").await.status, 404);
}

/// The children of `node` named `name` in namespace `ns` (None: none).
fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    ns: Option<&str>,
    name: &str,
) -> Vec<roxmltree::Node<'a, 'i>> {
    node.children()
        .filter(|c| c.tag_name().name() == name && c.tag_name().namespace() == ns)
        .collect()
}

fn text_of(node: roxmltree::Node, ns: Option<&str>, name: &str) -> String {
    let found = children(node, ns, name);
    assert_eq!(found.len(), 1, "<{name}> in <{}>", node.tag_name().name());
    found[0].text().unwrap_or_default().to_string()
}

const CONTENT_NS: &str = "http://purl.org/rss/1.0/modules/content/";
const DC_NS: &str = "http://purl.org/dc/elements/1.1/";
const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

/// Site paths in feed content would resolve against the reader, not the site.
fn assert_no_site_paths(html: &str, what: &str) {
    for relative in ["href=\"/", "src=\"/", "href=\"#"] {
        assert!(!html.contains(relative), "{what}: {relative} in {html}");
    }
}

#[tokio::test]
async fn rss_parses_back_with_every_item_and_its_dates() {
    let site = sharing_site();
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;

    for (path, expected) in [
        (
            "/rss.xml",
            vec!["cover", "inline", "beside", "remote", "plain"],
        ),
        ("/tags/rust/rss.xml", vec!["cover", "inline"]),
    ] {
        let text = get(addr, path).await.text();
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{path} is not XML: {e}\n{text}"));
        let rss = doc.root_element();
        assert_eq!(rss.tag_name().name(), "rss");
        assert_eq!(rss.attribute("version"), Some("2.0"));
        let channel = children(rss, None, "channel")[0];
        assert!(!text_of(channel, None, "title").is_empty());
        let home = text_of(channel, None, "link");
        assert_eq!(follow(addr, &home).await, 200, "{home}");
        assert_eq!(
            text_of(channel, None, "description"),
            "Notes from the test bench."
        );
        assert_eq!(text_of(channel, None, "language"), "en-GB");
        let built = text_of(channel, None, "lastBuildDate");
        assert_eq!(
            chrono::DateTime::parse_from_rfc2822(&built)
                .unwrap_or_else(|e| panic!("{built}: {e}"))
                .to_rfc3339(),
            "2026-03-05T10:00:00+00:00",
            "the newest change"
        );
        let own = children(channel, Some(ATOM_NS), "link");
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].attribute("rel"), Some("self"));
        assert_eq!(
            own[0].attribute("href"),
            Some(format!("{ORIGIN}{path}").as_str())
        );

        let items = children(channel, None, "item");
        let mut links = Vec::new();
        for item in items {
            let link = text_of(item, None, "link");
            let guid = &children(item, None, "guid")[0];
            assert_eq!(guid.attribute("isPermaLink"), Some("true"));
            assert_eq!(guid.text(), Some(link.as_str()));
            assert_eq!(follow(addr, &link).await, 200, "{link}");
            let date = text_of(item, None, "pubDate");
            chrono::DateTime::parse_from_rfc2822(&date)
                .unwrap_or_else(|e| panic!("{path} {link}: pubDate {date}: {e}"));
            assert!(!text_of(item, None, "title").is_empty());
            assert!(!text_of(item, Some(DC_NS), "creator").is_empty());
            assert!(!text_of(item, None, "description").is_empty(), "{link}");
            let content = text_of(item, Some(CONTENT_NS), "encoded");
            assert!(content.contains("<p>"), "{link}: full HTML, escaped");
            assert_no_site_paths(&content, &link);
            links.push(link);
        }
        let expected: Vec<String> = expected
            .iter()
            .map(|slug| format!("{ORIGIN}/posts/{slug}/"))
            .collect();
        assert_eq!(links, expected, "{path}: newest first");
    }

    let text = get(addr, "/rss.xml").await.text();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let cover = doc
        .descendants()
        .find(|n| n.tag_name().name() == "item")
        .unwrap();
    assert_eq!(text_of(cover, None, "title"), TRICKY_TITLE);
    assert_eq!(
        text_of(cover, None, "pubDate"),
        "Sun, 1 Mar 2026 09:00:00 +0000"
    );
    assert_eq!(text_of(cover, Some(DC_NS), "creator"), "Guest Writer");
    let categories: Vec<String> = children(cover, None, "category")
        .iter()
        .map(|c| c.text().unwrap().to_string())
        .collect();
    assert_eq!(categories, ["Rust", "Sharing"]);
    assert_eq!(text_of(cover, None, "description"), "Cover &amp; more.");
    let content = text_of(cover, Some(CONTENT_NS), "encoded");
    assert!(
        content.contains(&format!("href=\"{ORIGIN}/posts/inline/\""))
            && content.contains(&format!("href=\"{ORIGIN}/posts/cover/#")),
        "site paths and footnote fragments made absolute: {content}"
    );
}

#[tokio::test]
async fn json_feed_parses_back_with_every_item() {
    let site = sharing_site();
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;

    for (path, count) in [("/feed.json", 5), ("/tags/sharing/feed.json", 1)] {
        let text = get(addr, path).await.text();
        let feed: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
        assert!(!feed["title"].as_str().unwrap().is_empty());
        assert_eq!(feed["feed_url"], format!("{ORIGIN}{path}"));
        let home = feed["home_page_url"].as_str().unwrap();
        assert_eq!(follow(addr, home).await, 200);
        assert_eq!(feed["description"], "Notes from the test bench.");
        assert_eq!(feed["language"], "en-GB");
        assert_eq!(feed["authors"][0]["name"], "Tess Ter");
        let items = feed["items"].as_array().unwrap();
        assert_eq!(items.len(), count, "{path}");
        let mut ids = HashSet::new();
        for item in items {
            let id = item["id"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "{path}: ids are unique");
            assert_eq!(item["url"], id);
            assert_eq!(follow(addr, id).await, 200, "{id}");
            let html = item["content_html"].as_str().unwrap();
            assert!(html.contains("<p>"), "{id}: full content");
            assert_no_site_paths(html, id);
            for date in ["date_published", "date_modified"] {
                chrono::DateTime::parse_from_rfc3339(item[date].as_str().unwrap())
                    .unwrap_or_else(|e| panic!("{id} {date}: {e}"));
            }
            assert!(!item["title"].as_str().unwrap().is_empty());
        }
    }

    let feed: serde_json::Value =
        serde_json::from_str(&get(addr, "/feed.json").await.text()).unwrap();
    let cover = &feed["items"][0];
    assert_eq!(cover["title"], TRICKY_TITLE);
    assert_eq!(cover["summary"], "Cover & more.");
    assert_eq!(cover["date_published"], "2026-03-01T09:00:00Z");
    assert_eq!(cover["date_modified"], "2026-03-05T10:00:00Z");
    assert_eq!(cover["tags"], serde_json::json!(["Rust", "Sharing"]));
    assert_eq!(cover["image"], format!("{ORIGIN}/images/cover.png"));
    assert_eq!(cover["authors"][0]["name"], "Guest Writer");
    let plain = &feed["items"][4];
    assert_eq!(plain["id"], format!("{ORIGIN}/posts/plain/"));
    assert!(plain.get("image").is_none() && plain.get("authors").is_none());
}

#[tokio::test]
async fn a_missing_or_unusable_front_matter_image_is_reported_where_it_is_set() {
    let site = SiteDir::empty("");
    site.write(
        "content/posts/2026-01-01-lost.md",
        &post("Lost", "2026-01-01", "image = \"lost.png\"\n", "Text."),
    );
    site.write(
        "content/posts/2026-01-02-plain-http.md",
        &post(
            "Plain HTTP",
            "2026-01-02",
            "tags = [\"a\"]\nimage = \"http://cdn.example/x.png\"\n",
            "Text.",
        ),
    );
    let (code, stdout, stderr) = site.run(&["check", "--config", "quire.toml"]);
    let said = format!("{stdout}{stderr}");
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("2026-01-01-lost.md:4: image /posts/lost.png does not exist"),
        "{said}"
    );
    assert!(
        said.contains("2026-01-02-plain-http.md:5: image `http://cdn.example/x.png`"),
        "{said}"
    );

    // Negative control: with the file in place the post checks clean.
    write_bytes(&site, "content/posts/lost.png", &png(2, 2));
    site.write(
        "content/posts/2026-01-02-plain-http.md",
        &post("Plain HTTP", "2026-01-02", "", "Text."),
    );
    let (code, stdout, stderr) = site.run(&["check", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}
