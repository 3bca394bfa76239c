//! The public site in a real browser: headless Chromium loads the home page,
//! a post with code and a table, a tag page and the 404 page at phone and
//! desktop widths, and a post with JSON-LD. The site sends no scripts, so any console message (a CSP
//! violation, a failed load) is a failure. Screenshots are kept in
//! target/test-artifacts/ for people to look at.

use crate::support::{Binary, SiteDir, artifacts, distinct_colours, get, post, screenshot};

const PAGES: [(&str, &str); 4] = [
    ("home", "/"),
    ("post", "/posts/writing-posts/"),
    ("tag", "/tags/writing/"),
    ("missing", "/no-such-page/"),
];
const WIDTHS: [(&str, u32, u32); 2] = [("phone", 390, 844), ("desktop", 1280, 900)];

fn console_messages(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

#[tokio::test]
async fn pages_render_cleanly_at_phone_and_desktop_widths() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);
    for (name, path) in PAGES {
        for (device, width, height) in WIDTHS {
            let file = artifacts().join(format!("site-{name}-{device}.png"));
            let _ = std::fs::remove_file(&file);
            let log = screenshot(
                &format!("http://{}{path}", server.addr),
                width,
                height,
                &file,
            );
            let console = console_messages(&log);
            assert!(console.is_empty(), "{path} at {device}: {console:#?}");
            let colours = distinct_colours(&file);
            assert!(
                colours > 10,
                "{path} at {device} looks blank: {}",
                file.display()
            );
        }
    }
}

/// The check above can fail: a post with an inline script is caught.
#[tokio::test]
async fn a_csp_violation_is_noticed() {
    let site = SiteDir::example("");
    site.write(
        "content/posts/2026-01-01-script.md",
        "---\ntitle: \"Script\"\ndate: 2026-01-01\n---\n\n<script>console.log(\"hi\")</script>\n\nText.\n",
    );
    let server = Binary::serve(&site, &[]);
    let file = artifacts().join("site-csp-violation.png");
    let log = screenshot(
        &format!("http://{}/posts/script/", server.addr),
        390,
        844,
        &file,
    );
    let console = console_messages(&log);
    assert!(
        console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "the blocked script went unnoticed:\n{log}"
    );
}

/// JSON-LD is a data block, which the CSP (`script-src 'none'`) leaves
/// alone: the browser neither runs nor refuses it, so it says nothing.
#[tokio::test]
async fn a_post_with_json_ld_shows_no_console_message() {
    let site = SiteDir::example("");
    site.write(
        "content/posts/2026-01-01-shared.md",
        &post(
            "Shared </script><script>console.log(1)</script>",
            "2026-01-01",
            "description = \"Shared widely.\"\ntags = [\"writing\"]\nimage = \"../images/quill.svg\"\n",
            "Text.",
        ),
    );
    let server = Binary::serve(&site, &[]);
    let html = get(server.addr, "/posts/shared/").await.text();
    assert!(
        html.contains("<script type=\"application/ld+json\">"),
        "the page under test has JSON-LD: {html}"
    );
    let file = artifacts().join("site-post-json-ld.png");
    let log = screenshot(
        &format!("http://{}/posts/shared/", server.addr),
        1280,
        900,
        &file,
    );
    let console = console_messages(&log);
    assert!(console.is_empty(), "{console:#?}");
}
