//! `[site] post_url`: the permalink pattern of posts, such as
//! `/posts/{slug}/` or `/{year}/{month}/{slug}.html`. Parsed once at load
//! (every mistake with what to write instead); resolving a post's path is
//! then pure. The pattern is decoded text, like routes: the site encodes it
//! when it prints an href.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Slug,
    Year,
    Month,
    Day,
}

/// A validated permalink pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct PostUrl {
    text: String,
    parts: Vec<Part>,
}

/// Why a pattern is refused; each message ends with what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPostUrl {
    #[error("`{0}` does not start with `/`; use a pattern such as \"/posts/{{slug}}/\"")]
    Relative(String),
    #[error(
        "`{0}` has no `{{slug}}`, so every post would get the same URL; use a pattern such as \"/posts/{{slug}}/\""
    )]
    NoSlug(String),
    #[error(
        "`{text}` has the unknown placeholder `{{{name}}}`; use {{slug}}, {{year}}, {{month}} or {{day}}"
    )]
    Unknown { text: String, name: String },
    #[error("`{0}` has an unclosed `{{`; close it, as in \"/posts/{{slug}}/\"")]
    Unclosed(String),
    #[error(
        "`{text}` contains {what}; use a pattern such as \"/{{year}}/{{month}}/{{slug}}.html\""
    )]
    Character { text: String, what: &'static str },
    #[error(
        "`{0}` has an empty folder (`//`) or a `.`/`..` folder; write one name between each `/`"
    )]
    Segment(String),
}

impl PostUrl {
    pub fn parse(text: &str) -> Result<PostUrl, BadPostUrl> {
        let bad_char = |what| BadPostUrl::Character {
            text: text.to_string(),
            what,
        };
        if !text.starts_with('/') {
            return Err(BadPostUrl::Relative(text.to_string()));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                parts.push(Part::Literal(rest.to_string()));
                break;
            };
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(BadPostUrl::Unclosed(text.to_string()));
            };
            let name = &rest[open + 1..open + close];
            parts.push(match name {
                "slug" => Part::Slug,
                "year" => Part::Year,
                "month" => Part::Month,
                "day" => Part::Day,
                _ => {
                    return Err(BadPostUrl::Unknown {
                        text: text.to_string(),
                        name: name.to_string(),
                    });
                }
            });
            rest = &rest[open + close + 1..];
        }
        for part in &parts {
            let Part::Literal(literal) = part else {
                continue;
            };
            for c in literal.chars() {
                match c {
                    '}' => return Err(bad_char("a `}` that closes no `{`")),
                    '?' => return Err(bad_char("`?`, which starts a query")),
                    '#' => return Err(bad_char("`#`, which starts a fragment")),
                    '%' => return Err(bad_char("`%`; write characters as they are")),
                    '\\' => return Err(bad_char("a backslash")),
                    c if c.is_whitespace() || c.is_control() => {
                        return Err(bad_char("a space or control character"));
                    }
                    _ => {}
                }
            }
        }
        if !parts.contains(&Part::Slug) {
            return Err(BadPostUrl::NoSlug(text.to_string()));
        }
        let inner = &text[1..];
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        if inner
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(BadPostUrl::Segment(text.to_string()));
        }
        Ok(PostUrl {
            text: text.to_string(),
            parts,
        })
    }

    /// The decoded path of a post with this (decoded) slug and date.
    pub fn resolve(&self, slug: &str, date: DateTime<Utc>) -> String {
        let mut path = String::with_capacity(self.text.len() + slug.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => path.push_str(text),
                Part::Slug => path.push_str(slug),
                Part::Year => path.push_str(&format!("{:04}", date.year())),
                Part::Month => path.push_str(&format!("{:02}", date.month())),
                Part::Day => path.push_str(&format!("{:02}", date.day())),
            }
        }
        path
    }

    /// Whether the pattern needs the post's date.
    pub fn uses_date(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Year | Part::Month | Part::Day))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for PostUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostUrl({:?})", self.text)
    }
}

impl fmt::Display for PostUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_resolve_with_zero_padded_utc_dates() {
        let at = date("2019-05-01T23:30:00Z");
        for (pattern, path) in [
            ("/posts/{slug}/", "/posts/my_post/"),
            ("/{year}/{month}/{slug}.html", "/2019/05/my_post.html"),
            ("/{year}/{month}/{day}/{slug}/", "/2019/05/01/my_post/"),
            ("/blog/{slug}/", "/blog/my_post/"),
            ("/{slug}/", "/my_post/"),
            ("/{year}-{slug}", "/2019-my_post"),
            ("/café/{slug}/", "/café/my_post/"),
        ] {
            assert_eq!(
                PostUrl::parse(pattern).unwrap().resolve("my_post", at),
                path,
                "{pattern}"
            );
        }
        assert!(!PostUrl::parse("/posts/{slug}/").unwrap().uses_date());
        assert!(PostUrl::parse("/{year}/{slug}/").unwrap().uses_date());
    }

    #[test]
    fn bad_patterns_say_what_to_write() {
        for (pattern, says) in [
            ("posts/{slug}/", "does not start with `/`"),
            ("/posts/", "has no `{slug}`"),
            (
                "/{yyyy}/{slug}/",
                "unknown placeholder `{yyyy}`; use {slug}",
            ),
            ("/{slug", "unclosed `{`"),
            ("/{slug}}/", "a `}` that closes no `{`"),
            ("/{slug}/?x", "`?`"),
            ("/a b/{slug}/", "a space"),
            ("/a%20b/{slug}/", "`%`"),
            ("//{slug}/", "empty folder"),
            ("/../{slug}/", "empty folder"),
        ] {
            let error = PostUrl::parse(pattern).unwrap_err().to_string();
            assert!(error.contains(says), "{pattern}: {error}");
        }
    }
}
