//! HTML bodies (a feed entry's content, a rendered page) to quire markdown.
//! What maps cleanly becomes markdown that reads back as the same document;
//! anything else stays a raw HTML block, serialized from the parsed tree so it
//! is well-formed, and is listed so the importer can report it. Nothing is
//! lost but comments. The input is bounded by nesting depth, not trusted:
//! past [`MAX_DEPTH`] a subtree is kept raw, and every walk below that bound
//! is iterative.
//!
//! `depth` bounds nesting before parsing, `blocks` walks block content, `inline` builds and writes inline content,
//! `code` and `table` handle the two structured blocks, `raw` serializes
//! what stays HTML.

mod blocks;
mod code;
mod depth;
mod inline;
mod raw;
mod table;
#[cfg(test)]
mod tests;

use ego_tree::NodeRef;
use scraper::{Html, Node};

/// Deeper than this, a subtree is kept as raw HTML instead of being walked.
pub const MAX_DEPTH: usize = 64;

/// An HTML body as markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub markdown: String,
    /// Elements kept as raw HTML blocks because they do not map cleanly, in order.
    pub kept_as_html: Vec<KeptHtml>,
    /// Every image source referenced (src of <img>, in order, as written).
    pub images: Vec<String>,
}

/// One element left as raw HTML, and where it sits in the markdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptHtml {
    /// What was kept and why, e.g. "table (colspan)", "iframe", "figure".
    pub element: String,
    /// 1-based line in `markdown`.
    pub line: usize,
}

/// Converts an HTML fragment to markdown.
pub fn to_markdown(html: &str) -> Converted {
    let document = Html::parse_fragment(&depth::bound(html));
    let root = document.root_element();
    let images = root
        .descendants()
        .filter_map(|node| node.value().as_element())
        .filter(|element| element.name() == "img")
        .filter_map(|element| element.attr("src"))
        .map(str::to_string)
        .collect();
    let body = blocks::convert(*root);
    let mut markdown = body.text;
    if !markdown.is_empty() {
        markdown.push('\n');
    }
    Converted {
        markdown,
        kept_as_html: body
            .kept
            .into_iter()
            .map(|(line, element)| KeptHtml {
                element,
                line: line + 1,
            })
            .collect(),
        images,
    }
}

/// An element's name, if the node is an element.
fn element_name<'a>(node: &NodeRef<'a, Node>) -> Option<&'a str> {
    node.value().as_element().map(|element| element.name())
}
