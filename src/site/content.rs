//! Loading content/: markdown files become posts (under posts/, a page bundle
//! posts/<name>/index.md among them) and pages (anywhere else), every other
//! file is an asset served at its path. Owns where each file is published
//! (by `permalink`'s rules, `[site] post_url` and front matter `path`), dates
//! from file names, drafts and scheduling, tags and duplicate URLs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, NaiveDate, Utc};
use rayon::prelude::*;

use super::frontmatter::{self, FrontMatter};
use super::href::encode_path;
use super::image::{self, ImageRef};
use super::markdown::{self, Links, Rendered, slugify};
use super::permalink::{Slug, UrlPath};
use super::problem::Problem;
use super::walk::{Listing, unreadable, walk};
use crate::config::PostUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    Post,
    Page,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub slug: String,
}

impl Tag {
    /// An href, as [`Page::url`].
    pub fn url(&self) -> String {
        encode_path(&format!("/tags/{}/", self.slug))
    }
}

/// A post or standalone page, ready for templates.
#[derive(Debug)]
pub struct Page {
    pub kind: PageKind,
    /// Path relative to content/, `/`-separated.
    pub source: String,
    /// The href templates print: ASCII, percent-encoded.
    pub url: String,
    /// The same path decoded: the key of its route.
    pub route: String,
    pub title: String,
    /// Always set for posts.
    pub date: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub draft: bool,
    pub show_toc: bool,
    /// Decoded paths that redirect here.
    pub aliases: Vec<String>,
    pub body: Rendered,
    /// Front matter `image`, resolved.
    pub image: Option<ImageRef>,
    pub image_alt: Option<String>,
    /// Front matter `author`; the site's author otherwise.
    pub author: Option<String>,
}

impl Page {
    /// When the page last changed: `updated`, else `date`.
    pub fn last_changed(&self) -> Option<DateTime<Utc>> {
        self.updated.or(self.date)
    }
}

/// A non-markdown file under content/ or static/.
#[derive(Debug, Clone)]
pub struct AssetFile {
    pub url: String,
    pub path: PathBuf,
    pub modified: SystemTime,
    /// When the inode last changed (seconds, nanoseconds): unlike `modified`,
    /// a chmod moves it, and a file made unreadable must be read again to
    /// find out.
    pub changed: (i64, i64),
    pub len: u64,
}

impl AssetFile {
    pub fn new(url: String, path: PathBuf, meta: &std::fs::Metadata) -> AssetFile {
        AssetFile {
            url,
            path,
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            changed: (meta.ctime(), meta.ctime_nsec()),
            len: meta.len(),
        }
    }
}

/// Everything content/ holds that readers may see right now.
#[derive(Debug, Default)]
pub struct Library {
    /// Newest first.
    pub posts: Vec<Page>,
    pub pages: Vec<Page>,
    /// By tag slug; values index into `posts`, newest first.
    pub tags: BTreeMap<String, (Tag, Vec<usize>)>,
    pub assets: Vec<AssetFile>,
    /// Folders of content/ that could not be listed.
    pub unreadable: Vec<PathBuf>,
    /// The text of every markdown file as read, by path, so that a later
    /// build can keep a file it cannot read.
    pub sources: HashMap<PathBuf, Arc<str>>,
    /// The earliest date at which a scheduled post becomes visible.
    pub next_publish: Option<DateTime<Utc>>,
    pub problems: Vec<Problem>,
}

/// What decides which pages are visible.
pub struct Visibility {
    pub now: DateTime<Utc>,
    pub drafts: bool,
}

struct Source {
    rel: String,
    path: PathBuf,
    text: Arc<str>,
}

