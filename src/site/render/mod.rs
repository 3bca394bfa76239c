//! Library -> documents: every page kind (home with pagination, posts, pages,
//! tags, archive, 404) through the askama templates in templates/, plus
//! sitemap.xml and robots.txt; `feeds` renders the feeds, `social` what a page
//! says about itself where it is shared. Pure: no I/O, no clock.

mod feeds;
mod social;

use std::collections::HashMap;

use askama::Template;
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use rayon::prelude::*;

pub use feeds::FeedFormat;
pub use social::Social;

use super::content::{Library, Page, Tag};
use super::snapshot::Route;
use crate::config::SiteConfig;

/// What a rendered document is, for content types and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Page,
    Feed(FeedFormat),
    Sitemap,
    Robots,
}

impl DocKind {
    pub fn content_type(self) -> &'static str {
        match self {
            DocKind::Page => "text/html; charset=utf-8",
            DocKind::Feed(format) => format.content_type(),
            DocKind::Sitemap => "application/xml; charset=utf-8",
            DocKind::Robots => "text/plain; charset=utf-8",
        }
    }
}

pub struct Document {
    pub url: String,
    pub kind: DocKind,
    pub body: String,
}

/// Site-wide links the layout needs.
pub struct Theme {
    pub style_url: String,
    pub highlight_url: String,
}

/// The shared frame of every HTML page (templates/base.html).
pub struct Layout<'a> {
    pub site: &'a SiteConfig,
    pub theme: &'a Theme,
    pub nav: &'a [NavLink],
    pub title: String,
    pub description: String,
    /// Absolute URL of this page; empty for the 404 page.
    pub canonical: String,
    /// Feeds advertised in `<head>`, the first one the page's own.
    pub feeds: Vec<FeedLink>,
    /// None for the 404 page, which has no address to share.
    pub social: Option<Social>,
    pub year: i32,
}

/// A `<link rel="alternate">` to a feed.
pub struct FeedLink {
    pub content_type: &'static str,
    pub title: String,
    pub url: String,
}

pub struct NavLink {
    pub url: String,
    pub title: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexTemplate<'a> {
    layout: Layout<'a>,
    posts: &'a [Page],
    page_number: usize,
    page_count: usize,
    newer_url: Option<String>,
    older_url: Option<String>,
}

#[derive(Template)]
#[template(path = "post.html")]
struct PostTemplate<'a> {
    layout: Layout<'a>,
    post: &'a Page,
    newer: Option<&'a Page>,
    older: Option<&'a Page>,
}

#[derive(Template)]
#[template(path = "page.html")]
struct PageTemplate<'a> {
    layout: Layout<'a>,
    page: &'a Page,
}

#[derive(Template)]
#[template(path = "tags.html")]
struct TagsTemplate<'a> {
    layout: Layout<'a>,
    tags: Vec<(&'a Tag, usize)>,
}

#[derive(Template)]
#[template(path = "tag.html")]
struct TagTemplate<'a> {
    layout: Layout<'a>,
    tag: &'a Tag,
    posts: Vec<&'a Page>,
}

#[derive(Template)]
#[template(path = "archive.html")]
struct ArchiveTemplate<'a> {
    layout: Layout<'a>,
    years: Vec<(i32, Vec<&'a Page>)>,
}

#[derive(Template)]
#[template(path = "404.html")]
struct NotFoundTemplate<'a> {
    layout: Layout<'a>,
}

#[derive(Template)]
#[template(path = "sitemap.xml")]
struct SitemapTemplate {
    urls: Vec<(String, Option<String>)>,
}

/// Template helpers on pages.
impl Page {
    pub fn date_display(&self) -> String {
        self.date
            .map(|d| d.format("%-d %B %Y").to_string())
            .unwrap_or_default()
    }

    pub fn date_iso(&self) -> String {
        self.date
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    }

    pub fn updated_display(&self) -> String {
        self.updated
            .map(|d| d.format("%-d %B %Y").to_string())
            .unwrap_or_default()
    }

    pub fn updated_iso(&self) -> String {
        self.updated
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    }

    pub fn reading_minutes(&self) -> usize {
        self.body.reading_minutes()
    }

