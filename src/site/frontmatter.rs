//! Front matter: the TOML (`+++`) or YAML (`---`) block that opens every content
//! file. Owns splitting it from the markdown body, the accepted keys, date formats,
//! and error messages that point at the line to fix.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// The metadata of one post or page, as the author wrote it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
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
    pub front: FrontMatter,
    pub body: &'a str,
    /// Line number (1-based) of the body's first line in the file.
    pub body_line: usize,
}

#[derive(Clone, Copy)]
enum Format {
    Toml,
    Yaml,
}

/// Splits and parses a content file.
pub fn parse(text: &str) -> Result<Parsed<'_>, FrontMatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line_end = text.find('\n').map_or(text.len(), |i| i + 1);
    let (format, fence) = match text[..first_line_end].trim_end() {
        "+++" => (Format::Toml, "+++"),
        "---" => (Format::Yaml, "---"),
        _ => {
            return Err(FrontMatterError {
                line: 1,
                message: "the file does not start with front matter; begin it with a line `+++`, then `title = \"...\"`, then a closing `+++`".into(),
            });
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
        return Err(FrontMatterError {
            line: 1,
            message: format!(
                "the front matter opened on line 1 is never closed; add a line `{fence}` after the last key"
            ),
        });
    };
    let meta = &text[first_line_end..meta_end];
    let front = match format {
        Format::Toml => toml::from_str::<FrontMatter>(meta).map_err(|e| FrontMatterError {
            line: 1 + e
                .span()
                .map_or(1, |s| meta[..s.start].matches('\n').count() + 1),
            message: format!("{}; fix the TOML front matter", e.message().trim_end()),
        })?,
        Format::Yaml => {
            serde_yaml_ng::from_str::<FrontMatter>(meta).map_err(|e| FrontMatterError {
                line: 1 + e.location().map_or(1, |l| l.line()),
                message: format!("{}; fix the YAML front matter", yaml_message(&e)),
            })?
        }
    };
    if front.title.trim().is_empty() {
        return Err(FrontMatterError {
            line: 2,
            message: "the title is empty; give the post a title".into(),
        });
    }
    Ok(Parsed {
        front,
        body: &text[body_start..],
        body_line: line + 1,
    })
}

/// serde_yaml appends " at line X column Y" to its messages; we print our own.
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
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

    #[test]
    fn errors_point_at_the_line() {
        let e = parse("+++\ntitle = \"x\"\n\ndate = \"yesterday\"\n+++\n").unwrap_err();
        assert_eq!(e.line, 4, "{e:?}");
        assert!(e.message.contains("2026-03-14"), "{e:?}");

        let e = parse("+++\ntitle = \"x\"\ntags = \"one\"\n+++\n").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");

        let e = parse("---\ntitle: x\ncolour: red\n---\n").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("colour"), "{e:?}");

        let e = parse("---\ntitle: [unclosed\n---\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");

        let e = parse("+++\ntitle = \"x\"\n").unwrap_err();
        assert!(e.message.contains("never closed"), "{e:?}");

        let e = parse("# Just markdown\n").unwrap_err();
        assert_eq!(e.line, 1);

        let e = parse("+++\ndate = 2026-01-01\n+++\n").unwrap_err();
        assert!(e.message.contains("title"), "{e:?}");
    }
}
