//! Markdown to HTML: CommonMark plus tables, footnotes, strikethrough, task lists
//! and smart punctuation; heading ids with anchor links and a table of contents;
//! highlighted code; relative links resolved to site URLs; the summary and the
//! reading time. Internal links are returned so the site can check them.

use std::collections::{HashMap, HashSet};

use percent_encoding::percent_decode_str;
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};

use super::highlight;
use super::href::{decode_path, encode_path};

/// What a rendered markdown body links to, so that `quire check` can verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Line in the source file.
    pub line: usize,
    /// Site path it points to, decoded, without query or fragment.
    pub path: String,
    pub is_image: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub level: u8,
    pub id: String,
    pub title: String,
}

#[derive(Debug, Default)]
pub struct Rendered {
    pub html: String,
    /// The part before `<!-- more -->`, else the first paragraph.
    pub summary: String,
    /// Whether the full text says more than the summary.
    pub has_more: bool,
    pub toc: Vec<TocEntry>,
    pub words: usize,
    pub references: Vec<Reference>,
    /// Links that cannot resolve (line, message).
    pub problems: Vec<(usize, String)>,
}

impl Rendered {
    pub fn reading_minutes(&self) -> usize {
        self.words.div_ceil(WORDS_PER_MINUTE).max(1)
    }
}

const WORDS_PER_MINUTE: usize = 200;

/// How links in one file map to site URLs.
pub struct Links<'a> {
    /// The file's folder relative to content/, with `/` separators ("" or "posts").
    pub source_dir: &'a str,
    /// Content-relative markdown path ("posts/2026-01-01-x.md") to its URL
    /// (an href: percent-encoded).
    pub page_urls: &'a HashMap<String, String>,
}

enum Resolved {
    Unchanged,
    Internal { url: String, path: String },
    Broken(String),
}

impl Links<'_> {
    fn resolve(&self, dest: &str) -> Resolved {
        let is_external = dest.starts_with("//")
            || dest
                .split_once(':')
                .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'));
        if dest.is_empty() || dest.starts_with('#') || is_external {
            return Resolved::Unchanged;
        }
        let cut = dest.find(['?', '#']).unwrap_or(dest.len());
        let (path, suffix) = dest.split_at(cut);
        let decoded = percent_decode_str(path).decode_utf8_lossy();
        if decoded.starts_with('/') {
            return Resolved::Internal {
                url: dest.to_string(),
                path: decoded.into_owned(),
            };
        }
        let Some(joined) = join_relative(self.source_dir, &decoded) else {
            return Resolved::Broken(format!(
                "`{dest}` points outside content/; link to a file inside it"
            ));
        };
        if joined.ends_with(".md") {
            return match self.page_urls.get(&joined) {
                Some(url) => Resolved::Internal {
                    url: format!("{url}{suffix}"),
                    path: decode_path(url),
                },
                None => Resolved::Broken(format!(
                    "link to `{dest}` goes nowhere: content/{joined} does not exist; fix the file name"
                )),
            };
        }
        let path = format!("/{joined}");
        Resolved::Internal {
            url: format!("{}{suffix}", encode_path(&path)),
            path,
        }
    }
}

