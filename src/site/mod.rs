//! The site: content/ and static/ in, a [`SiteSnapshot`] out. One stage per file:
//! `frontmatter` and `markdown` read a file, `content` loads the library
//! (`permalink` decides which slugs and paths are valid, `href` encodes them),
//! `render` fills the templates (`image` finds the picture a shared page
//! shows), `assets` loads static files (`walk` decides
//! which files of a folder may be published), `snapshot` packs
//! everything for serving; `watcher` rebuilds on change (and keeps `served`,
//! the record of the URLs it served, which `quire check` compares a new
//! build with) and `new_post` writes drafts. [`build`] runs the stages in
//! order and checks what they made: URLs that clash, aliases, references.

pub mod assets;
pub mod content;
pub mod frontmatter;
pub mod highlight;
pub mod href;
pub mod image;
pub mod markdown;
pub mod new_post;
pub mod permalink;
pub mod problem;
pub mod render;
pub mod served;
pub mod snapshot;
pub mod walk;
pub mod watcher;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::config::{Config, SiteConfig};
pub use problem::Problem;
use render::{DocKind, Renderer, Theme};
use snapshot::{BuildSummary, CachePolicy};
pub use snapshot::{LiveSite, Resource, ResourceKind, Route, SiteSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "content folder {0} does not exist; create it (quire new \"My first post\" does) or set [paths] content in the config"
    )]
    MissingContent(PathBuf),
}

/// What a build reads, taken from the [`Config`].
#[derive(Debug, Clone)]
pub struct BuildInputs {
    pub site: SiteConfig,
    pub content: PathBuf,
    pub static_dir: PathBuf,
    /// Never published, even when it lies inside content/ or static/.
    pub data: PathBuf,
    pub drafts: bool,
}

impl BuildInputs {
    pub fn from_config(config: &Config) -> BuildInputs {
        BuildInputs {
            site: config.site.clone(),
            content: config.paths.content.clone(),
            static_dir: config.paths.static_dir.clone(),
            data: config.paths.data.clone(),
            drafts: config.drafts,
        }
    }
}

