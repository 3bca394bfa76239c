//! The served form of the site: every URL mapped to a [`Resource`] rendered once,
//! with a strong ETag and precompressed gzip and brotli variants, or to a
//! redirect. A [`SiteSnapshot`] is immutable; [`LiveSite`] swaps whole snapshots
//! atomically so a request never sees half a rebuild and never waits for one.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::http::HeaderValue;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::problem::Problem;

/// What a resource is. Its responses carry it (an http extension), so that
/// metrics and statistics tell pages from feeds and assets without guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Page,
    Feed,
    Meta,
    Asset,
    NotFound,
}

/// Content types of feeds, as a file's type names them.
const FEED_TYPES: [&str; 3] = [
    "application/atom+xml",
    "application/rss+xml",
    "application/feed+json",
];

impl ResourceKind {
    /// The kind of a file served as it is (from static/ or content/): an
    /// HTML file is a page readers read, and a feed file one feed readers
    /// fetch, as they have always been counted; anything else is an asset.
    pub fn of_file(content_type: &str) -> ResourceKind {
        if content_type.starts_with("text/html") {
            ResourceKind::Page
        } else if FEED_TYPES.iter().any(|feed| content_type.starts_with(feed)) {
            ResourceKind::Feed
        } else {
            ResourceKind::Asset
        }
    }
}

/// How long clients may keep a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// HTML and feeds: keep, but revalidate (cheap with ETags).
    Revalidate,
    /// Assets at their plain URL.
    Short,
    /// Assets at a fingerprinted URL: the bytes never change.
    Immutable,
}

impl CachePolicy {
    pub fn header(self) -> &'static str {
        match self {
            CachePolicy::Revalidate => "public, no-cache",
            CachePolicy::Short => "public, max-age=600",
            CachePolicy::Immutable => "public, max-age=31536000, immutable",
        }
    }
}

/// One representation of a URL, ready to send.
#[derive(Debug)]
pub struct Resource {
    pub kind: ResourceKind,
    pub content_type: String,
    /// Hex digest of type and body; the ETags derive from it.
    pub digest: String,
    pub identity: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
    pub last_modified: Option<SystemTime>,
    /// Header values formatted once here, so a response only copies them.
    pub headers: PrecomputedHeaders,
}

/// The per-resource header values of every response for it.
#[derive(Debug)]
pub struct PrecomputedHeaders {
    pub content_type: HeaderValue,
    /// Strong ETags for the identity, gzip and brotli bodies.
    pub etag_identity: HeaderValue,
    pub etag_gzip: HeaderValue,
    pub etag_brotli: HeaderValue,
    pub last_modified: Option<HeaderValue>,
}

impl PrecomputedHeaders {
    fn new(
        content_type: &str,
        digest: &str,
        last_modified: Option<SystemTime>,
    ) -> PrecomputedHeaders {
        let value = |text: String| HeaderValue::from_str(&text).expect("ASCII header value");
        PrecomputedHeaders {
            content_type: value(content_type.to_string()),
            etag_identity: value(format!("\"{digest}\"")),
            etag_gzip: value(format!("\"{digest}-gz\"")),
            etag_brotli: value(format!("\"{digest}-br\"")),
            last_modified: last_modified.map(|t| value(httpdate::fmt_http_date(t))),
        }
    }
}

/// A precompressed variant must save at least this share to be worth a `Vary`.
const MIN_SAVING_PERCENT: usize = 10;
const MIN_COMPRESS_LEN: usize = 256;
/// zlib's default; level 9 bought nothing measurable on generated HTML.
const GZIP_LEVEL: u32 = 6;
/// Measured on a 16 KB post: quality 5 takes 0.35 ms and gives 3127 bytes,
/// quality 9 takes 5.9 ms for 3077, quality 11 takes 20 ms for 2712. A rebuild
/// compresses every changed page, so the cheap setting wins (quality 4 uses a
/// different matcher and was slower on the 1,000-post benchmark).
const BROTLI_QUALITY: i32 = 5;
/// Brotli's largest window. Smaller bodies get a window just big enough: the
/// encoder zeroes a ring buffer of the window's size on every call, and for a
/// 10 KB page a 4 MiB buffer cost more than the compression itself.
const BROTLI_MAX_WINDOW: i32 = 22;

