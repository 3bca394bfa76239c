//! What stays HTML: a subtree serialized back from the parsed tree, shaped so
//! that a markdown HTML block passes it through whole. Such a block ends at
//! the first blank line, so none is written: collapsible whitespace loses its
//! extra line breaks and line breaks in preformatted text become `&#10;`.
//! Iterative, since this is where subtrees deeper than the walk's bound go.

use ego_tree::NodeRef;
use ego_tree::iter::Edge;
use scraper::Node;

const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
];
/// Elements whose text is not escaped (the parser took it literally).
const RAW_TEXT: &[&str] = &[
    "script",
    "style",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];
/// Elements whose line breaks show.
const PREFORMATTED: &[&str] = &["pre", "textarea", "listing"];

/// Tags that open a markdown HTML block of kind 1 or 6 whatever follows them
/// on the line; any other element is wrapped in a `<div>` so it starts one.
const BLOCK_OPENERS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "iframe",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "pre",
    "script",
    "section",
    "style",
    "table",
    "textarea",
    "ul",
];

/// Serializes nodes as one markdown HTML block.
pub(super) fn block<'a>(nodes: impl IntoIterator<Item = NodeRef<'a, Node>>) -> String {
    let nodes: Vec<_> = nodes.into_iter().collect();
    let mut html = String::new();
    for node in &nodes {
        serialize(*node, &mut html);
    }
    let opens_block = match nodes.as_slice() {
        [only] => super::element_name(only).is_some_and(|name| BLOCK_OPENERS.contains(&name)),
        _ => false,
    };
    if opens_block {
        html
    } else {
        format!("<div>{html}</div>")
    }
}

/// Serializes one node with its subtree; comments are dropped.
pub(super) fn serialize(node: NodeRef<Node>, out: &mut String) {
    // How many preformatted and raw-text elements enclose the current node.
    let mut preformatted = 0usize;
    let mut raw_text = 0usize;
    for edge in node.traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    out.push('<');
                    out.push_str(name);
                    for (attr, value) in element.attrs.iter() {
                        out.push(' ');
                        if let Some(prefix) = &attr.prefix {
                            out.push_str(prefix);
                            out.push(':');
                        }
                        out.push_str(&attr.local);
                        out.push_str("=\"");
                        escape(value, true, out);
                        out.push('"');
                    }
                    out.push('>');
                    if PREFORMATTED.contains(&name) {
                        preformatted += 1;
                        // The parser drops one line break right after the tag.
                        let first_text = node.first_child().and_then(|c| c.value().as_text());
                        if first_text.is_some_and(|t| t.starts_with('\n')) {
                            out.push('\n');
                        }
                    }
                    if RAW_TEXT.contains(&name) {
                        raw_text += 1;
                    }
                }
                Node::Text(text) if raw_text > 0 => push_without_blank_lines(text, out),
                Node::Text(text) if preformatted > 0 => escape(text, true, out),
                Node::Text(text) => {
                    let mut escaped = String::with_capacity(text.len());
                    escape(text, false, &mut escaped);
                    push_without_blank_lines(&escaped, out);
                }
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(element) = node.value() {
                    let name = element.name();
                    if PREFORMATTED.contains(&name) {
                        preformatted -= 1;
                    }
                    if RAW_TEXT.contains(&name) {
                        raw_text -= 1;
                    }
                    if !VOID.contains(&name) {
                        out.push_str("</");
                        out.push_str(name);
                        out.push('>');
                    }
                }
            }
        }
    }
}

/// Escapes text or an attribute value; `keep_lines` writes line breaks as
/// references, so they survive without making a blank line.
fn escape(text: &str, keep_lines: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            '\n' if keep_lines => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
}

/// Copies text, turning each whitespace run that holds a blank line into one
/// line break.
fn push_without_blank_lines(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_whitespace()) {
        out.push_str(&rest[..start]);
        let run_len = rest[start..]
            .find(|c: char| !c.is_ascii_whitespace())
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + run_len];
        if run.matches('\n').count() >= 2 {
            out.push('\n');
        } else {
            out.push_str(run);
        }
        rest = &rest[start + run_len..];
    }
    out.push_str(rest);
}
