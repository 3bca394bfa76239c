//! The files a post refers to: images (markdown and `<img src>`) and links
//! to local files, found in the body, and where each comes from: the post's
//! own folder (it then travels in the post's bundle), the source's static
//! folders (copied to the same path under content/, so the reference holds
//! as written), or another site (listed, or fetched with --fetch-images).

use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag};

use super::urls::decode;

/// A reference in a body, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub dest: String,
    pub is_image: bool,
    /// Line in the body (1-based).
    pub line: usize,
}

/// Where a reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file beside the source file (relative path as written, and the file).
    Beside(PathBuf),
    /// A file of a static folder, served at the same path.
    Static {
        file: PathBuf,
        rel: String,
    },
    Remote(String),
    /// Local but not in the source: a page, or a file it lacks.
    Missing,
}

/// Every image and link of the body that is not an anchor or a mail address.
pub fn references(body: &str) -> Vec<Reference> {
    let mut refs = Vec::new();
    let line = |at: usize| body[..at].matches('\n').count() + 1;
    for (event, range) in Parser::new_ext(body, Options::all()).into_offset_iter() {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => refs.push(Reference {
                dest: dest_url.to_string(),
                is_image: true,
                line: line(range.start),
            }),
            Event::Start(Tag::Link { dest_url, .. }) => refs.push(Reference {
                dest: dest_url.to_string(),
                is_image: false,
                line: line(range.start),
            }),
            Event::Html(html) | Event::InlineHtml(html) => {
                for piece in html.split("src=").skip(1) {
                    let quote = piece.chars().next().filter(|c| *c == '"' || *c == '\'');
                    if let Some(q) = quote
                        && let Some(dest) = piece[1..].split(q).next()
                    {
                        refs.push(Reference {
                            dest: dest.to_string(),
                            is_image: true,
                            line: line(range.start),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    refs.retain(|r| !r.dest.is_empty() && !r.dest.starts_with(['#', '?']));
    refs
}

/// Where `dest` points, for a body in `source_dir` (when it has one).
pub fn locate(dest: &str, source_dir: Option<&Path>, static_roots: &[PathBuf]) -> Target {
    if dest.starts_with("http://") || dest.starts_with("https://") || dest.starts_with("//") {
        return Target::Remote(dest.to_string());
    }
    if dest.contains(':') && !dest.starts_with('/') && !dest.starts_with('.') {
        return Target::Missing;
    }
    let path = decode(dest.split(['?', '#']).next().unwrap_or(""));
    if path.split('/').any(|p| p == "..") && path.starts_with('/') {
        return Target::Missing;
    }
    if let Some(rel) = path.strip_prefix('/') {
        for root in static_roots {
            let file = root.join(rel);
            if !rel.is_empty() && file.is_file() && inside(&file, root) {
                return Target::Static {
                    file,
                    rel: rel.to_string(),
                };
            }
        }
        return Target::Missing;
    }
    if let Some(dir) = source_dir {
        let file = dir.join(&path);
        if file.is_file() {
            return Target::Beside(file);
        }
    }
    Target::Missing
}

/// Whether `file` (existing) lies under `root`: `..` and links cannot lead out.
fn inside(file: &Path, root: &Path) -> bool {
    match (file.canonicalize(), root.canonicalize()) {
        (Ok(file), Ok(root)) => file.starts_with(root),
        _ => false,
    }
}

/// A file name for a fetched image: the URL's last segment, made safe, else
/// `image-N`; `taken` are the names already in the bundle.
pub fn file_name(url: &str, n: usize, taken: &[String]) -> String {
    let last = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
        })
        .map(|s| decode(&s))
        .unwrap_or_default();
    let safe: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.').to_string();
    let base = if safe.is_empty() || safe == "index.md" {
        format!("image-{n}")
    } else {
        safe
    };
    let mut name = base.clone();
    let mut k = 2;
    while taken.contains(&name) {
        name = match base.rsplit_once('.') {
            Some((stem, ext)) => format!("{stem}-{k}.{ext}"),
            None => format!("{base}-{k}"),
        };
        k += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_and_links() {
        let body = "# T\n\n![a](/img/a.png) [l](/files/x.pdf)\n\n<p><img src=\"https://x.test/b.jpg\"></p>\n\n[top](#t)\n";
        let refs = references(body);
        let dests: Vec<(&str, bool, usize)> = refs
            .iter()
            .map(|r| (r.dest.as_str(), r.is_image, r.line))
            .collect();
        assert_eq!(
            dests,
            [
                ("/img/a.png", true, 3),
                ("/files/x.pdf", false, 3),
                ("https://x.test/b.jpg", true, 5)
            ]
        );
    }

    #[test]
    fn locates_files_in_the_static_folders_and_beside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("static");
        std::fs::create_dir_all(root.join("img")).unwrap();
        std::fs::write(root.join("img/a.png"), "png").unwrap();
        std::fs::create_dir_all(dir.path().join("post")).unwrap();
        std::fs::write(dir.path().join("post/c.png"), "png").unwrap();
        let roots = [root.clone()];
        let post = dir.path().join("post");
        assert_eq!(
            locate("/img/a.png", Some(&post), &roots),
            Target::Static {
                file: root.join("img/a.png"),
                rel: "img/a.png".into()
            }
        );
        assert_eq!(
            locate("c.png", Some(&post), &roots),
            Target::Beside(post.join("c.png"))
        );
        assert_eq!(locate("/img/../../x", None, &roots), Target::Missing);
        assert_eq!(locate("/posts/x/", None, &roots), Target::Missing);
        assert_eq!(locate("mailto:a@b", None, &roots), Target::Missing);
        assert!(matches!(
            locate("https://x.test/a.png", None, &roots),
            Target::Remote(_)
        ));
    }

    #[test]
    fn fetched_names_are_safe_and_distinct() {
        let taken = vec!["a.png".to_string()];
        assert_eq!(
            file_name("https://x.test/p/a.png?w=1", 1, &taken),
            "a-2.png"
        );
        assert_eq!(file_name("https://x.test/", 3, &taken), "image-3");
        assert_eq!(file_name("https://x.test/..%2F..%2Fetc", 1, &[]), "-..-etc");
    }
}
