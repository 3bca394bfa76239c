//! Block content: paragraphs (explicit, or runs of inline content as a
//! browser makes them), headings, lists, block quotes, rules, code blocks,
//! tables and figures; wrappers such as `<div>` and `<section>` are looked
//! through; anything else becomes a raw HTML block, noted with its line.

use ego_tree::NodeRef;
use scraper::Node;

use super::inline::{self, Context, Inline};
use super::{MAX_DEPTH, code, element_name, raw, table};
use crate::site::markdown::slugify;

/// Containers whose content is kept and the element itself dropped.
const TRANSPARENT: &[&str] = &[
    "article",
    "aside",
    "body",
    "center",
    "div",
    "figcaption",
    "footer",
    "header",
    "hgroup",
    "html",
    "main",
    "nav",
    "section",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Paragraph,
    List {
        ordered: bool,
        /// Written with the other marker (`+`, `)`), so that a list right
        /// after one of its kind starts a new list.
        alternate: bool,
        /// Whether it may follow a paragraph line directly (an ordered list
        /// must start at 1 for that).
        interrupts: bool,
    },
    Other,
}

/// Markdown for some blocks, and the raw HTML blocks in it.
#[derive(Debug)]
pub(super) struct Block {
    pub text: String,
    /// (0-based line in `text`, what was kept).
    pub kept: Vec<(usize, String)>,
    kind: Kind,
}

impl Block {
    fn new(text: String, kind: Kind) -> Self {
        Block {
            text,
            kept: Vec::new(),
            kind,
        }
    }

    fn raw<'a>(nodes: impl IntoIterator<Item = NodeRef<'a, Node>>, reason: String) -> Self {
        Block {
            text: raw::block(nodes),
            kept: vec![(0, reason)],
            kind: Kind::Other,
        }
    }
}

/// Converts the content of the fragment's root.
pub(super) fn convert(root: NodeRef<Node>) -> Block {
    let mut blocks = Vec::new();
    children(root, 0, &mut blocks);
    join(blocks, "\n\n")
}

fn children(parent: NodeRef<Node>, depth: usize, out: &mut Vec<Block>) {
    let mut run = Vec::new();
    for child in parent.children() {
        match element_name(&child) {
            Some(name) if !inline::is_inline(name) => {
                flush(&mut run, depth, out);
                element(child, name, depth + 1, out);
            }
            _ => run.push(child),
        }
    }
    flush(&mut run, depth, out);
}

/// Inline content between blocks is a paragraph of its own.
fn flush<'a>(run: &mut Vec<NodeRef<'a, Node>>, depth: usize, out: &mut Vec<Block>) {
    let nodes = std::mem::take(run);
    match inline::build(nodes.iter().copied(), depth + 1) {
        Ok(content) if content.is_empty() => {}
        Ok(content) => out.push(paragraph(&content)),
        Err(reason) => {
            let blank = |n: &NodeRef<Node>| match n.value() {
                Node::Text(t) => t.trim_ascii().is_empty(),
                Node::Comment(_) => true,
                _ => false,
            };
            let start = nodes.iter().position(|n| !blank(n)).unwrap_or(0);
            let end = nodes.iter().rposition(|n| !blank(n)).map_or(0, |e| e + 1);
            out.push(Block::raw(nodes[start..end].iter().copied(), reason.0));
        }
    }
}

fn paragraph(content: &[Inline]) -> Block {
    Block::new(inline::write(content, Context::Paragraph), Kind::Paragraph)
}

