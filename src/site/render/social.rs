//! What a page says about itself where it is shared: Open Graph and Twitter
//! card tags and, on posts, JSON-LD `BlogPosting`, as one typed [`Social`]
//! that templates/base.html prints; plus the plain-text summary the feeds
//! share. All URLs are absolute; image sizes come from the bytes the build
//! holds.

use serde::Serialize;

use super::Renderer;
use crate::site::content::{Page, PageKind};
use crate::site::image::{self, ImageRef};
use crate::site::snapshot::Route;

/// Characters of a summary made from a page's first paragraph.
const SUMMARY_CHARS: usize = 200;

/// The sharing metadata of one HTML page.
pub struct Social {
    /// `og:type`: `article` for posts, `website` otherwise.
    pub kind: &'static str,
    pub title: String,
    pub description: String,
    pub url: String,
    pub site_name: String,
    pub locale: String,
    pub article: Option<Article>,
    pub image: Option<SocialImage>,
    /// JSON-LD, already safe to print inside a script element.
    pub json_ld: Option<String>,
}

impl Social {
    pub fn twitter_card(&self) -> &'static str {
        if self.image.is_some() {
            "summary_large_image"
        } else {
            "summary"
        }
    }
}

/// The `article:` tags of a post.
pub struct Article {
    pub published: String,
    pub modified: String,
    pub author: String,
    pub tags: Vec<String>,
}

pub struct SocialImage {
    pub url: String,
    /// Known for images the site serves; a remote one is not fetched.
    pub size: Option<Size>,
    pub alt: String,
}

pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// `en` stays `en`, `en-GB` becomes `en_GB`, as Open Graph writes locales.
pub fn locale(language: &str) -> String {
    language.replace('-', "_")
}

/// Text for a description: tags dropped (block ends become spaces),
/// entities decoded, whitespace collapsed, cut at a word to about `max`
/// characters.
pub fn plain_text(html: &str, max: usize) -> String {
    let mut text = String::with_capacity(html.len().min(max * 4));
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let close = rest[open..].find('>').map_or(rest.len(), |i| open + i + 1);
        if !is_inline(&rest[open..close]) {
            text.push(' ');
        }
        rest = &rest[close..];
    }
    text.push_str(rest);
    let words: Vec<String> = image::unescape(&text)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut out = String::new();
    for word in words {
        let len = out.chars().count();
        if len > 0 && len + 1 + word.chars().count() > max {
            out.push('…');
            break;
        }
        if len > 0 {
            out.push(' ');
        }
        out.push_str(&word);
    }
    out
}

/// Whether a tag sits inside a line of text (so removing it must not split
/// a word): `<em>`, `</a>`, `<code>` and the like.
fn is_inline(tag: &str) -> bool {
    const INLINE: [&str; 14] = [
        "a", "em", "strong", "code", "span", "del", "sup", "sub", "b", "i", "abbr", "mark",
        "small", "kbd",
    ];
    let name = tag
        .trim_start_matches('<')
        .trim_start_matches('/')
        .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .next()
        .unwrap_or("");
    INLINE.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// JSON for a `<script>` element: `<`, `>` and `&` only occur inside JSON
/// strings, where `\u003c` means the same, and written so `</script>` in a
/// title cannot end the element.
pub fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlogPosting<'a> {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "@type")]
    kind: &'static str,
    headline: &'a str,
    url: &'a str,
    main_entity_of_page: Thing<'a>,
    date_published: &'a str,
    date_modified: &'a str,
    author: Named<'a>,
    publisher: Named<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "String::is_empty")]
    keywords: String,
}

#[derive(Serialize)]
struct Thing<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "@id")]
    id: &'a str,
}

#[derive(Serialize)]
struct Named<'a> {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: &'a str,
}

