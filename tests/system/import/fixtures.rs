//! The blogs the import tests bring in, generated into a temp dir: a Hugo
//! site, a Zola site, two Jekyll sites, an Atom and an RSS feed, each with
//! what makes that kind hard (bundles, aliases, permalinks, shortcodes,
//! taxonomies, dated names, HTML bodies with code, tables, images and
//! entities). Every post's old URL and title is returned for the checks.

use std::path::{Path, PathBuf};

/// A post as the old site served it.
pub struct Old {
    pub url: &'static str,
    pub title: &'static str,
    /// Where quire serves it after the import.
    pub new_url: &'static str,
}

pub fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// One transparent pixel.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0xe2, 0x21, 0xbc, 0x33, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// A Hugo site: a custom `[permalinks]` for posts, aliases, a page bundle
/// with its image, an image in static/, a `url` override, a page, a section
/// list page, a shortcode it renders and one it cannot.
pub fn hugo(root: &Path) -> Vec<Old> {
    write(
        root,
        "hugo.toml",
        b"baseURL = \"https://old.test/\"\ntitle = \"Old\"\n[permalinks]\nposts = \"/:year/:month/:slug/\"\n",
    );
    write(
        root,
        "content/posts/first-post.md",
        b"+++\ntitle = \"First post\"\ndate = 2020-01-02T03:04:05Z\ntags = [\"Rust\", \"web\"]\naliases = [\"/old/first/\"]\nweight = 5\n+++\nIntro.\n\n{{< highlight rust >}}\nfn main() {}\n{{< /highlight >}}\n\n{{< youtube abc123 >}}\n\nSee [the trip]({{< ref \"trip\" >}}).\n",
    );
    write(
        root,
        "content/posts/trip/index.md",
        b"---\ntitle: A trip\ndate: 2021-03-04\ntags: [travel]\n---\n![The cover](cover.png)\n\nWe went.\n",
    );
    write(root, "content/posts/trip/cover.png", PNG);
    write(
        root,
        "content/posts/notes.md",
        b"{\n  \"title\": \"Notes\",\n  \"date\": \"2020-06-01\",\n  \"url\": \"/notes.html\"\n}\n![Diagram](/images/diagram.png)\n",
    );
    write(root, "static/images/diagram.png", PNG);
    write(
        root,
        "content/posts/_index.md",
        b"+++\ntitle = \"Posts\"\n+++\n",
    );
    write(
        root,
        "content/about.md",
        b"+++\ntitle = \"About me\"\n+++\nHello.\n",
    );
    vec![
        Old {
            url: "/2020/01/first-post/",
            title: "First post",
            new_url: "/posts/first-post/",
        },
        Old {
            url: "/old/first/",
            title: "First post",
            new_url: "/posts/first-post/",
        },
        Old {
            url: "/2021/03/a-trip/",
            title: "A trip",
            new_url: "/posts/a-trip/",
        },
        Old {
            url: "/notes.html",
            title: "Notes",
            new_url: "/posts/notes/",
        },
        Old {
            url: "/about/",
            title: "About me",
            new_url: "/about/",
        },
    ]
}

/// A Zola site: a section with its list page, a dated file name,
/// taxonomies, a `path` override, a page.
pub fn zola(root: &Path) -> Vec<Old> {
    write(
        root,
        "config.toml",
        b"base_url = \"https://zola.test\"\ntaxonomies = [{name = \"tags\"}]\n",
    );
    write(
        root,
        "content/blog/_index.md",
        b"+++\ntitle = \"Blog\"\nsort_by = \"date\"\n+++\n",
    );
    write(
        root,
        "content/blog/2021-02-03-dated-post.md",
        b"+++\ntitle = \"Dated post\"\n[taxonomies]\ntags = [\"zola\", \"rust\"]\n+++\n```rust\nlet x = 1;\n```\n",
    );
    write(
        root,
        "content/blog/with-path.md",
        b"+++\ntitle = \"Pathed\"\ndate = 2021-05-06\npath = \"custom/place\"\n+++\nThere.\n",
    );
    write(
        root,
        "content/contact.md",
        b"+++\ntitle = \"Contact\"\n+++\nWrite.\n",
    );
    vec![
        Old {
            url: "/blog/dated-post/",
            title: "Dated post",
            new_url: "/posts/dated-post/",
        },
        Old {
            url: "/custom/place/",
            title: "Pathed",
            new_url: "/posts/place/",
        },
        Old {
            url: "/contact/",
            title: "Contact",
            new_url: "/contact/",
        },
    ]
}

