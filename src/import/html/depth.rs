//! Bounds nesting before the HTML parser sees it. html5ever checks element
//! scope by walking its stack of open elements, so each start tag costs the
//! current depth and 100,000 nested `<div>`s take hours. One linear pass
//! follows the tags as the parser would, closely enough for this purpose,
//! and drops start tags (and their end tags) that would nest deeper than
//! [`MAX_OPEN`]; their text stays. Real documents never come near the bound.

use std::borrow::Cow;
use std::collections::HashMap;

/// Open elements kept at most; what lies past it loses its tags, not its text.
pub(super) const MAX_OPEN: usize = 2 * super::MAX_DEPTH;

const VOID: &[&[u8]] = &[
    b"area",
    b"base",
    b"basefont",
    b"bgsound",
    b"br",
    b"col",
    b"embed",
    b"frame",
    b"hr",
    b"img",
    b"image",
    b"input",
    b"keygen",
    b"link",
    b"meta",
    b"param",
    b"source",
    b"track",
    b"wbr",
];
/// Elements that a start tag of their own (or of a sibling) closes, so they
/// cannot stack up by themselves; not counted.
const SELF_CLOSING: &[&[u8]] = &[
    b"a",
    b"body",
    b"button",
    b"caption",
    b"colgroup",
    b"dd",
    b"dt",
    b"form",
    b"head",
    b"html",
    b"li",
    b"nobr",
    b"optgroup",
    b"option",
    b"p",
    b"rb",
    b"rp",
    b"rt",
    b"rtc",
    b"tbody",
    b"td",
    b"tfoot",
    b"th",
    b"thead",
    b"tr",
];
/// Elements whose content is text up to their end tag.
const RAW_TEXT: &[&[u8]] = &[
    b"iframe",
    b"noembed",
    b"noframes",
    b"noscript",
    b"script",
    b"style",
    b"textarea",
    b"title",
    b"xmp",
];

/// The input, with start tags past [`MAX_OPEN`] open elements removed.
pub(super) fn bound(html: &str) -> Cow<'_, str> {
    let bytes = html.as_bytes();
    let mut open = Stack::default();
    let mut dropped = Stack::default();
    // Byte ranges of tags to remove.
    let mut removed: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'<') {
        let start = i + offset;
        let Some(tag) = read_tag(bytes, start) else {
            i = start + 1;
            continue;
        };
        i = tag.end;
        match tag.kind {
            Kind::Skip => {}
            Kind::End => {
                if dropped.contains(&tag.name) {
                    dropped.pop_to(&tag.name);
                    removed.push((start, tag.end));
                } else if open.contains(&tag.name) {
                    dropped.clear();
                    open.pop_to(&tag.name);
                }
            }
            Kind::Start { self_closed } => {
                let name = tag.name.as_slice();
                if name == b"plaintext" {
                    break;
                }
                if RAW_TEXT.contains(&name) {
                    i = raw_text_end(bytes, i, name);
                }
                let foreign = open.contains(b"svg") || open.contains(b"math");
                if VOID.contains(&name) || SELF_CLOSING.contains(&name) || (self_closed && foreign)
                {
                    continue;
                }
                if open.len() < MAX_OPEN {
                    open.push(tag.name);
                } else {
                    dropped.push(tag.name);
                    removed.push((start, tag.end));
                }
            }
        }
    }
    if removed.is_empty() {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut from = 0;
    for (start, end) in removed {
        out.push_str(&html[from..start]);
        from = end;
    }
    out.push_str(&html[from..]);
    Cow::Owned(out)
}

/// Element names in order, with a count per name so membership is O(1).
#[derive(Default)]
struct Stack {
    names: Vec<Vec<u8>>,
    counts: HashMap<Vec<u8>, usize>,
}

impl Stack {
    fn len(&self) -> usize {
        self.names.len()
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.counts.get(name).is_some_and(|&n| n > 0)
    }

    fn push(&mut self, name: Vec<u8>) {
        *self.counts.entry(name.clone()).or_default() += 1;
        self.names.push(name);
    }

    /// Pops up to and including the innermost `name`.
    fn pop_to(&mut self, name: &[u8]) {
        while let Some(top) = self.names.pop() {
            if let Some(n) = self.counts.get_mut(&top) {
                *n -= 1;
            }
            if top == name {
                return;
            }
        }
    }

    fn clear(&mut self) {
        self.names.clear();
        self.counts.clear();
    }
}

enum Kind {
    Start {
        self_closed: bool,
    },
    End,
    /// A comment, doctype or processing instruction.
    Skip,
}

struct Tag {
    kind: Kind,
    /// Lowercased.
    name: Vec<u8>,
    /// Just past the tag.
    end: usize,
}

/// Reads the tag at `start` (a `<`), as the HTML tokenizer would; `None`
/// when the `<` is text.
fn read_tag(bytes: &[u8], start: usize) -> Option<Tag> {
    let rest = &bytes[start + 1..];
    let skip = |end: Option<usize>, len: usize| Tag {
        kind: Kind::Skip,
        name: Vec::new(),
        end: end.map_or(bytes.len(), |e| start + 1 + e + len),
    };
    if rest.starts_with(b"!--") {
        return Some(skip(find(rest, b"-->"), 3));
    }
    if rest.starts_with(b"!") || rest.starts_with(b"?") {
        return Some(skip(rest.iter().position(|&b| b == b'>'), 1));
    }
    let (kind, name_start) = match rest.first() {
        Some(b'/') if rest.get(1).is_some_and(u8::is_ascii_alphabetic) => (Kind::End, 2),
        Some(b) if b.is_ascii_alphabetic() => (Kind::Start { self_closed: false }, 1),
        _ => return None,
    };
    let mut i = start + name_start;
    let name_end = bytes[i..]
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
        .map_or(bytes.len(), |p| i + p);
    let name = bytes[i..name_end].to_ascii_lowercase();
    i = name_end;
    // Attributes: only a quoted value can hide a `>`.
    let mut self_closed = false;
    while i < bytes.len() {
        match bytes[i] {
            b'>' => {
                let kind = match kind {
                    Kind::Start { .. } => Kind::Start { self_closed },
                    other => other,
                };
                return Some(Tag {
                    kind,
                    name,
                    end: i + 1,
                });
            }
            b'/' => {
                self_closed = true;
                i += 1;
            }
            b'=' => {
                self_closed = false;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                match bytes.get(i) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        i = bytes[i + 1..]
                            .iter()
                            .position(|&b| b == quote)
                            .map_or(bytes.len(), |p| i + 1 + p + 1);
                    }
                    _ => {
                        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>'
                        {
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                self_closed = false;
                i += 1;
            }
        }
    }
    // A tag cut off by the end of input is dropped by the tokenizer.
    Some(Tag {
        kind: Kind::Skip,
        name,
        end: bytes.len(),
    })
}

/// Just past the end tag that closes a raw-text element, or the end of input.
fn raw_text_end(bytes: &[u8], from: usize, name: &[u8]) -> usize {
    let mut i = from;
    while let Some(p) = find(&bytes[i..], b"</") {
        let at = i + p + 2;
        let candidate = &bytes[at..(at + name.len()).min(bytes.len())];
        if candidate.eq_ignore_ascii_case(name) {
            return at - 2;
        }
        i = at;
    }
    bytes.len()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
