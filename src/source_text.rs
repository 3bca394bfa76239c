//! Source text that a parser refused in part: which line an offset is on, and
//! blanking an entry in place so that the rest parses again with every later
//! line keeping its number. The config file and front matter both list every
//! problem in one run this way.

/// The 1-based line holding byte `offset` of `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Spaces over the line holding `offset`, and over the whole table when that
/// line is a table header.
pub fn blank_entry(text: &mut String, offset: usize) {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let is_header = text[start..].trim_start().starts_with('[');
    let mut end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    if is_header {
        while end < text.len() && !text[end + 1..].trim_start().starts_with('[') {
            end = text[end + 1..]
                .find('\n')
                .map_or(text.len(), |i| end + 1 + i);
        }
    }
    let blank: String = text[start..end]
        .chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c => " ".repeat(c.len_utf8()),
        })
        .collect();
    text.replace_range(start..end, &blank);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_keeps_offsets_and_lines() {
        let mut text = "a = 1\nb = \"x\"\n[extra]\nc = 2\n[next]\nd = 3\n".to_string();
        let len = text.len();
        let value = text.find("\"x\"").unwrap();
        blank_entry(&mut text, value);
        let header = text.find("extra").unwrap();
        blank_entry(&mut text, header);
        assert_eq!(text.len(), len);
        assert_eq!(text, "a = 1\n       \n       \n     \n[next]\nd = 3\n");
        assert_eq!(line_of(&text, text.find("d =").unwrap()), 6);
        assert_eq!(line_of(&text, 10_000), 7);
    }
}
