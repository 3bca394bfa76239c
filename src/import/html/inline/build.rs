//! Building the inline tree: whitespace collapsed as `white-space: normal`
//! does, spaces moved out of emphasis, and the first element that does not
//! map reported instead.

use ego_tree::NodeRef;
use scraper::Node;

use super::super::{MAX_DEPTH, raw};
use super::{Emph, Family, Inline, PASSTHROUGH, UNWRAPPED, Unmappable};

/// Builds the inline tree of a run of sibling nodes (a paragraph's content).
pub(in super::super) fn build<'a>(
    nodes: impl IntoIterator<Item = NodeRef<'a, Node>>,
    depth: usize,
) -> Result<Vec<Inline>, Unmappable> {
    let mut builder = Builder { after_space: true };
    let mut out = Vec::new();
    for node in nodes {
        builder.node(node, depth, &mut out)?;
    }
    trim_end(&mut out, true);
    Ok(out)
}

struct Builder {
    /// Whether the text so far ends in collapsible space (or a line start),
    /// so that more whitespace collapses into nothing.
    after_space: bool,
}

impl Builder {
    fn node(
        &mut self,
        node: NodeRef<Node>,
        depth: usize,
        out: &mut Vec<Inline>,
    ) -> Result<(), Unmappable> {
        let element = match node.value() {
            Node::Text(text) => {
                self.text(text, out);
                return Ok(());
            }
            Node::Element(element) => element,
            _ => return Ok(()),
        };
        let name = element.name();
        if depth > MAX_DEPTH {
            return Err(Unmappable(format!(
                "{name} (nested deeper than {MAX_DEPTH})"
            )));
        }
        let children = |builder: &mut Self, out: &mut Vec<Inline>| {
            node.children()
                .try_for_each(|child| builder.node(child, depth + 1, out))
        };
        match name {
            "br" => {
                trim_end(out, false);
                out.push(Inline::Break);
                self.after_space = true;
            }
            "em" | "i" => self.emph(name, "*", Family::Star, node, depth, out)?,
            "strong" | "b" => self.emph(name, "**", Family::Star, node, depth, out)?,
            "del" | "s" | "strike" => self.emph(name, "~~", Family::Tilde, node, depth, out)?,
            "code" | "tt" => {
                let mut text = String::new();
                for descendant in node.descendants().skip(1) {
                    match descendant.value() {
                        Node::Text(t) => text.push_str(t),
                        Node::Element(e) if UNWRAPPED.contains(&e.name()) => {}
                        Node::Element(e) => {
                            return Err(Unmappable(format!("{name} (with {} inside)", e.name())));
                        }
                        _ => {}
                    }
                }
                let mut collapsed = String::new();
                self.collapse(&text, &mut collapsed);
                if !collapsed.is_empty() {
                    out.push(Inline::Code(collapsed));
                }
            }
            "a" if element.attr("href").is_some() => {
                let mut inner = Vec::new();
                children(self, &mut inner)?;
                out.push(Inline::Link {
                    href: element.attr("href").unwrap_or_default().to_string(),
                    title: element.attr("title").map(single_line),
                    children: inner,
                });
            }
            "img" => {
                match element.attr("src") {
                    Some(src) => out.push(Inline::Image {
                        src: src.to_string(),
                        alt: single_line(element.attr("alt").unwrap_or_default()),
                        title: element.attr("title").map(single_line),
                    }),
                    None => {
                        let mut html = String::new();
                        raw::serialize(node, &mut html);
                        out.push(Inline::Html(html));
                    }
                }
                self.after_space = false;
            }
            "wbr" => out.push(Inline::Html("<wbr>".into())),
            _ if UNWRAPPED.contains(&name) => children(self, out)?,
            _ if PASSTHROUGH.contains(&name) || name == "a" => {
                let mut open = format!("<{name}");
                for (attr, value) in element.attrs() {
                    if !is_attribute_name(attr) {
                        return Err(Unmappable(format!("{name} (attribute {attr})")));
                    }
                    open.push_str(&format!(" {attr}=\"{}\"", attribute_value(value)));
                }
                open.push('>');
                let mut inner = Vec::new();
                children(self, &mut inner)?;
                out.push(Inline::Tag {
                    name: name.to_string(),
                    open,
                    children: inner,
                });
            }
            _ => return Err(Unmappable(name.to_string())),
        }
        Ok(())
    }

    fn emph(
        &mut self,
        tag: &str,
        delimiter: &'static str,
        family: Family,
        node: NodeRef<Node>,
        depth: usize,
        out: &mut Vec<Inline>,
    ) -> Result<(), Unmappable> {
        let mut children = Vec::new();
        for child in node.children() {
            self.node(child, depth + 1, &mut children)?;
        }
        // Delimiters next to a space cannot open or close: move it outside.
        if let Some(Inline::Text(text)) = children.first_mut()
            && let Some(rest) = text.strip_prefix(' ')
        {
            *text = rest.to_string();
            if text.is_empty() {
                children.remove(0);
            }
            push_text(out, " ");
        }
        let mut space_after = false;
        if let Some(Inline::Text(text)) = children.last_mut()
            && text.ends_with(' ')
        {
            text.pop();
            if text.is_empty() {
                children.pop();
            }
            space_after = true;
        }
        if !children.is_empty() {
            out.push(Inline::Emph(Emph {
                tag: tag.to_string(),
                delimiter,
                family,
                children,
            }));
        }
        if space_after {
            push_text(out, " ");
        }
        Ok(())
    }

    fn text(&mut self, text: &str, out: &mut Vec<Inline>) {
        let mut collapsed = String::with_capacity(text.len());
        self.collapse(text, &mut collapsed);
        if !collapsed.is_empty() {
            push_text(out, &collapsed);
        }
    }

    /// Collapses ASCII whitespace as `white-space: normal` does.
    fn collapse(&mut self, text: &str, out: &mut String) {
        for c in text.chars() {
            if c.is_ascii_whitespace() {
                if !self.after_space {
                    out.push(' ');
                    self.after_space = true;
                }
            } else {
                out.push(c);
                self.after_space = false;
            }
        }
    }
}

fn push_text(out: &mut Vec<Inline>, text: &str) {
    match out.last_mut() {
        Some(Inline::Text(last)) => last.push_str(text),
        _ => out.push(Inline::Text(text.to_string())),
    }
}

/// Drops trailing collapsible space (and, at a block's end, line breaks,
/// which show nothing there).
fn trim_end(nodes: &mut Vec<Inline>, breaks: bool) {
    loop {
        match nodes.last_mut() {
            Some(Inline::Text(text)) => {
                if text.ends_with(' ') {
                    text.pop();
                }
                if text.is_empty() {
                    nodes.pop();
                    continue;
                }
            }
            Some(Inline::Break) if breaks => {
                nodes.pop();
                continue;
            }
            Some(Inline::Emph(Emph { children, .. }))
            | Some(Inline::Link { children, .. })
            | Some(Inline::Tag { children, .. }) => trim_end(children, false),
            _ => {}
        }
        return;
    }
}

fn single_line(text: &str) -> String {
    text.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

fn attribute_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}
