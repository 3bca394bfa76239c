//! Writing the inline tree as markdown: text escaped where markdown would
//! read syntax, and each emphasis delimited by `*`, `**` or `~~` only where
//! CommonMark's flanking rules let the delimiters open and close.

use super::{Emph, Inline};

/// Where inline markdown is written: what a line break becomes, and which
/// characters are syntax there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in super::super) enum Context {
    Paragraph,
    Heading,
    Cell,
}

/// A character as CommonMark's flanking rules see it; `Other` is non-ASCII
/// that is neither a letter, digit nor space (punctuation or not: the
/// writer only relies on what holds either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Space,
    Punct,
    Alnum,
    Other,
}

fn class(c: char) -> Class {
    if c.is_ascii_punctuation() {
        Class::Punct
    } else if c.is_alphanumeric() {
        Class::Alnum
    } else if c.is_whitespace() && !matches!(c, '\u{b}' | '\u{85}' | '\u{2028}' | '\u{2029}') {
        Class::Space
    } else {
        Class::Other
    }
}

fn first_class(node: &Inline) -> Class {
    match node {
        Inline::Text(text) => text.chars().next().map_or(Class::Space, class),
        _ => Class::Punct,
    }
}

/// `lines`: whether a break here ends the line (else it is a `<br>` tag).
fn last_class(node: &Inline, lines: bool) -> Class {
    match node {
        Inline::Text(text) => text.chars().next_back().map_or(Class::Space, class),
        Inline::Break if lines => Class::Space,
        _ => Class::Punct,
    }
}

/// Writes inline content as markdown.
pub(in super::super) fn write(nodes: &[Inline], context: Context) -> String {
    let mut writer = Writer {
        out: String::new(),
        line_start: context == Context::Paragraph,
        context,
        nesting: 0,
        delimited: Vec::new(),
    };
    writer.nodes(nodes, Class::Space, Class::Space);
    writer.out
}

struct Writer {
    out: String,
    /// Whether the next character starts a line of a paragraph.
    line_start: bool,
    context: Context,
    /// How many links, emphases and tags enclose the current node.
    nesting: usize,
    /// The families of the delimiters written around the current node.
    delimited: Vec<super::Family>,
}

impl Writer {
    /// Whether a break at this nesting is written as `\` and a new line:
    /// only outside links, emphasis and tags, since a `\` that ends a
    /// link's text reads as a backslash; inside them a break is `<br>`.
    fn breaks_lines(&self, nesting: usize) -> bool {
        self.context == Context::Paragraph && nesting == 0
    }

    fn nested(&mut self, children: &[Inline]) {
        self.nesting += 1;
        self.nodes(children, Class::Punct, Class::Punct);
        self.nesting -= 1;
    }

