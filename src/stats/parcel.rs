//! A parcel: the views a failing store could not take, in the compact form
//! the outbox keeps them in. Repeats are counted together and each name
//! (path, referrer host) is listed once, in a table the views point into;
//! hours are stored from the earliest one. What does not fit the room given
//! is counted as dropped, least repeated first, so nothing goes uncounted.

use std::collections::HashMap;

use super::privacy::Salt;
use super::recorder::{View, ViewKind};
use super::schema::{Day, Hour};

/// Why bytes are not a parcel this binary wrote; each reads as the end of
/// "the statistics outbox is damaged (...)".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParcelError {
    #[error("it is cut short")]
    CutShort,
    #[error("a name is not UTF-8")]
    NotUtf8,
    #[error("name {0} is not in its table")]
    UnknownName(u64),
    #[error("an hour is out of range")]
    HourOutOfRange,
    #[error("{0} bytes follow its end")]
    Trailing(usize),
    #[error("a number is too long")]
    NumberTooLong,
    #[error("a number is out of range")]
    NumberOutOfRange,
    #[error("a count is larger than what follows")]
    CountTooLarge,
}

/// Views waiting for the store, with what else a flush writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parcel {
    /// Each distinct view once, with how many times it was recorded.
    pub views: Vec<(View, u64)>,
    /// Views already lost; added to the store's dropped count.
    pub dropped: u64,
    /// The salts of the views' days, so that a reader stays one visitor.
    pub salts: Vec<(Day, Salt)>,
}

impl Parcel {
    /// Identical views are counted together.
    pub fn new(
        views: impl IntoIterator<Item = (View, u64)>,
        dropped: u64,
        salts: Vec<(Day, Salt)>,
    ) -> Parcel {
        let mut grouped: HashMap<View, u64> = HashMap::new();
        for (view, n) in views {
            *grouped.entry(view).or_default() += n;
        }
        Parcel {
            views: grouped.into_iter().collect(),
            dropped,
            salts,
        }
    }

    /// Views held, dropped ones aside.
    pub fn count(&self) -> u64 {
        self.views.iter().map(|(_, n)| n).sum()
    }

    /// The payload, at most `room` bytes; views that do not fit (the least
    /// repeated) are counted as dropped instead. Returns it and how many
    /// views that was.
    pub fn encode(&self, room: usize) -> (Vec<u8>, u64) {
        let mut views: Vec<&(View, u64)> = self.views.iter().collect();
        views.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let base = views.iter().map(|(v, _)| v.hour.0).min().unwrap_or(0);
        let mut names: HashMap<&str, u64> = HashMap::new();
        let mut table = Vec::new();
        let mut groups = Vec::new();
        let mut written = 0u64;
        let mut folded = 0u64;
        // The varints around the table and the groups, at their largest.
        let fixed = 5 * 10 + self.salts.len() * (5 + 16);
        for (view, n) in views {
            // Names this view adds to the table, if it fits.
            let mut new_names = Vec::new();
            let mut group = Vec::new();
            let kind = match view.kind {
                ViewKind::Page => 0,
                ViewKind::Feed => 1,
                ViewKind::NotFound => 2,
                ViewKind::Bot => 3,
            };
            let flags = kind
                | if view.referrer.is_some() { 4 } else { 0 }
                | if view.visitor.is_some() { 8 } else { 0 };
            put_varint(&mut group, u64::from(view.hour.0 - base));
            group.push(flags);
            let mut added: Vec<&str> = Vec::new();
            for name in std::iter::once(&*view.path).chain(view.referrer.as_deref()) {
                let at = match names.get(name) {
                    Some(&i) => i,
                    None => match added.iter().position(|a| *a == name) {
                        Some(p) => (names.len() + p) as u64,
                        None => {
                            added.push(name);
                            put_varint(&mut new_names, name.len() as u64);
                            new_names.extend_from_slice(name.as_bytes());
                            (names.len() + added.len() - 1) as u64
                        }
                    },
                };
                put_varint(&mut group, at);
            }
            if let Some(visitor) = view.visitor {
                group.extend_from_slice(&visitor.to_le_bytes());
            }
            put_varint(&mut group, *n);
            if fixed + table.len() + new_names.len() + groups.len() + group.len() > room {
                folded += n;
                continue;
            }
            for name in added {
                let at = names.len() as u64;
                names.insert(name, at);
            }
            table.extend_from_slice(&new_names);
            groups.extend_from_slice(&group);
            written += 1;
        }
        let mut out = Vec::with_capacity(fixed + table.len() + groups.len());
        put_varint(&mut out, self.salts.len() as u64);
        for (day, salt) in &self.salts {
            put_varint(&mut out, u64::from(day.0));
            out.extend_from_slice(salt);
        }
        put_varint(&mut out, u64::from(base));
        put_varint(&mut out, names.len() as u64);
        out.extend_from_slice(&table);
        put_varint(&mut out, written);
        out.extend_from_slice(&groups);
        put_varint(&mut out, self.dropped + folded);
        (out, folded)
    }

