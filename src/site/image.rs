//! The image that stands for a page where it is shared: front matter `image`
//! resolved as the body's images are, the first image of a rendered body, and
//! an image's dimensions read from the bytes the build already holds.

use std::collections::HashMap;

use percent_encoding::percent_decode_str;

use super::markdown::{self, Links, Reference};

/// Where an image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A path of this site, decoded, as routes are keyed.
    Site(String),
    /// An `https://` URL elsewhere, as written.
    Remote(String),
}

/// Resolves front matter `image` of a file in `source_dir` (relative to
/// content/). A site path comes with the [`Reference`] that lets the build
/// check the file exists; the error says what to write instead.
pub fn resolve(
    dest: &str,
    line: usize,
    source_dir: &str,
) -> Result<(ImageRef, Option<Reference>), String> {
    let dest = dest.trim();
    let refused = || {
        format!(
            "image `{dest}` is neither a site path (/images/cover.png), a file beside the page (cover.png) nor an https:// URL; use one of those"
        )
    };
    if dest.starts_with("https://") {
        return Ok((ImageRef::Remote(dest.to_string()), None));
    }
    if dest.is_empty() || dest.contains(['<', '>', '\n', '\r']) {
        return Err(refused());
    }
    // Through the markdown renderer itself, so that `cover.png` in front
    // matter and `![](cover.png)` in the body can never mean two files.
    let no_pages = HashMap::new();
    let rendered = markdown::render(
        &format!("![](<{dest}>)"),
        line,
        &Links {
            source_dir,
            page_urls: &no_pages,
        },
    );
    if let Some((_, message)) = rendered.problems.into_iter().next() {
        return Err(message);
    }
    match rendered.references.into_iter().find(|r| r.is_image) {
        Some(reference) => Ok((ImageRef::Site(reference.path.clone()), Some(reference))),
        None => Err(refused()),
    }
}

/// An image found in a page's HTML, with its alternative text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub image: ImageRef,
    pub alt: Option<String>,
}

/// The first image of rendered HTML that a reader elsewhere can load: a site
/// path or an `https://` URL (relative or `data:` sources are passed over).
pub fn first_image(html: &str) -> Option<FoundImage> {
    let mut rest = html;
    while let Some(at) = rest.find("<img") {
        rest = &rest[at + 4..];
        let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
        let Some(src) = attribute(tag, "src") else {
            continue;
        };
        let src = unescape(src);
        let image = if src.starts_with("https://") {
            ImageRef::Remote(src)
        } else if src.starts_with('/') && !src.starts_with("//") {
            let path = &src[..src.find(['?', '#']).unwrap_or(src.len())];
            ImageRef::Site(percent_decode_str(path).decode_utf8_lossy().into_owned())
        } else {
            continue;
        };
        let alt = attribute(tag, "alt")
            .map(unescape)
            .filter(|a| !a.trim().is_empty());
        return Some(FoundImage { image, alt });
    }
    None
}

/// The value of `name="..."` (or single-quoted) in the inside of a tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    loop {
        let at = rest.find(name)?;
        let before = rest[..at].chars().next_back();
        rest = &rest[at + name.len()..];
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            return value.split(|c: char| c.is_whitespace() || c == '/').next();
        }
        let value = &value[1..];
        return Some(&value[..value.find(quote)?]);
    }
}

/// Decodes the entities an HTML writer puts in text and attributes: the five
/// of XML and numeric ones. Others are left as written.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = rest
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| Some((decode_entity(&rest[1..end])?, end)));
        match entity {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Width and height of an image, from its header (PNG, JPEG, GIF, WebP,
/// AVIF and others); `None` for what is not an image.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let size = imagesize::blob_size(bytes).ok()?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_images_resolve_as_body_images_do() {
        let site = |dest: &str, dir: &str| resolve(dest, 3, dir).map(|(image, _)| image);
        assert_eq!(
            site("cover.png", "posts/2026-01-01-trip"),
            Ok(ImageRef::Site("/posts/2026-01-01-trip/cover.png".into()))
        );
        assert_eq!(
            site("/images/a%20b.png", "posts"),
            Ok(ImageRef::Site("/images/a b.png".into()))
        );
        assert_eq!(
            site("../images/c.png", "posts"),
            Ok(ImageRef::Site("/images/c.png".into()))
        );
        assert_eq!(
            site("https://cdn.test/x.png", "posts"),
            Ok(ImageRef::Remote("https://cdn.test/x.png".into()))
        );
        let (_, reference) = resolve("cover.png", 7, "posts").unwrap();
        let reference = reference.expect("a site image is checked");
        assert_eq!((reference.line, reference.is_image), (7, true));

        for refused in ["http://cdn.test/x.png", "", "../../x.png", "a>b.png"] {
            let message = site(refused, "posts").unwrap_err();
            assert!(message.contains("; "), "{refused}: {message}");
        }
    }

    #[test]
    fn the_first_loadable_image_is_found() {
        assert_eq!(
            first_image(
                "<p><img src=\"data:x\"><img alt=\"A &amp; B\" src=\"/a%C3%A9.png?v=1\"></p>"
            ),
            Some(FoundImage {
                image: ImageRef::Site("/aé.png".into()),
                alt: Some("A & B".into())
            })
        );
        assert_eq!(
            first_image(
                "<img data-src=\"/no.png\" alt=\"\" src='https://x.test/a.png?a=1&amp;b=2'>"
            ),
            Some(FoundImage {
                image: ImageRef::Remote("https://x.test/a.png?a=1&b=2".into()),
                alt: None
            })
        );
        assert_eq!(first_image("<p>no image</p><img src=\"rel.png\">"), None);
    }

    #[test]
    fn entities_are_decoded_and_stray_ampersands_kept() {
        assert_eq!(
            unescape("a &amp; b &lt;c&gt; &quot;d&#39; &#x2014; & e &bogus;"),
            "a & b <c> \"d' \u{2014} & e &bogus;"
        );
    }

    #[test]
    fn dimensions_come_from_the_header() {
        // A 1x1 GIF.
        let gif = b"GIF89a\x03\x00\x02\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
        assert_eq!(dimensions(gif), Some((3, 2)));
        assert_eq!(dimensions(b"<svg>not raster</svg>"), None);
    }
}
