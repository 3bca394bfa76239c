//! Front matter: the TOML (`+++`) or YAML (`---`) block that opens every content
//! file. Owns splitting it from the markdown body, the accepted keys, date formats,
//! and error messages that point at the line to fix: the first syntax error where
//! it is, and every refused key in one run, in the author's words (shared with
//! the config's, in `crate::serde_words`). Past 600 lines only by its tests,
//! which walk each kind of mistake in both formats.

use std::fmt;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::serde_words::{self, UnknownKey};
use crate::source_text::{blank_entry, line_of};

/// The metadata of one post or page, as the author wrote it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    /// Required; left empty here so that its absence is reported with the
    /// other problems rather than alone.
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub date: Option<Timestamp>,
    #[serde(default)]
    pub updated: Option<Timestamp>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Show a table of contents built from the headings.
    #[serde(default)]
    pub toc: bool,
    /// The page's absolute URL path, over `[site] post_url`.
    #[serde(default)]
    pub path: Option<String>,
    /// The picture shown where the page is shared: a site path, a file
    /// beside the page, or an `https://` URL.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub image_alt: Option<String>,
    /// Who wrote it, when not the site's `[site] author`.
    #[serde(default)]
    pub author: Option<String>,
}

/// A date or date-time from front matter, in UTC. A bare date means midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

/// Text that is none of the date formats front matter accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date; write it as 2026-03-14 or 2026-03-14T09:30:00Z")]
pub struct NotADate(pub String);

impl Timestamp {
    pub fn parse(text: &str) -> Result<Timestamp, NotADate> {
        let text = text.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Ok(Timestamp(dt.with_timezone(&Utc)));
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(Timestamp(dt.and_utc()));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Timestamp(
                d.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
            ));
        }
        Err(NotADate(text.to_string()))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a date such as 2026-03-14 or 2026-03-14T09:30:00Z")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
            // TOML's native dates arrive as a one-entry map; let the toml crate
            // decode that and reuse the string parser.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Timestamp, A::Error> {
                let native =
                    toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Timestamp::parse(&native.to_string()).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// A front matter problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatterError {
    pub line: usize,
    pub message: String,
}

/// A content file split into its metadata and its markdown.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// What could be read: a key that was refused keeps its default.
    pub front: FrontMatter,
    pub body: &'a str,
    /// Line number (1-based) of the body's first line in the file.
    pub body_line: usize,
    /// What is wrong with the keys, first line first. A file with any is not
    /// published; the caller adds its own checks, so that one run lists them all.
    pub problems: Vec<FrontMatterError>,
    /// The front matter, from the line after the opening fence (line 2).
    meta: &'a str,
    format: Format,
    /// Keys the file sets whose values were refused (each is in `problems`).
    refused: Vec<String>,
}

impl Parsed<'_> {
    /// Whether the file sets `key` but its value was refused: a check for
    /// the key's absence must then stay quiet.
    pub fn refused(&self, key: &str) -> bool {
        self.refused.iter().any(|k| k == key)
    }

    /// The line of the file that sets `key`, else the front matter's first.
    pub fn line_of(&self, key: &str) -> usize {
        self.meta
            .lines()
            .position(|line| key_of(line, self.format) == Some(key))
            .map_or(2, |index| index + 2)
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Toml,
    Yaml,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
        }
    }
}

