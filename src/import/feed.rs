//! Atom and RSS 2.0 feeds into [`Document`]s: title, dates, tags, author,
//! summary, image (media:, enclosures) and the body, whose HTML goes through
//! `html::to_markdown` (what does not map stays raw HTML, listed). The old
//! URL is the entry's link, kept when it is on the feed's own site.
//!
//! roxmltree rather than a feed crate: the two formats need some thirty
//! element names, the XML parser is already vetted here (the tests read
//! quire's own feeds with it), and it keeps every byte range, which Atom's
//! inline XHTML content needs.

use chrono::{DateTime, Utc};
use roxmltree::{Document as Xml, Node, ParsingOptions};

use super::html;
use super::urls::{decode, path_of};
use super::{Dialect, Document, ImportError, Kind, Note, Read};
use crate::site::frontmatter::Timestamp;
use crate::site::markdown::slugify;

const ATOM: &str = "http://www.w3.org/2005/Atom";
const CONTENT: &str = "http://purl.org/rss/1.0/modules/content/";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const MEDIA: &str = "http://search.yahoo.com/mrss/";

/// Reads a feed; `at` names it in notes and errors.
pub fn read(bytes: &[u8], at: &str) -> Result<Read, ImportError> {
    let not_a_feed = |why: String| ImportError::NotAFeed {
        at: at.to_string(),
        why,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| not_a_feed(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 5_000_000,
    };
    let xml = Xml::parse_with_options(text, options).map_err(|e| not_a_feed(e.to_string()))?;
    let root = xml.root_element();
    let mut read = Read::default();
    match (root.tag_name().namespace(), root.tag_name().name()) {
        (Some(ATOM), "feed") => {
            let site = link(root);
            for (index, entry) in children(root, "entry").enumerate() {
                if let Some(doc) = atom_entry(entry, index, text, site.as_deref(), &mut read) {
                    read.documents.push(doc);
                }
            }
        }
        (_, "rss") => {
            let channel = children(root, "channel")
                .next()
                .ok_or_else(|| not_a_feed("an <rss> without <channel>".into()))?;
            let site = child_text(channel, "link");
            for (index, item) in children(channel, "item").enumerate() {
                if let Some(doc) = rss_item(item, index, site.as_deref(), &mut read) {
                    read.documents.push(doc);
                }
            }
        }
        (_, name) => return Err(not_a_feed(format!("its root element is <{name}>"))),
    }
    Ok(read)
}

fn children<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child_in<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace() == Some(ns)
    })
}

fn text_of(node: Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<String>()
        .trim()
        .to_string()
}

fn child_text(node: Node, name: &str) -> Option<String> {
    children(node, name)
        .next()
        .map(text_of)
        .filter(|t| !t.is_empty())
}

/// The `rel="alternate"` (or rel-less) link of an Atom feed or entry.
fn link(node: Node) -> Option<String> {
    children(node, "link")
        .find(|l| matches!(l.attribute("rel"), None | Some("alternate")))
        .and_then(|l| l.attribute("href"))
        .map(str::to_string)
}

fn date(text: Option<String>) -> Option<DateTime<Utc>> {
    let text = text?;
    DateTime::parse_from_rfc2822(text.trim())
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| Timestamp::parse(&text).ok().map(|t| t.0))
}

/// An entry's body as HTML, from an Atom text construct.
fn atom_html(node: Node, source: &str) -> Option<(String, bool)> {
    match node.attribute("type").unwrap_or("text") {
        "xhtml" => {
            let div = node.children().find(|c| c.is_element())?;
            let first = div.first_child()?.range().start;
            let last = div.last_child()?.range().end;
            Some((source[first..last].to_string(), true))
        }
        "html" | "text/html" => Some((text_of(node), true)),
        _ => Some((text_of(node), false)),
    }
}

