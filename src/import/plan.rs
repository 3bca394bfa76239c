//! From read documents to the files to write: each post placed (slug from
//! its old URL when `post_url` reproduces it, else an alias), shortcodes
//! rendered against where their targets now live, images gathered (a post
//! with files of its own becomes a bundle, `posts/DATE-name/index.md`),
//! and quire's front matter put on top.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::images::{self, Target};
use super::urls::{self, decode};
use super::writer::{self, Content, OutFile, QuireFront};
use super::{Document, Kind, Note, Options, Report, fetch, shortcodes};
use crate::site::markdown::slugify;

/// A document with its place decided.
struct Placed {
    doc: Document,
    url: String,
    slug: Option<String>,
    aliases: Vec<String>,
    /// Where it goes: "posts/2020-01-02-name" or "about" (no `.md`).
    stem: String,
}

pub fn plan(
    docs: Vec<Document>,
    static_roots: &[PathBuf],
    options: &Options,
    report: &mut Report,
) -> Vec<OutFile> {
    let placed = place_all(docs, options, report);
    let mut targets: HashMap<String, String> = HashMap::new();
    for p in &placed {
        for key in keys(&p.doc.origin) {
            targets.entry(key).or_insert_with(|| p.url.clone());
        }
    }
    let resolve = |target: &str| {
        let target = target.trim_start_matches('/');
        targets
            .get(target)
            .or_else(|| targets.get(target.trim_end_matches(".md")))
            .cloned()
    };
    let mut files = Vec::new();
    let mut copied = HashSet::new();
    for p in placed {
        let (body, notes) = shortcodes::render(
            &p.doc.body,
            p.doc.dialect,
            &p.doc.origin,
            p.doc.body_line,
            &resolve,
        );
        report.unmapped.extend(notes);
        files.extend(assemble(
            p,
            body,
            static_roots,
            options,
            report,
            &mut copied,
        ));
    }
    files
}

/// The names a `ref`, `post_url` or `link` may give a document by.
fn keys(origin: &str) -> Vec<String> {
    let mut keys = vec![origin.to_string()];
    if let Some(rest) = origin.strip_prefix("content/") {
        keys.push(rest.to_string());
    }
    let file = origin.rsplit('/').next().unwrap_or(origin);
    keys.push(file.to_string());
    if let Some((stem, _)) = file.rsplit_once('.') {
        keys.push(stem.to_string());
        if stem == "index" || stem == "_index" {
            let folder = origin.rsplit('/').nth(1).unwrap_or("");
            keys.push(folder.to_string());
        }
    }
    if let Some(rest) = origin.strip_prefix("content/") {
        keys.push(rest.trim_end_matches(".md").to_string());
    }
    keys
}

fn place_all(docs: Vec<Document>, options: &Options, report: &mut Report) -> Vec<Placed> {
    let mut stems: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for doc in docs {
        let placed = match doc.kind {
            Kind::Post => {
                let Some(date) = doc.date else {
                    report.unmapped.push(Note::new(
                        &doc.origin,
                        0,
                        "the post has no date; not imported (add `date` to its front matter)",
                    ));
                    continue;
                };
                let fallback = if doc.name.is_empty() {
                    slugify(&doc.title)
                } else {
                    doc.name.clone()
                };
                let at = urls::place(doc.old_url.as_deref(), &fallback, date, options.post_url);
                let mut name = slugify(&decode(&at.slug));
                if name.is_empty() {
                    name = "post".into();
                }
                let day = date.format("%Y-%m-%d");
                let mut stem = format!("posts/{day}-{name}");
                let mut n = 2;
                while !stems.insert(stem.clone()) {
                    stem = format!("posts/{day}-{name}-{n}");
                    n += 1;
                }
                let slug = (stem != format!("posts/{day}-{}", at.slug)).then(|| at.slug.clone());
                let aliases = doc.aliases.iter().cloned().chain(at.alias).collect();
                Placed {
                    url: at.url,
                    slug,
                    aliases,
                    stem,
                    doc,
                }
            }
            Kind::Page => {
                let parts: Vec<String> = doc
                    .page_path
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .map(slugify)
                    .collect();
                let stem = parts.join("/");
                let shown: Vec<&String> = parts.iter().filter(|p| *p != "index").collect();
                if shown.is_empty() || !stems.insert(stem.clone()) {
                    report.unmapped.push(Note::new(
                        &doc.origin,
                        0,
                        "a page at the site's root or at a path already taken; not imported (quire makes its own home page)",
                    ));
                    continue;
                }
                let url = format!(
                    "/{}/",
                    shown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("/")
                );
                let aliases = doc
                    .aliases
                    .iter()
                    .cloned()
                    .chain(doc.old_url.as_deref().map(decode))
                    .collect();
                Placed {
                    url,
                    slug: None,
                    aliases,
                    stem,
                    doc,
                }
            }
        };
        out.push(placed);
    }
    for p in &mut out {
        let own = decode(&p.url);
        let mut seen = HashSet::new();
        let origin = p.doc.origin.clone();
        p.aliases.retain(|alias| {
            let fine = alias.starts_with('/')
                && !alias.contains("..")
                && !alias.contains(['?', '#'])
                && !alias.chars().any(char::is_control);
            if !fine {
                report.unmapped.push(Note::new(
                    &origin,
                    0,
                    format!(
                        "old URL `{alias}` cannot be an alias (not an absolute path); left out"
                    ),
                ));
            }
            fine && *alias != own && seen.insert(alias.clone())
        });
    }
    out
}

