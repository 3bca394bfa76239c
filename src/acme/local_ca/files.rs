//! The local CA's files and what can go wrong with them: one error type for
//! opening the CA, naming the file and what to do, and the reads and private
//! atomic writes the root, the intermediate and the retired list share.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LocalCaError {
    #[error("cannot write {path}: {source}; check that quire may write to that folder")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read {path}: {source}; check that quire may read it, or delete root.pem and root.key to make a new local CA"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not usable ({reason}); restore it from a backup, or delete root.pem and root.key in its folder to make a new local CA (clients must then trust the new root.pem)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{present} exists but {missing} does not; restore {missing}, or delete {present} to make a new local CA"
    )]
    Incomplete { present: PathBuf, missing: PathBuf },
    #[error(
        "{path} is not usable ({reason}); delete it (certificates from earlier intermediates are then no longer told to renew at once)"
    )]
    RetiredList { path: PathBuf, reason: String },
    #[error(
        "cannot read {path}: {source}; check that quire may read it, or delete it (certificates from earlier intermediates are then no longer told to renew at once)"
    )]
    RetiredListUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a CA certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot build the CA endpoint's TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

pub fn corrupt(path: &Path, reason: impl std::fmt::Display) -> LocalCaError {
    LocalCaError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, LocalCaError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LocalCaError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Written as all of data/ is: atomically, private to quire's user.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), LocalCaError> {
    crate::datadir::write_private_file(path, contents.as_bytes()).map_err(|source| {
        LocalCaError::Write {
            path: path.to_owned(),
            source,
        }
    })
}
