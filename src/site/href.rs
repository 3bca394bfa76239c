//! Paths as hrefs: the one percent-encoder of the code base. Routes are keyed
//! by decoded paths (requests are decoded before lookup); what a page prints
//! in an attribute, and a redirect's `Location`, is the same path encoded to
//! ASCII. Web imports it from here, so the two can never disagree.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// What a path segment cannot carry literally (RFC 3986 `pchar`), plus `%`
/// because the path it encodes is already decoded.
const NOT_PCHAR: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A decoded path as an href: ASCII, percent-encoded, `/` kept.
pub fn encode_path(decoded: &str) -> String {
    utf8_percent_encode(decoded, NOT_PCHAR).to_string()
}

/// The route key of an href this module made (or of any ASCII path). Escapes
/// that are not UTF-8 stay as written, so nothing is lost.
pub fn decode_path(href: &str) -> String {
    match percent_decode_str(href).decode_utf8() {
        Ok(decoded) => decoded.into_owned(),
        Err(_) => href.to_string(),
    }
}
