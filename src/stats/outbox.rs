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

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use super::parcel::Seal;
use super::parcel::{Parcel, ParcelError};
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
/// The most a parcel's encoding may take.
pub const ROOM: usize = SIZE - HEADER - NONCE;

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
    Damaged(Damage),
}

/// Why the outbox holds no parcel to add.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("its header is not an outbox's")]
    Header,
    #[error("it claims {0} bytes")]
    Length(usize),
    #[error("its checksum does not match its contents")]
    Checksum,
    #[error(transparent)]
    Parcel(#[from] ParcelError),
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
            return Ok(Found::Damaged(Damage::Header));
        }
        let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
        if len > SIZE - HEADER {
            return Ok(Found::Damaged(Damage::Length(len)));
        }
        let mut payload = vec![0u8; len];
        self.file
            .read_exact_at(&mut payload, HEADER as u64)
            .map_err(self.io("read"))?;
        let seal: Seal = Sha256::digest(&payload).into();
        if header[12..44] != seal[..] {
            return Ok(Found::Damaged(Damage::Checksum));
        }
        let Some(parcel) = payload.get(NONCE..) else {
            return Ok(Found::Damaged(ParcelError::CutShort.into()));
        };
        Ok(match Parcel::decode(parcel) {
            Ok(parcel) => Found::Parcel(parcel, seal),
            Err(why) => Found::Damaged(why.into()),
        })
    }

    /// Writes `parcel` over whatever the outbox held, in place. Returns its
    /// seal and how many views did not fit (counted as dropped in it).
    pub fn put(&self, parcel: &Parcel) -> Result<(Seal, u64), OutboxError> {
        let (encoded, folded) = parcel.encode(ROOM);
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

    use super::super::parcel::samples::{parcel, sorted};
    use super::*;

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
        assert!(why.to_string().contains("checksum"), "{why}");

        let (moved, fresh) = outbox.set_aside();
        let aside = moved.unwrap();
        assert_eq!(aside, dir.path().join(DAMAGED));
        assert_eq!(std::fs::read(&aside).unwrap(), bytes, "kept as it was");
        assert!(matches!(fresh.unwrap().read().unwrap(), Found::Empty));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
    }
}
