//! `quire import`: a blog from elsewhere (an Atom or RSS feed, a Hugo, Zola or
//! Jekyll folder) into quire's content/, keeping every old URL. One stage per
//! file: `detect` says what SOURCE is; `feed`, `hugo`, `zola` and `jekyll`
//! read it into [`Document`]s (foreign front matter through `foreign`);
//! `plan` decides each document's file, slug and aliases (`urls` knows the
//! generators' URL rules), renders shortcodes (`shortcodes`) and finds its
//! images (`images`); `writer` writes, never over an existing file; `fetch`
//! is the only network access (a feed URL, `--fetch-images`). Everything the
//! import could not map lands in the [`Report`] with its file:line.

mod detect;
mod feed;
mod fetch;
mod foreign;
pub mod html;
mod hugo;
mod images;
mod jekyll;
mod plan;
mod shortcodes;
mod urls;
mod writer;
mod zola;

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use detect::SourceKind;
pub use fetch::FetchError;

/// Where quire serves a post with this slug and date: `[site] post_url`.
pub type PostUrl<'a> = &'a (dyn Fn(&str, DateTime<Utc>) -> String + Sync);

/// What the user asked for.
pub struct Options<'a> {
    /// The content folder to write into.
    pub into: PathBuf,
    /// Download remote images into the posts' folders.
    pub fetch_images: bool,
    pub post_url: PostUrl<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Post,
    Page,
}

/// Which template language a body's shortcodes are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Hugo,
    Zola,
    Jekyll,
    None,
}

/// A post or page as the source had it, mapped to quire's fields.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: Kind,
    /// Where it came from, for the report: a file (relative to SOURCE) or a
    /// feed entry's link.
    pub origin: String,
    /// The source file, when it is one: relative links and images resolve
    /// from its folder.
    pub source_file: Option<PathBuf>,
    pub title: String,
    pub date: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub draft: bool,
    pub author: Option<String>,
    pub image: Option<String>,
    /// The path the old site served it at, percent-encoded as in a link.
    pub old_url: Option<String>,
    /// The old site's redirects to it.
    pub aliases: Vec<String>,
    /// The name the source gives it (slug, else file name), for its new slug.
    pub name: String,
    /// For a page: its path under content/ without `.md` ("about", "docs/x").
    pub page_path: String,
    pub body: String,
    /// Line of the body's first line in the source file.
    pub body_line: usize,
    pub dialect: Dialect,
    /// Files beside it in its bundle: (source file, name in the bundle).
    pub bundle: Vec<(PathBuf, String)>,
}

impl Document {
    fn new(kind: Kind, origin: String, dialect: Dialect) -> Document {
        Document {
            kind,
            origin,
            source_file: None,
            title: String::new(),
            date: None,
            updated: None,
            description: None,
            tags: Vec::new(),
            draft: false,
            author: None,
            image: None,
            old_url: None,
            aliases: Vec::new(),
            name: String::new(),
            page_path: String::new(),
            body: String::new(),
            body_line: 1,
            dialect,
            bundle: Vec::new(),
        }
    }
}

/// Something the import could not carry over exactly, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: String,
    /// 0 when it concerns the whole file or entry.
    pub line: usize,
    pub message: String,
}

impl Note {
    pub fn new(at: impl Into<String>, line: usize, message: impl Into<String>) -> Note {
        Note {
            at: at.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.at, self.message)
        } else {
            write!(f, "{}:{}: {}", self.at, self.line, self.message)
        }
    }
}

/// What one import did.
#[derive(Debug, Default)]
pub struct Report {
    pub kind: Option<SourceKind>,
    pub posts: usize,
    pub pages: usize,
    pub drafts: usize,
    /// Aliases written: old URLs that redirect to the new one.
    pub redirects: usize,
    pub images_copied: usize,
    pub images_fetched: usize,
    /// Remote images left where they are: (where referenced, URL).
    pub images_remote: Vec<Note>,
    /// Files written this run, relative to the content folder.
    pub written: Vec<String>,
    /// Files already there with the same content.
    pub unchanged: Vec<String>,
    /// Files already there with other content: left alone.
    pub conflicts: Vec<String>,
    /// Everything not mapped, with file:line.
    pub unmapped: Vec<Note>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0} does not exist; give a feed file, a feed URL or a Hugo, Zola or Jekyll folder")]
    Missing(String),
    #[error(
        "{0} is a folder but not a Hugo, Zola or Jekyll site (no hugo.toml/config.toml with content/, no _config.yml or _posts/); point at the site's root folder"
    )]
    UnknownFolder(String),
    #[error("cannot read {path}: {source}; check that it exists and is readable")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("{at}: not an Atom or RSS 2.0 feed ({why}); give the feed's own URL or file")]
    NotAFeed { at: String, why: String },
    #[error("cannot create {path}: {source}; check that the folder is writable")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Imports `source` (a feed file or URL, or a site folder) into `options.into`.
pub fn run(source: &str, options: &Options) -> Result<Report, ImportError> {
    let kind = detect::detect(source)?;
    let mut report = Report {
        kind: Some(kind.clone()),
        ..Report::default()
    };
    let read = match &kind {
        SourceKind::FeedUrl(url) => {
            let bytes = fetch::get(url, fetch::Wanted::Feed)?;
            feed::read(&bytes, url.as_str())?
        }
        SourceKind::FeedFile(path) => {
            let bytes = foreign::read_bounded(path).map_err(|source| ImportError::Read {
                path: path.display().to_string(),
                source,
            })?;
            feed::read(&bytes, &path.display().to_string())?
        }
        SourceKind::Hugo(root) => hugo::read(root)?,
        SourceKind::Zola(root) => zola::read(root)?,
        SourceKind::Jekyll(root) => jekyll::read(root)?,
    };
    report.unmapped.extend(read.notes);
    let files = plan::plan(read.documents, &read.static_roots, options, &mut report);
    writer::write(&options.into, files, &mut report)?;
    report
        .unmapped
        .sort_by(|a, b| (&a.at, a.line).cmp(&(&b.at, b.line)));
    Ok(report)
}

/// What a reader found in the source.
#[derive(Debug, Default)]
pub struct Read {
    pub documents: Vec<Document>,
    /// Folders that root-relative paths (`/images/x.png`) resolve into, in
    /// the order the generator looks: static/, assets/, the site's root.
    pub static_roots: Vec<PathBuf>,
    pub notes: Vec<Note>,
}

/// `path` relative to `root`, `/`-separated, for notes and origins.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}
