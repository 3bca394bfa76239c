//! The feeds of the site (`/atom.xml`, `/rss.xml`, `/feed.json`) and of each
//! tag (`/tags/<slug>/atom.xml` and so on): the 20 newest posts with their
//! full content, in Atom (templates/atom.xml), RSS 2.0 (templates/rss.xml)
//! and JSON Feed 1.1 (serde). Links inside the content are made absolute,
//! since many readers honour no base URL.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use askama::Template;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{DocKind, Document, FeedLink, Renderer};
use crate::site::content::{Page, Tag};
use crate::site::markdown::escape_html;

/// Posts shown in feeds.
const FEED_ENTRIES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    Atom,
    Rss,
    Json,
}

impl FeedFormat {
    const ALL: [FeedFormat; 3] = [FeedFormat::Atom, FeedFormat::Rss, FeedFormat::Json];

    pub fn content_type(self) -> &'static str {
        match self {
            FeedFormat::Atom => "application/atom+xml; charset=utf-8",
            FeedFormat::Rss => "application/rss+xml; charset=utf-8",
            FeedFormat::Json => "application/feed+json; charset=utf-8",
        }
    }

    fn file(self) -> &'static str {
        match self {
            FeedFormat::Atom => "atom.xml",
            FeedFormat::Rss => "rss.xml",
            FeedFormat::Json => "feed.json",
        }
    }

    fn label(self) -> &'static str {
        match self {
            FeedFormat::Atom => "Atom",
            FeedFormat::Rss => "RSS",
            FeedFormat::Json => "JSON Feed",
        }
    }
}

/// One post as every format shows it.
struct Entry<'a> {
    post: &'a Page,
    url: String,
    published: String,
    /// RFC 2822, as RSS dates are written.
    pub_date: String,
    updated: String,
    author: &'a str,
    /// Whether the post names an author other than the feed's.
    own_author: bool,
    /// The post's description as HTML, else its summary.
    summary_html: String,
    /// Plain text, for JSON Feed.
    summary_text: String,
    content: String,
    image: Option<String>,
}

/// What the three formats of one feed share.
struct Channel<'a> {
    title: &'a str,
    description: &'a str,
    self_base: String,
    home_url: String,
    updated: DateTime<Utc>,
    author: &'a str,
    entries: Vec<Entry<'a>>,
}

#[derive(Template)]
#[template(path = "atom.xml")]
struct AtomTemplate<'a> {
    channel: &'a Channel<'a>,
    self_url: String,
    updated: String,
    site_url: &'a str,
}

