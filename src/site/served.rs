//! The served-URL record: every post, page and alias URL a build of
//! `quire serve` served, with the file it came from, kept in the data
//! directory (`DataDir::served_urls`, one `href<TAB>file` line per URL, the
//! file relative to content/, sorted). `quire check` compares a new build
//! with it and warns about each URL that would stop answering, so changing
//! `[site] post_url` or a slug cannot silently break links readers kept.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Problem;
use super::href::decode_path;
use crate::datadir;

/// URLs (hrefs) and the content file (relative to content/) of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    urls: BTreeMap<String, String>,
}

impl Record {
    pub fn insert(&mut self, href: String, source: String) {
        self.urls.insert(href, source);
    }

    pub fn to_text(&self) -> String {
        self.urls
            .iter()
            .map(|(href, source)| format!("{href}\t{source}\n"))
            .collect()
    }

    /// Reads the text [`Record::to_text`] wrote; a line without a tab (a
    /// hand edit) stands for a URL whose file is unknown.
    pub fn parse(text: &str) -> Record {
        let urls = text
            .lines()
            .filter(|line| line.starts_with('/'))
            .map(|line| match line.split_once('\t') {
                Some((href, source)) => (href.to_string(), source.to_string()),
                None => (line.to_string(), String::new()),
            })
            .collect();
        Record { urls }
    }

    /// Written atomically, 0600, like everything under the data directory.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        datadir::write_private_file(path, self.to_text().as_bytes())
    }

    /// `None` when no `quire serve` has written one yet.
    pub fn read(path: &Path) -> io::Result<Option<Record>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Record::parse(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A warning (`file:1: warning: ...`, not a problem: the author may mean
    /// it) for every recorded URL that the new build neither serves nor
    /// redirects (`routed` says whether it has a route for a decoded path).
    /// `sources` tells a file that is gone from one that moved.
    pub fn warnings(
        &self,
        routed: impl Fn(&str) -> bool,
        sources: &HashMap<PathBuf, Arc<str>>,
        content_dir: &Path,
    ) -> Vec<Problem> {
        // The web layer redirects `/x` to `/x/` when only the latter exists.
        let answers =
            |path: &str| routed(path) || (!path.ends_with('/') && routed(&format!("{path}/")));
        self.urls
            .iter()
            .filter(|(href, _)| !answers(&decode_path(href)))
            .map(|(href, source)| {
                let file = content_dir.join(source);
                let alias = format!("aliases = [\"{href}\"]");
                let message = if source.is_empty() {
                    format!(
                        "warning: {href} was served by the last `quire serve` and would now be neither served nor redirected; add `{alias}` to the front matter of the page that replaces it"
                    )
                } else if sources.contains_key(&file) {
                    format!(
                        "warning: {href} was served from this file by the last `quire serve` and would now be neither served nor redirected; add `{alias}` to its front matter"
                    )
                } else {
                    format!(
                        "warning: {href} was served from this file by the last `quire serve`, and the file is gone; add `{alias}` to the front matter of the page that replaces it"
                    )
                };
                Problem::new(if source.is_empty() { content_dir.to_path_buf() } else { file }, 1, message)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(paths: &[&'static str]) -> impl Fn(&str) -> bool {
        move |path| paths.contains(&path)
    }

    #[test]
    fn the_record_round_trips_sorted() {
        let mut record = Record::default();
        record.insert("/posts/b/".into(), "posts/b.md".into());
        record.insert(
            "/posts/caf%C3%A9/".into(),
            "posts/2019-01-01-café.md".into(),
        );
        record.insert("/about/".into(), "about.md".into());
        let text = record.to_text();
        assert_eq!(
            text,
            "/about/\tabout.md\n/posts/b/\tposts/b.md\n/posts/caf%C3%A9/\tposts/2019-01-01-café.md\n"
        );
        assert_eq!(Record::parse(&text), record);
    }

    #[test]
    fn only_urls_that_stop_answering_warn_naming_their_file_and_the_alias() {
        let record = Record::parse(
            "/posts/kept/\tposts/kept.md\n/posts/moved/\tposts/moved.md\n/posts/gone/\tposts/gone.md\n/posts/caf%C3%A9/\tposts/cafe.md\n/old\tposts/old.md\n",
        );
        let content = Path::new("/site/content");
        let sources: HashMap<PathBuf, Arc<str>> = ["posts/kept.md", "posts/moved.md"]
            .iter()
            .map(|s| (content.join(s), Arc::from("")))
            .collect();
        // The decoded route answers for the encoded href; `/old` redirects
        // to `/old/`.
        let now = routes(&["/posts/kept/", "/2019/moved.html", "/posts/café/", "/old/"]);
        let warnings = record.warnings(now, &sources, content);
        let said: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 2, "{said:#?}");
        assert!(
            said[0].starts_with("/site/content/posts/gone.md:1: warning: /posts/gone/")
                && said[0].contains("the file is gone")
                && said[0].contains("aliases = [\"/posts/gone/\"]"),
            "{said:#?}"
        );
        assert!(
            said[1].starts_with("/site/content/posts/moved.md:1: warning: /posts/moved/")
                && said[1].contains("add `aliases = [\"/posts/moved/\"]` to its front matter"),
            "{said:#?}"
        );
        // Negative control: with the alias in place nothing warns.
        let covered = routes(&[
            "/posts/kept/",
            "/posts/moved/",
            "/posts/gone/",
            "/posts/café/",
            "/old/",
        ]);
        assert!(record.warnings(covered, &sources, content).is_empty());
    }
}