/// Markdown files of the previous build in folders that could not be listed
/// this time stay, as they were read.
fn keep_hidden(
    folders: &Folders,
    listing: &Listing,
    listed: &HashSet<PathBuf>,
    sources: &mut Vec<Source>,
) {
    let Some(previous) = folders.previous else {
        return;
    };
    let mut kept: Vec<Source> = previous
        .iter()
        .filter(|(path, _)| listing.hides(path) && !listed.contains(*path))
        .filter_map(|(path, text)| {
            let rel = path.strip_prefix(folders.content).ok()?.to_str()?;
            Some(Source {
                rel: rel.to_string(),
                path: path.clone(),
                text: text.clone(),
            })
        })
        .collect();
    sources.append(&mut kept);
    // The order of the walk, so that duplicate slugs resolve as they did.
    sources.sort_by(|a, b| Path::new(&a.rel).cmp(Path::new(&b.rel)));
}

/// Splits a `YYYY-MM-DD-slug` file stem into its date and the rest.
fn date_prefix(stem: &str) -> Option<(NaiveDate, &str)> {
    let date = NaiveDate::parse_from_str(stem.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = &stem[10..];
    match rest.strip_prefix('-') {
        Some(rest) => Some((date, rest)),
        None if rest.is_empty() => Some((date, "")),
        None => None,
    }
}

struct Meta {
    source: Source,
    front: FrontMatter,
    body_start: usize,
    body_line: usize,
    kind: PageKind,
    /// Decoded: the key of the page's route.
    route: String,
    /// Decoded, as routes.
    aliases: Vec<String>,
    date: Option<DateTime<Utc>>,
    image_line: usize,
}

/// Where content/ is, what it must never publish, and what the last build read.
pub struct Folders<'a> {
    pub content: &'a Path,
    pub data: &'a Path,
    /// Markdown texts of the previous build, by path.
    pub previous: Option<&'a HashMap<PathBuf, Arc<str>>>,
}

/// Reads content/ into a [`Library`], reporting and skipping broken files. A
/// file or folder that cannot be read keeps its previous text, if any: a
/// permission slip must not unpublish what readers had.
pub fn load(folders: &Folders, post_url: &PostUrl, visibility: &Visibility) -> Library {
    let mut library = Library::default();
    let mut listing = walk(folders.content, folders.data, &mut library.problems);
    let mut sources = Vec::new();
    let mut listed = HashSet::new();
    let previous_text = |path: &Path| folders.previous.and_then(|p| p.get(path)).cloned();
    for (rel, path, meta) in std::mem::take(&mut listing.files) {
        listed.insert(path.clone());
        if rel.ends_with(".md") {
            match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => sources.push(Source {
                        rel,
                        path,
                        text: text.into(),
                    }),
                    Err(e) => library.problems.push(Problem::new(
                        path,
                        0,
                        format!(
                            "is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                            e.utf8_error().valid_up_to()
                        ),
                    )),
                },
                Err(e) => {
                    let mut message = unreadable(&path, &e, false);
                    if let Some(text) = previous_text(&path) {
                        message.push_str("; until then the version read before stays published");
                        sources.push(Source {
                            rel,
                            path: path.clone(),
                            text,
                        });
                    }
                    library.problems.push(Problem::new(path, 0, message));
                }
            }
        } else {
            library
                .assets
                .push(AssetFile::new(format!("/{rel}"), path, &meta));
        }
    }
    keep_hidden(folders, &listing, &listed, &mut sources);
    library.unreadable = listing.unreadable;
    library.sources = sources
        .iter()
        .map(|s| (s.path.clone(), s.text.clone()))
        .collect();

    let parsed: Vec<Result<Meta, Vec<Problem>>> = sources
        .into_par_iter()
        .map(|source| read_meta(source, post_url))
        .collect();
    let mut metas = Vec::new();
    for result in parsed {
        match result {
            Ok(meta) => metas.push(meta),
            Err(problems) => library.problems.extend(problems),
        }
    }

    // Two files on one URL: the first by path keeps it (readers keep what
    // they had), and the problem names both.
    let mut owners: HashMap<String, String> = HashMap::new();
    metas.retain(|m| match owners.get(&m.route) {
        Some(owner) => {
            library.problems.push(Problem::new(
                m.source.path.clone(),
                1,
                format!(
                    "duplicate URL: {} is the URL of both content/{owner} and content/{}; set `slug` or `path` in one of them",
                    encode_path(&m.route),
                    m.source.rel
                ),
            ));
            false
        }
        None => {
            owners.insert(m.route.clone(), m.source.rel.clone());
            true
        }
    });
    let page_urls: HashMap<String, String> = metas
        .iter()
        .map(|m| (m.source.rel.clone(), encode_path(&m.route)))
        .collect();

    metas.retain(|m| {
        if m.front.draft && !visibility.drafts {
            return false;
        }
        match m.date {
            Some(date) if date > visibility.now => {
                library.next_publish = Some(library.next_publish.map_or(date, |n| n.min(date)));
                false
            }
            _ => true,
        }
    });

    let rendered: Vec<(Page, Vec<Problem>)> = metas
        .into_par_iter()
        .map(|m| render_page(m, &page_urls))
        .collect();
    for (page, problems) in rendered {
        library.problems.extend(problems);
        match page.kind {
            PageKind::Post => library.posts.push(page),
            PageKind::Page => library.pages.push(page),
        }
    }
    library
        .posts
        .sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.source.cmp(&b.source)));
    library.pages.sort_by(|a, b| a.route.cmp(&b.route));
    for (index, post) in library.posts.iter().enumerate() {
        for tag in &post.tags {
            let entry = library
                .tags
                .entry(tag.slug.clone())
                .or_insert_with(|| (tag.clone(), Vec::new()));
            entry.1.push(index);
        }
    }
    library
}

