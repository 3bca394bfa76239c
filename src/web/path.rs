//! Request paths as the site understands them: percent-decoded, UTF-8, with no
//! `.`/`..` segments, NUL or control bytes, or backslashes. Anything else is
//! refused (a 404), so no request can name something outside the site.
//! [`location`] turns such a path back into a same-origin redirect target,
//! with the site's encoder (`site::href`), the one its pages' hrefs use.

use percent_encoding::percent_decode_str;

use crate::site::href::encode_path;

/// Returns the decoded path, or `None` for a path no page can have.
pub fn normalize(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let mut path = String::with_capacity(decoded.len());
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return None;
        }
        path.push('/');
        path.push_str(segment);
    }
    if decoded.ends_with('/') || path.is_empty() {
        path.push('/');
    }
    Some(path)
}

/// A `Location` for a path [`normalize`] returned: percent-encoded, and
/// starting with exactly one `/`, so a browser cannot read it as `//host/...`
/// (a protocol-relative URL: an open redirect to any host).
pub fn location(normalized: &str) -> String {
    debug_assert!(normalized.starts_with('/') && !normalized.starts_with("//"));
    encode_path(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_same_origin_and_round_trip() {
        for raw in ["//about", "///evil.example/x", "/%2F%2Fevil.example/"] {
            let path = normalize(raw).unwrap();
            let target = location(&path);
            assert!(
                target.starts_with('/') && !target.starts_with("//"),
                "{raw:?} -> {target:?}"
            );
        }
        for path in [
            "/posts/hello/",
            "/my cat.png",
            "/café/",
            "/100%/",
            "/a?b#c/",
        ] {
            let target = location(path);
            assert!(target.is_ascii() && !target.contains(' '), "{target:?}");
            assert_eq!(normalize(&target).as_deref(), Some(path));
        }
    }

    #[test]
    fn plain_paths_pass() {
        assert_eq!(normalize("/").as_deref(), Some("/"));
        assert_eq!(normalize("/posts/hello/").as_deref(), Some("/posts/hello/"));
        assert_eq!(normalize("/style.css").as_deref(), Some("/style.css"));
        assert_eq!(
            normalize("/images/my%20cat.png").as_deref(),
            Some("/images/my cat.png")
        );
        assert_eq!(normalize("//posts//x/").as_deref(), Some("/posts/x/"));
        assert_eq!(normalize("/caf%C3%A9/").as_deref(), Some("/café/"));
    }

    #[test]
    fn traversal_and_junk_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/static/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a/./b",
            "/x%00.css",
            "/x\0",
            "/..%5c..%5cetc",
            "/%ff%fe",
            "etc/passwd",
            "/a\\b",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
        // Double encoding decodes once: the result is a literal name, not a climb.
        assert_eq!(normalize("/%252e%252e/x").as_deref(), Some("/%2e%2e/x"));
    }
}
