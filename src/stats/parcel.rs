//! A parcel: the views a failing store could not take, in the compact form
//! the outbox keeps them in. Repeats are counted together and each name
//! (path, referrer host) is listed once, in a table the views point into;
//! hours are stored from the earliest one. What does not fit the room given
//! is counted as dropped, least repeated first, so nothing goes uncounted.
//!
//! The views come in [`Part`]s, each named by what a backend may already
//! have recorded of it: the batch it was drained in, and the seals of the
//! parcels that carried it before. A write whose reply was lost (a
//! database over the network) may have committed some of them; a merge adds
//! only the parts none of whose names the backend has recorded. The names
//! follow the views, at the end, so that a parcel written before parts had
//! names (no names section) reads as one unnamed part; a parcel of one
//! unnamed part is still written that way. An older binary finds a names
//! section to be trailing bytes and sets the outbox aside, unmerged.

use std::collections::HashMap;

use super::privacy::Salt;
use super::recorder::{View, ViewKind};
use super::schema::{Day, Hour};

/// The SHA-256 of an outbox's payload: tells one parcel from another.
pub type Seal = [u8; 32];

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
    #[error("its parts do not match its views")]
    BadPart,
}

/// Views waiting for the store, with what else a flush writes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parcel {
    /// Oldest first.
    pub parts: Vec<Part>,
    /// The salts of the views' days, so that a reader stays one visitor.
    pub salts: Vec<(Day, Salt)>,
}

/// Views added together or not at all, and what names them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Part {
    /// The sequence number of the batch this node drained them in, when
    /// they come from one.
    pub batch: Option<u64>,
    /// The seals of the parcels that carried them before, oldest first.
    pub parcels: Vec<Seal>,
    /// Each distinct view once, with how many times it was recorded.
    pub views: Vec<(View, u64)>,
    /// Views already lost; added to the store's dropped count.
    pub dropped: u64,
}

impl Part {
    /// Identical views are counted together.
    pub fn new(
        batch: Option<u64>,
        parcels: Vec<Seal>,
        views: impl IntoIterator<Item = (View, u64)>,
        dropped: u64,
    ) -> Part {
        let mut grouped: HashMap<View, u64> = HashMap::new();
        for (view, n) in views {
            *grouped.entry(view).or_default() += n;
        }
        Part {
            batch,
            parcels,
            views: grouped.into_iter().collect(),
            dropped,
        }
    }

    /// Views held, dropped ones aside.
    pub fn count(&self) -> u64 {
        self.views.iter().map(|(_, n)| n).sum()
    }

    fn is_named(&self) -> bool {
        self.batch.is_some() || !self.parcels.is_empty()
    }

    /// The most its name takes encoded, its seals' entries in the table
    /// included.
    fn name_cost(&self) -> usize {
        1 + 10 + 5 + self.parcels.len() * (5 + 32) + 2 * 10
    }
}

impl Parcel {
    /// One unnamed part; identical views are counted together.
    pub fn new(
        views: impl IntoIterator<Item = (View, u64)>,
        dropped: u64,
        salts: Vec<(Day, Salt)>,
    ) -> Parcel {
        Parcel {
            parts: vec![Part::new(None, Vec::new(), views, dropped)],
            salts,
        }
    }

    /// Views held, dropped ones aside.
    pub fn count(&self) -> u64 {
        self.parts.iter().map(Part::count).sum()
    }

    pub fn dropped(&self) -> u64 {
        self.parts.iter().map(|part| part.dropped).sum()
    }

    /// Every view, with how often, part after part.
    pub fn views(&self) -> impl Iterator<Item = (&View, u64)> {
        self.parts
            .iter()
            .flat_map(|part| part.views.iter().map(|(view, n)| (view, *n)))
    }

