//! Permalinks: which text can name a post and how a URL is written. A
//! [`Slug`] is one URL path segment as the author wrote it (any letters,
//! digits, `-_.~`, the other characters RFC 3986 allows in a segment, and
//! percent escapes), kept decoded, because routes are keyed by the decoded
//! path (`web::path::normalize` decodes requests); `href` writes it back.
//! [`UrlPath`] is a whole absolute path (front matter `path` and `aliases`).

use std::fmt;

use percent_encoding::percent_decode_str;

use super::markdown::slugify;

/// Why a text cannot be a path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flaw {
    Empty,
    Dots,
    Slash,
    Character(char),
    /// The escape as written (`%G1`, or a run of bytes that is not UTF-8).
    Escape(String),
}

impl Flaw {
    fn describe(&self) -> String {
        match self {
            Flaw::Empty => "is empty".into(),
            Flaw::Dots => "is `.` or `..`, which name folders".into(),
            Flaw::Slash => "contains `/`, which separates folders".into(),
            Flaw::Character(c) => format!("contains {}", character(*c)),
            Flaw::Escape(e) => format!(
                "has the invalid percent escape `{e}` (`%` takes two hex digits, and the bytes must be UTF-8; `%25` is a literal `%`)"
            ),
        }
    }
}

fn character(c: char) -> String {
    match c {
        '?' => "`?`, which starts a query".into(),
        '#' => "`#`, which starts a fragment".into(),
        '\\' => "a backslash".into(),
        c if c.is_whitespace() => "a space".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`, which a URL cannot carry as is"),
    }
}

/// Checks one segment as written and decodes it.
fn segment(text: &str) -> Result<String, Flaw> {
    if text.is_empty() {
        return Err(Flaw::Empty);
    }
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let allowed = c.is_ascii_alphanumeric()
            || "-._~!$&'()*+,;=:@".contains(c)
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control());
        if c == '%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                let end = text[i..]
                    .char_indices()
                    .nth(3)
                    .map_or(text.len(), |(n, _)| i + n);
                return Err(Flaw::Escape(text[i..end].to_string()));
            }
        } else if c == '/' {
            return Err(Flaw::Slash);
        } else if !allowed {
            return Err(Flaw::Character(c));
        }
    }
    let decoded = percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| Flaw::Escape(text.to_string()))?;
    // What the escapes spell must be one segment too: a request path is
    // decoded before it is split, and control characters never match.
    if decoded == "." || decoded == ".." {
        return Err(Flaw::Dots);
    }
    if decoded.contains('/') {
        return Err(Flaw::Slash);
    }
    if let Some(c) = decoded.chars().find(|&c| c == '\\' || c.is_control()) {
        return Err(Flaw::Character(c));
    }
    Ok(decoded.into_owned())
}

/// One path segment naming a post or page, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

/// A front matter `slug` that cannot be a path segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SlugError {
    pub text: String,
    pub flaw: Flaw,
}

impl fmt::Display for SlugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fix = match slugify(&self.text) {
            s if s.is_empty() => "my-post".to_string(),
            s => s,
        };
        match self.flaw {
            Flaw::Empty => write!(
                f,
                "the slug is empty; write one, such as `{fix}`, or remove `slug` to take it from the file name"
            ),
            Flaw::Slash => write!(
                f,
                "slug `{}` {}; use `{fix}`, or set `path` for a nested URL",
                self.text,
                self.flaw.describe()
            ),
            _ => write!(
                f,
                "slug `{}` {}; use `{fix}`",
                self.text,
                self.flaw.describe()
            ),
        }
    }
}

impl Slug {
    /// A slug as written in front matter.
    pub fn parse(text: &str) -> Result<Slug, SlugError> {
        segment(text).map(Slug).map_err(|flaw| SlugError {
            text: text.to_string(),
            flaw,
        })
    }

    /// The slug a file or folder name gives: the name as written when it is
    /// a valid segment, else its words lowercased and joined by `-`; `None`
    /// when no word is left.
    pub fn from_name(name: &str) -> Option<Slug> {
        Slug::parse(name).ok().or_else(|| {
            let generated = slugify(name);
            (!generated.is_empty()).then_some(Slug(generated))
        })
    }

    /// Decoded: what a route is keyed by.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute URL path (front matter `path` or an alias), decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlPath(String);

/// A written path that cannot be an absolute URL path of the site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` is not absolute; start it with `/`, such as \"/blog/hello/\"")]
    Relative(String),
    #[error("`{text}` has an empty segment (`//`); write one `/` between folders")]
    EmptySegment { text: String },
    #[error("`{text}`: segment `{segment}` {}; use a path such as \"/blog/hello/\"", flaw.describe())]
    Segment {
        text: String,
        segment: String,
        flaw: Flaw,
    },
}