#[derive(Template)]
#[template(path = "rss.xml")]
struct RssTemplate<'a> {
    channel: &'a Channel<'a>,
    self_url: String,
    language: &'a str,
    last_build: String,
}

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    authors: [JsonAuthor<'a>; 1],
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct JsonAuthor<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    content_html: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    date_published: &'a str,
    date_modified: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authors: Option<[JsonAuthor<'a>; 1]>,
}

const RELATIVE_ATTRIBUTES: [&str; 4] = [" href=\"", " src=\"", " href='", " src='"];
static ATTRIBUTE_FINDER: LazyLock<AhoCorasick> =
    LazyLock::new(|| AhoCorasick::new(RELATIVE_ATTRIBUTES).expect("fixed patterns"));

/// `href` and `src` values that are site paths (`/posts/x/`) get the site's
/// origin, and fragments (`#fn-1`) the page's URL: a reader shows the
/// content away from the page and the site.
fn absolutize(html: &str, origin: &str, page_url: &str) -> String {
    let mut out = String::with_capacity(html.len() + 512);
    let mut copied = 0;
    for found in ATTRIBUTE_FINDER.find_iter(html) {
        let value = &html[found.end()..];
        let prefix = if value.starts_with('/') && !value.starts_with("//") {
            origin
        } else if value.starts_with('#') {
            page_url
        } else {
            continue;
        };
        out.push_str(&html[copied..found.end()]);
        out.push_str(prefix);
        copied = found.end();
    }
    out.push_str(&html[copied..]);
    out
}

impl Renderer<'_> {
    pub(super) fn tag_feed_title(&self, tag: &Tag) -> String {
        format!("{} – {}", self.site.title, tag.name)
    }

    /// The `<link rel="alternate">`s of the feeds under `base` (`/` or a
    /// tag's URL).
    pub(super) fn feed_links(&self, title: &str, base: &str) -> Vec<FeedLink> {
        FeedFormat::ALL
            .iter()
            .map(|format| FeedLink {
                content_type: format.content_type().split(';').next().unwrap_or_default(),
                title: format!("{title} ({})", format.label()),
                url: self.absolute(&format!("{base}{}", format.file())),
            })
            .collect()
    }

    /// The three feeds under `base` (`/` or a tag's URL) of `posts`, newest first.
    pub(super) fn feeds(&self, title: &str, base: &str, posts: &[&Page]) -> Vec<Document> {
        let iso = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        let origin = self.absolute("");
        let author = self.site_author();
        let entries: Vec<Entry> = posts
            .iter()
            .take(FEED_ENTRIES)
            .map(|&post| {
                let url = self.absolute(&post.url);
                let date = post.date.unwrap_or(self.now);
                let summary_html = match &post.description {
                    Some(description) => escape_html(description),
                    None => absolutize(&post.body.summary, &origin, &url),
                };
                Entry {
                    post,
                    published: iso(date),
                    pub_date: date.to_rfc2822(),
                    updated: iso(post.last_changed().unwrap_or(date)),
                    author: self.author_of(post),
                    own_author: post.author.as_deref().is_some_and(|a| a != author),
                    summary_html,
                    summary_text: self.description_of(post),
                    content: absolutize(&post.body.html, &origin, &url),
                    image: self.image_of(post).map(|i| i.url),
                    url,
                }
            })
            .collect();
        let description = if self.site.description.is_empty() {
            title
        } else {
            &self.site.description
        };
        let channel = Channel {
            title,
            description,
            self_base: base.to_string(),
            home_url: self.absolute(base),
            updated: posts
                .iter()
                .filter_map(|p| p.last_changed())
                .max()
                .unwrap_or(self.now),
            author,
            entries,
        };
        FeedFormat::ALL
            .iter()
            .map(|&format| Document {
                url: format!("{base}{}", format.file()),
                kind: DocKind::Feed(format),
                body: match format {
                    FeedFormat::Atom => self.atom(&channel),
                    FeedFormat::Rss => self.rss(&channel),
                    FeedFormat::Json => self.json_feed(&channel),
                },
            })
            .collect()
    }

    fn self_url(&self, channel: &Channel, format: FeedFormat) -> String {
        self.absolute(&format!("{}{}", channel.self_base, format.file()))
    }

    fn atom(&self, channel: &Channel) -> String {
        AtomTemplate {
            channel,
            self_url: self.self_url(channel, FeedFormat::Atom),
            updated: channel.updated.to_rfc3339_opts(SecondsFormat::Secs, true),
            site_url: self.site.base_url.as_str(),
        }
        .render()
        .expect("templates render to a String")
    }

    /// Full content goes in `content:encoded`, the summary in `description`,
    /// as WordPress writes them: every reader that shows full posts reads
    /// `content:encoded`, and services that show an excerpt (link previews,
    /// e-mail digests) take `description`, which the RSS 2.0 specification
    /// calls the item's synopsis.
    fn rss(&self, channel: &Channel) -> String {
        RssTemplate {
            channel,
            self_url: self.self_url(channel, FeedFormat::Rss),
            language: &self.site.language,
            last_build: channel.updated.to_rfc2822(),
        }
        .render()
        .expect("templates render to a String")
    }

    fn json_feed(&self, channel: &Channel) -> String {
        let feed = JsonFeed {
            version: "https://jsonfeed.org/version/1.1",
            title: channel.title,
            home_page_url: &channel.home_url,
            feed_url: self.self_url(channel, FeedFormat::Json),
            description: channel.description,
            language: &self.site.language,
            authors: [JsonAuthor {
                name: channel.author,
            }],
            items: channel
                .entries
                .iter()
                .map(|entry| JsonItem {
                    id: &entry.url,
                    url: &entry.url,
                    title: &entry.post.title,
                    content_html: &entry.content,
                    summary: &entry.summary_text,
                    date_published: &entry.published,
                    date_modified: &entry.updated,
                    tags: entry.post.tags.iter().map(|t| t.name.as_str()).collect(),
                    image: entry.image.as_deref(),
                    authors: entry
                        .own_author
                        .then_some([JsonAuthor { name: entry.author }]),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&feed).expect("plain structs serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_paths_and_fragments_become_absolute() {
        let html = "<p><a href=\"/posts/b/\">b</a> <img src=\"/i.png\" alt=\"x\"> \
            <a href=\"https://x.test/\">x</a> <a href=\"//cdn.test/\">c</a> \
            <sup><a href=\"#fn-1\">1</a></sup> <a href='/single/'>s</a></p>\
            <pre><code>a href=&quot;/not/&quot;</code></pre>";
        let out = absolutize(html, "https://blog.test", "https://blog.test/posts/a/");
        assert_eq!(
            out,
            "<p><a href=\"https://blog.test/posts/b/\">b</a> <img src=\"https://blog.test/i.png\" alt=\"x\"> \
            <a href=\"https://x.test/\">x</a> <a href=\"//cdn.test/\">c</a> \
            <sup><a href=\"https://blog.test/posts/a/#fn-1\">1</a></sup> <a href='https://blog.test/single/'>s</a></p>\
            <pre><code>a href=&quot;/not/&quot;</code></pre>"
        );
    }

    #[test]
    fn formats_have_their_content_types() {
        assert_eq!(
            DocKind::Feed(FeedFormat::Rss).content_type(),
            "application/rss+xml; charset=utf-8"
        );
        assert_eq!(
            DocKind::Feed(FeedFormat::Json).content_type(),
            "application/feed+json; charset=utf-8"
        );
    }
}