    /// The payload, at most `room` bytes; views that do not fit (the least
    /// repeated) are counted as dropped instead, in their part. Returns it
    /// and how many views that was.
    pub fn encode(&self, room: usize) -> (Vec<u8>, u64) {
        let named = self.parts.len() != 1 || self.parts.iter().any(Part::is_named);
        // Names may take half the room. Past that (a failing store retried
        // for weeks), the oldest parts, the likeliest to have been added
        // already, give way: their views are counted as dropped, unnamed.
        let mut budget = room / 2;
        let keep = match named {
            false => self.parts.len(),
            true => self
                .parts
                .iter()
                .rev()
                .take_while(|part| match budget.checked_sub(part.name_cost()) {
                    Some(left) => {
                        budget = left;
                        true
                    }
                    None => false,
                })
                .count(),
        };
        let (old, kept) = self.parts.split_at(self.parts.len() - keep);
        let mut parts: Vec<Written<'_>> = kept.iter().map(Written::of).collect();
        let given_way: u64 = old.iter().map(Part::count).sum();
        if !old.is_empty() {
            let dropped = old.iter().map(|part| part.dropped).sum::<u64>() + given_way;
            parts.insert(0, Written::unnamed(dropped));
        }
        let mut seals: Vec<&Seal> = Vec::new();
        for seal in parts.iter().flat_map(|part| part.parcels) {
            if !seals.contains(&seal) {
                seals.push(seal);
            }
        }

        let mut views: Vec<(usize, &View, u64)> = parts
            .iter()
            .enumerate()
            .flat_map(|(i, part)| {
                let views = part.views;
                views.iter().map(move |(view, n)| (i, view, *n))
            })
            .collect();
        views.sort_by_key(|(_, _, n)| std::cmp::Reverse(*n));
        let base = views.iter().map(|(_, v, _)| v.hour.0).min().unwrap_or(0);
        let mut names: HashMap<&str, u64> = HashMap::new();
        let mut table = Vec::new();
        let mut bytes = 0;
        let mut written = 0u64;
        let mut folded = 0u64;
        // The varints around the table and the groups, at their largest.
        let mut fixed = 5 * 10 + self.salts.len() * (5 + 16);
        if named {
            fixed += 2 * 10 + seals.len() * 32 + parts.len() * (1 + 10 + 5 + 2 * 10);
            fixed += parts
                .iter()
                .map(|part| part.parcels.len() * 5)
                .sum::<usize>();
        }
        for (own, view, n) in views {
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
            put_varint(&mut group, n);
            let part = &mut parts[own];
            if fixed + table.len() + new_names.len() + bytes + group.len() > room {
                folded += n;
                part.dropped += n;
                continue;
            }
            for name in added {
                let at = names.len() as u64;
                names.insert(name, at);
            }
            table.extend_from_slice(&new_names);
            bytes += group.len();
            part.groups.push(group);
            written += 1;
        }
        let mut out = Vec::with_capacity(fixed + table.len() + bytes);
        put_varint(&mut out, self.salts.len() as u64);
        for (day, salt) in &self.salts {
            put_varint(&mut out, u64::from(day.0));
            out.extend_from_slice(salt);
        }
        put_varint(&mut out, u64::from(base));
        put_varint(&mut out, names.len() as u64);
        out.extend_from_slice(&table);
        put_varint(&mut out, written);
        for group in parts.iter().flat_map(|part| &part.groups) {
            out.extend_from_slice(group);
        }
        put_varint(&mut out, parts.iter().map(|part| part.dropped).sum::<u64>());
        if named {
            put_varint(&mut out, seals.len() as u64);
            for seal in &seals {
                out.extend_from_slice(&seal[..]);
            }
            put_varint(&mut out, parts.len() as u64);
            for part in &parts {
                match part.batch {
                    Some(seq) => {
                        out.push(1);
                        put_varint(&mut out, seq);
                    }
                    None => out.push(0),
                }
                put_varint(&mut out, part.parcels.len() as u64);
                for seal in part.parcels {
                    let at = seals.iter().position(|s| *s == seal).expect("listed");
                    put_varint(&mut out, at as u64);
                }
                put_varint(&mut out, part.dropped);
                put_varint(&mut out, part.groups.len() as u64);
            }
        }
        (out, folded + given_way)
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
        let parts = match reader.0.is_empty() {
            true => vec![Part {
                views,
                dropped,
                ..Part::default()
            }],
            false => read_parts(&mut reader, views, dropped)?,
        };
        if !reader.0.is_empty() {
            return Err(ParcelError::Trailing(reader.0.len()));
        }
        Ok(Parcel { parts, salts })
    }
}

/// A part as it is written: its own groups, encoded.
struct Written<'p> {
    batch: Option<u64>,
    parcels: &'p [Seal],
    views: &'p [(View, u64)],
    dropped: u64,
    groups: Vec<Vec<u8>>,
}

impl<'p> Written<'p> {
    fn of(part: &'p Part) -> Written<'p> {
        Written {
            batch: part.batch,
            parcels: &part.parcels,
            views: &part.views,
            dropped: part.dropped,
            groups: Vec::new(),
        }
    }

    fn unnamed(dropped: u64) -> Written<'p> {
        Written {
            batch: None,
            parcels: &[],
            views: &[],
            dropped,
            groups: Vec::new(),
        }
    }
}

/// The names section: the seals, then each part's name, dropped count and
/// how many of the `views` (in order) are its own. The parts must account
/// for every view and every dropped one.
fn read_parts(
    reader: &mut Reader<'_>,
    views: Vec<(View, u64)>,
    dropped: u64,
) -> Result<Vec<Part>, ParcelError> {
    let mut seals: Vec<Seal> = Vec::new();
    for _ in 0..reader.count()? {
        seals.push(reader.take(32)?.try_into().expect("32 bytes"));
    }
    let mut views = views.into_iter();
    let mut unclaimed = dropped;
    let mut parts = Vec::new();
    for _ in 0..reader.count()? {
        let batch = match reader.take(1)? {
            [0] => None,
            [1] => Some(reader.varint()?),
            _ => return Err(ParcelError::BadPart),
        };
        let mut parcels = Vec::new();
        for _ in 0..reader.count()? {
            let at = usize::try_from(reader.varint()?).map_err(|_| ParcelError::BadPart)?;
            parcels.push(*seals.get(at).ok_or(ParcelError::BadPart)?);
        }
        let dropped = reader.varint()?;
        unclaimed = unclaimed.checked_sub(dropped).ok_or(ParcelError::BadPart)?;
        let groups = usize::try_from(reader.varint()?).map_err(|_| ParcelError::BadPart)?;
        let own: Vec<(View, u64)> = views.by_ref().take(groups).collect();
        if own.len() != groups {
            return Err(ParcelError::BadPart);
        }
        parts.push(Part {
            batch,
            parcels,
            views: own,
            dropped,
        });
    }
    if views.next().is_some() || unclaimed != 0 {
        return Err(ParcelError::BadPart);
    }
    Ok(parts)
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
pub mod samples;

#[cfg(test)]
mod tests;
