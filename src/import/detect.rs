//! Which kind of blog SOURCE is: a URL or a file is a feed; a folder is
//! a Jekyll site (_config.yml or _posts/), a Zola site (config.toml with
//! `base_url`, and content/) or a Hugo site (hugo.* or config.* with
//! content/). Jekyll first: its folders have neither config.toml nor content/.

use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use super::ImportError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    FeedUrl(Url),
    FeedFile(PathBuf),
    Hugo(PathBuf),
    Zola(PathBuf),
    Jekyll(PathBuf),
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKind::FeedUrl(url) => write!(f, "the feed at {url}"),
            SourceKind::FeedFile(path) => write!(f, "the feed {}", path.display()),
            SourceKind::Hugo(path) => write!(f, "the Hugo site {}", path.display()),
            SourceKind::Zola(path) => write!(f, "the Zola site {}", path.display()),
            SourceKind::Jekyll(path) => write!(f, "the Jekyll site {}", path.display()),
        }
    }
}

pub fn detect(source: &str) -> Result<SourceKind, ImportError> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return Url::parse(source)
            .map(SourceKind::FeedUrl)
            .map_err(|_| ImportError::Missing(source.to_string()));
    }
    let path = Path::new(source);
    if path.is_file() {
        return Ok(SourceKind::FeedFile(path.to_path_buf()));
    }
    if !path.is_dir() {
        return Err(ImportError::Missing(source.to_string()));
    }
    let root = path.to_path_buf();
    let has = |name: &str| path.join(name).exists();
    if has("_config.yml") || has("_config.yaml") || has("_posts") {
        return Ok(SourceKind::Jekyll(root));
    }
    if has("content") {
        let zola = std::fs::read_to_string(path.join("config.toml"))
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .is_some_and(|table| table.contains_key("base_url"));
        if zola {
            return Ok(SourceKind::Zola(root));
        }
        let hugo = [
            "hugo.toml",
            "hugo.yaml",
            "hugo.json",
            "config.toml",
            "config.yaml",
            "config.json",
            "config/_default",
        ];
        if hugo.iter().any(|name| has(name)) {
            return Ok(SourceKind::Hugo(root));
        }
    }
    Err(ImportError::UnknownFolder(source.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_kinds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let at = |rel: &str| dir.path().join(rel);
        let detect_at = |rel: &str| detect(at(rel).to_str().unwrap());
        for (folder, files, expected) in [
            ("hugo", &["hugo.toml", "content/x.md"][..], "Hugo"),
            ("zola", &["config.toml", "content/x.md"], "Zola"),
            ("jekyll", &["_posts/2020-01-01-x.md"], "Jekyll"),
            ("plain", &["notes.txt"], "none"),
        ] {
            for file in files {
                std::fs::create_dir_all(at(folder).join(file).parent().unwrap()).unwrap();
                let text = if folder == "zola" && *file == "config.toml" {
                    "base_url = \"https://x.test\"\n"
                } else {
                    ""
                };
                std::fs::write(at(folder).join(file), text).unwrap();
            }
            let got = match detect_at(folder) {
                Ok(SourceKind::Hugo(_)) => "Hugo",
                Ok(SourceKind::Zola(_)) => "Zola",
                Ok(SourceKind::Jekyll(_)) => "Jekyll",
                Ok(other) => panic!("{other}"),
                Err(_) => "none",
            };
            assert_eq!(got, expected, "{folder}");
        }
        assert!(matches!(
            detect("https://blog.test/atom.xml"),
            Ok(SourceKind::FeedUrl(_))
        ));
        assert!(matches!(
            detect_at("hugo/hugo.toml"),
            Ok(SourceKind::FeedFile(_))
        ));
        assert!(matches!(detect_at("nowhere"), Err(ImportError::Missing(_))));
    }
}