    fn nodes(&mut self, nodes: &[Inline], before: Class, after: Class) {
        let lines = self.breaks_lines(self.nesting);
        for (i, node) in nodes.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| &nodes[p]);
            let next = nodes.get(i + 1);
            match node {
                Inline::Text(text) => {
                    let before_link = matches!(next, Some(Inline::Link { .. }));
                    self.text(text, before_link);
                }
                Inline::Break if lines => {
                    self.out.push_str("\\\n");
                    self.line_start = true;
                    continue;
                }
                Inline::Break => self.out.push_str("<br>"),
                Inline::Code(code) => {
                    if matches!(previous, Some(Inline::Code(_))) {
                        // Two spans in a row would read as one backtick run.
                        self.out.push_str("<code>");
                        self.line_start = false;
                        self.text(code, false);
                        self.out.push_str("</code>");
                    } else {
                        self.out.push_str(&code_span(code, self.context));
                    }
                }
                Inline::Emph(emph) => {
                    let prev_class = previous.map_or(before, |p| last_class(p, lines));
                    let next_class = next.map_or(after, first_class);
                    let after_same =
                        matches!(previous, Some(Inline::Emph(p)) if p.family == emph.family);
                    // A delimiter between punctuation both opens and closes,
                    // so inside one of its family (even through a tag or a
                    // link) it could close that one instead of its own.
                    let ambiguous = self.delimited.contains(&emph.family)
                        && self.both_flanking(emph, prev_class, next_class);
                    if !after_same
                        && !ambiguous
                        && self.delimiter_fits(emph, prev_class, next_class)
                    {
                        self.out.push_str(emph.delimiter);
                        self.line_start = false;
                        self.delimited.push(emph.family);
                        self.nested(&emph.children);
                        self.delimited.pop();
                        self.out.push_str(emph.delimiter);
                    } else {
                        self.out.push_str(&format!("<{}>", emph.tag));
                        self.line_start = false;
                        self.nested(&emph.children);
                        self.out.push_str(&format!("</{}>", emph.tag));
                    }
                }
                Inline::Link {
                    href,
                    title,
                    children,
                } => {
                    let autolink = title.is_none()
                        && matches!(children.as_slice(), [Inline::Text(t)] if t == href)
                        && is_autolink(href);
                    if autolink {
                        self.out.push_str(&format!("<{href}>"));
                    } else {
                        self.out.push('[');
                        self.line_start = false;
                        self.nested(children);
                        self.out.push_str("](");
                        self.out.push_str(&destination(href, self.context));
                        self.title(title.as_deref());
                        self.out.push(')');
                    }
                }
                Inline::Image { src, alt, title } => {
                    self.out.push_str("![");
                    self.line_start = false;
                    self.text(alt, false);
                    self.out.push_str("](");
                    self.out.push_str(&destination(src, self.context));
                    self.title(title.as_deref());
                    self.out.push(')');
                }
                Inline::Tag {
                    name,
                    open,
                    children,
                } => {
                    self.out.push_str(open);
                    self.line_start = false;
                    self.nested(children);
                    self.out.push_str(&format!("</{name}>"));
                }
                Inline::Html(html) => self.out.push_str(html),
            }
            self.line_start = false;
        }
    }

    /// Whether the opening or the closing delimiter would have punctuation
    /// (or what may be punctuation) on both sides.
    fn both_flanking(&self, emph: &Emph, prev: Class, next: Class) -> bool {
        let inner_lines = self.breaks_lines(self.nesting + 1);
        let punct = |c: Class| matches!(c, Class::Punct | Class::Other);
        let first = emph.children.first().map_or(Class::Space, first_class);
        let last = emph
            .children
            .last()
            .map_or(Class::Space, |n| last_class(n, inner_lines));
        (punct(prev) && punct(first)) || (punct(last) && punct(next))
    }

    fn delimiter_fits(&self, emph: &Emph, prev: Class, next: Class) -> bool {
        let inner_lines = self.breaks_lines(self.nesting + 1);
        let same_family = |node: Option<&Inline>| matches!(node, Some(Inline::Emph(e)) if e.family == emph.family);
        let (Some(first), Some(last)) = (emph.children.first(), emph.children.last()) else {
            return false;
        };
        if same_family(Some(first)) || same_family(Some(last)) {
            return false;
        }
        let first = first_class(first);
        let last = last_class(last, inner_lines);
        let opens = match first {
            Class::Space => false,
            Class::Alnum => true,
            Class::Punct | Class::Other => matches!(prev, Class::Space | Class::Punct),
        };
        let closes = match last {
            Class::Space => false,
            Class::Alnum => true,
            Class::Punct | Class::Other => matches!(next, Class::Space | Class::Punct),
        };
        opens && closes
    }

    fn title(&mut self, title: Option<&str>) {
        if let Some(title) = title {
            self.out.push_str(" \"");
            for c in title.chars() {
                match c {
                    '"' | '\\' => self.out.push('\\'),
                    '|' if self.context == Context::Cell => self.out.push('\\'),
                    _ => {}
                }
                self.out.push(c);
            }
            self.out.push('"');
        }
    }

    /// Writes text with everything markdown would read as syntax escaped.
    fn text(&mut self, text: &str, before_link: bool) {
        let chars: Vec<char> = text.chars().collect();
        let out = &mut self.out;
        let line_start = self.line_start;
        // A line starting with digits then `.` or `)` would be a list item.
        let ordinal_end = (line_start && chars.first().is_some_and(char::is_ascii_digit))
            .then(|| chars.iter().position(|c| !c.is_ascii_digit()))
            .flatten()
            .filter(|&end| matches!(chars[end], '.' | ')'));
        for (i, &c) in chars.iter().enumerate() {
            let before = i.checked_sub(1).map(|p| chars[p]);
            let after = chars.get(i + 1).copied();
            let escape = match c {
                '\\' | '`' | '*' | '[' | ']' | '|' | '~' => true,
                '_' => {
                    !(before.is_some_and(char::is_alphanumeric)
                        && after.is_some_and(char::is_alphanumeric))
                }
                '<' => {
                    after.is_some_and(|a| a.is_ascii_alphabetic() || matches!(a, '/' | '!' | '?'))
                }
                '&' => is_entity_like(&chars[i + 1..]),
                '!' => before_link && i + 1 == chars.len(),
                // Smart punctuation would make `--` a dash and `...` an ellipsis.
                '-' => before == Some('-') || (i == 0 && line_start),
                '.' => {
                    i >= 2 && chars[i - 1] == '.' && chars[i - 2] == '.' || ordinal_end == Some(i)
                }
                ')' => ordinal_end == Some(i),
                '#' => i == 0 && line_start || self.context == Context::Heading,
                '>' | '+' | '=' => i == 0 && line_start,
                _ => false,
            };
            if escape {
                out.push('\\');
            }
            out.push(c);
        }
        if !chars.is_empty() {
            self.line_start = false;
        }
    }
}