/// The file's front matter and where it is published, or every problem that
/// keeps it from being published.
fn read_meta(source: Source, post_url: &PostUrl) -> Result<Meta, Vec<Problem>> {
    let problem = |line, message: String| Problem::new(source.path.clone(), line, message);
    let parsed = frontmatter::parse(&source.text).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| problem(e.line, e.message))
            .collect::<Vec<_>>()
    })?;
    let mut problems: Vec<Problem> = parsed
        .problems
        .iter()
        .map(|e| problem(e.line, e.message.clone()))
        .collect();
    let body_start = source.text.len() - parsed.body.len();
    let front = &parsed.front;

    let (folder, file) = source.rel.rsplit_once('/').unwrap_or(("", &source.rel));
    let stem = file.strip_suffix(".md").unwrap_or(file);
    let kind = if source.rel.starts_with("posts/") {
        PageKind::Post
    } else {
        PageKind::Page
    };
    // A page bundle, posts/<name>/index.md, is named by its folder.
    let name = match folder.rsplit_once('/') {
        Some((_, bundle)) if kind == PageKind::Post && stem == "index" => bundle,
        _ => stem,
    };
    let (file_date, file_slug) = match (kind, date_prefix(name)) {
        (PageKind::Post, Some((date, rest))) => (Some(date), rest),
        _ => (None, name),
    };
    let slug = match &front.slug {
        Some(text) => match Slug::parse(text) {
            Ok(slug) => Some(slug),
            Err(e) => {
                problems.push(problem(parsed.line_of("slug"), e.to_string()));
                None
            }
        },
        None => Slug::from_name(file_slug),
    };
    let path = match &front.path {
        Some(text) => match UrlPath::parse(text) {
            Ok(path) if path.as_str() == "/" => {
                problems.push(problem(
                    parsed.line_of("path"),
                    "path `/` is the home page; give the page its own path, such as \"/about/\""
                        .into(),
                ));
                None
            }
            Ok(path) => Some(path),
            Err(e) => {
                problems.push(problem(parsed.line_of("path"), format!("path {e}")));
                None
            }
        },
        None => None,
    };
    let date = front
        .date
        .map(|d| d.0)
        .or_else(|| file_date.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
    if kind == PageKind::Post && date.is_none() && !parsed.refused("date") {
        problems.push(problem(
            parsed.line_of("date"),
            "the post has no date; add `date = 2026-03-14` to the front matter or name the file 2026-03-14-title.md".into(),
        ));
    }
    let refused = parsed.refused("slug") || parsed.refused("path");
    let url = match (path, kind) {
        (Some(path), _) => Some(path.into_string()),
        _ if refused || front.path.is_some() || (front.slug.is_some() && slug.is_none()) => None,
        (None, PageKind::Post) => match (slug, date) {
            (Some(slug), Some(date)) => Some(post_url.resolve(slug.as_str(), date)),
            (Some(_), None) => None,
            (None, _) => {
                problems.push(problem(
                    1,
                    "the post has no slug; name the file YYYY-MM-DD-some-title.md or set `slug`"
                        .into(),
                ));
                None
            }
        },
        (None, PageKind::Page) => {
            let mut parts: Vec<String> = folder
                .split('/')
                .filter_map(Slug::from_name)
                .map(|s| s.as_str().to_string())
                .collect();
            let named = stem != "index" || front.slug.is_some();
            match slug {
                Some(slug) if named => parts.push(slug.as_str().to_string()),
                None if named => problems.push(problem(
                    1,
                    "the file name has no letter or digit to make a URL of; rename the file or set `slug`".into(),
                )),
                _ => {}
            }
            if !problems.is_empty() {
                None
            } else if parts.is_empty() {
                problems.push(problem(1, "content/index.md would replace the home page; rename the file, e.g. to about.md, or set `path`".into()));
                None
            } else {
                Some(format!("/{}/", parts.join("/")))
            }
        }
    };
    let mut aliases = Vec::new();
    for alias in &front.aliases {
        match UrlPath::parse(alias) {
            Ok(path) => aliases.push(path.into_string()),
            Err(e) => problems.push(problem(
                parsed.line_of("aliases"),
                format!("alias {e}; an alias is an absolute path such as \"/old/hello/\""),
            )),
        }
    }
    let body_line = parsed.body_line;
    let image_line = parsed.line_of("image");
    let front = parsed.front;
    match url {
        Some(route) if problems.is_empty() => Ok(Meta {
            source,
            front,
            body_start,
            body_line,
            kind,
            route,
            aliases,
            date,
            image_line,
        }),
        _ => {
            problems.sort_by_key(|p| p.line);
            Err(problems)
        }
    }
}

