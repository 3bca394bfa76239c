//! URLs, old and new: the generators' permalink patterns (`:year/:slug`
//! tokens, filled as Hugo and Jekyll fill them), their ways of turning a
//! name into a path segment, and the choice at the heart of the import:
//! the old URL kept as the post's slug when quire's `post_url` reproduces
//! it, else as an alias.

use chrono::{DateTime, Datelike, Utc};
use percent_encoding::percent_decode_str;

use super::PostUrl;
use crate::site::markdown::slugify;

pub fn decode(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

/// A decoded name as a slug: letters (of any script), digits, `-`, `_`,
/// `.` and `~` as written, everything else percent-encoded.
pub fn as_slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() || "-_.~".contains(c) {
            slug.push(c);
        } else {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                slug.push_str(&format!("%{b:02X}"));
            }
        }
    }
    slug
}

/// The path of a URL as written (percent-encoding kept), for a link that
/// may be absolute (`https://host/p/`) or a path (`/p/`).
pub fn path_of(link: &str) -> String {
    match url::Url::parse(link) {
        Ok(url) => url.path().to_string(),
        Err(_) => link.split(['?', '#']).next().unwrap_or("").to_string(),
    }
}

/// Where the post lives now: its slug, and its old URL as an alias when
/// `post_url` cannot reproduce it (decoded, as requests are routed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub slug: String,
    pub url: String,
    pub alias: Option<String>,
}

/// Keeps `old` (a path) as the slug when the pattern reproduces it, else
/// makes it an alias of the slug `fallback` gives.
pub fn place(old: Option<&str>, fallback: &str, date: DateTime<Utc>, post_url: PostUrl) -> Placed {
    let fallback_slug = || {
        let slug = as_slug(fallback);
        if slug.is_empty() {
            "post".to_string()
        } else {
            slug
        }
    };
    let Some(old) = old.filter(|o| o.starts_with('/')) else {
        let slug = fallback_slug();
        return Placed {
            url: post_url(&slug, date),
            slug,
            alias: None,
        };
    };
    let wanted = decode(old);
    let last = wanted
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let mut candidates = vec![last.to_string()];
    if let Some((stem, _)) = last.rsplit_once('.') {
        candidates.push(stem.to_string());
    }
    for candidate in candidates.iter().filter(|c| !c.is_empty()) {
        let slug = as_slug(candidate);
        let url = post_url(&slug, date);
        if decode(&url) == wanted {
            return Placed {
                slug,
                url,
                alias: None,
            };
        }
    }
    let named = candidates
        .last()
        .filter(|c| !c.is_empty())
        .map(|c| as_slug(c))
        .unwrap_or_else(fallback_slug);
    let url = post_url(&named, date);
    Placed {
        slug: named,
        url,
        alias: Some(wanted),
    }
}

/// Fills a `:token` pattern. `None` with the token it does not know.
pub fn fill(pattern: &str, value: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let token = &after[..len];
        if token.is_empty() {
            out.push(':');
        } else {
            out.push_str(&value(token).ok_or_else(|| format!(":{token}"))?);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(clean(&out))
}

/// One `/` between segments, a leading `/`.
pub fn clean(path: &str) -> String {
    let trailing = path.ends_with('/');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut out = format!("/{}", parts.join("/"));
    if trailing && !parts.is_empty() {
        out.push('/');
    }
    out
}

/// Year, zero-padded month and day as the patterns print them.
pub fn date_tokens(date: DateTime<Utc>) -> [(&'static str, String); 3] {
    [
        ("year", format!("{:04}", date.year())),
        ("month", format!("{:02}", date.month())),
        ("day", format!("{:02}", date.day())),
    ]
}

/// Hugo's `urlize`/path making: spaces to `-`, only letters, digits and
/// `-_.~+#` kept, lowercased (Hugo lowercases paths by default).
pub fn hugo_urlize(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        if c.is_alphanumeric() || "-_.~+".contains(c) {
            out.extend(c.to_lowercase());
        } else if c.is_whitespace() {
            out.push('-');
        }
    }
    out
}

/// Jekyll's `slugify` in `pretty` mode, case kept (as its `:title` is).
pub fn jekyll_slugify(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || "._~!$&'()+,;=@".contains(c) {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Zola's slugify: lowercase words joined by `-` (quire's own rule). Zola
/// also transliterates non-ASCII letters (`é` to `e`), which this keeps: the
/// old URL of a post named so is then missed.
pub fn zola_slugify(text: &str) -> String {
    slugify(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn default_url(slug: &str, _: DateTime<Utc>) -> String {
        format!("/posts/{slug}/")
    }

    fn dated_html(slug: &str, date: DateTime<Utc>) -> String {
        format!("/{}/{:02}/{slug}.html", date.year(), date.month())
    }

    #[test]
    fn keeps_the_old_url_as_slug_when_the_pattern_makes_it() {
        let date = Utc.with_ymd_and_hms(2019, 5, 1, 0, 0, 0).unwrap();
        let placed = place(Some("/posts/my_post/"), "x", date, &default_url);
        assert_eq!(placed.slug, "my_post");
        assert_eq!(placed.alias, None);

        let placed = place(Some("/2019/05/hello.html"), "x", date, &dated_html);
        assert_eq!((placed.slug.as_str(), placed.alias), ("hello", None));

        let placed = place(Some("/posts/caf%C3%A9/"), "x", date, &default_url);
        assert_eq!(placed.slug, "café");
        assert_eq!(placed.alias, None);
    }

    #[test]
    fn otherwise_the_old_url_becomes_an_alias() {
        let date = Utc.with_ymd_and_hms(2019, 5, 1, 0, 0, 0).unwrap();
        let placed = place(Some("/2019/05/01/hello.html"), "x", date, &default_url);
        assert_eq!(placed.slug, "hello");
        assert_eq!(placed.url, "/posts/hello/");
        assert_eq!(placed.alias.as_deref(), Some("/2019/05/01/hello.html"));

        let placed = place(Some("/blog/it's here/"), "x", date, &default_url);
        assert_eq!(placed.slug, "it%27s%20here");
        assert_eq!(placed.alias.as_deref(), Some("/blog/it's here/"));

        let placed = place(None, "a-title", date, &default_url);
        assert_eq!((placed.slug.as_str(), placed.alias), ("a-title", None));
    }

    #[test]
    fn fills_patterns_and_names_what_it_does_not_know() {
        let value = |t: &str| match t {
            "year" => Some("2020".to_string()),
            "slug" => Some("hi".to_string()),
            _ => None,
        };
        assert_eq!(fill("/:year/:slug/", &value).unwrap(), "/2020/hi/");
        assert_eq!(fill("/:year//:slug.html", &value).unwrap(), "/2020/hi.html");
        assert_eq!(fill("/:year/:nope/", &value).unwrap_err(), ":nope");
    }

    #[test]
    fn names_become_segments_as_each_generator_does() {
        assert_eq!(hugo_urlize("My Post (draft)"), "my-post-draft");
        assert_eq!(jekyll_slugify("Hello World?"), "Hello-World");
        assert_eq!(jekyll_slugify("it's_fine"), "it's_fine");
        assert_eq!(zola_slugify("Über_Café"), "über-café");
    }
}
