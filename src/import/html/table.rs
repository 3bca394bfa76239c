//! Tables: a GFM table when the HTML one is simple (one header row, no
//! spanning cells, inline content only, no caption or footer), else the
//! reason it stays HTML.

use ego_tree::NodeRef;
use scraper::Node;

use super::element_name;
use super::inline::{self, Context};

#[derive(Clone, Copy)]
enum Align {
    None,
    Left,
    Center,
    Right,
}

struct Row<'a> {
    cells: Vec<NodeRef<'a, Node>>,
    all_header: bool,
}

/// A `<table>` as a GFM table, or why it stays HTML (e.g. "table (colspan)").
pub(super) fn convert(table: NodeRef<Node>, depth: usize) -> Result<String, String> {
    let mut head = Vec::new();
    let mut body = Vec::new();
    for child in table.children() {
        match element_name(&child) {
            Some("thead") => head.extend(rows(child)?),
            Some("tbody") => body.extend(rows(child)?),
            Some("tr") => body.push(row(child)?),
            Some("colgroup" | "col") => {}
            Some("tfoot") => return Err("table (footer)".into()),
            Some("caption") => return Err("table (caption)".into()),
            Some(other) => return Err(format!("table ({other} inside)")),
            None => ignorable(child)?,
        }
    }
    let header = match head.len() {
        1 => head.remove(0),
        0 if body.first().is_some_and(|r| r.all_header) => body.remove(0),
        0 => return Err("table (no header row)".into()),
        _ => return Err("table (several header rows)".into()),
    };
    let columns = header.cells.len();
    if columns == 0 {
        return Err("table (empty header row)".into());
    }
    if body.iter().any(|r| r.cells.len() > columns) {
        return Err("table (rows longer than the header)".into());
    }
    let aligns: Vec<Align> = header.cells.iter().map(|c| align(*c)).collect();
    let mut out = line(&cells(&header, depth)?, columns);
    out.push('\n');
    let delimiters: Vec<String> = aligns
        .iter()
        .map(|a| {
            match a {
                Align::None => "---",
                Align::Left => ":---",
                Align::Center => ":---:",
                Align::Right => "---:",
            }
            .to_string()
        })
        .collect();
    out.push_str(&line(&delimiters, columns));
    for row in &body {
        out.push('\n');
        out.push_str(&line(&cells(row, depth)?, columns));
    }
    Ok(out)
}

fn rows(section: NodeRef<Node>) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for child in section.children() {
        match element_name(&child) {
            Some("tr") => rows.push(row(child)?),
            Some(other) => return Err(format!("table ({other} inside)")),
            None => ignorable(child)?,
        }
    }
    Ok(rows)
}

fn row(tr: NodeRef<Node>) -> Result<Row, String> {
    let mut cells = Vec::new();
    let mut all_header = true;
    for child in tr.children() {
        let Some(element) = child.value().as_element() else {
            ignorable(child)?;
            continue;
        };
        match element.name() {
            "td" => all_header = false,
            "th" => {}
            other => return Err(format!("table ({other} inside)")),
        }
        for span in ["colspan", "rowspan"] {
            if element.attr(span).is_some_and(|v| v.trim() != "1") {
                return Err(format!("table ({span})"));
            }
        }
        cells.push(child);
    }
    Ok(Row { cells, all_header })
}

/// Whitespace and comments between rows and cells are fine; text is not.
fn ignorable(node: NodeRef<Node>) -> Result<(), String> {
    match node.value() {
        Node::Text(text) if !text.trim_ascii().is_empty() => {
            Err("table (text between cells)".into())
        }
        _ => Ok(()),
    }
}

fn cells(row: &Row, depth: usize) -> Result<Vec<String>, String> {
    row.cells
        .iter()
        .map(|cell| {
            let significant: Vec<_> = cell
                .children()
                .filter(|c| !matches!(c.value(), Node::Text(t) if t.trim_ascii().is_empty()))
                .filter(|c| !c.value().is_comment())
                .collect();
            let content = match significant.as_slice() {
                [only] if element_name(only) == Some("p") => only.children().collect(),
                _ => cell.children().collect::<Vec<_>>(),
            };
            inline::build(content, depth + 1)
                .map(|nodes| inline::write(&nodes, Context::Cell))
                .map_err(|e| format!("table ({} in a cell)", e.0))
        })
        .collect()
}

fn line(cells: &[String], columns: usize) -> String {
    let mut out = String::from("|");
    for i in 0..columns {
        out.push(' ');
        out.push_str(cells.get(i).map_or("", String::as_str));
        out.push_str(" |");
    }
    out
}

fn align(cell: NodeRef<Node>) -> Align {
    let Some(element) = cell.value().as_element() else {
        return Align::None;
    };
    let from_style = element.attr("style").and_then(|style| {
        style.split(';').find_map(|decl| {
            let (property, value) = decl.split_once(':')?;
            (property.trim().eq_ignore_ascii_case("text-align"))
                .then(|| value.trim().to_ascii_lowercase())
        })
    });
    let value = from_style.or_else(|| element.attr("align").map(|a| a.trim().to_ascii_lowercase()));
    match value.as_deref() {
        Some("left") => Align::Left,
        Some("center") => Align::Center,
        Some("right") => Align::Right,
        _ => Align::None,
    }
}
