//! A Hugo site: content/ read into documents, each old URL computed as Hugo
//! computes it (`url` front matter, else the section's `[permalinks]`
//! pattern, else /section/slug-or-filename/, lowercased, under baseURL's
//! path), leaf bundles (`name/index.md`) with their files. Files of a
//! section with a date are posts; the others are pages. Images resolve into
//! static/ and assets/.

use std::path::{Path, PathBuf};

use super::foreign::{self, Value};
use super::urls::{self, hugo_urlize};
use super::{Dialect, Document, ImportError, Kind, Note, Read, relative};

pub fn read(root: &Path) -> Result<Read, ImportError> {
    let config = read_config(root)?;
    let base_path = config
        .get("baseURL")
        .or(config.get("baseurl"))
        .and_then(Value::text)
        .and_then(|b| url::Url::parse(&b).ok())
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let permalinks: Vec<(String, String)> = match config.get("permalinks") {
        Some(map) => {
            let map = map.get("page").unwrap_or(map);
            match map {
                Value::Map(entries) => entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.text()?)))
                    .collect(),
                _ => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    let mut read = Read {
        static_roots: vec![root.join("static"), root.join("assets")],
        ..Read::default()
    };
    let content = root.join("content");
    for file in markdown_files(&content) {
        let origin = relative(root, &file);
        let rel = relative(&content, &file);
        let Some((doc, names)) = read_file(&file, &origin, &mut read.notes)? else {
            continue;
        };
        let doc = place(
            doc,
            &names,
            &rel,
            &file,
            &permalinks,
            &base_path,
            &mut read.notes,
        );
        read.documents.push(doc);
    }
    Ok(read)
}

/// The markdown files under `dir`, sorted, hidden ones left out.
pub fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "md" || x == "markdown"))
        .collect();
    files.sort();
    files
}

/// Other files of a leaf bundle's folder, with their names in it.
pub fn bundle_files(folder: &Path, index: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = walkdir::WalkDir::new(folder)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path() != index)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            let name = relative(folder, e.path());
            (e.into_path(), name)
        })
        .collect();
    files.sort();
    files
}

fn read_config(root: &Path) -> Result<Value, ImportError> {
    for name in [
        "hugo.toml",
        "hugo.yaml",
        "hugo.json",
        "config.toml",
        "config.yaml",
        "config.json",
        "config/_default/hugo.toml",
        "config/_default/config.toml",
    ] {
        let path = root.join(name);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ImportError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let fenced = if name.ends_with(".toml") {
            format!("+++\n{text}\n+++\n")
        } else if name.ends_with(".yaml") {
            format!("---\n{text}\n---\n")
        } else {
            text
        };
        let mut split = foreign::split(&fenced).map_err(|(line, why)| ImportError::Read {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {}: {why}", line.saturating_sub(1)),
            ),
        })?;
        let entries = split
            .front
            .left()
            .into_iter()
            .filter_map(|(k, _)| Some((k.clone(), split.front.take(&k)?)))
            .collect();
        return Ok(Value::Map(entries));
    }
    Ok(Value::Map(Vec::new()))
}

/// What Hugo's own keys say about a page's URL.
struct Names {
    slug: Option<String>,
    url: Option<String>,
}

