//! The DNS wire format (RFC 1035) as far as dns-01 needs it: building a
//! query and an RFC 2136 UPDATE that adds or deletes TXT records, and
//! reading a response's records (compressed names included) without trusting
//! a byte of it: every read is bounds-checked and name pointers may only go
//! backwards, a bounded number of times.

use std::ops::Range;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_TSIG: u16 = 250;
pub const CLASS_IN: u16 = 1;
/// RFC 2136 section 2.5.4: "delete an RR from an RRset".
pub const CLASS_NONE: u16 = 254;
pub const CLASS_ANY: u16 = 255;

const OPCODE_QUERY: u16 = 0;
const OPCODE_UPDATE: u16 = 5;
const HEADER: usize = 12;
/// How long the TXT records live in caches: short, they are gone in minutes.
const TXT_TTL: u32 = 60;
/// More pointers than any real message needs; a loop of them is refused.
const MOST_POINTERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the message ends inside a field")]
    Short,
    #[error("a name in the message is malformed")]
    BadName,
    #[error("`{0}` cannot be written as a DNS name (labels of 1 to 63 bytes, 255 in all)")]
    Unwritable(String),
    #[error("a TXT value longer than 255 bytes is not what dns-01 publishes")]
    LongText,
}

/// One change an UPDATE makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtChange {
    /// `_acme-challenge.example.com`.
    pub owner: String,
    pub value: String,
    pub add: bool,
}