fn element(node: NodeRef<Node>, name: &str, depth: usize, out: &mut Vec<Block>) {
    if depth > MAX_DEPTH {
        out.push(Block::raw(
            [node],
            format!("{name} (nested deeper than {MAX_DEPTH})"),
        ));
        return;
    }
    let block = match name {
        "p" => match inline::build(node.children(), depth + 1) {
            Ok(content) if content.is_empty() => return,
            Ok(content) => paragraph(&content),
            Err(reason) => Block::raw([node], reason.0),
        },
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => heading(node, name, depth),
        "ul" | "ol" => list(node, name == "ol", depth, out.last().map(|b| b.kind)),
        "blockquote" => {
            let mut inner = Vec::new();
            children(node, depth, &mut inner);
            let inner = join(inner, "\n\n");
            if inner.text.is_empty() {
                Block::new(">".into(), Kind::Other)
            } else {
                prefix(inner, "> ", "> ", Kind::Other)
            }
        }
        "pre" => match code::block(node) {
            Ok(text) => Block::new(text, Kind::Other),
            Err(reason) => Block::raw([node], reason),
        },
        "hr" => Block::new("***".into(), Kind::Other),
        "table" => {
            if let Some(cell) = code::numbered_code_cell(node) {
                return children(cell, depth, out);
            }
            match table::convert(node, depth) {
                Ok(text) => Block::new(text, Kind::Other),
                Err(reason) => Block::raw([node], reason),
            }
        }
        "figure" => match figure(node, depth) {
            Some(block) => block,
            None if has_caption(node) => Block::raw([node], "figure".into()),
            None => return children(node, depth, out),
        },
        _ if TRANSPARENT.contains(&name) => return children(node, depth, out),
        _ => Block::raw([node], name.to_string()),
    };
    out.push(block);
}

fn heading(node: NodeRef<Node>, name: &str, depth: usize) -> Block {
    let content = match inline::build(node.children(), depth + 1) {
        Ok(content) => content,
        Err(reason) => return Block::raw([node], reason.0),
    };
    let level: usize = name[1..].parse().unwrap_or(1);
    let mut text = "#".repeat(level);
    let mut written = inline::write(&content, Context::Heading);
    // A heading ending in `{...}` would read as attributes, escaped or not.
    if written.ends_with('}') {
        written.pop();
        written.push_str("&#125;");
    }
    if !written.is_empty() {
        text.push(' ');
        text.push_str(&written);
    }
    // An id other than the one quire would make keeps old `#fragment` links working.
    let id = node.value().as_element().and_then(|e| e.id());
    if let Some(id) = id.filter(|id| is_heading_id(id) && *id != slugify(&plain_text(&content))) {
        text.push_str(&format!(" {{#{id}}}"));
    }
    Block::new(text, Kind::Other)
}

fn is_heading_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

fn plain_text(content: &[Inline]) -> String {
    let mut text = String::new();
    for node in content {
        match node {
            Inline::Text(t) | Inline::Code(t) => text.push_str(t),
            Inline::Emph(e) => text.push_str(&plain_text(e.children())),
            Inline::Link { children, .. } | Inline::Tag { children, .. } => {
                text.push_str(&plain_text(children))
            }
            _ => {}
        }
    }
    text
}

fn list(node: NodeRef<Node>, ordered: bool, depth: usize, previous: Option<Kind>) -> Block {
    let mut items = Vec::new();
    let mut loose = false;
    for child in node.children() {
        match element_name(&child) {
            Some("li") => {
                let mut blocks = Vec::new();
                children(child, depth, &mut blocks);
                loose |=
                    child.children().any(|c| element_name(&c) == Some("p")) || !fits_tight(&blocks);
                items.push(blocks);
            }
            Some(other) => {
                return Block::raw(
                    [node],
                    format!("{} ({other} inside)", if ordered { "ol" } else { "ul" }),
                );
            }
            None if matches!(child.value(), Node::Text(t) if !t.trim_ascii().is_empty()) => {
                return Block::raw(
                    [node],
                    format!("{} (text outside items)", if ordered { "ol" } else { "ul" }),
                );
            }
            None => {}
        }
    }
    let alternate = matches!(previous, Some(Kind::List { ordered: o, alternate, .. }) if o == ordered && !alternate);
    let start: u64 = node
        .value()
        .as_element()
        .and_then(|e| e.attr("start"))
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| *n <= 999_999_999)
        .unwrap_or(1);
    let separator = if loose { "\n\n" } else { "\n" };
    let written: Vec<Block> = items
        .into_iter()
        .zip(start..)
        .map(|(blocks, number)| {
            let marker = match (ordered, alternate) {
                (false, false) => "-".to_string(),
                (false, true) => "+".to_string(),
                (true, false) => format!("{number}."),
                (true, true) => format!("{number})"),
            };
            let content = join(blocks, separator);
            let mut width = marker.len() + 1;
            if content.text.contains('\t') {
                // Tabs in code keep their width only at a tab stop.
                width = width.next_multiple_of(4);
            }
            let first = format!("{marker}{}", " ".repeat(width - marker.len()));
            if content.text.is_empty() {
                Block::new(marker, Kind::Other)
            } else {
                prefix(content, &first, &" ".repeat(width), Kind::Other)
            }
        })
        .collect();
    let mut list = join(written, separator);
    list.kind = Kind::List {
        ordered,
        alternate,
        interrupts: !ordered || start == 1,
    };
    list
}

