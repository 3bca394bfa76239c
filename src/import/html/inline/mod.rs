//! Inline content: phrasing HTML (text, emphasis, links, images, code, line
//! breaks) to a small tree, then to markdown text. Building collapses
//! whitespace as a browser does and moves spaces out of emphasis; writing
//! escapes what markdown would read as syntax and picks, for each emphasis,
//! the markdown delimiter when CommonMark's flanking rules let it open and
//! close right there, else the HTML tag, so the text reads back the same.
//! `build` makes the tree, `write` the markdown.

mod build;
mod write;

pub(super) use build::build;
pub(super) use write::{Context, longest_run, write};

/// Elements kept as inline HTML tags around markdown content.
const PASSTHROUGH: &[&str] = &[
    "abbr", "acronym", "big", "bdi", "bdo", "cite", "data", "dfn", "ins", "kbd", "mark", "q",
    "samp", "small", "sub", "sup", "time", "u", "var",
];
/// Elements whose content is kept and the element itself dropped.
const UNWRAPPED: &[&str] = &["span", "font", "nobr"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Star,
    Tilde,
}

#[derive(Debug)]
pub(super) struct Emph {
    /// The element name, for when the markdown delimiter cannot stand.
    tag: String,
    delimiter: &'static str,
    family: Family,
    children: Vec<Inline>,
}

impl Emph {
    pub(super) fn children(&self) -> &[Inline] {
        &self.children
    }
}

#[derive(Debug)]
pub(super) enum Inline {
    /// Decoded text, whitespace collapsed.
    Text(String),
    Break,
    Code(String),
    Emph(Emph),
    Link {
        href: String,
        title: Option<String>,
        children: Vec<Inline>,
    },
    Image {
        src: String,
        alt: String,
        title: Option<String>,
    },
    /// An inline element kept as HTML tags around markdown content.
    Tag {
        name: String,
        open: String,
        children: Vec<Inline>,
    },
    /// Inline HTML written as is.
    Html(String),
}

/// The element (and why) that kept a run of inline content from mapping.
#[derive(Debug)]
pub(super) struct Unmappable(pub String);

/// Whether an element is phrasing content this module maps.
pub(super) fn is_inline(name: &str) -> bool {
    matches!(
        name,
        "a" | "b"
            | "br"
            | "code"
            | "del"
            | "em"
            | "i"
            | "img"
            | "s"
            | "strike"
            | "strong"
            | "tt"
            | "wbr"
    ) || PASSTHROUGH.contains(&name)
        || UNWRAPPED.contains(&name)
}

/// Wraps inline content in emphasis (a figure's caption).
pub(super) fn emphasized(children: Vec<Inline>) -> Vec<Inline> {
    if children.is_empty() {
        return children;
    }
    vec![Inline::Emph(Emph {
        tag: "em".into(),
        delimiter: "*",
        family: Family::Star,
        children,
    })]
}
