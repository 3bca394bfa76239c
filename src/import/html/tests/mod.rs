//! Tests of the HTML to markdown conversion. The main check is the round
//! trip: the markdown, rendered as quire renders it, must give back the
//! input's document (text of each block, links, images, code); `digest`
//! reduces a DOM to those.

mod cases;
mod fixtures;
mod hostile;

use pulldown_cmark::{Options, Parser, html};
use scraper::{Html, Node};

use super::{Converted, to_markdown};

/// The options of site/markdown.rs's `render`.
fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_SMART_PUNCTUATION
        | Options::ENABLE_HEADING_ATTRIBUTES;
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    out
}

/// What a reader gets from a document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// The text of a block (a paragraph, heading, list item, cell), spaces
    /// collapsed; `⏎` marks a line break.
    Text(String),
    Heading(u8),
    List(&'static str),
    Quote,
    Rule,
    Emphasis(&'static str),
    Link(String),
    Image {
        src: String,
        alt: String,
    },
    Code(String),
    /// A `<pre>`'s text and the language on its `<code>`.
    CodeBlock {
        language: Option<String>,
        text: String,
    },
    Element(String),
}

const INLINE: &[&str] = &[
    "a", "abbr", "b", "br", "cite", "code", "del", "em", "i", "img", "ins", "kbd", "mark", "q",
    "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
];

fn digest(html: &str) -> Vec<Item> {
    let document = Html::parse_fragment(html);
    let mut items = Vec::new();
    let mut run = String::new();
    walk(*document.root_element(), &mut items, &mut run);
    flush(&mut items, &mut run);
    items
}

fn flush(items: &mut Vec<Item>, run: &mut String) {
    let text = normalize(run);
    if !text.is_empty() {
        items.push(Item::Text(text));
    }
    run.clear();
}

/// Collapses spaces and drops breaks at the ends; straight and typographic
/// quotes count as the same (smart punctuation makes the latter).
fn normalize(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| match c {
            '\u{201c}' | '\u{201d}' => '"',
            '\u{2018}' | '\u{2019}' => '\'',
            c => c,
        })
        .collect();
    let collapsed = text.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .replace(" ⏎", "⏎")
        .replace("⏎ ", "⏎")
        .trim_matches(|c: char| c == '⏎' || c == ' ')
        .to_string()
}

fn walk(node: ego_tree::NodeRef<Node>, items: &mut Vec<Item>, run: &mut String) {
    for child in node.children() {
        match child.value() {
            Node::Text(text) => run.push_str(text),
            Node::Element(element) => {
                let name = element.name();
                let inline = INLINE.contains(&name);
                if !inline {
                    flush(items, run);
                }
                match name {
                    "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                        items.push(Item::Heading(name[1..].parse().unwrap()))
                    }
                    "ul" => items.push(Item::List("ul")),
                    "ol" => items.push(Item::List("ol")),
                    "blockquote" => items.push(Item::Quote),
                    "hr" => items.push(Item::Rule),
                    "em" | "i" | "strong" | "b" | "del" | "s" | "strike" => {
                        let text: String = child
                            .descendants()
                            .filter_map(|d| d.value().as_text().map(|t| t.to_string()))
                            .collect();
                        // Emphasis of nothing shows nothing.
                        if !text.trim_ascii().is_empty() {
                            items.push(Item::Emphasis(match name {
                                "em" | "i" => "em",
                                "strong" | "b" => "strong",
                                _ => "del",
                            }));
                        }
                    }
                    "a" => items.push(Item::Link(decode(element.attr("href").unwrap_or("-")))),
                    "img" => items.push(Item::Image {
                        src: decode(element.attr("src").unwrap_or_default()),
                        alt: element.attr("alt").unwrap_or_default().to_string(),
                    }),
                    "br" => run.push('⏎'),
                    "code" if node.value().as_element().map(|e| e.name()) != Some("pre") => {
                        let text: String = child
                            .descendants()
                            .filter_map(|d| d.value().as_text().map(|t| t.to_string()))
                            .collect();
                        let collapsed = text.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
                        // Whitespace alone may collapse into the text around it.
                        if !collapsed.is_empty() {
                            items.push(Item::Code(collapsed));
                        }
                        run.push_str(&text);
                        continue;
                    }
                    "pre" => {
                        let code = child
                            .children()
                            .find(|c| c.value().as_element().is_some_and(|e| e.name() == "code"));
                        let language = code
                            .and_then(|c| c.value().as_element()?.attr("class"))
                            .and_then(|class| class.strip_prefix("language-"))
                            .map(str::to_string);
                        let text: String = child
                            .descendants()
                            .filter_map(|d| d.value().as_text().map(|t| t.to_string()))
                            .collect();
                        let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
                        items.push(Item::CodeBlock { language, text });
                        continue;
                    }
                    "p" | "div" | "li" | "td" | "th" | "tr" | "tbody" | "thead" | "table"
                    | "span" | "figure" | "figcaption" | "section" | "article" => {}
                    "script" | "style" => {
                        items.push(Item::Element(name.to_string()));
                        let text: String = child
                            .descendants()
                            .filter_map(|d| d.value().as_text().map(|t| t.to_string()))
                            .collect();
                        items.push(Item::Text(normalize(&text)));
                        continue;
                    }
                    other if !inline => items.push(Item::Element(other.to_string())),
                    _ => {}
                }
                walk(child, items, run);
                if !inline {
                    flush(items, run);
                }
            }
            _ => {}
        }
    }
}

fn decode(url: &str) -> String {
    percent_encoding::percent_decode_str(url)
        .decode_utf8_lossy()
        .into_owned()
}

/// Converts, renders, and checks the rendered document against the input.
#[track_caller]
fn round_trip(input: &str) -> Converted {
    let converted = to_markdown(input);
    let rendered = render(&converted.markdown);
    let mut expected = digest(input);
    let got = digest(&rendered);
    // The input names languages in many ways (see code.rs); the digest
    // reads only `language-x`, so take the rendered one where it read none.
    for (want, have) in expected.iter_mut().zip(&got) {
        if let (
            Item::CodeBlock {
                language: want @ None,
                ..
            },
            Item::CodeBlock { language: have, .. },
        ) = (want, have)
        {
            *want = have.clone();
        }
    }
    assert_eq!(
        got, expected,
        "\ninput:\n{input}\nmarkdown:\n{}\nrendered:\n{rendered}",
        converted.markdown
    );
    converted
}

/// Checks the round trip and the exact markdown.
#[track_caller]
fn converts(input: &str, markdown: &str) -> Converted {
    let converted = round_trip(input);
    assert_eq!(converted.markdown, markdown, "input:\n{input}");
    converted
}

fn kept(converted: &Converted) -> Vec<(&str, usize)> {
    converted
        .kept_as_html
        .iter()
        .map(|k| (k.element.as_str(), k.line))
        .collect()
}