impl Renderer<'_> {
    /// Who wrote the site's posts: `[site] author`, else the site's title.
    pub(super) fn site_author(&self) -> &str {
        if self.site.author.is_empty() {
            &self.site.title
        } else {
            &self.site.author
        }
    }

    pub(super) fn author_of<'p>(&'p self, page: &'p Page) -> &'p str {
        page.author.as_deref().unwrap_or_else(|| self.site_author())
    }

    /// A page's description: its own, else the start of its summary.
    pub(super) fn description_of(&self, page: &Page) -> String {
        match &page.description {
            Some(description) => description.clone(),
            None => plain_text(&page.body.summary, SUMMARY_CHARS),
        }
    }

    /// Metadata of a listing page (home, tags, archive): the site's.
    pub(super) fn website(&self, title: &str, description: &str, url: String) -> Social {
        Social {
            kind: "website",
            title: if title.is_empty() {
                self.site.title.clone()
            } else {
                title.to_string()
            },
            description: description.to_string(),
            url,
            site_name: self.site.title.clone(),
            locale: locale(&self.site.language),
            article: None,
            image: None,
            json_ld: None,
        }
    }

    /// Metadata of a post or page.
    pub(super) fn social(&self, page: &Page) -> Social {
        let mut description = self.description_of(page);
        if description.is_empty() {
            description = self.site.description.clone();
        }
        let url = self.absolute(&page.url);
        let mut social = self.website(&page.title, &description, url);
        social.image = self.image_of(page);
        if page.kind == PageKind::Post {
            social.kind = "article";
            let article = Article {
                published: page.date_iso(),
                modified: page
                    .updated
                    .map_or_else(|| page.date_iso(), |_| page.updated_iso()),
                author: self.author_of(page).to_string(),
                tags: page.tags.iter().map(|t| t.name.clone()).collect(),
            };
            social.json_ld = Some(self.blog_posting(page, &social, &article));
            social.article = Some(article);
        }
        social
    }

    fn blog_posting(&self, page: &Page, social: &Social, article: &Article) -> String {
        let posting = BlogPosting {
            context: "https://schema.org",
            kind: "BlogPosting",
            headline: &page.title,
            url: &social.url,
            main_entity_of_page: Thing {
                kind: "WebPage",
                id: &social.url,
            },
            date_published: &article.published,
            date_modified: &article.modified,
            author: Named {
                kind: "Person",
                name: &article.author,
            },
            publisher: Named {
                kind: "Organization",
                name: &self.site.title,
            },
            description: &social.description,
            image: social.image.as_ref().map(|i| i.url.as_str()),
            keywords: article.tags.join(", "),
        };
        script_safe(&serde_json::to_string(&posting).expect("plain structs serialize"))
    }

    /// Front matter `image`, else the first image of the page.
    pub(super) fn image_of(&self, page: &Page) -> Option<SocialImage> {
        let (image, alt) = match &page.image {
            Some(image) => (image.clone(), page.image_alt.clone()),
            None => {
                let found = image::first_image(&page.body.html)?;
                (found.image, page.image_alt.clone().or(found.alt))
            }
        };
        let (url, size) = match image {
            ImageRef::Remote(url) => (url, None),
            ImageRef::Site(path) => (self.absolute(&path), self.image_size(&path)),
        };
        Some(SocialImage {
            url,
            size,
            alt: alt.unwrap_or_else(|| page.title.clone()),
        })
    }

    /// Read from the header of the file the build loaded.
    fn image_size(&self, path: &str) -> Option<Size> {
        let Some(Route::Resource { resource, .. }) = self.assets.get(path) else {
            return None;
        };
        let (width, height) = image::dimensions(&resource.identity)?;
        Some(Size { width, height })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_are_written_the_open_graph_way() {
        assert_eq!(locale("en"), "en");
        assert_eq!(locale("en-GB"), "en_GB");
        assert_eq!(locale("pt-BR"), "pt_BR");
    }

    #[test]
    fn summaries_are_plain_text_cut_at_a_word() {
        assert_eq!(
            plain_text(
                "<p>Hello <em>wor</em>ld &amp; <a href=\"/x/\">you</a></p>\n<p>Next</p>",
                200
            ),
            "Hello world & you Next"
        );
        let long = format!("<p>{}</p>", "word ".repeat(100));
        let cut = plain_text(&long, 200);
        assert!(cut.ends_with("word…"), "{cut}");
        assert!(cut.chars().count() <= 201, "{cut}");
        assert_eq!(plain_text("<p>exactly</p>", 7), "exactly");
        assert_eq!(plain_text("<p>one two</p>", 5), "one…");
    }

    #[test]
    fn json_ld_cannot_end_its_script_element() {
        let title = "Why </script><script>alert(1)</script> & \"quotes\"";
        let json = serde_json::to_string(&Named {
            kind: "Person",
            name: title,
        })
        .unwrap();
        let safe = script_safe(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        assert!(!safe.to_ascii_lowercase().contains("</script"), "{safe}");
        // Negative control: without the escaping the element would end early.
        assert!(json.contains("</script>"));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], title);
    }
}
