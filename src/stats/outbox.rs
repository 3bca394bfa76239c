//! The outbox: where the views a failing store could not take at shutdown
//! wait for the next start, instead of being lost. A full disk is the usual
//! reason the store fails, and on a full disk no new file can be written, so
//! the outbox's space is reserved at start ([`Outbox::reserve`]: a fixed-size
//! file under the data directory) and later written in place. That holds on
//! filesystems that overwrite in place (ext4, XFS); copy-on-write ones
//! (btrfs, ZFS) write each change to new blocks, so there a full disk can
//! still refuse the outbox, and the views are reported as not saved.
//!
//! Layout: a [`HEADER`]-byte header (magic, payload length, SHA-256 of the
//! payload; all zero when empty), then the payload: a [`NONCE`]-byte nonce
//! and a compact [`Parcel`]. The nonce makes each parcel's seal its own, so
//! a parcel that happens to equal one already added is not taken for it.
//! The payload is synced before the header that vouches for it, so a torn
//! write is caught by the checksum and never merged.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::privacy::Salt;
use super::recorder::{View, ViewKind};
use super::schema::{Day, Hour};
use crate::datadir::STATS_OUTBOX_DAMAGED as DAMAGED;

/// The reserved size. A waiting view costs about 17 bytes once repeats are
/// counted together and names are listed once, so a full waiting buffer
/// (200,000 views) of readers of a few pages fits whole. Each new name costs
/// its length: when every view brings its own (a 253-byte referrer host, a
/// 256-byte junk 404 path), about 15,500 fit. What does not fit is counted
/// as dropped.
pub const SIZE: usize = 4 * 1024 * 1024;
const HEADER: usize = 64;
const NONCE: usize = 16;
const MAGIC: &[u8; 8] = b"qoutbox1";

/// The SHA-256 of a payload: tells one parcel from another.
pub type Seal = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(
        "cannot reserve the statistics outbox {path}: {source}; if the statistics store cannot be written at shutdown, the views waiting for it will be lost (free some disk space and restart)"
    )]
    Reserve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot {what} the statistics outbox {path}: {source}; check the disk")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
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
    fn encode(&self, room: usize) -> (Vec<u8>, u64) {
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

    fn decode(bytes: &[u8]) -> Result<Parcel, String> {
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
            let name = std::str::from_utf8(reader.take(len)?)
                .map_err(|_| "a name is not UTF-8".to_string())?;
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
                .ok_or_else(|| format!("name {at} is not in its table"))
        };
        let mut views = Vec::new();
        for _ in 0..reader.count()? {
            let hour = base
                .checked_add(reader.u32()?)
                .ok_or("an hour is out of range")?;
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
            return Err(format!("{} bytes follow its end", reader.0.len()));
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
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("it is cut short".into());
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, String> {
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
        Err("a number is too long".into())
    }

    fn u32(&mut self) -> Result<u32, String> {
        u32::try_from(self.varint()?).map_err(|_| "a number is out of range".to_string())
    }

    /// A count of things that follow, each at least a byte: never more than
    /// what is left, so a bad count cannot make a huge allocation.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        if n > self.0.len() as u64 {
            return Err("a count is larger than what follows".into());
        }
        Ok(n as usize)
    }
}

/// Random bytes, after the write time: unique even if the random source
/// failed, without failing the write that keeps the views.
fn nonce() -> [u8; NONCE] {
    let mut nonce = [0u8; NONCE];
    let written = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    nonce[..8].copy_from_slice(&written.to_le_bytes());
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce[8..]);
    nonce
}

/// What [`Outbox::read`] found.
#[derive(Debug)]
pub enum Found {
    Empty,
    Parcel(Parcel, Seal),
    /// Not a parcel this binary wrote whole: why.
    Damaged(String),
}

/// The reserved outbox file, held open from start to exit.
pub struct Outbox {
    path: PathBuf,
    file: File,
}