fn render_page(meta: Meta, page_urls: &HashMap<String, String>) -> (Page, Vec<Problem>) {
    let source_dir = meta.source.rel.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut body = markdown::render(
        &meta.source.text[meta.body_start..],
        meta.body_line,
        &Links {
            source_dir,
            page_urls,
        },
    );
    let mut problems: Vec<Problem> = body
        .problems
        .iter()
        .map(|(line, message)| Problem::new(meta.source.path.clone(), *line, message.clone()))
        .collect();
    let front = meta.front;
    let image = front.image.as_deref().and_then(|dest| {
        match image::resolve(dest, meta.image_line, source_dir) {
            Ok((image, reference)) => {
                // Checked with the body's images: a missing file is reported.
                body.references.extend(reference);
                Some(image)
            }
            Err(message) => {
                problems.push(Problem::new(
                    meta.source.path.clone(),
                    meta.image_line,
                    message,
                ));
                None
            }
        }
    });
    let mut tags: Vec<Tag> = Vec::new();
    for name in front.tags {
        let slug = slugify(&name);
        if !slug.is_empty() && !tags.iter().any(|t| t.slug == slug) {
            tags.push(Tag { name, slug });
        }
    }
    let page = Page {
        kind: meta.kind,
        source: meta.source.rel,
        url: encode_path(&meta.route),
        route: meta.route,
        title: front.title,
        date: meta.date,
        updated: front.updated.map(|u| u.0),
        description: front.description.filter(|d| !d.trim().is_empty()),
        tags,
        draft: front.draft,
        show_toc: front.toc,
        aliases: meta.aliases,
        body,
        image,
        image_alt: front.image_alt.filter(|a| !a.trim().is_empty()),
        author: front.author.filter(|a| !a.trim().is_empty()),
    };
    (page, problems)
}

#[cfg(test)]
mod tests;