/// Whether an item's blocks can sit on consecutive lines: a paragraph, then
/// lists that may follow it directly.
fn fits_tight(blocks: &[Block]) -> bool {
    match blocks {
        [] | [_] => true,
        [first, rest @ ..] => {
            first.kind == Kind::Paragraph
                && rest.iter().all(|b| {
                    matches!(
                        b.kind,
                        Kind::List {
                            interrupts: true,
                            ..
                        }
                    )
                })
        }
    }
}

fn has_caption(figure: NodeRef<Node>) -> bool {
    figure
        .children()
        .any(|c| element_name(&c) == Some("figcaption"))
}

/// A figure of one image (perhaps linked) and a caption: the image, then the
/// caption in italics.
fn figure(node: NodeRef<Node>, depth: usize) -> Option<Block> {
    let (captions, rest): (Vec<_>, Vec<_>) = node
        .children()
        .partition(|c| element_name(c) == Some("figcaption"));
    let [caption] = captions.as_slice() else {
        return None;
    };
    let significant: Vec<_> = rest
        .iter()
        .copied()
        .filter(|c| !matches!(c.value(), Node::Text(t) if t.trim_ascii().is_empty()))
        .filter(|c| !c.value().is_comment())
        .collect();
    let image_nodes = match significant.as_slice() {
        [only] if element_name(only) == Some("p") => only.children().collect(),
        _ => significant,
    };
    let image = inline::build(image_nodes, depth + 1).ok()?;
    let is_image = match image.as_slice() {
        [Inline::Image { .. }] => true,
        [Inline::Link { children, .. }] => matches!(children.as_slice(), [Inline::Image { .. }]),
        _ => false,
    };
    if !is_image {
        return None;
    }
    let caption_nodes: Vec<_> = caption.children().collect();
    let caption_nodes = match caption_nodes.as_slice() {
        [only] if element_name(only) == Some("p") => only.children().collect(),
        _ => caption_nodes,
    };
    let caption = inline::build(caption_nodes, depth + 1).ok()?;
    let mut text = inline::write(&image, Context::Paragraph);
    if !caption.is_empty() {
        text.push_str("\n\n");
        text.push_str(&inline::write(
            &inline::emphasized(caption),
            Context::Paragraph,
        ));
    }
    Some(Block::new(text, Kind::Other))
}

/// Joins blocks, keeping track of where their raw HTML blocks land.
fn join(blocks: Vec<Block>, separator: &str) -> Block {
    let mut text = String::new();
    let mut kept = Vec::new();
    let mut line = 0;
    for (i, block) in blocks.into_iter().enumerate() {
        if i > 0 {
            text.push_str(separator);
            line += separator.matches('\n').count();
        }
        kept.extend(block.kept.into_iter().map(|(l, what)| (line + l, what)));
        line += block.text.matches('\n').count();
        text.push_str(&block.text);
    }
    Block {
        text,
        kept,
        kind: Kind::Other,
    }
}

/// Puts a container's marker before each line; blank lines get it trimmed.
fn prefix(block: Block, first: &str, rest: &str, kind: Kind) -> Block {
    let mut text = String::with_capacity(block.text.len() + first.len());
    for (i, line) in block.text.split('\n').enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let marker = if i == 0 { first } else { rest };
        if line.is_empty() {
            text.push_str(marker.trim_end());
        } else {
            text.push_str(marker);
            text.push_str(line);
        }
    }
    Block {
        text,
        kept: block.kept,
        kind,
    }
}