impl UrlPath {
    pub fn parse(text: &str) -> Result<UrlPath, PathError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PathError::Relative(text.to_string()));
        };
        let mut decoded = String::from("/");
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if part.is_empty() {
                if last {
                    break;
                }
                return Err(PathError::EmptySegment {
                    text: text.to_string(),
                });
            }
            let part = segment(part).map_err(|flaw| PathError::Segment {
                text: text.to_string(),
                segment: part.to_string(),
                flaw,
            })?;
            decoded.push_str(&part);
            if !last {
                decoded.push('/');
            }
        }
        Ok(UrlPath(decoded))
    }

    /// Decoded: what a route is keyed by.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::href::{decode_path, encode_path};

    #[test]
    fn slugs_real_sites_use_are_kept_as_written() {
        for text in [
            "my_post",
            "v1.2-notes",
            "CamelCase",
            "2019",
            "~home",
            "café",
            "日本語",
            "a+b,c;d=e:f@g!",
        ] {
            assert_eq!(Slug::parse(text).unwrap().as_str(), text, "{text}");
        }
    }

    #[test]
    fn percent_encoded_slugs_route_decoded_and_link_encoded() {
        let slug = Slug::parse("na%C3%AFve").unwrap();
        assert_eq!(slug.as_str(), "naïve");
        assert_eq!(encode_path("/posts/naïve/"), "/posts/na%C3%AFve/");
        assert_eq!(encode_path("/posts/café/"), "/posts/caf%C3%A9/");
        assert_eq!(decode_path("/posts/caf%C3%A9/"), "/posts/café/");
        // A literal `%` round-trips through its escape.
        let percent = Slug::parse("100%25").unwrap();
        assert_eq!(percent.as_str(), "100%");
        assert_eq!(encode_path("/100%/"), "/100%25/");
        assert_eq!(decode_path(&encode_path("/a b?#/")), "/a b?#/");
    }

    #[test]
    fn every_refused_slug_says_what_and_the_fix() {
        for (text, says) in [
            ("", "the slug is empty"),
            (".", "`.` or `..`"),
            ("..", "`.` or `..`"),
            ("%2E%2E", "`.` or `..`"),
            (
                "a/b",
                "contains `/`, which separates folders; use `a-b`, or set `path`",
            ),
            ("a%2Fb", "contains `/`"),
            ("a\\b", "a backslash; use `a-b`"),
            ("my post", "a space; use `my-post`"),
            ("tab\there", "a space"),
            ("nb\u{a0}sp", "a space"),
            ("bell\u{7}", "control character U+0007"),
            ("a%00b", "control character U+0000"),
            ("what?", "`?`, which starts a query; use `what`"),
            ("c#", "`#`, which starts a fragment"),
            ("100%", "invalid percent escape `%`"),
            ("a%zzb", "invalid percent escape `%zz`"),
            ("a%C3", "invalid percent escape `a%C3`"),
            ("<b>", "`<`"),
        ] {
            let error = Slug::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }

    #[test]
    fn names_are_used_as_written_when_valid_else_slugified() {
        assert_eq!(Slug::from_name("my_post").unwrap().as_str(), "my_post");
        assert_eq!(Slug::from_name("My Post!?").unwrap().as_str(), "my-post");
        assert_eq!(Slug::from_name("?? !!"), None);
    }

    #[test]
    fn paths_are_absolute_and_decoded() {
        for (text, decoded) in [
            ("/2019/05/my-post.html", "/2019/05/my-post.html"),
            ("/blog/hello/", "/blog/hello/"),
            ("/caf%C3%A9/", "/café/"),
            ("/", "/"),
        ] {
            assert_eq!(UrlPath::parse(text).unwrap().as_str(), decoded);
        }
        for (text, says) in [
            ("blog/x/", "start it with `/`"),
            ("/a//b/", "`//`"),
            ("/a/../b/", "segment `..`"),
            ("/a b/", "a space"),
            ("/a?b", "`?`"),
            ("/a#b", "`#`"),
        ] {
            let error = UrlPath::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
