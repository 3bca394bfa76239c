//! A Jekyll site: `_posts/` (and `<category>/_posts/`) as posts,
//! `_drafts/` as draft posts, other markdown files with front matter as
//! pages. Each old URL is computed as Jekyll does: front matter
//! `permalink`, else `_config.yml`'s `permalink` (`date`, the default,
//! `pretty`, `ordinal`, `none`, or a `:token` pattern) under `baseurl`.
//! Images resolve from the site's root, which Jekyll copies as it is.

use std::path::Path;

use chrono::{Datelike, NaiveDate};

use super::foreign::{self, Value};
use super::hugo::markdown_files;
use super::urls::{self, jekyll_slugify};
use super::{Dialect, Document, ImportError, Kind, Note, Read, relative};

pub fn read(root: &Path) -> Result<Read, ImportError> {
    let config = read_config(root)?;
    let style = config
        .get("permalink")
        .and_then(Value::text)
        .unwrap_or_else(|| "date".into());
    let pattern = match style.as_str() {
        "date" => "/:categories/:year/:month/:day/:title:output_ext",
        "pretty" => "/:categories/:year/:month/:day/:title/",
        "ordinal" => "/:categories/:year/:y_day/:title:output_ext",
        "none" => "/:categories/:title:output_ext",
        "weekdate" => "/:categories/:year/W:week/:short_day/:title:output_ext",
        other => other,
    }
    .to_string();
    let base = config
        .get("baseurl")
        .and_then(Value::text)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let site = Site {
        pattern,
        pretty: style == "pretty" || style.ends_with('/'),
        base,
    };
    let mut read = Read {
        static_roots: vec![root.to_path_buf()],
        ..Read::default()
    };
    for file in markdown_files(root) {
        let rel = relative(root, &file);
        let parts: Vec<&str> = rel.split('/').collect();
        let in_posts = parts.iter().position(|p| *p == "_posts");
        let in_drafts = parts.first() == Some(&"_drafts");
        let hidden = parts[..parts.len() - 1]
            .iter()
            .any(|p| p.starts_with('_') || *p == "vendor" || *p == "node_modules");
        let doc = match (in_posts, in_drafts) {
            (Some(at), _) => site.post(&file, &rel, &parts[..at], false, &mut read.notes)?,
            (None, true) => site.post(&file, &rel, &[], true, &mut read.notes)?,
            (None, false) if !hidden => site.page(&file, &rel, &mut read.notes)?,
            _ => None,
        };
        read.documents.extend(doc);
    }
    Ok(read)
}

fn read_config(root: &Path) -> Result<Value, ImportError> {
    for name in ["_config.yml", "_config.yaml"] {
        let path = root.join(name);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let fenced = format!("---\n{text}\n---\n");
            let split = foreign::split(&fenced).map_err(|(line, why)| ImportError::Read {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("line {}: {why}", line.saturating_sub(1)),
                ),
            })?;
            let mut front = split.front;
            let entries = front
                .left()
                .into_iter()
                .filter_map(|(k, _)| Some((k.clone(), front.take(&k)?)))
                .collect();
            return Ok(Value::Map(entries));
        }
    }
    Ok(Value::Map(Vec::new()))
}

struct Site {
    pattern: String,
    pretty: bool,
    base: String,
}

