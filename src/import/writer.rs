//! Writing the import: quire's TOML front matter (through the toml crate,
//! dates in RFC 3339), and files put down without ever replacing one. A
//! file already there with the same bytes counts as imported before (so a
//! second run adds nothing); one with other bytes is the author's and is
//! left alone, reported.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::foreign::MAX_TEXT;
use super::{ImportError, Note, Report};

/// Copied files past this are listed, not copied: an import is for a blog's
/// posts and their images, not for video archives.
const MAX_COPY: u64 = 100 * 1024 * 1024;

/// One file of the import, relative to the content folder.
#[derive(Debug)]
pub struct OutFile {
    pub rel: String,
    pub content: Content,
}

#[derive(Debug)]
pub enum Content {
    Text(String),
    Copy(PathBuf),
    Bytes(Vec<u8>),
}

/// quire's front matter, in the order an author reads it.
#[derive(Debug, Default, Serialize)]
pub struct QuireFront {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<toml::value::Datetime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<toml::value::Datetime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub draft: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

pub fn datetime(date: DateTime<Utc>) -> toml::value::Datetime {
    date.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        .parse()
        .expect("RFC 3339 is a TOML datetime")
}

/// A markdown file: front matter, a blank line, the body.
pub fn document(front: &QuireFront, body: &str) -> String {
    let meta = toml::to_string(front).expect("front matter serializes");
    let body = body.trim_matches('\n');
    format!("+++\n{meta}+++\n\n{body}\n")
}

/// Writes every file that is not there yet, in order.
pub fn write(into: &Path, files: Vec<OutFile>, report: &mut Report) -> Result<(), ImportError> {
    for file in files {
        let path = into.join(&file.rel);
        let bytes = match file.content {
            Content::Text(text) => text.into_bytes(),
            Content::Bytes(bytes) => bytes,
            Content::Copy(from) => match read_copy(&from) {
                Ok(bytes) => bytes,
                Err(why) => {
                    report.unmapped.push(Note::new(
                        from.display().to_string(),
                        0,
                        format!("not copied to {}: {why}", file.rel),
                    ));
                    continue;
                }
            },
        };
        match std::fs::read(&path) {
            Ok(existing) if existing == bytes => {
                report.unchanged.push(file.rel);
                continue;
            }
            Ok(_) => {
                report.conflicts.push(file.rel);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ImportError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
        create(&path, &bytes).map_err(|source| ImportError::Write {
            path: path.display().to_string(),
            source,
        })?;
        report.written.push(file.rel);
    }
    Ok(())
}

fn read_copy(from: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(from).map_err(|e| e.to_string())?.len();
    if len > MAX_COPY.max(MAX_TEXT) {
        return Err(format!(
            "larger than {} MB; copy it by hand if it belongs to the site",
            MAX_COPY / 1024 / 1024
        ));
    }
    std::fs::read(from).map_err(|e| e.to_string())
}

/// Creates a new file: `create_new`, so that a file appearing meanwhile is
/// not replaced either; written to a temporary name first, so an
/// interrupted import leaves no half file that a rerun would take as the
/// author's.
fn create(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.import~"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    // A hard link fails if the target exists, where a rename would replace it.
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp)?;
    linked
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn front_matter_through_toml() {
        let front = QuireFront {
            title: "Quotes \" and \\ back".into(),
            date: Some(datetime(Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap())),
            tags: vec!["a".into()],
            aliases: vec!["/old/x.html".into()],
            ..QuireFront::default()
        };
        let text = document(&front, "\nBody\n\n");
        assert_eq!(
            text,
            "+++\ntitle = 'Quotes \" and \\ back'\ndate = 2020-01-02T03:04:05Z\ntags = [\"a\"]\naliases = [\"/old/x.html\"]\n+++\n\nBody\n"
        );
        let parsed = crate::site::frontmatter::parse(&text).unwrap();
        assert_eq!(parsed.front.title, "Quotes \" and \\ back");
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    }

    #[test]
    fn never_replaces_a_file_and_knows_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let files = |text: &str| {
            vec![OutFile {
                rel: "posts/a.md".into(),
                content: Content::Text(text.into()),
            }]
        };
        let mut report = Report::default();
        write(dir.path(), files("one"), &mut report).unwrap();
        assert_eq!(report.written, ["posts/a.md"]);
        let mut report = Report::default();
        write(dir.path(), files("one"), &mut report).unwrap();
        assert_eq!(report.unchanged, ["posts/a.md"]);
        let mut report = Report::default();
        write(dir.path(), files("two"), &mut report).unwrap();
        assert_eq!(report.conflicts, ["posts/a.md"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("posts/a.md")).unwrap(),
            "one"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("posts"))
            .unwrap()
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }
}
