//! `quire new "Title"`: writes content/posts/YYYY-MM-DD-title.md as a draft.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use super::markdown::slugify;

#[derive(Debug, thiserror::Error)]
pub enum NewPostError {
    #[error(
        "the title `{0}` has no letters or digits to make a file name from; use a title with words in it"
    )]
    NoSlug(String),
    #[error("{0} already exists; choose another title, or edit that file")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}; check that the content folder is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates the draft and returns its path.
pub fn create(
    content_dir: &Path,
    title: &str,
    now: DateTime<Utc>,
) -> Result<PathBuf, NewPostError> {
    let slug = slugify(title);
    if slug.is_empty() {
        return Err(NewPostError::NoSlug(title.to_string()));
    }
    let dir = content_dir.join("posts");
    let path = dir.join(format!("{}-{slug}.md", now.format("%Y-%m-%d")));
    let write_error = |source| NewPostError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(write_error)?;
    let text = format!(
        "+++\ntitle = {}\ndate = {}\ndescription = \"\"\ntags = []\ndraft = true\n+++\n\nWrite the first paragraph here; it becomes the summary on the home page.\n\n<!-- more -->\n\nThe rest of the post. Remove `draft = true` above to publish it.\n",
        toml::Value::String(title.to_string()),
        now.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => NewPostError::Exists(path.clone()),
            _ => write_error(e),
        })?;
    file.write_all(text.as_bytes()).map_err(write_error)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::frontmatter;

    #[test]
    fn writes_a_parseable_draft_once() {
        let dir = tempfile::tempdir().unwrap();
        let now: DateTime<Utc> = "2026-03-14T09:30:00Z".parse().unwrap();
        let path = create(dir.path(), "Hello, \"World\"!", now).unwrap();
        assert!(path.ends_with("posts/2026-03-14-hello-world.md"));
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = frontmatter::parse(&text).unwrap();
        assert_eq!(parsed.front.title, "Hello, \"World\"!");
        assert!(parsed.front.draft);
        assert!(matches!(
            create(dir.path(), "Hello World", now),
            Err(NewPostError::Exists(_))
        ));
        assert!(matches!(
            create(dir.path(), "!!!", now),
            Err(NewPostError::NoSlug(_))
        ));
    }
}