/// Whether text after an `&` would read as a character reference.
fn is_entity_like(rest: &[char]) -> bool {
    let name_end = rest
        .iter()
        .take(33)
        .position(|c| !(c.is_ascii_alphanumeric() || *c == '#'));
    name_end.is_some_and(|end| end > 0 && rest[end] == ';')
}

fn is_autolink(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once(':') else {
        return false;
    };
    (2..=32).contains(&scheme.len())
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        && !rest.is_empty()
        && !rest.chars().any(|c| {
            c.is_ascii_whitespace()
                || c.is_control()
                || matches!(c, '<' | '>' | '&' | '\\' | '|' | '*' | '_' | '`')
        })
}

/// A link destination, in angle brackets when it holds spaces or parentheses.
fn destination(url: &str, context: Context) -> String {
    let url: String = url
        .chars()
        .filter(|c| !matches!(c, '\n' | '\r' | '\t'))
        .collect();
    let angled = url.is_empty()
        || url
            .chars()
            .any(|c| matches!(c, ' ' | '(' | ')' | '<' | '>') || c.is_control());
    let chars: Vec<char> = url.chars().collect();
    let mut out = String::with_capacity(url.len() + 2);
    if angled {
        out.push('<');
    }
    for (i, &c) in chars.iter().enumerate() {
        let escape = match c {
            '\\' => true,
            '<' | '>' => angled,
            '|' => context == Context::Cell,
            '&' => is_entity_like(&chars[i + 1..]),
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    if angled {
        out.push('>');
    }
    out
}

/// A code span with enough backticks for the backticks inside.
fn code_span(code: &str, context: Context) -> String {
    let code = if context == Context::Cell {
        code.replace('|', "\\|")
    } else {
        code.to_string()
    };
    let ticks = "`".repeat(longest_run(&code, '`') + 1);
    let pad = code.starts_with('`')
        || code.ends_with('`')
        || (code.starts_with(' ')
            && code.ends_with(' ')
            && !code.trim_start_matches(' ').is_empty());
    if pad {
        format!("{ticks} {code} {ticks}")
    } else {
        format!("{ticks}{code}{ticks}")
    }
}

/// The longest run of `c` in `text`.
pub(in super::super) fn longest_run(text: &str, c: char) -> usize {
    let (mut longest, mut current) = (0, 0);
    for ch in text.chars() {
        current = if ch == c { current + 1 } else { 0 };
        longest = longest.max(current);
    }
    longest
}