fn header(id: u16, opcode: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(opcode << 11).to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

/// Appends `name` in uncompressed wire form, lowercase: the canonical form
/// TSIG's MAC covers (RFC 8945 section 4.3.3), and fine everywhere else.
pub fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), WireError> {
    let unwritable = || WireError::Unwritable(name.to_string());
    let trimmed = name.trim_end_matches('.');
    let start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if !(1..=63).contains(&label.len()) {
                return Err(unwritable());
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    if out.len() - start > 255 {
        return Err(unwritable());
    }
    Ok(())
}

/// A query for `name`'s records of `rtype`, without recursion: it is asked
/// of the zone's own servers.
pub fn query(id: u16, name: &str, rtype: u16) -> Result<Vec<u8>, WireError> {
    let mut out = header(id, OPCODE_QUERY, [1, 0, 0, 0]);
    put_name(&mut out, name)?;
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// An UPDATE of `zone` making `changes`, unsigned (TSIG is appended after).
pub fn update(id: u16, zone: &str, changes: &[TxtChange]) -> Result<Vec<u8>, WireError> {
    let count = u16::try_from(changes.len()).map_err(|_| WireError::Short)?;
    let mut out = header(id, OPCODE_UPDATE, [1, 0, count, 0]);
    put_name(&mut out, zone)?;
    out.extend_from_slice(&TYPE_SOA.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    for change in changes {
        let value = change.value.as_bytes();
        if value.len() > 255 {
            return Err(WireError::LongText);
        }
        put_name(&mut out, &change.owner)?;
        out.extend_from_slice(&TYPE_TXT.to_be_bytes());
        let (class, ttl) = match change.add {
            true => (CLASS_IN, TXT_TTL),
            false => (CLASS_NONE, 0),
        };
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(value.len() as u16 + 1).to_be_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    }
    Ok(out)
}

pub fn u16_at(bytes: &[u8], at: usize) -> Result<u16, WireError> {
    let b = bytes.get(at..at + 2).ok_or(WireError::Short)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, WireError> {
    let b = bytes.get(at..at + 4).ok_or(WireError::Short)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The name at `at` (lowercase, dotted, no trailing dot; empty for the
/// root) and where the bytes after it start.
pub fn name_at(bytes: &[u8], at: usize) -> Result<(String, usize), WireError> {
    let mut labels: Vec<String> = Vec::new();
    let mut pos = at;
    let mut end = None;
    let mut pointers = 0;
    let mut length = 0;
    loop {
        let len = *bytes.get(pos).ok_or(WireError::Short)? as usize;
        match len {
            0 => {
                let next = end.unwrap_or(pos + 1);
                return Ok((labels.join("."), next));
            }
            1..=63 => {
                let label = bytes.get(pos + 1..pos + 1 + len).ok_or(WireError::Short)?;
                length += len + 1;
                if length > 255 {
                    return Err(WireError::BadName);
                }
                labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                pos += 1 + len;
            }
            0xC0..=0xFF => {
                let target = (u16_at(bytes, pos)? & 0x3FFF) as usize;
                pointers += 1;
                // Only backwards, so a chain of pointers always ends.
                if target >= pos || pointers > MOST_POINTERS {
                    return Err(WireError::BadName);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(WireError::BadName),
        }
    }
}

/// One resource record of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Where its RDATA lies in the message.
    pub rdata: Range<usize>,
    /// Where the record starts in the message.
    pub start: usize,
}

/// A response, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub is_response: bool,
    pub rcode: u16,
    pub answers: Vec<Record>,
    pub additional: Vec<Record>,
}

pub fn parse(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() < HEADER {
        return Err(WireError::Short);
    }
    let flags = u16_at(bytes, 2)?;
    let count = |i: usize| u16_at(bytes, 4 + 2 * i);
    let (questions, answers, authority, additional) = (count(0)?, count(1)?, count(2)?, count(3)?);
    let mut pos = HEADER;
    for _ in 0..questions {
        pos = name_at(bytes, pos)?.1 + 4;
    }
    let records = |n: u16, pos: &mut usize| -> Result<Vec<Record>, WireError> {
        // Each record takes 11 bytes or more, so a count beyond what the
        // message holds is found at the first record that is not there.
        let mut out = Vec::new();
        for _ in 0..n {
            let start = *pos;
            let (owner, at) = name_at(bytes, start)?;
            let rdlength = u16_at(bytes, at + 8)? as usize;
            let rdata = at + 10..at + 10 + rdlength;
            if rdata.end > bytes.len() {
                return Err(WireError::Short);
            }
            out.push(Record {
                owner,
                rtype: u16_at(bytes, at)?,
                class: u16_at(bytes, at + 2)?,
                ttl: u32_at(bytes, at + 4)?,
                rdata: rdata.clone(),
                start,
            });
            *pos = rdata.end;
        }
        Ok(out)
    };
    let answers = records(answers, &mut pos)?;
    records(authority, &mut pos)?;
    let additional = records(additional, &mut pos)?;
    Ok(Message {
        id: u16_at(bytes, 0)?,
        is_response: flags & 0x8000 != 0,
        rcode: flags & 0x000F,
        answers,
        additional,
    })
}

/// A TXT record's strings, joined (RFC 7208 section 3.3 reads them so, and
/// a dns-01 value fits in one anyway).
pub fn txt(rdata: &[u8]) -> Result<String, WireError> {
    let mut out = Vec::with_capacity(rdata.len());
    let mut pos = 0;
    while pos < rdata.len() {
        let len = rdata[pos] as usize;
        out.extend_from_slice(rdata.get(pos + 1..pos + 1 + len).ok_or(WireError::Short)?);
        pos += 1 + len;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_adds_and_deletes_exact_txt_records() {
        let changes = [
            TxtChange {
                owner: "_acme-challenge.Blog.example.test".into(),
                value: "abc".into(),
                add: true,
            },
            TxtChange {
                owner: "_acme-challenge.example.test".into(),
                value: "xyz".into(),
                add: false,
            },
        ];
        let bytes = update(0x1234, "example.test", &changes).unwrap();
        let mut want = vec![0x12, 0x34, 0x28, 0, 0, 1, 0, 0, 0, 2, 0, 0];
        want.extend_from_slice(b"\x07example\x04test\x00\x00\x06\x00\x01");
        want.extend_from_slice(b"\x0f_acme-challenge\x04blog\x07example\x04test\x00");
        want.extend_from_slice(b"\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x04\x03abc");
        want.extend_from_slice(b"\x0f_acme-challenge\x07example\x04test\x00");
        want.extend_from_slice(b"\x00\x10\x00\xfe\x00\x00\x00\x00\x00\x04\x03xyz");
        assert_eq!(bytes, want);
        let long = TxtChange {
            value: "a".repeat(256),
            ..changes[0].clone()
        };
        assert_eq!(update(1, "example.test", &[long]), Err(WireError::LongText));
        assert!(matches!(
            query(1, &format!("{}.test", "a".repeat(64)), TYPE_TXT),
            Err(WireError::Unwritable(_))
        ));
    }

    /// A response as a server writes it, with a compressed answer name.
    fn response() -> Vec<u8> {
        let mut bytes = query(7, "_acme-challenge.example.test", TYPE_TXT).unwrap();
        bytes[2] = 0x84; // QR, AA
        bytes[7] = 2; // two answers
        for value in ["first", "second"] {
            bytes.extend_from_slice(&[0xC0, 12]); // the question's name
            bytes.extend_from_slice(&[0, 16, 0, 1, 0, 0, 0, 60]);
            bytes.extend_from_slice(&[0, value.len() as u8 + 1, value.len() as u8]);
            bytes.extend_from_slice(value.as_bytes());
        }
        bytes
    }

    #[test]
    fn responses_are_read_with_compressed_names() {
        let bytes = response();
        let message = parse(&bytes).unwrap();
        assert!(message.is_response);
        assert_eq!((message.id, message.rcode), (7, 0));
        let values: Vec<String> = message
            .answers
            .iter()
            .map(|r| {
                assert_eq!(r.owner, "_acme-challenge.example.test");
                assert_eq!((r.rtype, r.class, r.ttl), (TYPE_TXT, CLASS_IN, 60));
                txt(&bytes[r.rdata.clone()]).unwrap()
            })
            .collect();
        assert_eq!(values, ["first", "second"]);
    }

    #[test]
    fn hostile_responses_are_refused_not_followed() {
        let bytes = response();
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A pointer to itself, and one forwards.
        let mut looped = bytes.clone();
        let first_answer = looped.len() - 2 * (2 + 8 + 3) - "first".len() - "second".len();
        looped[first_answer + 1] = first_answer as u8;
        assert_eq!(parse(&looped), Err(WireError::BadName));
        assert_eq!(name_at(&[0xC0, 5, 0, 0, 0, 0], 0), Err(WireError::BadName));
        // Label types 0x40 and 0x80 are not in use.
        assert_eq!(name_at(&[0x41, 0], 0), Err(WireError::BadName));
        // More answers than the message holds.
        let mut counted = bytes.clone();
        counted[7] = 200;
        assert_eq!(parse(&counted), Err(WireError::Short));
    }

    #[test]
    fn long_txt_values_are_joined() {
        assert_eq!(txt(b"\x02ab\x01c").unwrap(), "abc");
        assert_eq!(txt(b"\x05ab"), Err(WireError::Short));
        assert_eq!(txt(b"").unwrap(), "");
    }
}
