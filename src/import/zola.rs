//! A Zola site: content/ read into documents. A page's date comes from its
//! front matter or its file name (`2020-01-02-name.md`, `2020-01-02_name`),
//! its old URL is its `path`, else its section's path plus its slug (the
//! name less the date, slugified); `[taxonomies]` tags and categories
//! become tags, `[extra]` is looked into for an image. Dated pages are
//! posts, the others pages; `_index.md` is a section's list. Images resolve
//! into static/.

use std::path::Path;

use chrono::NaiveDate;

use super::foreign::{self, Value};
use super::hugo::{bundle_files, markdown_files};
use super::urls::{self, zola_slugify};
use super::{Dialect, Document, ImportError, Kind, Note, Read, relative};

pub fn read(root: &Path) -> Result<Read, ImportError> {
    let config_path = root.join("config.toml");
    let config: toml::Table = std::fs::read_to_string(&config_path)
        .map_err(|source| ImportError::Read {
            path: config_path.display().to_string(),
            source,
        })?
        .parse()
        .unwrap_or_default();
    let base_path = config
        .get("base_url")
        .and_then(|b| b.as_str())
        .and_then(|b| url::Url::parse(b).ok())
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let mut read = Read {
        static_roots: vec![root.join("static")],
        ..Read::default()
    };
    let content = root.join("content");
    for file in markdown_files(&content) {
        let origin = relative(root, &file);
        let rel = relative(&content, &file);
        if let Some(doc) = read_file(&file, &rel, &origin, &base_path, &mut read.notes)? {
            read.documents.push(doc);
        }
    }
    Ok(read)
}

/// Splits Zola's `YYYY-MM-DD-` or `YYYY-MM-DD_` (or a datetime) prefix.
fn dated(name: &str) -> (Option<NaiveDate>, &str) {
    let date = name
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    match (date, name.get(10..11)) {
        (Some(date), Some("-" | "_")) => (Some(date), &name[11..]),
        _ => (None, name),
    }
}

fn read_file(
    file: &Path,
    rel: &str,
    origin: &str,
    base_path: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<Document>, ImportError> {
    let Some(text) = foreign::read_text(file, origin, notes)? else {
        return Ok(None);
    };
    let Some(split) = foreign::split_noted(&text, origin, notes) else {
        return Ok(None);
    };
    let (folder, file_name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    if stem == "_index" {
        foreign::note_section_list(&split, origin, notes);
        return Ok(None);
    }
    let is_bundle = stem == "index" && !folder.is_empty();
    let (section, name) = if is_bundle {
        folder.rsplit_once('/').unwrap_or(("", folder))
    } else {
        (folder, stem)
    };
    let mut doc = Document::new(Kind::Page, origin.to_string(), Dialect::Zola);
    doc.source_file = Some(file.to_path_buf());
    doc.body = split.body.to_string();
    doc.body_line = split.body_line;
    let mut front = split.front;
    foreign::map_common(&mut front, &mut doc, notes);
    if let Some(Value::Map(taxonomies)) = front.take("taxonomies") {
        for (name, terms) in taxonomies {
            if name == "tags" || name == "categories" {
                doc.tags.extend(terms.texts());
            } else {
                notes.push(Note::new(
                    origin,
                    front.line("taxonomies"),
                    format!("taxonomy `{name}` has no place in quire (only tags); not imported"),
                ));
            }
        }
    }
    if let Some(Value::Map(extra)) = front.take("extra") {
        for (key, value) in extra {
            let image = matches!(key.as_str(), "image" | "cover" | "thumbnail");
            if image && doc.image.is_none() {
                doc.image = value.text();
            } else {
                notes.push(Note::new(
                    origin,
                    front.line("extra"),
                    format!(
                        "[extra] key `{key}` has no place in quire's front matter; not imported"
                    ),
                ));
            }
        }
    }
    let (file_date, rest) = dated(name);
    if doc.date.is_none() {
        doc.date = file_date.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let slug = front
        .take("slug")
        .and_then(|v| v.text())
        .map(|s| zola_slugify(&s))
        .unwrap_or_else(|| zola_slugify(rest));
    let path = front.take("path").and_then(|v| v.text());
    foreign::note_left(&front, origin, notes);
    doc.kind = if doc.date.is_some() && !folder.is_empty() {
        Kind::Post
    } else {
        Kind::Page
    };
    doc.name = slug.clone();
    doc.old_url = Some(match path {
        Some(path) => urls::clean(&format!("{base_path}/{path}/")),
        None => urls::clean(&format!("{base_path}/{section}/{slug}/")),
    });
    if is_bundle {
        doc.bundle = bundle_files(file.parent().expect("in a folder"), file)
            .into_iter()
            .filter(|(path, _)| path.extension().is_none_or(|x| x != "md"))
            .collect();
        doc.page_path = format!("{folder}/index");
    } else {
        doc.page_path = format!("{folder}/{slug}")
            .trim_start_matches('/')
            .to_string();
    }
    Ok(Some(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zola_pages_dates_taxonomies_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("config.toml", "base_url = \"https://z.test\"\n");
        write(
            "content/blog/2022-05-06-Hello World.md",
            "+++\ntitle = \"Hello\"\n[taxonomies]\ntags = [\"rust\"]\nauthors = [\"x\"]\n[extra]\ncover = \"/c.png\"\nmood = \"good\"\n+++\nBody\n",
        );
        write("content/blog/_index.md", "+++\ntitle = \"Blog\"\n+++\n");
        write(
            "content/about.md",
            "+++\ntitle = \"About\"\npath = \"me\"\n+++\n",
        );
        let read = read(dir.path()).unwrap();
        assert_eq!(read.documents.len(), 2);
        let post = &read.documents[1];
        assert_eq!(post.kind, Kind::Post);
        assert_eq!(post.date.unwrap().to_rfc3339(), "2022-05-06T00:00:00+00:00");
        assert_eq!(post.old_url.as_deref(), Some("/blog/hello-world/"));
        assert_eq!(post.tags, ["rust"]);
        assert_eq!(post.image.as_deref(), Some("/c.png"));
        let about = &read.documents[0];
        assert_eq!(about.kind, Kind::Page);
        assert_eq!(about.old_url.as_deref(), Some("/me/"));
        let messages: Vec<&str> = read.notes.iter().map(|n| n.message.as_str()).collect();
        assert!(
            messages.iter().any(|m| m.contains("taxonomy `authors`")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("`mood`")),
            "{messages:?}"
        );
    }
}