/// Joins a relative path onto a folder, resolving `.` and `..`; `None` if it
/// climbs out of the root.
fn join_relative(dir: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// Turns heading text into an id: lowercase words joined by `-`.
pub fn slugify(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn heading_number(level: HeadingLevel) -> u8 {
    level as u8
}

struct OpenHeading<'a> {
    level: HeadingLevel,
    id: Option<CowStr<'a>>,
    events: Vec<Event<'a>>,
}

/// Renders a markdown body. `first_line` is the body's line in the file.
pub fn render(body: &str, first_line: usize, links: &Links) -> Rendered {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_SMART_PUNCTUATION
        | Options::ENABLE_HEADING_ATTRIBUTES;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(body.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_at = |offset: usize| first_line + line_starts.partition_point(|&s| s <= offset) - 1;

    let mut out: Vec<Event> = Vec::new();
    let mut rendered = Rendered::default();
    let mut used_ids = HashSet::new();
    let mut heading: Option<OpenHeading> = None;
    let mut code: Option<(String, String)> = None;
    let mut more_at = None;
    let mut container_depth = 0usize;
    let mut first_paragraph: Option<(usize, Option<usize>)> = None;

    for (event, range) in Parser::new_ext(body, options).into_offset_iter() {
        let event = match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    pulldown_cmark::CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_string()
                    }
                    pulldown_cmark::CodeBlockKind::Indented => String::new(),
                };
                code = Some((lang, String::new()));
                continue;
            }
            Event::Text(text) if code.is_some() => {
                code.as_mut().expect("in code").1.push_str(&text);
                continue;
            }
            Event::End(TagEnd::CodeBlock) => {
                let (lang, text) = code.take().unwrap_or_default();
                Event::Html(code_block(&lang, &text).into())
            }
            Event::Start(Tag::Heading { level, id, .. }) => {
                heading = Some(OpenHeading {
                    level,
                    id,
                    events: Vec::new(),
                });
                continue;
            }
            Event::End(TagEnd::Heading(_)) => {
                let Some(open) = heading.take() else { continue };
                Event::Html(finish_heading(open, &mut used_ids, &mut rendered.toc).into())
            }
            Event::Html(ref h) | Event::InlineHtml(ref h) if h.trim() == "<!-- more -->" => {
                more_at.get_or_insert(out.len());
                continue;
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = resolve(links, dest_url, line_at(range.start), false, &mut rendered);
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                })
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = resolve(links, dest_url, line_at(range.start), true, &mut rendered);
                Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                })
            }
            Event::Text(ref text) => {
                rendered.words += text.split_whitespace().count();
                event
            }
            other => other,
        };
        match &event {
            Event::Start(
                Tag::BlockQuote(_)
                | Tag::List(_)
                | Tag::Item
                | Tag::FootnoteDefinition(_)
                | Tag::Table(_),
            ) => container_depth += 1,
            Event::End(
                TagEnd::BlockQuote(_)
                | TagEnd::List(_)
                | TagEnd::Item
                | TagEnd::FootnoteDefinition
                | TagEnd::Table,
            ) => container_depth = container_depth.saturating_sub(1),
            Event::Start(Tag::Paragraph) if container_depth == 0 && first_paragraph.is_none() => {
                first_paragraph = Some((out.len(), None));
            }
            _ => {}
        }
        let is_paragraph_end = matches!(event, Event::End(TagEnd::Paragraph));
        match heading.as_mut() {
            Some(open) => open.events.push(event),
            None => out.push(event),
        }
        if let Some((_, end @ None)) = &mut first_paragraph
            && is_paragraph_end
            && container_depth == 0
        {
            *end = Some(out.len());
        }
    }

    let summary_events: &[Event] = match (more_at, first_paragraph) {
        (Some(at), _) => &out[..at],
        (None, Some((start, Some(end)))) => &out[start..end],
        _ => &[],
    };
    // Footnote markers would point nowhere on a listing page.
    html::push_html(
        &mut rendered.summary,
        summary_events
            .iter()
            .filter(|e| !matches!(e, Event::FootnoteReference(_)))
            .cloned(),
    );
    rendered.has_more = match (more_at, first_paragraph) {
        (Some(at), _) => at < out.len(),
        (None, Some((start, Some(end)))) => start > 0 || end < out.len(),
        _ => !out.is_empty(),
    };
    html::push_html(&mut rendered.html, out.into_iter());
    rendered
}

fn resolve<'a>(
    links: &Links,
    dest: CowStr<'a>,
    line: usize,
    is_image: bool,
    rendered: &mut Rendered,
) -> CowStr<'a> {
    match links.resolve(&dest) {
        Resolved::Unchanged => dest,
        Resolved::Internal { url, path } => {
            rendered.references.push(Reference {
                line,
                path,
                is_image,
            });
            url.into()
        }
        Resolved::Broken(message) => {
            rendered.problems.push((line, message));
            dest
        }
    }
}

fn code_block(lang: &str, code: &str) -> String {
    let lang_attr = escape_html(lang);
    match highlight::highlight(code, lang) {
        Some(html) => {
            format!("<pre class=\"code\" data-lang=\"{lang_attr}\"><code>{html}</code></pre>\n")
        }
        None if lang.is_empty() => format!(
            "<pre class=\"code\"><code>{}</code></pre>\n",
            escape_html(code)
        ),
        None => format!(
            "<pre class=\"code\" data-lang=\"{lang_attr}\"><code class=\"language-{lang_attr}\">{}</code></pre>\n",
            escape_html(code)
        ),
    }
}