/// The post's files: itself, its bundle, its static files.
fn assemble(
    p: Placed,
    mut body: String,
    static_roots: &[PathBuf],
    options: &Options,
    report: &mut Report,
    copied: &mut HashSet<String>,
) -> Vec<OutFile> {
    let doc = &p.doc;
    let source_dir = doc.source_file.as_deref().and_then(Path::parent);
    let mut bundle: Vec<(String, Content)> = doc
        .bundle
        .iter()
        .map(|(from, name)| (name.clone(), Content::Copy(from.clone())))
        .collect();
    let mut statics = Vec::new();
    let mut image = doc.image.clone();
    let mut refs = images::references(&body);
    if let Some(front_image) = &doc.image {
        refs.push(images::Reference {
            dest: front_image.clone(),
            is_image: true,
            line: 0,
        });
    }
    let mut replace: Vec<(String, String)> = Vec::new();
    for r in refs {
        let line = if r.line == 0 {
            0
        } else {
            doc.body_line + r.line - 1
        };
        match images::locate(&r.dest, source_dir, static_roots) {
            Target::Static { file, rel } => {
                if copied.insert(rel.clone()) {
                    statics.push(OutFile {
                        rel: rel.clone(),
                        content: Content::Copy(file),
                    });
                }
            }
            Target::Beside(file) => {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !bundle.iter().any(|(n, _)| *n == name) {
                    bundle.push((name.clone(), Content::Copy(file)));
                }
                if decode(&r.dest) != name {
                    replace.push((r.dest.clone(), name));
                }
            }
            Target::Remote(url) if r.is_image => {
                let fetched = options
                    .fetch_images
                    .then(|| fetch_image(&url, &doc.origin, line, report))
                    .flatten();
                match fetched {
                    Some(bytes) => {
                        let taken: Vec<String> = bundle.iter().map(|(n, _)| n.clone()).collect();
                        let name = images::file_name(&url, bundle.len() + 1, &taken);
                        bundle.push((name.clone(), Content::Bytes(bytes)));
                        report.images_fetched += 1;
                        replace.push((url, name));
                    }
                    None => report.images_remote.push(Note::new(&doc.origin, line, url)),
                }
            }
            Target::Remote(_) => {}
            Target::Missing => {
                let local = !r.dest.contains(':') && !r.dest.starts_with("//");
                if r.is_image && local {
                    report.unmapped.push(Note::new(
                        &doc.origin,
                        line,
                        format!(
                            "image {} is not in the source; add it under content/ after the import, or fix the path",
                            r.dest
                        ),
                    ));
                }
            }
        }
    }
    let is_bundle = !bundle.is_empty();
    let stem = &p.stem;
    let markdown_rel = match (doc.kind, is_bundle) {
        (Kind::Post, true) => format!("{stem}/index.md"),
        (Kind::Page, true) if !stem.ends_with("/index") && stem != "index" => {
            format!("{stem}/index.md")
        }
        _ => format!("{stem}.md"),
    };
    let folder = markdown_rel
        .rsplit_once('/')
        .map_or(String::new(), |(dir, _)| format!("{dir}/"));
    // Site paths, not names: raw HTML (which quire does not resolve) then
    // finds the file too.
    for (from, name) in &replace {
        let to = format!("/{folder}{name}");
        body = replace_destination(&body, from, &to);
        if image.as_deref() == Some(from.as_str()) {
            image = Some(to);
        }
    }
    report.images_copied += bundle
        .iter()
        .filter(|(name, content)| matches!(content, Content::Copy(_)) && is_image(name))
        .count()
        + statics.iter().filter(|f| is_image(&f.rel)).count();
    let front = QuireFront {
        title: doc.title.clone(),
        date: doc
            .date
            .filter(|_| doc.kind == Kind::Post)
            .map(writer::datetime),
        updated: doc.updated.map(writer::datetime),
        description: doc.description.clone().filter(|d| !d.trim().is_empty()),
        tags: dedup(&doc.tags),
        draft: doc.draft,
        slug: p.slug.clone(),
        aliases: p.aliases.clone(),
        image,
        author: doc.author.clone(),
    };
    match doc.kind {
        Kind::Post => report.posts += 1,
        Kind::Page => report.pages += 1,
    }
    report.drafts += usize::from(doc.draft);
    report.redirects += p.aliases.len();
    let mut files = vec![OutFile {
        rel: markdown_rel,
        content: Content::Text(writer::document(&front, &body)),
    }];
    files.extend(bundle.into_iter().map(|(name, content)| OutFile {
        rel: format!("{folder}{name}"),
        content,
    }));
    files.extend(statics);
    files
}