    pub fn toc_indent(&self, level: &u8) -> u8 {
        let top = self.body.toc.iter().map(|t| t.level).min().unwrap_or(1);
        level.saturating_sub(top)
    }
}

pub struct Renderer<'a> {
    pub site: &'a SiteConfig,
    pub theme: &'a Theme,
    pub library: &'a Library,
    /// The static and content files, by path: images are measured from them.
    pub assets: &'a HashMap<String, Route>,
    /// Used where the site has no date of its own (an empty feed).
    pub now: DateTime<Utc>,
    pub nav: Vec<NavLink>,
}

impl<'a> Renderer<'a> {
    pub fn new(
        site: &'a SiteConfig,
        theme: &'a Theme,
        library: &'a Library,
        assets: &'a HashMap<String, Route>,
        now: DateTime<Utc>,
    ) -> Self {
        // Top-level pages (/about/, not /docs/setup/) make the navigation.
        let nav = library
            .pages
            .iter()
            .filter(|p| p.url.matches('/').count() == 2)
            .map(|p| NavLink {
                url: p.url.clone(),
                title: p.title.clone(),
            })
            .collect();
        Renderer {
            site,
            theme,
            library,
            assets,
            now,
            nav,
        }
    }

    /// `path` is an href (`Page::url`, `Tag::url`: already percent-encoded),
    /// so the absolute URL is encoded too.
    fn absolute(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.site.base_url.as_str().trim_end_matches('/'),
            path
        )
    }

    /// The frame of a page at `path` ("" for the 404 page), shared as the
    /// site is; posts and pages replace `social` with their own.
    fn layout(&self, title: &str, description: Option<&str>, path: &str) -> Layout<'_> {
        let full_title = if title.is_empty() || title == self.site.title {
            self.site.title.clone()
        } else {
            format!("{title} · {}", self.site.title)
        };
        let description = description.unwrap_or(&self.site.description).to_string();
        let canonical = if path.is_empty() {
            String::new()
        } else {
            self.absolute(path)
        };
        let social =
            (!path.is_empty()).then(|| self.website(title, &description, canonical.clone()));
        Layout {
            site: self.site,
            theme: self.theme,
            nav: &self.nav,
            title: full_title,
            description,
            canonical,
            feeds: self.feed_links(&self.site.title, "/"),
            social,
            year: self.now.year(),
        }
    }

    /// The frame of a post or page, with its own sharing metadata.
    fn page_layout(&self, page: &Page) -> Layout<'_> {
        let social = self.social(page);
        let mut layout = self.layout(&page.title, Some(&social.description), &page.url);
        layout.social = Some(social);
        layout
    }

    /// Every document of the site.
    pub fn render_all(&self) -> Vec<Document> {
        let lib = self.library;
        let mut docs: Vec<Document> = lib
            .posts
            .par_iter()
            .enumerate()
            .map(|(i, post)| {
                self.post(
                    post,
                    i.checked_sub(1).map(|n| &lib.posts[n]),
                    lib.posts.get(i + 1),
                )
            })
            .collect();
        docs.extend(lib.pages.iter().map(|p| self.page(p)));
        docs.extend(self.home_pages());
        docs.push(self.tags_index());
        // Each tag has a page and three feeds of full posts: together as
        // much work as the posts themselves, so spread over the cores too.
        let tags: Vec<&(Tag, Vec<usize>)> = lib.tags.values().collect();
        let per_tag: Vec<Vec<Document>> = tags
            .par_iter()
            .map(|(tag, posts)| {
                let posts: Vec<&Page> = posts.iter().map(|&i| &lib.posts[i]).collect();
                let mut docs = vec![self.tag_page(tag, &posts)];
                docs.extend(self.feeds(&self.tag_feed_title(tag), &tag.url(), &posts));
                docs
            })
            .collect();
        docs.extend(per_tag.into_iter().flatten());
        docs.push(self.archive());
        let all: Vec<&Page> = lib.posts.iter().collect();
        docs.extend(self.feeds(&self.site.title, "/", &all));
        docs.push(self.sitemap(&docs));
        docs.push(Document {
            url: "/robots.txt".into(),
            kind: DocKind::Robots,
            body: format!(
                "User-agent: *\nAllow: /\n\nSitemap: {}\n",
                self.absolute("/sitemap.xml")
            ),
        });
        docs
    }

    fn html(url: String, template: &impl Template) -> Document {
        Document {
            url,
            kind: DocKind::Page,
            // Rendering only fails if a Display impl fails; ours write to strings.
            body: template.render().expect("templates render to a String"),
        }
    }

    fn post(&self, post: &Page, newer: Option<&Page>, older: Option<&Page>) -> Document {
        let layout = self.page_layout(post);
        Self::html(
            post.url.clone(),
            &PostTemplate {
                layout,
                post,
                newer,
                older,
            },
        )
    }

    fn page(&self, page: &Page) -> Document {
        let layout = self.page_layout(page);
        Self::html(page.url.clone(), &PageTemplate { layout, page })
    }

    fn home_pages(&self) -> Vec<Document> {
        let per_page = self.site.posts_per_page.get();
        let posts = &self.library.posts;
        let page_count = posts.len().div_ceil(per_page).max(1);
        let url_of = |n: usize| {
            if n == 1 {
                "/".to_string()
            } else {
                format!("/page/{n}/")
            }
        };
        (1..=page_count)
            .map(|n| {
                let start = (n - 1) * per_page;
                let chunk = &posts[start.min(posts.len())..(start + per_page).min(posts.len())];
                let title = if n == 1 {
                    String::new()
                } else {
                    format!("Page {n}")
                };
                let template = IndexTemplate {
                    layout: self.layout(&title, None, &url_of(n)),
                    posts: chunk,
                    page_number: n,
                    page_count,
                    newer_url: (n > 1).then(|| url_of(n - 1)),
                    older_url: (n < page_count).then(|| url_of(n + 1)),
                };
                Self::html(url_of(n), &template)
            })
            .collect()
    }

    fn tags_index(&self) -> Document {
        let tags = self
            .library
            .tags
            .values()
            .map(|(tag, posts)| (tag, posts.len()))
            .collect();
        Self::html(
            "/tags/".into(),
            &TagsTemplate {
                layout: self.layout("Tags", None, "/tags/"),
                tags,
            },
        )
    }

    fn tag_page(&self, tag: &Tag, posts: &[&Page]) -> Document {
        let mut layout = self.layout(&format!("Posts tagged “{}”", tag.name), None, &tag.url());
        let site_feeds = std::mem::take(&mut layout.feeds);
        layout.feeds = self.feed_links(&self.tag_feed_title(tag), &tag.url());
        layout.feeds.extend(site_feeds);
        Self::html(
            tag.url(),
            &TagTemplate {
                layout,
                tag,
                posts: posts.to_vec(),
            },
        )
    }

    fn archive(&self) -> Document {
        let mut years: Vec<(i32, Vec<&Page>)> = Vec::new();
        for post in &self.library.posts {
            let year = post.date.map_or(0, |d| d.year());
            match years.last_mut() {
                Some((y, posts)) if *y == year => posts.push(post),
                _ => years.push((year, vec![post])),
            }
        }
        Self::html(
            "/archive/".into(),
            &ArchiveTemplate {
                layout: self.layout("Archive", None, "/archive/"),
                years,
            },
        )
    }

    /// The page served with status 404.
    pub fn not_found(&self) -> String {
        NotFoundTemplate {
            layout: self.layout("Page not found", None, ""),
        }
        .render()
        .expect("templates render to a String")
    }

    fn sitemap(&self, docs: &[Document]) -> Document {
        let lastmod: std::collections::HashMap<&str, String> = self
            .library
            .posts
            .iter()
            .chain(&self.library.pages)
            .filter_map(|p| {
                Some((
                    p.url.as_str(),
                    p.last_changed()?.format("%Y-%m-%d").to_string(),
                ))
            })
            .collect();
        let urls = docs
            .iter()
            .filter(|d| d.kind == DocKind::Page)
            .map(|d| (self.absolute(&d.url), lastmod.get(d.url.as_str()).cloned()))
            .collect();
        Document {
            url: "/sitemap.xml".into(),
            kind: DocKind::Sitemap,
            body: SitemapTemplate { urls }
                .render()
                .expect("templates render to a String"),
        }
    }
}