/// Splits and parses a content file. `Err` when there is no front matter to
/// read (none, never closed, a syntax error, or keys the parser could not get
/// past), with every problem found; problems with single keys come in
/// [`Parsed::problems`].
pub fn parse(text: &str) -> Result<Parsed<'_>, Vec<FrontMatterError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line_end = text.find('\n').map_or(text.len(), |i| i + 1);
    let (format, fence) = match text[..first_line_end].trim_end() {
        "+++" => (Format::Toml, "+++"),
        "---" => (Format::Yaml, "---"),
        _ => {
            return Err(vec![FrontMatterError {
                line: 1,
                message: "the file does not start with front matter; begin it with a line `+++`, then `title = \"...\"`, then a closing `+++`".into(),
            }]);
        }
    };
    let mut offset = first_line_end;
    let mut line = 2;
    let mut closing = None;
    for raw_line in text[first_line_end..].split_inclusive('\n') {
        if raw_line.trim_end() == fence {
            closing = Some((offset, offset + raw_line.len()));
            break;
        }
        offset += raw_line.len();
        line += 1;
    }
    let Some((meta_end, body_start)) = closing else {
        return Err(vec![FrontMatterError {
            line: 1,
            message: format!(
                "the front matter opened on line 1 is never closed; add a line `{fence}` after the last key"
            ),
        }]);
    };
    let meta = &text[first_line_end..meta_end];
    // Lines of `meta` are lines of the file less one: the opening fence.
    let located = |line: usize, message: &str| FrontMatterError {
        line: line + 1,
        message: format!("{message}; fix the {} front matter", format.name()),
    };
    if let Some((line, message)) = syntax_error(meta, format) {
        return Err(vec![located(line, &message)]);
    }
    let (front, refusals) = read_keys(meta, format);
    let mut problems: Vec<FrontMatterError> = refusals
        .iter()
        .map(|r| located(r.line, &r.message))
        .collect();
    let Some(front) = front else {
        return Err(problems);
    };
    let mut parsed = Parsed {
        front,
        body: &text[body_start..],
        body_line: line + 1,
        problems: Vec::new(),
        meta,
        format,
        refused: refusals.into_iter().map(|r| r.key).collect(),
    };
    if parsed.front.title.trim().is_empty() && !parsed.refused("title") {
        let example = match format {
            Format::Toml => "title = \"...\"",
            Format::Yaml => "title: ...",
        };
        let has_title = parsed
            .meta
            .lines()
            .any(|l| key_of(l, format) == Some("title"));
        problems.push(if has_title {
            FrontMatterError {
                line: parsed.line_of("title"),
                message: "the title is empty; give the post a title".into(),
            }
        } else {
            FrontMatterError {
                line: 1,
                message: format!("the front matter has no title; add a line `{example}`"),
            }
        });
    }
    problems.sort_by_key(|p| p.line);
    parsed.problems = problems;
    Ok(parsed)
}

/// The first syntax error in the text, as (line, message). Nothing after it
/// is reported: past a syntax error the parser can only guess what was meant.
fn syntax_error(meta: &str, format: Format) -> Option<(usize, String)> {
    match format {
        // toml's own error is the first one its recovering parser reported,
        // which is not the first in the text: an unclosed quote is found only
        // after an unclosed `[` further down. Take the earliest.
        Format::Toml => {
            let (_, errors) = toml::de::DeTable::parse_recoverable(meta);
            errors
                .iter()
                .map(|e| (e.span().map_or(0, |s| s.start), e))
                .min_by_key(|(start, _)| *start)
                .map(|(start, e)| (line_of(meta, start), e.message().trim_end().to_string()))
        }
        Format::Yaml => serde_yaml_ng::from_str::<serde_yaml_ng::Value>(meta)
            .err()
            .map(|e| yaml_syntax_error(&e)),
    }
}

/// A key refused by the format's types or the schema.
struct Refusal {
    /// Line in the front matter text.
    line: usize,
    key: String,
    message: String,
}

/// Reads the keys, past every one the format's types or the schema refuse:
/// as for the config file (see `config::raw`), the refused entry is blanked
/// and the rest parsed again, so that one run lists them all. `None` when
/// what is left cannot be read (a value spread over lines in a way the
/// blanking cannot follow, or a problem with no place in the text).
fn read_keys(meta: &str, format: Format) -> (Option<FrontMatter>, Vec<Refusal>) {
    const MOST: usize = 100;
    let mut text = meta.to_string();
    let mut refusals = Vec::new();
    while refusals.len() < MOST {
        let (span, message) = match deserialize(&text, format) {
            Ok(front) => return (Some(front), refusals),
            Err(refused) => refused,
        };
        let line = span.as_ref().map_or(1, |s| line_of(&text, s.start));
        let key = text
            .lines()
            .nth(line - 1)
            .and_then(|l| key_of(l, format))
            .unwrap_or_default()
            .to_string();
        let message = in_words(&message, &key);
        refusals.push(Refusal { line, key, message });
        let Some(span) = span else { break };
        let before = text.clone();
        blank(&mut text, span, format);
        if text == before || syntax_error(&text, format).is_some() {
            break;
        }
    }
    (None, refusals)
}