fn fetch_image(url: &str, origin: &str, line: usize, report: &mut Report) -> Option<Vec<u8>> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(_) => url::Url::parse(&format!("https:{url}")).ok()?,
    };
    match fetch::get(&parsed, fetch::Wanted::Image) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            report
                .unmapped
                .push(Note::new(origin, line, format!("image not fetched: {e}")));
            None
        }
    }
}

/// Replaces a link destination as written, in `(dest)`, `(dest "` and
/// `"dest"` (HTML attributes).
fn replace_destination(body: &str, from: &str, to: &str) -> String {
    body.replace(&format!("({from})"), &format!("({to})"))
        .replace(&format!("({from} "), &format!("({to} "))
        .replace(&format!("\"{from}\""), &format!("\"{to}\""))
        .replace(&format!("'{from}'"), &format!("'{to}'"))
}

fn is_image(name: &str) -> bool {
    let ext = name
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_ascii_lowercase();
    matches!(
        ext.as_str(),
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "svg" | "avif" | "bmp" | "ico"
    )
}

/// Tags once each, by their slug, in the source's order.
fn dedup(tags: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    tags.iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && seen.insert(slugify(t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Dialect;
    use chrono::{DateTime, TimeZone, Utc};

    fn default_url(slug: &str, _: DateTime<Utc>) -> String {
        format!("/posts/{slug}/")
    }

    fn post(origin: &str, old: &str, body: &str) -> Document {
        let mut doc = Document::new(Kind::Post, origin.into(), Dialect::Hugo);
        doc.title = "T".into();
        doc.date = Some(Utc.with_ymd_and_hms(2020, 1, 2, 0, 0, 0).unwrap());
        doc.old_url = Some(old.into());
        doc.body = body.into();
        doc
    }

    #[test]
    fn posts_get_files_slugs_aliases_and_refs() {
        let options = Options {
            into: PathBuf::new(),
            fetch_images: false,
            post_url: &default_url,
        };
        let mut report = Report::default();
        let docs = vec![
            post(
                "content/posts/a.md",
                "/posts/My_Post/",
                "See {{< ref \"b.md\" >}}\n\n![x](https://x.test/i.png)",
            ),
            post("content/posts/b.md", "/2020/01/b.html", "B"),
        ];
        let files = plan(docs, &[], &options, &mut report);
        let text = |rel: &str| match &files.iter().find(|f| f.rel == rel).unwrap().content {
            Content::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        };
        let a = text("posts/2020-01-02-my-post.md");
        assert!(a.contains("slug = \"My_Post\""), "{a}");
        assert!(!a.contains("aliases"), "{a}");
        assert!(a.contains("See /posts/b/"), "{a}");
        let b = text("posts/2020-01-02-b.md");
        assert!(!b.contains("slug ="), "{b}");
        assert!(b.contains("aliases = [\"/2020/01/b.html\"]"), "{b}");
        assert_eq!(report.posts, 2);
        assert_eq!(report.redirects, 1);
        assert_eq!(report.images_remote.len(), 1);
    }
}