/// A Jekyll site with `permalink: pretty`, categories, Liquid.
pub fn jekyll_pretty(root: &Path) -> Vec<Old> {
    write(root, "_config.yml", b"title: Old\npermalink: pretty\n");
    write(
        root,
        "_posts/2019-05-01-hello-world.md",
        b"---\nlayout: post\ntitle: Hello world\ncategories: [news]\n---\n{% highlight ruby %}\nputs 1\n{% endhighlight %}\n\nNext: [more]({% post_url 2019-05-02-more %}).\n",
    );
    write(
        root,
        "_posts/2019-05-02-more.md",
        b"---\ntitle: More\ntags: [ruby]\n---\nMore.\n",
    );
    vec![
        Old {
            url: "/news/2019/05/01/hello-world/",
            title: "Hello world",
            new_url: "/posts/hello-world/",
        },
        Old {
            url: "/2019/05/02/more/",
            title: "More",
            new_url: "/posts/more/",
        },
    ]
}

/// A Jekyll site with the default (`date`) permalinks, a name with an
/// underscore, a capital and a dot, and a page.
pub fn jekyll_default(root: &Path) -> Vec<Old> {
    write(root, "_config.yml", b"title: Old\n");
    write(
        root,
        "_posts/2019-06-01-second-post.md",
        b"---\ntitle: Second post\ndate: 2019-06-01 10:00:00 +0000\nredirect_from: /second/\n---\nText.\n",
    );
    write(
        root,
        "_posts/2019-07-01-my_Post.v2.md",
        b"---\ntitle: Underscored\n---\nA name as real blogs have them.\n",
    );
    write(root, "about.md", b"---\ntitle: About\n---\nUs.\n");
    vec![
        Old {
            url: "/2019/06/01/second-post.html",
            title: "Second post",
            new_url: "/posts/second-post/",
        },
        Old {
            url: "/second/",
            title: "Second post",
            new_url: "/posts/second-post/",
        },
        Old {
            url: "/2019/07/01/my_Post.v2.html",
            title: "Underscored",
            new_url: "/posts/my_Post.v2/",
        },
        Old {
            url: "/about.html",
            title: "About",
            new_url: "/about/",
        },
    ]
}

const BODY: &str = "<p>Fish &amp; chips &lt;3</p><pre><code class=\"language-rust\">fn main() { println!(\"&lt;hi&gt;\"); }</code></pre><table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table><p><img src=\"IMAGE\" alt=\"A pixel\"></p>";

fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An Atom feed whose bodies are escaped HTML.
pub fn atom(path: &Path) -> Vec<Old> {
    let body = escaped(&BODY.replace("IMAGE", "https://old.test/img/x.png"));
    let feed = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Old</title>
  <link href="https://old.test/"/>
  <id>https://old.test/</id>
  <updated>2020-05-06T07:08:09Z</updated>
  <entry>
    <title>Rust tips</title>
    <link rel="alternate" href="https://old.test/2020/05/rust-tips/"/>
    <id>https://old.test/2020/05/rust-tips/</id>
    <published>2020-05-06T07:08:09Z</published>
    <updated>2020-05-07T00:00:00Z</updated>
    <category term="rust" label="Rust"/>
    <author><name>Ann</name></author>
    <content type="html">{body}</content>
  </entry>
</feed>
"#
    );
    std::fs::write(path, feed).unwrap();
    vec![Old {
        url: "/2020/05/rust-tips/",
        title: "Rust tips",
        new_url: "/posts/rust-tips/",
    }]
}

/// An RSS 2.0 feed with content:encoded, its image on `image_base`.
pub fn rss(image_base: &str) -> (String, Vec<Old>) {
    let body = BODY.replace("IMAGE", &format!("{image_base}/img/pixel.png"));
    let feed = format!(
        r#"<?xml version="1.0"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Old</title>
  <link>http://old.test/</link>
  <item>
    <title>Hello RSS</title>
    <link>http://old.test/2019/hello.html</link>
    <pubDate>Mon, 10 Jun 2019 04:00:00 +0000</pubDate>
    <category>News</category>
    <dc:creator>Bo</dc:creator>
    <description>A summary</description>
    <content:encoded><![CDATA[{body}]]></content:encoded>
  </item>
</channel>
</rss>
"#
    );
    (
        feed,
        vec![Old {
            url: "/2019/hello.html",
            title: "Hello RSS",
            new_url: "/posts/hello/",
        }],
    )
}

/// Every file under `dir` with its bytes, to compare two imports.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    files.sort();
    files
}