fn is_compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/xml"
                | "application/atom+xml"
                | "application/rss+xml"
                | "application/feed+json"
                | "application/json"
                | "application/manifest+json"
                | "application/javascript"
                | "image/svg+xml"
                | "image/x-icon"
                | "font/ttf"
                | "font/otf"
        )
}

fn worth_it(compressed: Vec<u8>, original: usize) -> Option<Bytes> {
    (compressed.len() * 100 <= original * (100 - MIN_SAVING_PERCENT))
        .then(|| Bytes::from(compressed))
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    encoder.write_all(body).ok()?;
    worth_it(encoder.finish().ok()?, body.len())
}

fn brotli(body: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    let bits = (usize::BITS - body.len().leading_zeros()) as i32;
    let params = brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: bits.clamp(18, BROTLI_MAX_WINDOW),
        size_hint: body.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
    worth_it(out, body.len())
}

pub fn digest_of(content_type: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(content_type.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    let hash = hasher.finalize();
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Resource {
    /// Builds a resource, compressing it unless `previous` already holds the same
    /// bytes (then its variants are reused and nothing is compressed again).
    pub fn new(
        kind: ResourceKind,
        content_type: String,
        body: Bytes,
        last_modified: Option<SystemTime>,
        previous: &dyn Fn(&str) -> Option<Arc<Resource>>,
    ) -> Arc<Resource> {
        let digest = digest_of(&content_type, &body);
        if let Some(old) = previous(&digest)
            && old.kind == kind
            && old.last_modified == last_modified
        {
            return old;
        }
        let compress = body.len() >= MIN_COMPRESS_LEN && is_compressible(&content_type);
        let (gzip, brotli) = match (compress, kind) {
            (false, _) => (None, None),
            // Feed readers ask for gzip (brotli is a browser's); feeds are a
            // third of a build's bytes, each post's text in a dozen of them,
            // and a brotli copy of each was the build's largest cost.
            (true, ResourceKind::Feed) => (gzip(&body), None),
            (true, _) => rayon::join(|| gzip(&body), || brotli(&body)),
        };
        let headers = PrecomputedHeaders::new(&content_type, &digest, last_modified);
        Arc::new(Resource {
            kind,
            content_type,
            headers,
            digest,
            identity: body,
            gzip,
            brotli,
            last_modified,
        })
    }

    /// Whether responses depend on `Accept-Encoding`.
    pub fn varies_by_encoding(&self) -> bool {
        self.gzip.is_some() || self.brotli.is_some()
    }
}

#[derive(Debug, Clone)]
pub enum Route {
    Resource {
        resource: Arc<Resource>,
        cache: CachePolicy,
    },
    /// Permanent redirect to a path on this site.
    Redirect(String),
}

/// Facts about a build, for logs, `quire check` and (later) metrics.
#[derive(Debug, Clone, Default)]
pub struct BuildSummary {
    pub posts: usize,
    pub pages: usize,
    pub documents: usize,
    pub assets: usize,
    pub problems: Vec<Problem>,
    pub took: Duration,
    /// When a scheduled post becomes visible, which calls for a rebuild.
    pub next_publish: Option<DateTime<Utc>>,
}

/// An asset file as last read, so an unchanged file is not read again, and
/// one that cannot be read keeps being served.
#[derive(Debug, Clone)]
pub struct CachedFile {
    pub url: String,
    pub path: PathBuf,
    pub modified: SystemTime,
    pub changed: (i64, i64),
    pub len: u64,
    pub resource: Arc<Resource>,
}

/// The whole site as served at one moment.
#[derive(Debug)]
pub struct SiteSnapshot {
    pub routes: HashMap<String, Route>,
    pub not_found: Arc<Resource>,
    pub summary: BuildSummary,
    pub files: HashMap<PathBuf, CachedFile>,
    /// The markdown texts the snapshot was built from, by path.
    pub sources: HashMap<PathBuf, Arc<str>>,
    /// Its post, page and alias URLs, for the watcher to record.
    pub served: super::served::Record,
}

impl SiteSnapshot {
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.get(path)
    }

    /// Finds a resource of this snapshot by digest, for reuse in the next build.
    pub fn reusable(&self) -> HashMap<&str, Arc<Resource>> {
        self.routes
            .values()
            .filter_map(|r| match r {
                Route::Resource { resource, .. } => {
                    Some((resource.digest.as_str(), resource.clone()))
                }
                Route::Redirect(_) => None,
            })
            .chain([(self.not_found.digest.as_str(), self.not_found.clone())])
            .collect()
    }

    /// A hash of what this snapshot serves: every route's path with the
    /// digest of its bytes (or its redirect target), and the not-found page.
    /// Sorted first, so it does not depend on the order of a build, and blind
    /// to file times, so nodes deployed the same content (by git, by rsync)
    /// agree on it; a cluster compares its nodes by it.
    pub fn content_hash(&self) -> String {
        let mut routes: Vec<(&str, &str, &str)> = self
            .routes
            .iter()
            .map(|(path, route)| match route {
                Route::Resource { resource, .. } => (path.as_str(), "=", resource.digest.as_str()),
                Route::Redirect(to) => (path.as_str(), ">", to.as_str()),
            })
            .collect();
        routes.sort_unstable();
        let mut hasher = Sha256::new();
        for (path, kind, value) in routes {
            for part in [path, kind, value] {
                hasher.update(part.as_bytes());
                hasher.update([0]);
            }
        }
        hasher.update(b"not found\0");
        hasher.update(self.not_found.digest.as_bytes());
        let hash = hasher.finalize();
        hash[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The snapshot being served, replaced whole on each rebuild.
#[derive(Clone)]
pub struct LiveSite {
    current: Arc<ArcSwap<SiteSnapshot>>,
    generation: watch::Sender<u64>,
}

impl LiveSite {
    pub fn new(first: SiteSnapshot) -> LiveSite {
        LiveSite {
            current: Arc::new(ArcSwap::from_pointee(first)),
            generation: watch::Sender::new(0),
        }
    }

    pub fn snapshot(&self) -> Arc<SiteSnapshot> {
        self.current.load_full()
    }

    /// The snapshot in force, for the length of one request: unlike
    /// [`LiveSite::snapshot`] it leaves the shared reference count alone,
    /// which every core would otherwise write to on every request.
    pub fn load(&self) -> arc_swap::Guard<Arc<SiteSnapshot>> {
        self.current.load()
    }

    pub fn replace(&self, next: SiteSnapshot) {
        self.current.store(Arc::new(next));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Changes each time a new snapshot goes live.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<Arc<Resource>> {
        None
    }

    #[test]
    fn compresses_text_and_skips_binaries_and_tiny_bodies() {
        let html = Bytes::from("<p>hello world</p>\n".repeat(100));
        let r = Resource::new(
            ResourceKind::Page,
            "text/html; charset=utf-8".into(),
            html.clone(),
            None,
            &none,
        );
        let mut gunzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&r.gzip.as_ref().unwrap()[..]),
            &mut gunzipped,
        )
        .unwrap();
        assert_eq!(gunzipped, html);
        let mut unbrotlied = Vec::new();
        brotli::BrotliDecompress(&mut &r.brotli.as_ref().unwrap()[..], &mut unbrotlied).unwrap();
        assert_eq!(unbrotlied, html);
        assert!(r.varies_by_encoding());

        let feed = Resource::new(
            ResourceKind::Feed,
            "application/rss+xml; charset=utf-8".into(),
            Bytes::from("<item><title>hello</title></item>\n".repeat(100)),
            None,
            &none,
        );
        assert!(feed.gzip.is_some() && feed.brotli.is_none());

        let png = Resource::new(
            ResourceKind::Asset,
            "image/png".into(),
            Bytes::from(vec![7u8; 4096]),
            None,
            &none,
        );
        assert!(png.gzip.is_none() && png.brotli.is_none());
        let tiny = Resource::new(
            ResourceKind::Page,
            "text/html".into(),
            Bytes::from("<p>hi</p>"),
            None,
            &none,
        );
        assert!(!tiny.varies_by_encoding());
    }

    #[test]
    fn digest_depends_on_type_and_body_and_unchanged_bodies_are_reused() {
        assert_ne!(digest_of("text/html", b"x"), digest_of("text/plain", b"x"));
        let body = Bytes::from("<p>x</p>".repeat(100));
        let first = Resource::new(
            ResourceKind::Page,
            "text/html".into(),
            body.clone(),
            None,
            &none,
        );
        let reuse = |d: &str| (d == first.digest).then(|| first.clone());
        let second = Resource::new(ResourceKind::Page, "text/html".into(), body, None, &reuse);
        assert!(Arc::ptr_eq(&first, &second));
    }

    fn snapshot(routes: &[(&str, &str)]) -> SiteSnapshot {
        let page = |body: &str| {
            Resource::new(
                ResourceKind::Page,
                "text/html".into(),
                Bytes::from(body.to_string()),
                None,
                &none,
            )
        };
        SiteSnapshot {
            routes: routes
                .iter()
                .map(|(path, body)| {
                    let route = match body.strip_prefix("-> ") {
                        Some(to) => Route::Redirect(to.to_string()),
                        None => Route::Resource {
                            resource: page(body),
                            cache: CachePolicy::Revalidate,
                        },
                    };
                    (path.to_string(), route)
                })
                .collect(),
            not_found: page("not here"),
            summary: BuildSummary::default(),
            served: Default::default(),
            files: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    #[test]
    fn the_content_hash_follows_the_bytes_served_and_nothing_else() {
        let routes = [
            ("/", "<p>home</p>"),
            ("/posts/a/", "<p>a</p>"),
            ("/old/", "-> /posts/a/"),
        ];
        let hash = snapshot(&routes).content_hash();
        let mut reversed = routes;
        reversed.reverse();
        assert_eq!(snapshot(&reversed).content_hash(), hash);
        // Times are not content: a deploy by rsync or git sets its own.
        let mut touched = snapshot(&routes);
        if let Some(Route::Resource { resource, .. }) = touched.routes.get_mut("/") {
            *resource = Resource::new(
                ResourceKind::Page,
                "text/html".into(),
                Bytes::from("<p>home</p>"),
                Some(SystemTime::UNIX_EPOCH),
                &none,
            );
        }
        assert_eq!(touched.content_hash(), hash);

        let changed = [
            [("/", "<p>Home</p>"), routes[1], routes[2]],
            [routes[0], ("/posts/b/", "<p>a</p>"), routes[2]],
            [routes[0], routes[1], ("/old/", "-> /")],
        ];
        for routes in changed {
            assert_ne!(snapshot(&routes).content_hash(), hash, "{routes:?}");
        }
        assert_ne!(snapshot(&routes[..2]).content_hash(), hash);
    }

    #[test]
    fn files_are_pages_feeds_or_assets_by_their_type() {
        let kind = |url| ResourceKind::of_file(&crate::site::assets::content_type_of(url));
        assert_eq!(kind("/about.html"), ResourceKind::Page);
        assert_eq!(kind("/old/feed.atom"), ResourceKind::Feed);
        assert_eq!(
            ResourceKind::of_file("application/rss+xml"),
            ResourceKind::Feed
        );
        assert_eq!(kind("/sitemap.xml"), ResourceKind::Asset);
        assert_eq!(kind("/photo.png"), ResourceKind::Asset);
    }
}