/// A refusal in the author's words (the same as the config's), naming the
/// key it is about.
fn in_words(message: &str, key: &str) -> String {
    if let Some(UnknownKey { name, known }) = serde_words::unknown_key(message) {
        let known: Vec<String> = known.iter().map(|k| k.to_string()).collect();
        return format!(
            "unknown key `{name}`; front matter takes {}",
            serde_words::or_list(&known)
        );
    }
    let message = serde_words::wrong_type(message, key).unwrap_or_else(|| message.to_string());
    if key.is_empty() {
        message
    } else {
        format!("{key}: {message}")
    }
}

/// The front matter, or where (a byte range of `text`) and why it was refused.
fn deserialize(text: &str, format: Format) -> Result<FrontMatter, (Option<Range<usize>>, String)> {
    match format {
        Format::Toml => {
            toml::from_str(text).map_err(|e| (e.span(), e.message().trim_end().to_string()))
        }
        Format::Yaml => {
            // An empty YAML document is null, not an empty mapping.
            if serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).is_ok_and(|v| v.is_null()) {
                return Ok(FrontMatter::default());
            }
            serde_yaml_ng::from_str(text)
                .map_err(|e| (e.location().map(|l| l.index()..l.index()), yaml_message(&e)))
        }
    }
}

/// Blanks every line of `span`; in YAML also the block below it (a list or
/// mapping indented under the key, or a list at the key's own indentation).
fn blank(text: &mut String, span: Range<usize>, format: Format) {
    let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let first_line = text[start..].lines().next().unwrap_or_default();
    let indent = first_line.len() - first_line.trim_start().len();
    let opens_block = first_line.trim_end().ends_with(':');
    let mut at = span.start;
    loop {
        blank_entry(text, at);
        match text[at..span.end.min(text.len())].find('\n') {
            Some(i) => at += i + 1,
            None => break,
        }
    }
    let Format::Yaml = format else { return };
    while let Some(next) = text[at..].find('\n').map(|i| at + i + 1) {
        let line = text[next..].lines().next().unwrap_or_default();
        let trimmed = line.trim_start();
        let deeper = line.len() - trimmed.len() > indent;
        let item = opens_block && line.len() - trimmed.len() == indent && trimmed.starts_with('-');
        if !(trimmed.is_empty() || deeper || item) || next >= text.len() {
            break;
        }
        blank_entry(text, next);
        at = next;
    }
}

/// The key a front matter line sets (or the table its header opens), if any.
fn key_of(line: &str, format: Format) -> Option<&str> {
    let key = match format {
        Format::Toml => match line.trim().strip_prefix('[') {
            Some(header) => header.split(']').next()?,
            None => line.split_once('=')?.0,
        },
        // Only top-level keys: an indented line belongs to a value above.
        Format::Yaml if line.starts_with([' ', '\t', '-', '#']) => return None,
        Format::Yaml => line.split_once(':')?.0,
    };
    Some(key.trim().trim_matches(['"', '\'']))
}

/// serde_yaml puts the key's path (`draft: `) before its messages and " at
/// line X column Y" after them; we print the key and the line our own way.
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    match text.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => rest.to_string(),
        _ => text.to_string(),
    }
}