/// Builds the whole site as of `now`. `previous` lets unchanged files and pages
/// skip reading and compression. Broken files become problems, not failures.
pub fn build(
    inputs: &BuildInputs,
    now: DateTime<Utc>,
    previous: Option<&SiteSnapshot>,
) -> Result<SiteSnapshot, BuildError> {
    let started = Instant::now();
    if !inputs.content.is_dir() {
        return Err(BuildError::MissingContent(inputs.content.clone()));
    }
    // Loading the syntax definitions takes a while; overlap it with reading files.
    rayon::spawn(highlight::preload);
    let mut library = content::load(
        &content::Folders {
            content: &inputs.content,
            data: &inputs.data,
            previous: previous.map(|p| &p.sources),
        },
        &inputs.site.post_url,
        &content::Visibility {
            now,
            drafts: inputs.drafts,
        },
    );
    let loaded_at = started.elapsed();
    let mut problems = std::mem::take(&mut library.problems);
    let reusable = previous.map(SiteSnapshot::reusable).unwrap_or_default();
    let reuse = |digest: &str| reusable.get(digest).cloned();

    let loaded = assets::load(
        &assets::Sources {
            static_dir: &inputs.static_dir,
            data: &inputs.data,
            content_assets: &library.assets,
            content_unreadable: &library.unreadable,
        },
        previous.map(|p| &p.files),
        &reuse,
        &mut problems,
    );
    let mut routes: HashMap<String, Route> = loaded.routes;
    let theme = Theme {
        style_url: loaded
            .fingerprinted
            .get("/style.css")
            .cloned()
            .unwrap_or_else(|| "/style.css".into()),
        highlight_url: loaded
            .fingerprinted
            .get("/highlight.css")
            .cloned()
            .unwrap_or_else(|| "/highlight.css".into()),
    };

    let assets_at = started.elapsed();
    let renderer = Renderer::new(&inputs.site, &theme, &library, &routes, now);
    let documents = renderer.render_all();
    let not_found_page = renderer.not_found();
    let rendered_at = started.elapsed();
    let document_count = documents.len();
    let packed: Vec<(String, Arc<Resource>)> = documents
        .into_par_iter()
        .map(|doc| {
            let kind = match doc.kind {
                DocKind::Page => ResourceKind::Page,
                DocKind::Feed(_) => ResourceKind::Feed,
                DocKind::Sitemap | DocKind::Robots => ResourceKind::Meta,
            };
            let resource = Resource::new(
                kind,
                doc.kind.content_type().into(),
                Bytes::from(doc.body),
                None,
                &reuse,
            );
            // Documents carry hrefs; routes are keyed decoded.
            (href::decode_path(&doc.url), resource)
        })
        .collect();
    tracing::debug!(
        load_ms = loaded_at.as_millis() as u64,
        assets_ms = (assets_at - loaded_at).as_millis() as u64,
        render_ms = (rendered_at - assets_at).as_millis() as u64,
        pack_ms = (started.elapsed() - rendered_at).as_millis() as u64,
        "build stages"
    );
    let owners: HashMap<&str, &str> = library
        .posts
        .iter()
        .chain(&library.pages)
        .map(|p| (p.route.as_str(), p.source.as_str()))
        .collect();
    let mut generated = std::collections::HashSet::new();
    for (url, resource) in packed {
        if !generated.insert(url.clone()) {
            // A post or page on the URL of a page quire makes (a tag, the
            // archive, a feed): the later document won.
            if let Some(source) = owners.get(url.as_str()) {
                problems.push(Problem::new(
                    inputs.content.join(source),
                    1,
                    format!(
                        "{} is also a page quire generates (tags, archive, home pages, feeds), which wins; set `slug` or `path` to publish this one elsewhere",
                        href::encode_path(&url)
                    ),
                ));
            }
        } else if routes.contains_key(&url) {
            problems.push(Problem::new(
                inputs.static_dir.join(url.trim_start_matches('/')),
                0,
                format!("{url} is also a generated page, which wins; rename or remove the file"),
            ));
        }
        routes.insert(
            url,
            Route::Resource {
                resource,
                cache: CachePolicy::Revalidate,
            },
        );
    }

    routes.insert("/page/1/".into(), Route::Redirect("/".into()));
    let mut served = served::Record::default();
    for page in library.posts.iter().chain(&library.pages) {
        served.insert(page.url.clone(), page.source.clone());
    }
    let mut alias_owners: HashMap<&str, &str> = HashMap::new();
    for page in library.posts.iter().chain(&library.pages) {
        for alias in &page.aliases {
            match alias_problem(page, alias, &routes, &owners, &alias_owners) {
                Some(message) => {
                    problems.push(Problem::new(inputs.content.join(&page.source), 0, message))
                }
                None => {
                    routes.insert(alias.clone(), Route::Redirect(page.url.clone()));
                    alias_owners.insert(alias, &page.source);
                    served.insert(href::encode_path(alias), page.source.clone());
                }
            }
        }
    }
    check_references(&library, &inputs.content, &routes, &mut problems);

    let not_found = Resource::new(
        ResourceKind::NotFound,
        DocKind::Page.content_type().into(),
        Bytes::from(not_found_page),
        None,
        &reuse,
    );
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    let summary = BuildSummary {
        posts: library.posts.len(),
        pages: library.pages.len(),
        documents: document_count,
        assets: loaded.files.len(),
        problems,
        took: started.elapsed(),
        next_publish: library.next_publish,
    };
    Ok(SiteSnapshot {
        routes,
        not_found,
        summary,
        files: loaded.files,
        sources: std::mem::take(&mut library.sources),
        served,
    })
}

/// Why `alias` of `page` cannot redirect, naming the file it would clash
/// with when there is one.
fn alias_problem(
    page: &content::Page,
    alias: &str,
    routes: &HashMap<String, Route>,
    owners: &HashMap<&str, &str>,
    alias_owners: &HashMap<&str, &str>,
) -> Option<String> {
    let href = href::encode_path(alias);
    if alias == page.route {
        return Some(format!(
            "alias {href} is the page's own URL; remove the alias"
        ));
    }
    if let Some(owner) = owners.get(alias) {
        return Some(format!(
            "alias {href} would shadow content/{owner}, which is published there; remove the alias from content/{}, or move content/{owner} with `slug` or `path`",
            page.source
        ));
    }
    if let Some(owner) = alias_owners.get(alias) {
        return Some(format!(
            "alias {href} is also an alias of content/{owner}; keep it in one of content/{owner} and content/{}",
            page.source
        ));
    }
    routes.contains_key(alias).then(|| {
        format!("alias {href} is already a file or generated page of the site; remove the alias")
    })
}

/// Internal links and images must land on something the site serves.
fn check_references(
    library: &content::Library,
    content_dir: &Path,
    routes: &HashMap<String, Route>,
    problems: &mut Vec<Problem>,
) {
    let exists = |path: &str| {
        routes.contains_key(path)
            || (!path.ends_with('/') && routes.contains_key(&format!("{path}/")))
    };
    for page in library.posts.iter().chain(&library.pages) {
        for reference in &page.body.references {
            if exists(&reference.path) {
                continue;
            }
            let message = if reference.is_image {
                format!(
                    "image {} does not exist; add the file under content/ or static/, or fix the path",
                    reference.path
                )
            } else {
                format!(
                    "link to {} goes nowhere (no such page, or it is a draft); fix the link or publish the target",
                    reference.path
                )
            };
            problems.push(Problem::new(
                content_dir.join(&page.source),
                reference.line,
                message,
            ));
        }
    }
}