impl Outbox {
    /// Opens the outbox at `path`, creating it (0600) with all its space
    /// allocated; what it already holds is left alone.
    pub fn reserve(path: &Path) -> Result<Outbox, OutboxError> {
        let failed = |source| OutboxError::Reserve {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(failed)?;
        if file.metadata().map_err(failed)?.len() < SIZE as u64 {
            // Blocks really allocated, not a sparse file, so that writing
            // into them later needs no new space where blocks are overwritten
            // in place (not on copy-on-write filesystems: see the top).
            // SAFETY: the descriptor is open for writing for the whole call.
            let code = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, SIZE as libc::off_t) };
            if code != 0 {
                return Err(failed(std::io::Error::from_raw_os_error(code)));
            }
            file.sync_all().map_err(failed)?;
        }
        Ok(Outbox {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
        move |source| OutboxError::Io {
            what,
            path: self.path.clone(),
            source,
        }
    }

    pub fn read(&self) -> Result<Found, OutboxError> {
        let mut header = [0u8; HEADER];
        self.file
            .read_exact_at(&mut header, 0)
            .map_err(self.io("read"))?;
        if header.iter().all(|&b| b == 0) {
            return Ok(Found::Empty);
        }
        if header[..8] != MAGIC[..] {
            return Ok(Found::Damaged("its header is not an outbox's".into()));
        }
        let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
        if len > SIZE - HEADER {
            return Ok(Found::Damaged(format!("it claims {len} bytes")));
        }
        let mut payload = vec![0u8; len];
        self.file
            .read_exact_at(&mut payload, HEADER as u64)
            .map_err(self.io("read"))?;
        let seal: Seal = Sha256::digest(&payload).into();
        if header[12..44] != seal[..] {
            return Ok(Found::Damaged(
                "its checksum does not match its contents".into(),
            ));
        }
        let Some(parcel) = payload.get(NONCE..) else {
            return Ok(Found::Damaged("it is cut short".into()));
        };
        Ok(match Parcel::decode(parcel) {
            Ok(parcel) => Found::Parcel(parcel, seal),
            Err(why) => Found::Damaged(why),
        })
    }

    /// Writes `parcel` over whatever the outbox held, in place. Returns its
    /// seal and how many views did not fit (counted as dropped in it).
    pub fn put(&self, parcel: &Parcel) -> Result<(Seal, u64), OutboxError> {
        let (encoded, folded) = parcel.encode(SIZE - HEADER - NONCE);
        let mut payload = nonce().to_vec();
        payload.extend_from_slice(&encoded);
        let seal: Seal = Sha256::digest(&payload).into();
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[12..44].copy_from_slice(&seal);
        self.file
            .write_all_at(&payload, HEADER as u64)
            .map_err(self.io("write"))?;
        self.file.sync_data().map_err(self.io("write"))?;
        self.file
            .write_all_at(&header, 0)
            .map_err(self.io("write"))?;
        self.file.sync_data().map_err(self.io("write"))?;
        Ok((seal, folded))
    }

    /// Empties the outbox, zeroing what it held: visitor keys and salts are
    /// not left behind on disk.
    pub fn clear(&self) -> Result<(), OutboxError> {
        let mut header = [0u8; HEADER];
        self.file
            .read_exact_at(&mut header, 0)
            .map_err(self.io("clear"))?;
        let len = match header[..8] == MAGIC[..] {
            true => (u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize)
                .min(SIZE - HEADER),
            false => SIZE - HEADER,
        };
        self.file
            .write_all_at(&[0u8; HEADER], 0)
            .map_err(self.io("clear"))?;
        self.file.sync_data().map_err(self.io("clear"))?;
        self.file
            .write_all_at(&vec![0u8; len], HEADER as u64)
            .map_err(self.io("clear"))?;
        self.file.sync_data().map_err(self.io("clear"))?;
        Ok(())
    }

    /// Moves a damaged outbox to [`DAMAGED`] beside it (replacing an older
    /// one) and reserves a new one. Returns where it went, and the new
    /// outbox, if its space could be had.
    pub fn set_aside(self) -> (Result<PathBuf, OutboxError>, Result<Outbox, OutboxError>) {
        let aside = self.path.with_file_name(DAMAGED);
        let moved = std::fs::rename(&self.path, &aside)
            .map(|()| aside)
            .map_err(self.io("move aside"));
        let path = self.path.clone();
        drop(self);
        (moved, Outbox::reserve(&path))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn view(
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

    fn parcel() -> Parcel {
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
    fn sorted(mut parcel: Parcel) -> Parcel {
        parcel
            .views
            .sort_by_key(|(v, n)| (v.hour, v.path.clone(), v.referrer.clone(), v.visitor, *n));
        parcel
    }

    #[test]
    fn a_parcel_survives_the_round_trip_through_the_reserved_file_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats-outbox");
        let outbox = Outbox::reserve(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), SIZE as u64);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(meta.blocks() * 512 >= SIZE as u64, "allocated, not sparse");
        assert!(matches!(outbox.read().unwrap(), Found::Empty));

        let (seal, folded) = outbox.put(&parcel()).unwrap();
        assert_eq!(folded, 0);
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (after.len(), after.blocks()),
            (meta.len(), meta.blocks()),
            "no new blocks"
        );
        drop(outbox);

        // The next start finds it as it was left.
        let outbox = Outbox::reserve(&path).unwrap();
        let Found::Parcel(read, read_seal) = outbox.read().unwrap() else {
            panic!("the parcel is there")
        };
        assert_eq!(read_seal, seal);
        assert_eq!(sorted(read), sorted(parcel()));
        outbox.clear().unwrap();
        assert!(matches!(outbox.read().unwrap(), Found::Empty));
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.iter().all(|&b| b == 0), "nothing left behind on disk");
    }

    #[test]
    fn equal_parcels_get_different_seals() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::reserve(&dir.path().join("stats-outbox")).unwrap();
        let (first, _) = outbox.put(&parcel()).unwrap();
        let (second, _) = outbox.put(&parcel()).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn a_damaged_outbox_is_refused_and_set_aside_not_merged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats-outbox");
        let outbox = Outbox::reserve(&path).unwrap();
        outbox.put(&parcel()).unwrap();
        // One bit flipped in the payload.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let Found::Damaged(why) = outbox.read().unwrap() else {
            panic!("a bad checksum is refused")
        };
        assert!(why.contains("checksum"), "{why}");

        let (moved, fresh) = outbox.set_aside();
        let aside = moved.unwrap();
        assert_eq!(aside, dir.path().join(DAMAGED));
        assert_eq!(std::fs::read(&aside).unwrap(), bytes, "kept as it was");
        assert!(matches!(fresh.unwrap().read().unwrap(), Found::Empty));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
    }

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
        let (payload, folded) = parcel.encode(SIZE - HEADER - NONCE);
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
        let room = SIZE - HEADER - NONCE;
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