/// A file's front matter and body, read; `None` when it has no front
/// matter (Jekyll copies such a file as it is) or cannot be read.
fn open(
    file: &Path,
    origin: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<(Document, foreign::Front)>, ImportError> {
    let Some(text) = foreign::read_text(file, origin, notes)? else {
        return Ok(None);
    };
    if !text.starts_with("---") {
        return Ok(None);
    }
    let Some(split) = foreign::split_noted(&text, origin, notes) else {
        return Ok(None);
    };
    let mut doc = Document::new(Kind::Post, origin.to_string(), Dialect::Jekyll);
    doc.source_file = Some(file.to_path_buf());
    doc.body = split.body.to_string();
    doc.body_line = split.body_line;
    let mut front = split.front;
    // Which template renders it: the look of the old site, not content.
    front.take("layout");
    Ok(Some((doc, front)))
}

impl Site {
    fn post(
        &self,
        file: &Path,
        rel: &str,
        folder_categories: &[&str],
        draft: bool,
        notes: &mut Vec<Note>,
    ) -> Result<Option<Document>, ImportError> {
        let Some((mut doc, mut front)) = open(file, rel, notes)? else {
            return Ok(None);
        };
        // Categories name the URL's folders (lowercased) and become tags.
        let own: Vec<String> = front
            .take_any(&["categories", "category"])
            .map(|v| match v {
                Value::Text(t) => t.split_whitespace().map(str::to_string).collect(),
                other => other.texts(),
            })
            .unwrap_or_default();
        foreign::map_common(&mut front, &mut doc, notes);
        let name = file.file_stem().unwrap_or_default().to_string_lossy();
        let file_date = name
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let title_part = match file_date {
            Some(_) => name.get(11..).unwrap_or(""),
            None => &name,
        };
        if doc.date.is_none() {
            doc.date = file_date.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        }
        doc.draft |= draft;
        if doc.title.is_empty() {
            doc.title = title_part
                .split('-')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ");
        }
        let slug = front.take("slug").and_then(|v| v.text());
        let permalink = front.take("permalink").and_then(|v| v.text());
        foreign::note_left(&front, rel, notes);
        let title = jekyll_slugify(slug.as_deref().unwrap_or(title_part));
        doc.name = title.clone();
        let categories: Vec<String> = folder_categories
            .iter()
            .map(|c| c.to_string())
            .chain(own)
            .collect();
        doc.tags.extend(categories.iter().cloned());
        let categories: Vec<String> = categories.iter().map(|c| c.to_lowercase()).collect();
        let Some(date) = doc.date else {
            return Ok(Some(doc));
        };
        doc.old_url = match permalink {
            Some(p) => Some(urls::clean(&format!("{}/{p}", self.base)).replace("//", "/")),
            None => {
                let value = |token: &str| -> Option<String> {
                    Some(match token {
                        "year" => format!("{:04}", date.year()),
                        "month" => format!("{:02}", date.month()),
                        "i_month" => date.month().to_string(),
                        "day" => format!("{:02}", date.day()),
                        "i_day" => date.day().to_string(),
                        "short_year" => format!("{:02}", date.year() % 100),
                        "y_day" => format!("{:03}", date.ordinal()),
                        "week" => format!("{:02}", date.iso_week().week()),
                        "short_day" => date.format("%a").to_string(),
                        "title" | "slug" => title.clone(),
                        "name" => name.to_string(),
                        "categories" => categories.join("/"),
                        "output_ext" => ".html".into(),
                        _ => return None,
                    })
                };
                match urls::fill(&self.pattern, &value) {
                    Ok(path) => Some(format!("{}{path}", self.base)),
                    Err(token) => {
                        notes.push(Note::new(
                            rel,
                            0,
                            format!("permalink token {token} is unknown to the import; the post's old URL is not kept"),
                        ));
                        None
                    }
                }
            }
        };
        Ok(Some(doc))
    }

    fn page(
        &self,
        file: &Path,
        rel: &str,
        notes: &mut Vec<Note>,
    ) -> Result<Option<Document>, ImportError> {
        if rel.eq_ignore_ascii_case("README.md") {
            return Ok(None);
        }
        let Some((mut doc, mut front)) = open(file, rel, notes)? else {
            return Ok(None);
        };
        foreign::map_common(&mut front, &mut doc, notes);
        doc.kind = Kind::Page;
        let permalink = front.take("permalink").and_then(|v| v.text());
        foreign::note_left(&front, rel, notes);
        let stem = rel.rsplit_once('.').map_or(rel, |(s, _)| s);
        if doc.title.is_empty() {
            doc.title = stem.rsplit('/').next().unwrap_or(stem).to_string();
        }
        let default = match stem.strip_suffix("index") {
            Some(folder) => format!("/{folder}"),
            None if self.pretty => format!("/{stem}/"),
            None => format!("/{stem}.html"),
        };
        doc.old_url = Some(urls::clean(&format!(
            "{}{}",
            self.base,
            permalink.unwrap_or(default)
        )));
        doc.page_path = stem.to_string();
        Ok(Some(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jekyll_urls_by_style() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("_config.yml", "title: Old\n");
        write(
            "_posts/2019-05-01-my_post.md",
            "---\nlayout: post\ntitle: Mine\nredirect_from: /old/\n---\nHi\n",
        );
        write(
            "rust/_posts/2019-06-01-second.markdown",
            "---\ntitle: Second\npublished: false\n---\n",
        );
        write("about.md", "---\ntitle: About\n---\nMe\n");
        write("README.md", "# not a page\n");
        let read = read(dir.path()).unwrap();
        let urls: Vec<(&str, Option<&str>, bool)> = read
            .documents
            .iter()
            .map(|d| (d.title.as_str(), d.old_url.as_deref(), d.draft))
            .collect();
        assert_eq!(
            urls,
            [
                ("Mine", Some("/2019/05/01/my_post.html"), false),
                ("About", Some("/about.html"), false),
                ("Second", Some("/rust/2019/06/01/second.html"), true),
            ]
        );
        assert_eq!(read.documents[0].aliases, ["/old/"]);
        assert_eq!(read.documents[2].tags, ["rust"]);

        write("_config.yml", "permalink: pretty\n");
        let read = super::read(dir.path()).unwrap();
        assert_eq!(
            read.documents[0].old_url.as_deref(),
            Some("/2019/05/01/my_post/")
        );
        assert_eq!(read.documents[1].old_url.as_deref(), Some("/about/"));
    }
}