fn finish_heading(
    open: OpenHeading,
    used_ids: &mut HashSet<String>,
    toc: &mut Vec<TocEntry>,
) -> String {
    let title: String = open
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect();
    let base = match &open.id {
        Some(id) => id.to_string(),
        None => {
            let slug = slugify(&title);
            if slug.is_empty() {
                "section".to_string()
            } else {
                slug
            }
        }
    };
    let mut id = base.clone();
    let mut n = 1;
    while !used_ids.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    let mut inner = String::new();
    html::push_html(&mut inner, open.events.into_iter());
    let level = heading_number(open.level);
    let id = escape_html(&id);
    toc.push(TocEntry {
        level,
        id: id.clone(),
        title: title.trim().to_string(),
    });
    format!(
        "<h{level} id=\"{id}\">{inner} <a class=\"anchor\" href=\"#{id}\" aria-label=\"Link to this section\">#</a></h{level}>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    fn render_in(dir: &str, body: &str) -> Rendered {
        let urls = HashMap::from([(
            "posts/2026-01-01-other.md".to_string(),
            "/posts/other/".to_string(),
        )]);
        render(
            body,
            10,
            &Links {
                source_dir: dir,
                page_urls: &urls,
            },
        )
    }

    #[test]
    fn extensions_are_on() {
        let r = render_in(
            "",
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ \"quoted\"\n\n- [x] done\n\nNote[^1].\n\n[^1]: The note.\n",
        );
        assert!(r.html.contains("<table>"), "{}", r.html);
        assert!(r.html.contains("<del>gone</del>"), "{}", r.html);
        assert!(r.html.contains("\u{201c}quoted\u{201d}"), "{}", r.html);
        assert!(r.html.contains("type=\"checkbox\""), "{}", r.html);
        assert!(r.html.contains("footnote-definition"), "{}", r.html);
    }

    #[test]
    fn headings_get_unique_ids_anchors_and_toc() {
        let r = render_in(
            "",
            "## Hello, *World*\n\n## Hello World\n\n### Custom {#mine}\n",
        );
        assert!(r.html.contains("<h2 id=\"hello-world\">Hello, <em>World</em> <a class=\"anchor\" href=\"#hello-world\""), "{}", r.html);
        assert!(r.html.contains("id=\"hello-world-1\""), "{}", r.html);
        assert!(r.html.contains("id=\"mine\""), "{}", r.html);
        let ids: Vec<_> = r
            .toc
            .iter()
            .map(|t| (t.level, t.id.as_str(), t.title.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                (2, "hello-world", "Hello, World"),
                (2, "hello-world-1", "Hello World"),
                (3, "mine", "Custom")
            ]
        );
    }

    #[test]
    fn code_is_highlighted_with_classes() {
        let r = render_in(
            "",
            "```rust\nfn main() {}\n```\n\n```nosuchlang\n<b>\n```\n",
        );
        assert!(
            r.html
                .contains("<pre class=\"code\" data-lang=\"rust\"><code><span class=\"hl-"),
            "{}",
            r.html
        );
        assert!(
            r.html.contains("language-nosuchlang\">&lt;b&gt;"),
            "{}",
            r.html
        );
    }

    #[test]
    fn summary_from_more_marker_or_first_paragraph() {
        let r = render_in("", "# Title\n\nFirst para[^n].\n\nSecond.\n\n[^n]: x\n");
        assert_eq!(r.summary.trim(), "<p>First para.</p>");
        assert!(r.has_more);
        let r = render_in("", "One.\n\nTwo.\n\n<!-- more -->\n\nThree.\n");
        assert_eq!(r.summary, "<p>One.</p>\n<p>Two.</p>\n");
        assert!(r.has_more);
        assert!(!r.html.contains("more"));
        let r = render_in("", "Only.\n");
        assert!(!r.has_more);
    }

    #[test]
    fn relative_links_resolve_from_the_source_folder() {
        let r = render_in(
            "posts",
            "[a](2026-01-01-other.md#part) ![i](../images/cat.png) [b](/about/) [c](https://x.org/) [d](#top)\n\n[e](missing.md) [f](../../etc/passwd)\n",
        );
        assert!(r.html.contains("href=\"/posts/other/#part\""), "{}", r.html);
        assert!(r.html.contains("src=\"/images/cat.png\""), "{}", r.html);
        // Relative to a bundle, whatever the post's own URL: encoded hrefs,
        // decoded references.
        let bundle = render_in(
            "posts/2026-01-01-café",
            "![c](my%20cover.png) [o](../2026-01-01-other.md)\n",
        );
        assert!(
            bundle
                .html
                .contains("src=\"/posts/2026-01-01-caf%C3%A9/my%20cover.png\""),
            "{}",
            bundle.html
        );
        assert_eq!(
            bundle.references[0].path,
            "/posts/2026-01-01-café/my cover.png"
        );
        assert_eq!(bundle.references[1].path, "/posts/other/");
        assert!(r.html.contains("href=\"https://x.org/\""), "{}", r.html);
        assert_eq!(
            r.references,
            [
                Reference {
                    line: 10,
                    path: "/posts/other/".into(),
                    is_image: false
                },
                Reference {
                    line: 10,
                    path: "/images/cat.png".into(),
                    is_image: true
                },
                Reference {
                    line: 10,
                    path: "/about/".into(),
                    is_image: false
                },
            ]
        );
        assert_eq!(r.problems.len(), 2);
        assert_eq!(r.problems[0].0, 12);
        assert!(r.problems[0].1.contains("missing.md"));
        assert!(r.problems[1].1.contains("outside"));
    }

    #[test]
    fn reading_time_counts_words() {
        let words = "word ".repeat(450);
        assert_eq!(render_in("", &words).reading_minutes(), 3);
        assert_eq!(render_in("", "hi").reading_minutes(), 1);
    }

    #[test]
    fn slugify_keeps_unicode_letters() {
        assert_eq!(slugify("Héllo, Wörld! 2026"), "héllo-wörld-2026");
        assert_eq!(slugify("  --  "), "");
    }
}
