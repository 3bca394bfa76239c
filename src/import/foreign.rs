//! Other generators' front matter: TOML (`+++`), YAML (`---`) or Hugo's JSON
//! (`{`), read into one ordered [`Front`] whose keys a reader takes one by
//! one, so that what is left (keys quire has no place for) can be listed
//! with their lines. Also reading a source file with a size bound.

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::{Document, ImportError, Note};
use crate::site::frontmatter::Timestamp;

/// No source file is read past this: a markdown post is far smaller, and
/// an import must not be made to swallow a runaway file whole.
pub const MAX_TEXT: u64 = 20 * 1024 * 1024;

/// Reads a file of at most [`MAX_TEXT`] bytes.
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_TEXT + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_TEXT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MB", MAX_TEXT / 1024 / 1024),
        ));
    }
    Ok(bytes)
}

/// A front matter value, whatever the format.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    Text(String),
    /// A TOML or YAML date, as written.
    Date(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Text(s) | Value::Date(s) | Value::Number(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A list of texts, or one text (Jekyll's `categories: a b` splits on spaces).
    pub fn texts(&self) -> Vec<String> {
        match self {
            Value::List(items) => items.iter().filter_map(Value::text).collect(),
            Value::Text(s) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// quire's date formats, and Jekyll's `2019-06-01 10:00:00 +0000`.
    pub fn date(&self) -> Option<DateTime<Utc>> {
        let text = self.text()?;
        Timestamp::parse(&text).ok().map(|t| t.0).or_else(|| {
            ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z"]
                .iter()
                .find_map(|f| DateTime::parse_from_str(text.trim(), f).ok())
                .map(|d| d.with_timezone(&Utc))
        })
    }

    pub fn truth(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Text(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn from_toml(value: toml::Value) -> Value {
        match value {
            toml::Value::String(s) => Value::Text(s),
            toml::Value::Integer(i) => Value::Number(i.to_string()),
            toml::Value::Float(f) => Value::Number(f.to_string()),
            toml::Value::Boolean(b) => Value::Bool(b),
            toml::Value::Datetime(d) => Value::Date(d.to_string()),
            toml::Value::Array(items) => {
                Value::List(items.into_iter().map(Value::from_toml).collect())
            }
            toml::Value::Table(table) => Value::Map(
                table
                    .into_iter()
                    .map(|(k, v)| (k, Value::from_toml(v)))
                    .collect(),
            ),
        }
    }

    fn from_yaml(value: serde_yaml_ng::Value) -> Value {
        use serde_yaml_ng::Value as Y;
        match value {
            Y::Null => Value::Null,
            Y::Bool(b) => Value::Bool(b),
            Y::Number(n) => Value::Number(n.to_string()),
            Y::String(s) => Value::Text(s),
            Y::Sequence(items) => Value::List(items.into_iter().map(Value::from_yaml).collect()),
            Y::Mapping(map) => Value::Map(
                map.into_iter()
                    .filter_map(|(k, v)| Some((Value::from_yaml(k).text()?, Value::from_yaml(v))))
                    .collect(),
            ),
            Y::Tagged(tagged) => Value::from_yaml(tagged.value),
        }
    }

    fn from_json(value: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match value {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => Value::Number(n.to_string()),
            J::String(s) => Value::Text(s),
            J::Array(items) => Value::List(items.into_iter().map(Value::from_json).collect()),
            J::Object(map) => Value::Map(
                map.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// The keys of one file's front matter, taken one by one by a reader.
#[derive(Debug, Default)]
pub struct Front {
    entries: Vec<(String, Value)>,
    /// Line of the file where each key is set.
    lines: Vec<(String, usize)>,
}

impl Front {
    /// Takes a key: it is then no longer among [`Front::left`].
    pub fn take(&mut self, key: &str) -> Option<Value> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(at).1)
    }

    /// The first of `keys` that is set, taking all of them.
    pub fn take_any(&mut self, keys: &[&str]) -> Option<Value> {
        keys.iter()
            .filter_map(|k| self.take(k))
            .collect::<Vec<_>>()
            .into_iter()
            .next()
    }

    pub fn line(&self, key: &str) -> usize {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map_or(1, |(_, l)| *l)
    }

    /// Keys no reader took, with their lines.
    pub fn left(&self) -> Vec<(String, usize)> {
        self.entries
            .iter()
            .map(|(k, _)| (k.clone(), self.line(k)))
            .collect()
    }
}

/// A file split into its front matter and its body.
#[derive(Debug)]
pub struct Split<'a> {
    pub front: Front,
    pub body: &'a str,
    /// Line of the body's first line.
    pub body_line: usize,
}

/// A content file's text, read within bounds; `None`, with a note, when it
/// is not UTF-8 text.
pub fn read_text(
    file: &Path,
    origin: &str,
    notes: &mut Vec<Note>,
) -> Result<Option<String>, ImportError> {
    let bytes = read_bounded(file).map_err(|source| ImportError::Read {
        path: file.display().to_string(),
        source,
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(_) => {
            notes.push(Note::new(origin, 0, "not UTF-8 text; not imported"));
            Ok(None)
        }
    }
}

/// [`split`], with a note saying the file is not imported when its front
/// matter cannot be read.
pub fn split_noted<'a>(text: &'a str, origin: &str, notes: &mut Vec<Note>) -> Option<Split<'a>> {
    split(text)
        .map_err(|(line, why)| {
            notes.push(Note::new(
                origin,
                line,
                format!("front matter unreadable ({why}); not imported"),
            ))
        })
        .ok()
}

/// A section's list page (`_index.md`) is not imported, since quire makes
/// its own lists; text written on it is noted so the author can move it.
pub fn note_section_list(split: &Split, origin: &str, notes: &mut Vec<Note>) {
    if !split.body.trim().is_empty() {
        notes.push(Note::new(
            origin,
            split.body_line,
            "a section's list page has text; quire makes its own lists, so it is not imported",
        ));
    }
}

/// Splits and reads a file's front matter; a file without any has an empty
/// one. `Err((line, why))` when the front matter cannot be read.
pub fn split(text: &str) -> Result<Split<'_>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_end = text.find('\n').map_or(text.len(), |i| i + 1);
    let fence = text[..first_end].trim_end();
    if fence.starts_with('{') {
        return split_json(text);
    }
    if fence != "+++" && fence != "---" {
        return Ok(Split {
            front: Front::default(),
            body: text,
            body_line: 1,
        });
    }
    let mut offset = first_end;
    let mut line = 2;
    let mut closing = None;
    for raw in text[first_end..].split_inclusive('\n') {
        if raw.trim_end() == fence {
            closing = Some((offset, offset + raw.len()));
            break;
        }
        offset += raw.len();
        line += 1;
    }
    let Some((meta_end, body_start)) = closing else {
        return Err((1, format!("the front matter is never closed by `{fence}`")));
    };
    let meta = &text[first_end..meta_end];
    let entries = if fence == "+++" {
        let table: toml::Table = toml::from_str(meta).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            (line_in(meta, at) + 1, e.message().trim_end().to_string())
        })?;
        match Value::from_toml(toml::Value::Table(table)) {
            Value::Map(entries) => entries,
            _ => Vec::new(),
        }
    } else {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(meta).map_err(|e| {
            (
                e.location().map_or(1, |l| l.line()) + 1,
                e.to_string().split(" at line ").next().unwrap_or("").into(),
            )
        })?;
        match Value::from_yaml(value) {
            Value::Map(entries) => entries,
            _ => Vec::new(),
        }
    };
    let lines = key_lines(meta, fence == "+++", &entries);
    Ok(Split {
        front: Front { entries, lines },
        body: &text[body_start..],
        body_line: line + 1,
    })
}

/// Hugo's JSON front matter: one object, then the body.
fn split_json(text: &str) -> Result<Split<'_>, (usize, String)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let value = match stream.next() {
        Some(Ok(value)) => value,
        Some(Err(e)) => return Err((e.line(), e.to_string())),
        None => return Err((1, "no JSON front matter".into())),
    };
    let end = stream.byte_offset();
    let entries = match Value::from_json(value) {
        Value::Map(entries) => entries,
        _ => Vec::new(),
    };
    let head = &text[..end];
    let lines = entries
        .iter()
        .map(|(k, _)| {
            let at = head.find(&format!("\"{k}\"")).unwrap_or(0);
            (k.clone(), line_in(head, at))
        })
        .collect();
    let body = text[end..].strip_prefix('\n').unwrap_or(&text[end..]);
    Ok(Split {
        front: Front { entries, lines },
        body,
        body_line: line_in(text, text.len() - body.len()),
    })
}

/// 1-based line of byte `at` in `text`.
fn line_in(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The file line of each top-level key (the fence is line 1).
fn key_lines(meta: &str, toml: bool, entries: &[(String, Value)]) -> Vec<(String, usize)> {
    let mut lines = Vec::new();
    for (index, line) in meta.lines().enumerate() {
        let key = if toml {
            match line.trim().strip_prefix('[') {
                Some(header) => header.trim_start_matches('[').split(['.', ']']).next(),
                None => line.split_once('=').map(|(k, _)| k),
            }
        } else if line.starts_with([' ', '\t', '-', '#']) {
            None
        } else {
            line.split_once(':').map(|(k, _)| k)
        };
        let Some(key) = key.map(|k| k.trim().trim_matches(['"', '\''])) else {
            continue;
        };
        if entries.iter().any(|(k, _)| k == key) && !lines.iter().any(|(k, _)| k == key) {
            lines.push((key.to_string(), index + 2));
        }
    }
    lines
}

/// Maps the keys every generator names alike (or nearly): title, dates,
/// draft, description, tags and categories, aliases, image, author.
pub fn map_common(front: &mut Front, doc: &mut Document, notes: &mut Vec<Note>) {
    let at = doc.origin.clone();
    if let Some(title) = front.take("title").and_then(|v| v.text()) {
        doc.title = title;
    }
    let mut date_of = |front: &mut Front, keys: &[&str]| {
        let line = keys.iter().map(|k| front.line(k)).min().unwrap_or(1);
        let value = front.take_any(keys)?;
        let date = value.date();
        if date.is_none() {
            notes.push(Note::new(
                &at,
                line,
                format!("`{}` is not a date quire reads; write it as 2026-03-14 or 2026-03-14T09:30:00Z", value.text().unwrap_or_default()),
            ));
        }
        date
    };
    if let Some(date) = date_of(front, &["date", "publishDate", "pubdate", "published_at"]) {
        doc.date = Some(date);
    }
    doc.updated = date_of(
        front,
        &["lastmod", "updated", "modified", "last_modified_at"],
    );
    if let Some(draft) = front.take("draft").and_then(|v| v.truth()) {
        doc.draft |= draft;
    }
    if let Some(published) = front.take("published").and_then(|v| v.truth()) {
        doc.draft |= !published;
    }
    doc.description = front
        .take_any(&["description", "summary", "excerpt"])
        .and_then(|v| v.text());
    for key in ["tags", "categories", "category"] {
        if let Some(value) = front.take(key) {
            let texts = value.texts();
            let split_words = matches!(value, Value::Text(_)) && key != "category";
            for text in texts {
                if split_words {
                    doc.tags.extend(text.split_whitespace().map(str::to_string));
                } else {
                    doc.tags.push(text);
                }
            }
        }
    }
    for key in ["aliases", "redirect_from"] {
        if let Some(value) = front.take(key) {
            doc.aliases.extend(value.texts());
        }
    }
    let image = front
        .take_any(&[
            "image",
            "images",
            "cover",
            "featured_image",
            "featuredImage",
        ])
        .and_then(|v| match v {
            Value::List(items) => items.first().and_then(Value::text),
            Value::Map(_) => ["image", "path", "src", "url"]
                .iter()
                .find_map(|k| v.get(k).and_then(Value::text)),
            other => other.text(),
        });
    doc.image = image.filter(|i| !i.is_empty());
    doc.author = front
        .take_any(&["author", "authors"])
        .and_then(|v| match v {
            Value::List(items) => items.first().and_then(Value::text),
            Value::Map(_) => v.get("name").and_then(Value::text),
            other => other.text(),
        });
}

/// A note for each key no reader took.
pub fn note_left(front: &Front, at: &str, notes: &mut Vec<Note>) {
    for (key, line) in front.left() {
        notes.push(Note::new(
            at,
            line,
            format!("front matter key `{key}` has no place in quire's; not imported"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_formats_with_lines() {
        let toml =
            "+++\ntitle = \"T\"\ndate = 2020-01-02\n[taxonomies]\ntags = [\"a\"]\n+++\nbody\n";
        let mut s = split(toml).unwrap();
        assert_eq!(s.front.take("title"), Some(Value::Text("T".into())));
        assert_eq!(s.front.line("taxonomies"), 4);
        let date = s.front.take("date").unwrap().date().unwrap();
        assert_eq!(date.to_rfc3339(), "2020-01-02T00:00:00+00:00");
        assert_eq!(s.body, "body\n");
        assert_eq!(s.body_line, 7);
        assert_eq!(s.front.left(), vec![("taxonomies".into(), 4)]);

        let yaml = "---\nlayout: post\ntitle: \"Y\"\ncategories: a b\n---\nbody\n";
        let s = split(yaml).unwrap();
        assert_eq!(s.front.left()[0], ("layout".into(), 2));
        assert_eq!(s.body_line, 6);

        let json = "{\n  \"title\": \"J\",\n  \"draft\": true\n}\nbody\n";
        let mut s = split(json).unwrap();
        assert_eq!(s.front.line("draft"), 3);
        assert_eq!(s.front.take("draft").unwrap().truth(), Some(true));
        assert_eq!(s.body, "body\n");
        assert_eq!(s.body_line, 5);
    }

    #[test]
    fn a_broken_front_matter_says_where() {
        let (line, why) = split("+++\ntitle = \"T\"\ndate = \n+++\n").unwrap_err();
        assert_eq!(line, 3, "{why}");
        assert!(split("---\ntitle: T\n").is_err());
    }
}