/// A YAML syntax error, located where its cause starts: for "found
/// unexpected end of stream at line 4 column 1, while scanning a quoted
/// scalar at line 1 column 8", line 1, where the quote was opened.
fn yaml_syntax_error(e: &serde_yaml_ng::Error) -> (usize, String) {
    let text = e.to_string();
    let opened = text.split_once(", while ").and_then(|(what, context)| {
        let (context, at) = context.split_once(" at line ")?;
        let line: usize = at.split(' ').next()?.parse().ok()?;
        let what = what.split(" at line ").next().unwrap_or(what);
        Some((line, format!("{what} while {context}")))
    });
    opened.unwrap_or_else(|| (e.location().map_or(1, |l| l.line()), yaml_message(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_front_matter() {
        let p =
            parse("+++\ntitle = \"Hello\"\ndate = 2026-03-14\ntags = [\"a\", \"b\"]\n+++\nBody\n")
                .unwrap();
        assert_eq!(p.front.title, "Hello");
        assert_eq!(
            p.front.date.unwrap().0.to_rfc3339(),
            "2026-03-14T00:00:00+00:00"
        );
        assert_eq!(p.front.tags, ["a", "b"]);
        assert_eq!(p.body, "Body\n");
        assert_eq!(p.body_line, 6);
    }

    #[test]
    fn toml_native_datetime_and_string_dates() {
        let p = parse("+++\ntitle = \"x\"\ndate = 2026-03-14T09:30:00+02:00\nupdated = \"2026-03-15 10:00:00\"\n+++\n").unwrap();
        assert_eq!(
            p.front.date.unwrap().0.to_rfc3339(),
            "2026-03-14T07:30:00+00:00"
        );
        assert_eq!(
            p.front.updated.unwrap().0.to_rfc3339(),
            "2026-03-15T10:00:00+00:00"
        );
    }

    #[test]
    fn yaml_front_matter_with_crlf() {
        let p = parse("---\r\ntitle: Hi\r\ndate: 2026-01-02\r\ndraft: true\r\naliases: [/old/]\r\n---\r\ntext").unwrap();
        assert_eq!(p.front.title, "Hi");
        assert!(p.front.draft);
        assert_eq!(p.front.aliases, ["/old/"]);
        assert_eq!(p.body, "text");
    }

    /// Every problem `parse` finds, in the order it reports them.
    fn problems(text: &str) -> Vec<FrontMatterError> {
        match parse(text) {
            Ok(parsed) => parsed.problems,
            Err(errors) => errors,
        }
    }

    /// The first problem; panics when there is none.
    fn first_problem(text: &str) -> FrontMatterError {
        problems(text).remove(0)
    }

    #[test]
    fn the_first_syntax_error_is_reported_where_it_is() {
        // An unclosed quote on line 2 and an unclosed `[` on line 4: the
        // parser recovers past the first and used to report only the second.
        let found =
            problems("+++\ntitle = \"Hello\ndate = 2026-01-01\ntags = [\"a\", \"b\"\n+++\nBody\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 2, "{found:?}");
        assert!(found[0].message.contains("fix the TOML"), "{found:?}");

        // YAML reports the end of the stream; the quote opened on line 2.
        let found = problems("---\ntitle: \"Hello\ndate: 2026-01-01\ntags: [a, b\n---\nBody\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 2, "{found:?}");
        assert!(found[0].message.contains("fix the YAML"), "{found:?}");
    }

    #[test]
    fn every_refused_key_is_reported_in_one_run() {
        for (text, draft) in [
            (
                "+++\ndate = \"2026-13-45\"\ndraft = \"yes\"\n+++\nBody\n",
                "TOML",
            ),
            ("---\ndate: 2026-13-45\ndraft: \"yes\"\n---\nBody\n", "YAML"),
        ] {
            let found = problems(text);
            let lines: Vec<usize> = found.iter().map(|e| e.line).collect();
            assert_eq!(lines, [1, 2, 3], "{draft}: {found:?}");
            assert!(found[0].message.contains("title"), "{found:?}");
            assert!(
                found[1].message.contains("2026-13-45") && found[1].message.contains("2026-03-14"),
                "{found:?}"
            );
            assert!(found[2].message.contains("\"yes\""), "{found:?}");
            assert!(found[2].message.contains(draft), "{found:?}");
        }
    }

    /// serde's type names, which an author writing a post does not know.
    const SERDE_WORDS: [&str; 8] = [
        "invalid type",
        "expected",
        "a boolean",
        "a sequence",
        "a string",
        "i64",
        "u64",
        "struct",
    ];

    /// The one problem a file with one wrong value has, checked for serde's
    /// words and for the line and key it must keep.
    fn said_in_words(text: &str, line: usize, key: &str) -> String {
        let found = problems(text);
        assert_eq!(found.len(), 1, "{text:?}: {found:?}");
        let said = &found[0];
        assert_eq!(said.line, line, "{text:?}: {said:?}");
        assert!(said.message.contains(key), "{text:?}: {said:?}");
        for leak in SERDE_WORDS {
            assert!(!said.message.contains(leak), "{text:?}: {said:?}");
        }
        said.message.clone()
    }

    #[test]
    fn wrong_types_are_said_in_the_authors_words() {
        for (text, line, key, words) in [
            (
                "+++\ntitle = \"x\"\ndraft = \"yes\"\n+++\n",
                3,
                "draft",
                "\"yes\" is text in quotes; use true or false",
            ),
            (
                "---\ntitle: x\ntoc: \"yes\"\n---\n",
                3,
                "toc",
                "\"yes\" is text in quotes; use true or false",
            ),
            (
                "+++\ntitle = \"x\"\ntags = \"rust\"\n+++\n",
                3,
                "tags",
                "\"rust\" is text in quotes; use a list of strings, such as [\"a\", \"b\"]",
            ),
            (
                "---\ntitle: x\naliases: /old/\n---\n",
                3,
                "aliases",
                "\"/old/\" is text in quotes; use a list of strings",
            ),
            (
                "+++\ntitle = \"x\"\ntags = [1]\n+++\n",
                3,
                "tags",
                "1 is a number; use text in quotes",
            ),
            (
                "+++\ntitle = 5\n+++\n",
                2,
                "title",
                "5 is a number; use text in quotes",
            ),
            (
                "---\ntitle: x\ndescription: [a]\n---\n",
                3,
                "description",
                "the value is a list; use text in quotes",
            ),
            (
                "+++\ntitle = \"x\"\ndate = 5\n+++\n",
                3,
                "date",
                "5 is a number; use a date such as 2026-03-14",
            ),
            (
                "---\ntitle: x\nupdated: true\n---\n",
                3,
                "updated",
                "true is a yes/no value; use a date such as 2026-03-14",
            ),
        ] {
            let said = said_in_words(text, line, key);
            assert!(said.contains(words), "{text:?}: {said}");
        }
    }

    #[test]
    fn unknown_keys_list_the_known_ones_in_words() {
        for text in [
            "+++\ntitle = \"x\"\ncolour = \"red\"\n+++\n",
            "---\ntitle: x\ncolour: red\n---\n",
        ] {
            let said = said_in_words(text, 3, "colour");
            assert!(
                said.contains(
                    "title, date, updated, description, tags, draft, slug, aliases, toc, path, image, image_alt or author"
                ),
                "{text:?}: {said}"
            );
        }
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = first_problem("+++\ntitle = \"x\"\n\ndate = \"yesterday\"\n+++\n");
        assert_eq!(e.line, 4, "{e:?}");
        assert!(e.message.contains("2026-03-14"), "{e:?}");

        let e = first_problem("+++\ntitle = \"x\"\ntags = \"one\"\n+++\n");
        assert_eq!(e.line, 3, "{e:?}");

        let e = first_problem("---\ntitle: x\ncolour: red\n---\n");
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("colour"), "{e:?}");

        let e = first_problem("---\ntitle: [unclosed\n---\n");
        assert!(e.line >= 2, "{e:?}");

        let e = first_problem("+++\ntitle = \"x\"\n");
        assert!(e.message.contains("never closed"), "{e:?}");

        let e = first_problem("# Just markdown\n");
        assert_eq!(e.line, 1);

        let e = first_problem("+++\ndate = 2026-01-01\n+++\n");
        assert!(e.message.contains("title"), "{e:?}");
    }
}