    pub fn decode(bytes: &[u8]) -> Result<Parcel, ParcelError> {
        let mut reader = Reader(bytes);
        let mut salts = Vec::new();
        for _ in 0..reader.count()? {
            let day = Day(reader.u32()?);
            let salt: Salt = reader.take(16)?.try_into().expect("16 bytes");
            salts.push((day, salt));
        }
        let base = reader.u32()?;
        let mut names = Vec::new();
        for _ in 0..reader.count()? {
            let len = reader.count()?;
            let name = std::str::from_utf8(reader.take(len)?).map_err(|_| ParcelError::NotUtf8)?;
            names.push(Box::<str>::from(name));
        }
        // An index into the table, not a count of what follows: a late view
        // may name the thousandth page with a few bytes left.
        let name = |reader: &mut Reader<'_>| {
            let at = reader.varint()?;
            usize::try_from(at)
                .ok()
                .and_then(|at| names.get(at))
                .cloned()
                .ok_or(ParcelError::UnknownName(at))
        };
        let mut views = Vec::new();
        for _ in 0..reader.count()? {
            let hour = base
                .checked_add(reader.u32()?)
                .ok_or(ParcelError::HourOutOfRange)?;
            let [flags] = reader.take(1)? else {
                unreachable!("one byte")
            };
            let kind = match flags & 3 {
                0 => ViewKind::Page,
                1 => ViewKind::Feed,
                2 => ViewKind::NotFound,
                _ => ViewKind::Bot,
            };
            let path = name(&mut reader)?;
            let referrer = match flags & 4 {
                0 => None,
                _ => Some(name(&mut reader)?),
            };
            let visitor = match flags & 8 {
                0 => None,
                _ => Some(u64::from_le_bytes(
                    reader.take(8)?.try_into().expect("8 bytes"),
                )),
            };
            let n = reader.varint()?;
            let view = View {
                hour: Hour(hour),
                kind,
                path,
                referrer,
                visitor,
            };
            views.push((view, n));
        }
        let dropped = reader.varint()?;
        if !reader.0.is_empty() {
            return Err(ParcelError::Trailing(reader.0.len()));
        }
        Ok(Parcel {
            views,
            dropped,
            salts,
        })
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a payload front to back; every read says when it is cut short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParcelError> {
        if self.0.len() < n {
            return Err(ParcelError::CutShort);
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, ParcelError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.take(1)? else {
                unreachable!("one byte")
            };
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ParcelError::NumberTooLong)
    }

    fn u32(&mut self) -> Result<u32, ParcelError> {
        u32::try_from(self.varint()?).map_err(|_| ParcelError::NumberOutOfRange)
    }

    /// A count of things that follow, each at least a byte: never more than
    /// what is left, so a bad count cannot make a huge allocation.
    fn count(&mut self) -> Result<usize, ParcelError> {
        let n = self.varint()?;
        if n > self.0.len() as u64 {
            return Err(ParcelError::CountTooLarge);
        }
        Ok(n as usize)
    }
}

/// Parcels for the tests of this file and of the outbox.
#[cfg(test)]
pub mod samples {
    use super::*;

    pub fn view(
        hour: u32,
        kind: ViewKind,
        path: &str,
        referrer: Option<&str>,
        visitor: Option<u64>,
    ) -> View {
        View {
            hour: Hour(hour),
            kind,
            path: path.into(),
            referrer: referrer.map(Into::into),
            visitor,
        }
    }

