//! Static files: the default theme compiled into the binary, overlaid by
//! static/, plus the non-markdown files of content/. Each is served at its path
//! and at a fingerprinted path (`/style.1a2b3c4d.css`) that may be cached forever.
//! Files are read into memory at build time, so serving never touches the disk.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use rayon::prelude::*;

use super::content::AssetFile;
use super::highlight;
use super::problem::Problem;
use super::snapshot::{CachePolicy, CachedFile, Resource, ResourceKind, Route};
use super::walk::{unreadable, walk};

/// Files beyond this size do not belong in memory; host them elsewhere.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The theme the binary carries, so it runs without a static/ folder.
const BUILTIN: &[(&str, &[u8])] = &[
    ("/style.css", include_bytes!("../../static/style.css")),
    ("/favicon.svg", include_bytes!("../../static/favicon.svg")),
];

static HIGHLIGHT_CSS: LazyLock<String> = LazyLock::new(highlight::stylesheet);

pub struct LoadedAssets {
    pub routes: HashMap<String, Route>,
    /// Plain URL -> fingerprinted URL.
    pub fingerprinted: HashMap<String, String>,
    pub files: HashMap<PathBuf, CachedFile>,
}

pub fn content_type_of(url: &str) -> String {
    let mime = mime_guess::from_path(url).first_or_octet_stream();
    let essence = mime.essence_str();
    let is_text = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript" | "application/json" | "image/svg+xml" | "application/xml"
        );
    if is_text {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

/// `/a/style.css` + digest -> `/a/style.1a2b3c4d.css`.
pub fn fingerprint(url: &str, digest: &str) -> String {
    let short = &digest[..8];
    let (dir, file) = url.rsplit_once('/').unwrap_or(("", url));
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}/{stem}.{short}.{ext}"),
        _ => format!("{dir}/{file}.{short}"),
    }
}

/// Where the asset files are and what must never be published.
pub struct Sources<'a> {
    pub static_dir: &'a Path,
    pub data: &'a Path,
    /// The non-markdown files of content/.
    pub content_assets: &'a [AssetFile],
    /// Folders of content/ that could not be listed.
    pub content_unreadable: &'a [PathBuf],
}

