//! What goes over the control socket, and its one encoding. A request is one
//! line of UTF-8 (at most [`MAX_REQUEST`] bytes); the reply runs to the end of
//! the stream and starts with `ok:` or `error:`.
//!
//! This line format is version 1 and carries no version word: it is what every
//! quire so far speaks, and a newly installed `quire upgrade` must still be
//! understood by the older server it replaces. A format that breaks it starts
//! its lines with a version word (`v2 ...`), which version 1 servers answer as
//! an unknown request.

use std::path::PathBuf;

/// The longest request line: `backup` and a path fit (PATH_MAX is 4096); a
/// client that never sends a newline cannot fill memory.
pub const MAX_REQUEST: usize = 8 * 1024;

/// What the running server can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Whether a server is running at all.
    Ping,
    Renew {
        dry_run: bool,
    },
    Stats {
        days: u32,
        /// Each node's totals too (a node of a cluster).
        by_node: bool,
    },
    Reload,
    Upgrade,
    /// Archive the data directory into `file` (absolute: the server does not
    /// share the client's working directory).
    Backup {
        file: PathBuf,
    },
}

/// A request line that cannot be answered; its text is the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the request is longer than {MAX_REQUEST} bytes; send one short line, such as `ping`")]
    TooLong,
    #[error(
        "the request is not UTF-8 text; send one line of text, such as `ping` (a backup path must be UTF-8 too)"
    )]
    NotUtf8,
    #[error("`{0}` is not a number of days")]
    NotDays(String),
    #[error("unknown request `{0}`")]
    Unknown(String),
}

/// A request the line format cannot carry faithfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "the path {} is not UTF-8 text, which the control socket carries only; give a UTF-8 path",
        .0.display()
    )]
    PathNotUtf8(PathBuf),
    #[error(
        "the path {0:?} holds a line break or starts or ends with white space, which the control socket cannot carry; give another path"
    )]
    PathUnsendable(String),
}

impl Request {
    /// The request line, newline included.
    pub fn encode(&self) -> Result<String, EncodeError> {
        Ok(match self {
            Request::Ping => "ping\n".into(),
            Request::Renew { dry_run: false } => "renew\n".into(),
            Request::Renew { dry_run: true } => "renew --dry-run\n".into(),
            Request::Stats {
                days,
                by_node: false,
            } => format!("stats {days}\n"),
            Request::Stats {
                days,
                by_node: true,
            } => format!("stats {days} --by-node\n"),
            Request::Reload => "reload\n".into(),
            Request::Upgrade => "upgrade\n".into(),
            Request::Backup { file } => {
                let path = file
                    .to_str()
                    .ok_or_else(|| EncodeError::PathNotUtf8(file.clone()))?;
                // The decoder ends the line at a newline and trims the path.
                if path.contains('\n') || path.trim() != path {
                    return Err(EncodeError::PathUnsendable(path.into()));
                }
                format!("backup {path}\n")
            }
        })
    }

    /// Reads a request line, without its newline. Words are separated by any
    /// white space; a backup path is the rest of the line, trimmed.
    pub fn decode(line: &[u8]) -> Result<Request, DecodeError> {
        if line.len() > MAX_REQUEST {
            return Err(DecodeError::TooLong);
        }
        let text = std::str::from_utf8(line).map_err(|_| DecodeError::NotUtf8)?;
        let words: Vec<&str> = text.split_whitespace().collect();
        Ok(match words.as_slice() {
            ["ping"] => Request::Ping,
            ["renew"] => Request::Renew { dry_run: false },
            ["renew", "--dry-run"] => Request::Renew { dry_run: true },
            ["stats", days] | ["stats", days, "--by-node"] => Request::Stats {
                days: days
                    .parse()
                    .map_err(|_| DecodeError::NotDays(days.to_string()))?,
                by_node: words.len() == 3,
            },
            ["reload"] => Request::Reload,
            ["upgrade"] => Request::Upgrade,
            ["backup", ..] => {
                let path = text.trim_start().strip_prefix("backup").unwrap_or_default();
                Request::Backup {
                    file: path.trim().into(),
                }
            }
            _ => return Err(DecodeError::Unknown(text.trim().to_string())),
        })
    }
}

/// The server's answer: a message for the person who asked, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(String),
    Error(String),
}

impl Reply {
    /// The reply for what a handler came to; an error's message carries its
    /// causes (`{:#}`), since the client prints only this text.
    pub fn from_outcome<E: std::fmt::Display>(outcome: Result<String, E>) -> Reply {
        match outcome {
            Ok(message) => Reply::Ok(message),
            Err(e) => Reply::Error(format!("{e:#}")),
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Reply::Ok(message) => format!("ok: {message}\n"),
            Reply::Error(message) => format!("error: {message}\n"),
        }
    }

