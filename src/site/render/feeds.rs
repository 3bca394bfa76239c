//! The feeds of the site and of each tag: Atom (templates/atom.xml).

use askama::Template;
use chrono::{DateTime, SecondsFormat, Utc};

use super::{DocKind, Document, Renderer};
use crate::site::content::Page;

/// Posts shown in feeds.
const FEED_ENTRIES: usize = 20;

#[derive(Template)]
#[template(path = "atom.xml")]
struct AtomTemplate<'a> {
    title: String,
    self_url: String,
    alternate_url: String,
    updated: String,
    author: &'a str,
    site_url: &'a str,
    entries: Vec<AtomEntry<'a>>,
}

struct AtomEntry<'a> {
    post: &'a Page,
    url: String,
    published: String,
    updated: String,
}

impl Renderer<'_> {
    pub(super) fn feed(
        &self,
        title: &str,
        self_path: &str,
        alternate_path: &str,
        posts: &[&Page],
    ) -> Document {
        let iso = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        let entries: Vec<AtomEntry> = posts
            .iter()
            .take(FEED_ENTRIES)
            .map(|post| AtomEntry {
                post,
                url: self.absolute(&post.url),
                published: post.date.map(iso).unwrap_or_default(),
                updated: post.last_changed().map(iso).unwrap_or_default(),
            })
            .collect();
        let updated = posts
            .iter()
            .filter_map(|p| p.last_changed())
            .max()
            .unwrap_or(self.now);
        let author = if self.site.author.is_empty() {
            &self.site.title
        } else {
            &self.site.author
        };
        let template = AtomTemplate {
            title: title.to_string(),
            self_url: self.absolute(self_path),
            alternate_url: self.absolute(alternate_path),
            updated: iso(updated),
            author,
            site_url: self.site.base_url.as_str(),
            entries,
        };
        Document {
            url: self_path.to_string(),
            kind: DocKind::Feed,
            body: template.render().expect("templates render to a String"),
        }
    }
}