/// Loads every asset; unchanged files (same path, size, mtime and ctime as in the
/// previous build) are taken from `previous` without reading them. A file or
/// folder that cannot be read keeps its previous version, if any.
pub fn load(
    sources: &Sources,
    previous: Option<&HashMap<PathBuf, CachedFile>>,
    reuse: &(dyn Fn(&str) -> Option<Arc<Resource>> + Sync),
    problems: &mut Vec<Problem>,
) -> LoadedAssets {
    let mut by_url: HashMap<String, Arc<Resource>> = HashMap::new();
    for (url, bytes) in BUILTIN {
        by_url.insert(
            url.to_string(),
            Resource::new(
                ResourceKind::Asset,
                content_type_of(url),
                Bytes::from_static(bytes),
                None,
                reuse,
            ),
        );
    }
    by_url.insert(
        "/highlight.css".into(),
        Resource::new(
            ResourceKind::Asset,
            content_type_of("/highlight.css"),
            Bytes::from(HIGHLIGHT_CSS.as_bytes()),
            None,
            reuse,
        ),
    );

    let static_dir = sources.static_dir;
    let mut files: Vec<AssetFile> = Vec::new();
    let mut hidden_dirs = sources.content_unreadable.to_vec();
    if static_dir.is_dir() {
        let listing = walk(static_dir, sources.data, problems);
        for (rel, path, meta) in listing.files {
            files.push(AssetFile::new(format!("/{rel}"), path, &meta));
        }
        hidden_dirs.extend(listing.unreadable);
    }
    let static_urls: HashSet<String> = files.iter().map(|f| f.url.clone()).collect();
    for asset in sources.content_assets {
        if static_urls.contains(&asset.url) {
            problems.push(Problem::new(
                asset.path.clone(),
                0,
                format!(
                    "{} is also in static/, which wins; keep one of the two",
                    asset.url
                ),
            ));
        } else {
            files.push(asset.clone());
        }
    }

    // On failure: the problem, and whether the previous version stays.
    let read: Vec<Result<CachedFile, (Problem, bool)>> = files
        .into_par_iter()
        .map(|file| {
            if let Some(cached) = previous.and_then(|p| p.get(&file.path))
                && cached.modified == file.modified
                && cached.changed == file.changed
                && cached.len == file.len
            {
                return Ok(cached.clone());
            }
            if file.len > MAX_FILE_BYTES {
                return Err((
                    Problem::new(
                        file.path.clone(),
                        0,
                        format!(
                            "is larger than {} MiB; serve it from elsewhere and link to it",
                            MAX_FILE_BYTES >> 20
                        ),
                    ),
                    false,
                ));
            }
            let bytes = match std::fs::read(&file.path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let mut message = unreadable(&file.path, &e, false);
                    let keep = previous.is_some_and(|p| p.contains_key(&file.path));
                    if keep {
                        message.push_str("; until then the version read before stays published");
                    }
                    return Err((Problem::new(file.path.clone(), 0, message), keep));
                }
            };
            let content_type = content_type_of(&file.url);
            let resource = Resource::new(
                ResourceKind::of_file(&content_type),
                content_type,
                Bytes::from(bytes),
                Some(file.modified),
                reuse,
            );
            Ok(CachedFile {
                url: file.url,
                path: file.path,
                modified: file.modified,
                changed: file.changed,
                len: file.len,
                resource,
            })
        })
        .collect();
    let mut listed: HashSet<PathBuf> = HashSet::new();
    let mut kept = Vec::new();
    for result in read {
        match result {
            Ok(cached) => kept.push(cached),
            Err((problem, keep)) => {
                if keep {
                    kept.extend(previous.and_then(|p| p.get(&problem.file)).cloned());
                }
                listed.insert(problem.file.clone());
                problems.push(problem);
            }
        }
    }
    listed.extend(kept.iter().map(|c| c.path.clone()));
    // Files of folders that could not be listed stay as they were read.
    if let Some(previous) = previous {
        kept.extend(
            previous
                .values()
                .filter(|c| !listed.contains(&c.path))
                .filter(|c| hidden_dirs.iter().any(|dir| c.path.starts_with(dir)))
                .filter(|c| !static_urls.contains(&c.url) || c.path.starts_with(static_dir))
                .cloned(),
        );
    }
    let mut cache = HashMap::new();
    for cached in kept {
        by_url.insert(cached.url.clone(), cached.resource.clone());
        cache.insert(cached.path.clone(), cached);
    }

    let mut routes = HashMap::new();
    let mut fingerprinted = HashMap::new();
    for (url, resource) in by_url {
        let stamped = fingerprint(&url, &resource.digest);
        routes.insert(
            stamped.clone(),
            Route::Resource {
                resource: resource.clone(),
                cache: CachePolicy::Immutable,
            },
        );
        routes.insert(
            url.clone(),
            Route::Resource {
                resource,
                cache: CachePolicy::Short,
            },
        );
        fingerprinted.insert(url, stamped);
    }
    LoadedAssets {
        routes,
        fingerprinted,
        files: cache,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_keep_the_extension() {
        assert_eq!(
            fingerprint("/style.css", "0123456789abcdef"),
            "/style.01234567.css"
        );
        assert_eq!(
            fingerprint("/img/a.b.png", "0123456789abcdef"),
            "/img/a.b.01234567.png"
        );
        assert_eq!(
            fingerprint("/LICENSE", "0123456789abcdef"),
            "/LICENSE.01234567"
        );
        assert_eq!(fingerprint("/.well", "0123456789abcdef"), "/.well.01234567");
    }

    #[test]
    fn content_types_carry_charsets_for_text() {
        assert_eq!(content_type_of("/a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type_of("/a.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type_of("/a.png"), "image/png");
        assert_eq!(content_type_of("/a.unknownext"), "application/octet-stream");
    }
}