    /// Reads everything the server wrote. Text without either prefix (not
    /// from a quire server) is an error whose message is that text.
    pub fn decode(text: &str) -> Reply {
        let text = text.trim_end();
        let message = |rest: &str| rest.strip_prefix(' ').unwrap_or(rest).to_string();
        if let Some(rest) = text.strip_prefix("ok:") {
            Reply::Ok(message(rest))
        } else if let Some(rest) = text.strip_prefix("error:") {
            Reply::Error(message(rest))
        } else {
            Reply::Error(text.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: Request) {
        let line = request.encode().unwrap();
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        let decoded = Request::decode(line.trim_end_matches('\n').as_bytes()).unwrap();
        assert_eq!(decoded, request, "{line:?}");
    }

    #[test]
    fn every_request_survives_its_encoding() {
        for request in [
            Request::Ping,
            Request::Renew { dry_run: false },
            Request::Renew { dry_run: true },
            Request::Stats {
                days: 1,
                by_node: false,
            },
            Request::Stats {
                days: u32::MAX,
                by_node: true,
            },
            Request::Reload,
            Request::Upgrade,
            Request::Backup {
                file: "/srv/backups/quire 2024.tar".into(),
            },
        ] {
            round_trip(request);
        }
    }

    #[test]
    fn the_lines_are_those_earlier_servers_read() {
        let line = |request: Request| request.encode().unwrap();
        assert_eq!(line(Request::Ping), "ping\n");
        assert_eq!(line(Request::Renew { dry_run: true }), "renew --dry-run\n");
        assert_eq!(
            line(Request::Stats {
                days: 7,
                by_node: false
            }),
            "stats 7\n"
        );
        assert_eq!(
            line(Request::Backup {
                file: "/tmp/a.tar".into()
            }),
            "backup /tmp/a.tar\n"
        );
    }

    #[test]
    fn white_space_around_words_is_allowed() {
        assert_eq!(
            Request::decode(b"  renew \t--dry-run \r"),
            Ok(Request::Renew { dry_run: true })
        );
        let padded = format!("{:<1$}", "ping", MAX_REQUEST);
        assert_eq!(Request::decode(padded.as_bytes()), Ok(Request::Ping));
        assert_eq!(
            Request::decode(b" backup  /tmp/with  two spaces.tar "),
            Ok(Request::Backup {
                file: "/tmp/with  two spaces.tar".into()
            })
        );
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let refused = |line: &[u8]| Request::decode(line).unwrap_err().to_string();
        assert_eq!(refused(b"stats seven"), "`seven` is not a number of days");
        assert_eq!(refused(b"stats -1"), "`-1` is not a number of days");
        assert_eq!(refused(b" stats "), "unknown request `stats`");
        assert_eq!(refused(b"stats 1 2"), "unknown request `stats 1 2`");
        assert_eq!(refused(b"renew --now"), "unknown request `renew --now`");
        assert_eq!(refused(b"backupfoo"), "unknown request `backupfoo`");
        assert_eq!(refused(b""), "unknown request ``");
        assert!(refused(b"backup /tmp/\xff.tar").starts_with("the request is not UTF-8 text"));
        let long = vec![b'a'; MAX_REQUEST + 1];
        assert_eq!(
            refused(&long),
            format!(
                "the request is longer than {MAX_REQUEST} bytes; send one short line, such as `ping`"
            )
        );
        assert_eq!(refused(b"v2 ping"), "unknown request `v2 ping`");
    }

    #[test]
    fn paths_the_line_cannot_carry_are_refused_before_sending() {
        use std::os::unix::ffi::OsStrExt;
        let path = |bytes: &[u8]| Request::Backup {
            file: std::ffi::OsStr::from_bytes(bytes).into(),
        };
        assert!(matches!(
            path(b"/tmp/\xff.tar").encode(),
            Err(EncodeError::PathNotUtf8(_))
        ));
        for unsendable in [&b"/tmp/a\n.tar"[..], b"/tmp/a.tar ", b" /tmp/a.tar"] {
            assert!(matches!(
                path(unsendable).encode(),
                Err(EncodeError::PathUnsendable(_))
            ));
        }
    }

    #[test]
    fn replies_survive_their_encoding() {
        for reply in [
            Reply::Ok("running".into()),
            Reply::Ok("from sled\nday  views\n1    2".into()),
            Reply::Error("the request is not UTF-8 text".into()),
            Reply::Ok(String::new()),
        ] {
            assert_eq!(Reply::decode(&reply.encode()), reply);
        }
    }

    #[test]
    fn a_reply_without_a_prefix_is_an_error_carrying_the_text() {
        assert_eq!(
            Reply::decode("HTTP/1.1 400 Bad Request\r\n"),
            Reply::Error("HTTP/1.1 400 Bad Request".into())
        );
        assert_eq!(Reply::decode(""), Reply::Error(String::new()));
    }

    #[test]
    fn an_outcome_becomes_a_reply() {
        assert_eq!(
            Reply::from_outcome::<String>(Ok("done".into())),
            Reply::Ok("done".into())
        );
        assert_eq!(
            Reply::from_outcome(Err::<String, _>("no CA")),
            Reply::Error("no CA".into())
        );
    }
}
