//! A problem found while building the site, located in its file (and line,
//! when it has one), printed as `file:line: what, what to do`. Every stage of
//! the build reports through it, so `quire check` lists them all at once.
//! The server logs each under [`LOG_TARGET`], which tells the dashboard that
//! a later build may resolve it.

use std::fmt;
use std::path::PathBuf;

/// The `tracing` target of a build's problems in the server's log.
pub const LOG_TARGET: &str = "quire::site::problem";

/// Something wrong in a content file, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the file as a whole.
    pub line: usize,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Problem {
    pub fn new(file: PathBuf, line: usize, message: String) -> Problem {
        Problem {
            file,
            line,
            message,
        }
    }

    /// A warning in the server's log, under [`LOG_TARGET`].
    pub fn log(&self) {
        tracing::warn!(target: LOG_TARGET, "{self}");
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}