/// Text from an HTML fragment: tags dropped, the common entities decoded
/// (for titles, which some feeds give as HTML).
fn plain(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

fn atom_entry(
    entry: Node,
    index: usize,
    source: &str,
    site: Option<&str>,
    read: &mut Read,
) -> Option<Document> {
    let title = children(entry, "title")
        .next()
        .and_then(|t| atom_html(t, source))
        .map(|(text, html)| if html { plain(&text) } else { text })
        .unwrap_or_default();
    let link = link(entry);
    let origin = origin(link.as_deref(), index, &title);
    let mut doc = Document::new(Kind::Post, origin, Dialect::None);
    doc.title = title;
    doc.date = date(child_text(entry, "published")).or_else(|| date(child_text(entry, "issued")));
    doc.updated = date(child_text(entry, "updated"));
    if doc.date.is_none() {
        doc.date = doc.updated.take();
    }
    doc.tags = children(entry, "category")
        .filter_map(|c| c.attribute("label").or(c.attribute("term")))
        .map(str::to_string)
        .collect();
    doc.author = children(entry, "author")
        .next()
        .and_then(|a| child_text(a, "name"));
    doc.description = children(entry, "summary")
        .next()
        .and_then(|s| atom_html(s, source))
        .map(|(text, html)| if html { plain(&text) } else { text })
        .filter(|s| !s.is_empty());
    doc.image = media_image(entry).or_else(|| {
        children(entry, "link")
            .find(|l| {
                l.attribute("rel") == Some("enclosure")
                    && l.attribute("type").is_some_and(|t| t.starts_with("image/"))
            })
            .and_then(|l| l.attribute("href"))
            .map(str::to_string)
    });
    let body = children(entry, "content")
        .next()
        .or_else(|| children(entry, "summary").next())
        .and_then(|c| atom_html(c, source));
    finish(doc, link, site, body, read)
}

fn rss_item(item: Node, index: usize, site: Option<&str>, read: &mut Read) -> Option<Document> {
    let title = child_text(item, "title").unwrap_or_default();
    let link = child_text(item, "link").or_else(|| {
        children(item, "guid")
            .find(|g| g.attribute("isPermaLink") != Some("false"))
            .map(text_of)
    });
    let origin = origin(link.as_deref(), index, &title);
    let mut doc = Document::new(Kind::Post, origin, Dialect::None);
    doc.title = title;
    doc.date =
        date(child_text(item, "pubDate")).or_else(|| date(child_in(item, DC, "date").map(text_of)));
    doc.updated = child_in(item, ATOM, "updated").and_then(|u| date(Some(text_of(u))));
    doc.tags = children(item, "category")
        .map(text_of)
        .filter(|t| !t.is_empty())
        .collect();
    doc.author = child_in(item, DC, "creator")
        .map(text_of)
        .or_else(|| child_text(item, "author"));
    let description = child_text(item, "description");
    let encoded = child_in(item, CONTENT, "encoded").map(text_of);
    doc.image = media_image(item).or_else(|| {
        children(item, "enclosure")
            .find(|e| e.attribute("type").is_some_and(|t| t.starts_with("image/")))
            .and_then(|e| e.attribute("url"))
            .map(str::to_string)
    });
    let body = match (encoded, description) {
        (Some(content), summary) => {
            doc.description = summary.map(|s| plain(&s)).filter(|s| !s.is_empty());
            Some((content, true))
        }
        (None, Some(description)) => Some((description, true)),
        (None, None) => None,
    };
    finish(doc, link, site, body, read)
}

fn media_image(node: Node) -> Option<String> {
    let media = |name| child_in(node, MEDIA, name).and_then(|m| m.attribute("url"));
    media("content")
        .filter(|_| {
            child_in(node, MEDIA, "content")
                .and_then(|m| m.attribute("medium").or(m.attribute("type")))
                .is_none_or(|t| t.starts_with("image"))
        })
        .or_else(|| media("thumbnail"))
        .map(str::to_string)
}

fn origin(link: Option<&str>, index: usize, title: &str) -> String {
    match link {
        Some(link) => link.to_string(),
        None => format!("entry {} ({title})", index + 1),
    }
}

/// The common end of an entry: body converted, old URL kept if it is on
/// the site, skipped with a note when it has no date to file it under.
fn finish(
    mut doc: Document,
    link: Option<String>,
    site: Option<&str>,
    body: Option<(String, bool)>,
    read: &mut Read,
) -> Option<Document> {
    let Some(date) = doc.date else {
        read.notes.push(Note::new(
            &doc.origin,
            0,
            "entry has no published or updated date; not imported (add it to the feed, or write the post by hand)",
        ));
        return None;
    };
    doc.date = Some(date);
    if doc.title.trim().is_empty() {
        doc.title = date.format("%Y-%m-%d").to_string();
        read.notes.push(Note::new(
            &doc.origin,
            0,
            format!("entry has no title; titled {}", doc.title),
        ));
    }
    if let Some(link) = &link {
        let same_site = match (url::Url::parse(link), site.map(url::Url::parse)) {
            (Ok(entry), Some(Ok(site))) => entry.host_str() == site.host_str(),
            (Ok(_), None | Some(Err(_))) => true,
            (Err(_), _) => link.starts_with('/'),
        };
        if same_site {
            doc.old_url = Some(path_of(link));
        } else {
            read.notes.push(Note::new(
                &doc.origin,
                0,
                "the entry's link is on another site than the feed's; its URL is not kept",
            ));
        }
    }
    let last = doc
        .old_url
        .as_deref()
        .map(|p| decode(p.trim_end_matches('/')))
        .and_then(|p| p.rsplit('/').next().map(str::to_string))
        .unwrap_or_default();
    doc.name = if last.is_empty() {
        slugify(&doc.title)
    } else {
        last
    };
    match body {
        Some((html, true)) => {
            let converted = html::to_markdown(&html);
            for kept in &converted.kept_as_html {
                read.notes.push(Note::new(
                    &doc.origin,
                    0,
                    format!(
                        "<{}> (line {} of its HTML) kept as raw HTML; quire shows it as it was",
                        kept.element, kept.line
                    ),
                ));
            }
            doc.body = converted.markdown;
        }
        Some((text, false)) => doc.body = escape_text(&text),
        None => {}
    }
    Some(doc)
}

/// Plain text as markdown that shows it as written.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_[]<>#|".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_atom_entry() {
        let feed = r#"<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
  <link href="https://old.test/"/>
  <entry>
    <title type="html">Fish &amp;amp; chips</title>
    <link rel="alternate" href="https://old.test/2020/01/fish.html"/>
    <published>2020-01-02T03:04:05Z</published>
    <updated>2020-02-01T00:00:00Z</updated>
    <category term="food" label="Food"/>
    <author><name>Ann</name></author>
    <summary>Short</summary>
    <media:thumbnail url="https://old.test/fish.jpg"/>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Hi <b>there</b></p></div></content>
  </entry>
  <entry><title>Undated</title></entry>
  <entry>
    <title>Elsewhere</title><link href="https://other.test/x/"/>
    <updated>2020-03-01T00:00:00Z</updated>
    <content type="text">a *b*</content>
  </entry>
</feed>"#;
        let read = read(feed.as_bytes(), "feed.xml").unwrap();
        assert_eq!(read.documents.len(), 2, "{:?}", read.notes);
        let doc = &read.documents[0];
        assert_eq!(doc.title, "Fish & chips");
        assert_eq!(doc.date.unwrap().to_rfc3339(), "2020-01-02T03:04:05+00:00");
        assert!(doc.updated.is_some());
        assert_eq!(doc.tags, ["Food"]);
        assert_eq!(doc.author.as_deref(), Some("Ann"));
        assert_eq!(doc.description.as_deref(), Some("Short"));
        assert_eq!(doc.image.as_deref(), Some("https://old.test/fish.jpg"));
        assert_eq!(doc.old_url.as_deref(), Some("/2020/01/fish.html"));
        assert_eq!(doc.name, "fish.html");
        assert!(doc.body.contains("there"), "{}", doc.body);
        let other = &read.documents[1];
        assert_eq!(other.old_url, None);
        assert_eq!(other.body, "a \\*b\\*");
        assert_eq!(
            other.date.unwrap().to_rfc3339(),
            "2020-03-01T00:00:00+00:00"
        );
        assert!(
            read.notes
                .iter()
                .any(|n| n.message.contains("no published"))
        );
        assert!(
            read.notes
                .iter()
                .any(|n| n.message.contains("another site"))
        );
    }

    #[test]
    fn reads_an_rss_item() {
        let feed = r#"<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><link>https://old.test</link>
<item>
  <title>Hello &lt;world&gt;</title>
  <link>https://old.test/hello_world/</link>
  <pubDate>Tue, 10 Jun 2003 04:00:00 GMT</pubDate>
  <category>Rust</category><category>web</category>
  <dc:creator>Bo</dc:creator>
  <description>The summary</description>
  <content:encoded><![CDATA[<p>Body &amp; soul</p>]]></content:encoded>
  <enclosure url="https://old.test/a.png" type="image/png" length="1"/>
</item>
</channel></rss>"#;
        let read = read(feed.as_bytes(), "rss.xml").unwrap();
        let doc = &read.documents[0];
        assert_eq!(doc.title, "Hello <world>");
        assert_eq!(doc.date.unwrap().to_rfc3339(), "2003-06-10T04:00:00+00:00");
        assert_eq!(doc.tags, ["Rust", "web"]);
        assert_eq!(doc.author.as_deref(), Some("Bo"));
        assert_eq!(doc.description.as_deref(), Some("The summary"));
        assert_eq!(doc.old_url.as_deref(), Some("/hello_world/"));
        assert_eq!(doc.image.as_deref(), Some("https://old.test/a.png"));
        assert!(doc.body.contains("soul"), "{}", doc.body);
    }

    #[test]
    fn refuses_what_is_not_a_feed() {
        let e = read(b"<html><body/></html>", "page.html").unwrap_err();
        assert!(e.to_string().contains("root element is <html>"), "{e}");
        let e = read(b"not xml", "x").unwrap_err();
        assert!(e.to_string().contains("not an Atom or RSS"), "{e}");
    }
}
