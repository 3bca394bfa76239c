//! Code blocks: a `<pre>` as a fenced block with its language, read from the
//! class and data attributes that highlighters write (`language-x`, `lang-x`,
//! `highlight-x`, `sourceCode x`, `brush: x`, `data-lang`) on the `<code>`,
//! the `<pre>` or the wrappers around it (Hugo, Jekyll/rouge, WordPress,
//! pandoc, Prism). Highlighters' `<span>`s are dropped, their line numbers
//! skipped; other markup inside keeps the block as HTML.

use ego_tree::NodeRef;
use ego_tree::iter::Edge;
use scraper::Node;
use scraper::node::Element;

use super::element_name;
use super::inline::longest_run;

/// Classes of the elements highlighters put line numbers in.
const LINE_NUMBERS: &[&str] = &[
    "ln",
    "lnt",
    "lineno",
    "linenos",
    "gutter",
    "rouge-gutter",
    "line-numbers-rows",
];
/// Elements inside a `<pre>` that only carry highlighting.
const HIGHLIGHT_ONLY: &[&str] = &["code", "span", "samp", "kbd", "var"];
/// Elements of rouge's line-numbered table inside a `<pre>`.
const ROUGE_TABLE: &[&str] = &["table", "tbody", "tr", "td", "pre"];
/// How far up from the `<pre>` wrappers may name the language.
const WRAPPER_LEVELS: usize = 3;

/// A `<pre>` as a fenced code block, or why it stays HTML.
pub(super) fn block(pre: NodeRef<Node>) -> Result<String, String> {
    let code = text(pre)?;
    let code = code.strip_suffix('\n').unwrap_or(&code);
    let fence = "`".repeat((longest_run(code, '`') + 1).max(3));
    let language = language(pre).unwrap_or_default();
    Ok(if code.is_empty() {
        format!("{fence}{language}\n{fence}")
    } else {
        format!("{fence}{language}\n{code}\n{fence}")
    })
}

/// The cell holding the code of a line-numbered table that Hugo writes
/// (`<table class="lntable">`) around two `<pre>`s, numbers then code.
pub(super) fn numbered_code_cell<'a>(table: NodeRef<'a, Node>) -> Option<NodeRef<'a, Node>> {
    let element = table.value().as_element()?;
    if !element.classes().any(|c| c == "lntable") {
        return None;
    }
    table
        .descendants()
        .filter(|node| element_name(node) == Some("td"))
        .last()
}

/// The text of a `<pre>`, without line numbers.
fn text(pre: NodeRef<Node>) -> Result<String, String> {
    let mut text = String::new();
    // Open line-number elements, and open rouge tables, around the current node.
    let mut skipping = 0usize;
    let mut in_rouge_table = 0usize;
    for edge in pre.traverse().skip(1) {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    if skipping > 0 || element.classes().any(|c| LINE_NUMBERS.contains(&c)) {
                        skipping += 1;
                    } else if name == "table" && element.classes().any(|c| c == "rouge-table") {
                        in_rouge_table += 1;
                    } else if name == "br" {
                        text.push('\n');
                    } else if !(HIGHLIGHT_ONLY.contains(&name)
                        || in_rouge_table > 0 && ROUGE_TABLE.contains(&name))
                    {
                        return Err(format!("pre (with {name} inside)"));
                    }
                }
                Node::Text(t) if skipping == 0 => text.push_str(t),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(element) = node.value() {
                    if skipping > 0 {
                        skipping -= 1;
                    } else if element.name() == "table"
                        && element.classes().any(|c| c == "rouge-table")
                    {
                        in_rouge_table -= 1;
                    }
                }
            }
        }
    }
    Ok(text)
}

/// The language named on the `<code>`, the `<pre>` or its wrappers.
fn language(pre: NodeRef<Node>) -> Option<String> {
    let code = pre
        .children()
        .find(|child| element_name(child) == Some("code"));
    let wrappers = std::iter::successors(pre.parent(), |node| node.parent())
        .take(WRAPPER_LEVELS)
        .filter(|node| matches!(element_name(node), Some("div" | "figure")));
    code.into_iter()
        .chain([pre])
        .chain(wrappers)
        .filter_map(|node| node.value().as_element())
        .find_map(named_language)
}

fn named_language(element: &Element) -> Option<String> {
    let from_data = element.attr("data-lang").map(str::to_string);
    let class = element.attr("class").unwrap_or_default();
    let classes: Vec<&str> = class.split_ascii_whitespace().collect();
    let from_prefix = classes.iter().find_map(|c| {
        ["language-", "lang-", "highlight-source-", "highlight-"]
            .iter()
            .find_map(|prefix| c.strip_prefix(prefix))
            .map(str::to_string)
    });
    let from_pandoc = classes
        .iter()
        .position(|c| *c == "sourceCode")
        .and_then(|_| classes.iter().find(|c| **c != "sourceCode"))
        .map(|c| c.to_string());
    let from_brush = class
        .split(';')
        .find_map(|part| part.trim().strip_prefix("brush:"))
        .map(|lang| lang.trim().to_string());
    [from_data, from_prefix, from_pandoc, from_brush]
        .into_iter()
        .flatten()
        .find(|lang| is_language(lang))
}

fn is_language(lang: &str) -> bool {
    (1..=40).contains(&lang.len())
        && lang
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '#' | '.' | '-'))
}