    pub fn parcel() -> Parcel {
        let mut views = vec![
            (
                view(493_000, ViewKind::Page, "/", Some("news.example"), Some(7)),
                3,
            ),
            (
                view(493_001, ViewKind::Page, "/é/", None, Some(u64::MAX)),
                1,
            ),
            (view(493_001, ViewKind::Feed, "/atom.xml", None, Some(9)), 2),
            (
                view(493_001, ViewKind::NotFound, "/wp-login.php", None, None),
                40,
            ),
            (view(493_002, ViewKind::Bot, "", None, None), 5),
        ];
        for i in 0..1000 {
            views.push((view(493_002, ViewKind::Page, "/", None, Some(i)), 1));
        }
        Parcel::new(views, 12, vec![(Day(20_541), [4; 16])])
    }

    /// The same parcel, whatever order its views were listed in.
    pub fn sorted(mut parcel: Parcel) -> Parcel {
        parcel
            .views
            .sort_by_key(|(v, n)| (v.hour, v.path.clone(), v.referrer.clone(), v.visitor, *n));
        parcel
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{parcel, sorted, view};
    use super::*;
    use crate::stats::outbox::{ROOM, SIZE};

    #[test]
    fn a_parcel_too_large_keeps_the_most_repeated_views_and_counts_the_rest_as_dropped() {
        let parcel = parcel();
        let (full, _) = parcel.encode(SIZE);
        let (payload, folded) = parcel.encode(full.len() / 2);
        assert!(payload.len() <= full.len() / 2);
        assert!(folded > 0 && folded < parcel.count());
        let read = Parcel::decode(&payload).unwrap();
        assert_eq!(
            read.count() + folded,
            parcel.count(),
            "every view accounted for"
        );
        assert_eq!(read.dropped, parcel.dropped + folded);
        assert!(
            read.views
                .iter()
                .any(|(v, n)| v.kind == ViewKind::NotFound && *n == 40)
        );
    }

    #[test]
    fn a_full_buffer_of_readers_of_a_few_pages_fits_whole() {
        // 200,000 distinct readers of a few pages, each with a referrer.
        let views = (0..200_000u64).map(|i| {
            let path = format!("/posts/{}/", i % 50);
            let referrer = format!("site{}.example", i % 100);
            (
                view(
                    493_000 + (i % 3) as u32,
                    ViewKind::Page,
                    &path,
                    Some(&referrer),
                    Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ),
                1,
            )
        });
        let parcel = Parcel::new(views, 0, vec![(Day(20_541), [4; 16])]);
        let (payload, folded) = parcel.encode(ROOM);
        assert_eq!(folded, 0, "{} bytes", payload.len());
    }

    #[test]
    fn the_waiting_buffers_worst_case_keeps_what_fits_and_counts_the_rest_as_dropped() {
        // A full buffer of the costliest views: each reader distinct, each
        // from its own longest referrer host.
        let views = (0..200_000u64).map(|i| {
            let referrer = format!("{i:0>253}");
            (
                view(
                    493_000,
                    ViewKind::Page,
                    "/",
                    Some(&referrer),
                    Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ),
                1,
            )
        });
        let parcel = Parcel::new(views, 0, vec![(Day(20_541), [4; 16])]);
        let room = ROOM;
        let (payload, folded) = parcel.encode(room);
        assert!(payload.len() <= room);
        let kept = Parcel::decode(&payload).unwrap();
        assert_eq!(kept.count() + folded, 200_000, "every view accounted for");
        assert_eq!(kept.dropped, folded);
        assert!(kept.count() > 15_000, "{} kept", kept.count());
    }

    #[test]
    fn a_parcel_naming_more_pages_than_its_last_bytes_reads_back() {
        let views = (0..1000).map(|i| {
            let path = format!("/junk/{i}");
            (view(493_000, ViewKind::NotFound, &path, None, None), 1)
        });
        let parcel = Parcel::new(views, 0, Vec::new());
        let (payload, _) = parcel.encode(SIZE);
        assert_eq!(sorted(Parcel::decode(&payload).unwrap()), sorted(parcel));
    }

    #[test]
    fn bad_payloads_are_refused_not_misread() {
        let (payload, _) = parcel().encode(SIZE);
        assert!(Parcel::decode(&payload[..payload.len() - 1]).is_err());
        let mut longer = payload.clone();
        longer.push(0);
        assert!(Parcel::decode(&longer).is_err());
        assert!(Parcel::decode(&[0xff; 16]).is_err());
    }
}