/// A content file's front matter and body; `None` for section list pages.
fn read_file(
    file: &Path,
    origin: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<(Document, Names)>, ImportError> {
    let Some(text) = foreign::read_text(file, origin, notes)? else {
        return Ok(None);
    };
    let Some(split) = foreign::split_noted(&text, origin, notes) else {
        return Ok(None);
    };
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    if name.starts_with("_index.") {
        foreign::note_section_list(&split, origin, notes);
        return Ok(None);
    }
    let mut doc = Document::new(Kind::Page, origin.to_string(), Dialect::Hugo);
    doc.source_file = Some(file.to_path_buf());
    doc.body = split.body.to_string();
    doc.body_line = split.body_line;
    let mut front = split.front;
    foreign::map_common(&mut front, &mut doc, notes);
    let names = Names {
        slug: front.take("slug").and_then(|v| v.text()),
        url: front.take("url").and_then(|v| v.text()),
    };
    doc.name = names.slug.clone().unwrap_or_default();
    foreign::note_left(&front, origin, notes);
    Ok(Some((doc, names)))
}

/// Decides post or page, the old URL, the bundle.
fn place(
    mut doc: Document,
    names: &Names,
    rel: &str,
    file: &Path,
    permalinks: &[(String, String)],
    base_path: &str,
    notes: &mut Vec<Note>,
) -> Document {
    let (folder, file_name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    let is_bundle = stem == "index" && !folder.is_empty();
    let (folders, filename) = if is_bundle {
        let (parent, name) = folder.rsplit_once('/').unwrap_or(("", folder));
        (parent.to_string(), name.to_string())
    } else {
        (folder.to_string(), stem.to_string())
    };
    if is_bundle && let Some(dir) = file.parent() {
        doc.bundle = bundle_files(dir, file)
            .into_iter()
            .filter(|(path, name)| {
                let markdown = path.extension().is_some_and(|x| x == "md");
                if markdown {
                    notes.push(Note::new(
                        &doc.origin,
                        0,
                        format!("{name} in the bundle is a page resource quire has no use for; not imported"),
                    ));
                }
                !markdown
            })
            .collect();
    }
    let section = folders.split('/').next().unwrap_or("").to_string();
    doc.kind = if !section.is_empty() && doc.date.is_some() {
        Kind::Post
    } else {
        Kind::Page
    };
    let slug = names.slug.clone();
    if doc.name.is_empty() {
        doc.name = filename.clone();
    }
    let title = doc.title.clone();
    let date = doc.date;
    let pattern = permalinks
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, p)| p.clone());
    let old = match (names.url.clone(), pattern) {
        (Some(url), _) => Some(urls::clean(&format!("/{url}"))),
        (None, Some(pattern)) if doc.kind == Kind::Post => {
            let value = |token: &str| -> Option<String> {
                let dated = date.map(urls::date_tokens).and_then(|tokens| {
                    tokens
                        .iter()
                        .find(|(t, _)| *t == token)
                        .map(|(_, v)| v.clone())
                });
                match token {
                    "year" | "month" | "day" => dated,
                    "slug" => Some(hugo_urlize(slug.as_deref().unwrap_or(&title))),
                    "title" => Some(hugo_urlize(&title)),
                    "filename" | "contentbasename" => Some(hugo_urlize(&filename)),
                    "slugorfilename" | "slugorcontentbasename" => {
                        Some(hugo_urlize(slug.as_deref().unwrap_or(&filename)))
                    }
                    "section" => Some(section.clone()),
                    "sections" => Some(folders.clone()),
                    _ => None,
                }
            };
            match urls::fill(&pattern, &value) {
                Ok(path) => Some(format!("{base_path}{path}")),
                Err(token) => {
                    notes.push(Note::new(
                        &doc.origin,
                        0,
                        format!("permalink token {token} is unknown to the import; the old URL of this post is not kept"),
                    ));
                    None
                }
            }
        }
        _ => {
            let last = hugo_urlize(slug.as_deref().unwrap_or(&filename));
            let dirs: Vec<String> = folders
                .split('/')
                .filter(|p| !p.is_empty())
                .map(hugo_urlize)
                .collect();
            Some(urls::clean(&format!(
                "{base_path}/{}/{last}/",
                dirs.join("/")
            )))
        }
    };
    doc.old_url = old;
    let dir = urls::decode(doc.old_url.as_deref().unwrap_or("/"));
    let dir = dir.rsplit_once('/').map_or("/", |(d, _)| d).to_string();
    for alias in &mut doc.aliases {
        if !alias.starts_with('/') {
            *alias = urls::clean(&format!("{dir}/{alias}"));
        }
    }
    doc.page_path = if is_bundle {
        format!("{folder}/index")
    } else {
        rel.rsplit_once('.').map_or(rel, |(s, _)| s).to_string()
    };
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn old_urls_as_hugo_makes_them() {
        let dir = site(&[
            (
                "hugo.toml",
                "baseURL = \"https://old.test/\"\n[permalinks]\nblog = \"/:year/:month/:slug/\"\n",
            ),
            (
                "content/posts/My_First.md",
                "+++\ntitle = \"First\"\ndate = 2020-01-02\ntags = [\"a\"]\ncategories = [\"b\"]\naliases = [\"/old/first/\", \"rel\"]\nweight = 3\n+++\nHi\n",
            ),
            (
                "content/blog/trip/index.md",
                "---\ntitle: The Trip\ndate: 2021-03-04T05:06:07Z\nlastmod: 2021-04-01\n---\n![c](cover.jpg)\n",
            ),
            ("content/blog/trip/cover.jpg", "jpg"),
            ("content/posts/_index.md", "+++\ntitle = \"Posts\"\n+++\n"),
            (
                "content/about.md",
                "+++\ntitle = \"About\"\nurl = \"/about-me/\"\n+++\nMe\n",
            ),
        ]);
        let read = read(dir.path()).unwrap();
        let by = |origin: &str| {
            read.documents
                .iter()
                .find(|d| d.origin == origin)
                .unwrap_or_else(|| panic!("{origin}: {:?}", read.documents))
        };
        let first = by("content/posts/My_First.md");
        assert_eq!(first.kind, Kind::Post);
        assert_eq!(first.old_url.as_deref(), Some("/posts/my_first/"));
        assert_eq!(first.tags, ["a", "b"]);
        assert_eq!(first.aliases, ["/old/first/", "/posts/my_first/rel"]);
        let trip = by("content/blog/trip/index.md");
        assert_eq!(trip.old_url.as_deref(), Some("/2021/03/the-trip/"));
        assert_eq!(trip.bundle.len(), 1);
        assert!(trip.updated.is_some());
        let about = by("content/about.md");
        assert_eq!(about.kind, Kind::Page);
        assert_eq!(about.old_url.as_deref(), Some("/about-me/"));
        assert_eq!(about.page_path, "about");
        assert_eq!(read.documents.len(), 3);
        assert!(
            read.notes
                .iter()
                .any(|n| n.line == 7 && n.message.contains("`weight`")),
            "{:?}",
            read.notes
        );
    }
}
