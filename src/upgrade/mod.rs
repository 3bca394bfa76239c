//! Zero-downtime upgrade. On SIGUSR2 (or `quire upgrade`) the running quire
//! starts the binary now installed at its own path, with the same arguments,
//! and hands it every listening socket ([`crate::net::pass_sockets`]). Both processes accept
//! on the same sockets for a moment, so no connection meets a closed port:
//!
//! 1. old: starts the new binary with the sockets and a private link
//!    (a socket pair), and sends over the link the statistics salts, so that
//!    a reader stays one visitor across the upgrade;
//! 2. new: builds the site, loads the certificate (reading the data
//!    directory only), serves, and answers `ready` on the link;
//! 3. old: stops accepting, finishes the requests in flight, writes its
//!    last statistics and exits, which releases the statistics store and the
//!    certificate lock;
//! 4. new: sees the link close, then takes the certificate lock and opens
//!    the statistics store ([`DataOwnership`]).
//!
//! If the new binary fails before `ready`, the old one keeps serving and
//! says why. Under systemd the old process hands the service over with
//! `MAINPID=` ([`notify`]).

pub mod notify;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::net::{SocketName, pass_sockets};
use crate::stats::privacy::Salt;
use crate::stats::schema::Day;

/// The environment variable that gives a successor its link.
const LINK_VARIABLE: &str = "QUIRE_UPGRADE_FD";
/// What describes how this process was started; programs it runs (the
/// post-issue hook) must not take them for their own.
pub const START_VARIABLES: [&str; 4] =
    ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", LINK_VARIABLE];
/// The first line on the link: which protocol the old process speaks.
const GREETING: &str = "quire-upgrade 1";
/// How long a new binary may take to build the site and start serving.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("cannot start the new binary {exe}: {reason}; check that it is there and executable")]
    Start {
        exe: PathBuf,
        reason: std::io::Error,
    },
    #[error("{0}")]
    Refused(&'static str),
    #[error(
        "the new binary exited ({status}) before it was ready; the server's log (journalctl -u quire under systemd) says why. This process keeps serving"
    )]
    Exited { status: String },
    #[error(
        "the new binary was not ready within {0:?}; it was stopped, and this process keeps serving"
    )]
    TimedOut(Duration),
    #[error(
        "the new binary answered {0:?} instead of `ready`; an older quire cannot take over the sockets: upgrade with a restart instead"
    )]
    Protocol(String),
    #[error("the upgrade link to the {side} process failed: {reason}")]
    Link {
        side: &'static str,
        reason: std::io::Error,
    },
    #[error("this process is still taking over from the one it replaced; try again in a moment")]
    StillTakingOver,
    #[error("cannot tell which binary this process runs ({0}); upgrade with a restart instead")]
    UnknownBinary(std::io::Error),
    #[error("the upgrade failed: {0}")]
    Interrupted(tokio::task::JoinError),
    #[error(
        "systemd was not told that pid {successor} takes over, so pid {pid} keeps serving and has stopped it"
    )]
    NotHandedOver { successor: u32, pid: u32 },
}

/// How to start this program again: the path it was started from (which now
/// holds the new binary) and its arguments, noted at start.
#[derive(Debug, Clone)]
pub struct Launch {
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Launch {
    pub fn current() -> std::io::Result<Launch> {
        Ok(Launch {
            exe: std::env::current_exe()?,
            args: std::env::args_os().skip(1).collect(),
        })
    }
}

/// Why an upgrade here would take the site down, if it would: the exit of
/// this process must not end its successor too.
pub fn refusal(env: &dyn Fn(&str) -> Option<String>, own_pid: u32) -> Option<UpgradeError> {
    if own_pid == 1 {
        return Some(UpgradeError::Refused(
            "this quire is process 1 (a container's entry point): the container would end with it, successor included; deploy a new image and restart the container instead",
        ));
    }
    if env("INVOCATION_ID").is_some() && env("NOTIFY_SOCKET").is_none() {
        return Some(UpgradeError::Refused(
            "systemd runs this quire without notifications, so it would stop the service when this process exits, successor included; install deploy/quire.service (Type=notify, NotifyAccess=main), run `systemctl daemon-reload` and restart once, or restart instead of upgrading",
        ));
    }
    None
}

/// A started new process, not yet serving.
pub struct Starting {
    child: std::process::Child,
    link: UnixStream,
}

/// A new process that is serving and will own the data directory once this
/// one exits.
pub struct Successor {
    pub pid: u32,
    /// Closes when this process exits: the successor's cue to take over.
    link: UnixStream,
}

impl Successor {
    /// Keeps the link open until this process exits, so that it closes after
    /// every other descriptor of ours has been let go (the statistics store,
    /// the certificate lock), not while the runtime winds down.
    pub fn hold_until_exit(self) {
        std::mem::forget(self.link);
    }
}

/// Starts the binary at `launch` with `sockets` and gives it `salts`.
pub fn start_successor(
    launch: &Launch,
    sockets: &[(SocketName, BorrowedFd<'_>)],
    salts: &[(Day, Salt)],
) -> Result<Starting, UpgradeError> {
    let start_error = |reason| UpgradeError::Start {
        exe: launch.exe.clone(),
        reason,
    };
    // A missing or unreadable file is said as such, rather than as a child
    // that died (see `pass_sockets`).
    let exe = std::ffi::CString::new(launch.exe.as_os_str().as_encoded_bytes())
        .map_err(|e| start_error(std::io::Error::other(e)))?;
    // SAFETY: access(2) reads a NUL-terminated path we own.
    if unsafe { libc::access(exe.as_ptr(), libc::X_OK) } != 0 {
        return Err(start_error(std::io::Error::last_os_error()));
    }
    let link_error = |reason| UpgradeError::Link {
        side: "new",
        reason,
    };
    let (ours, theirs) = UnixStream::pair().map_err(link_error)?;
    let mut command = std::process::Command::new(&launch.exe);
    command.args(&launch.args);
    let link_fd = pass_sockets(&mut command, sockets, theirs.as_fd()).map_err(link_error)?;
    command.env(LINK_VARIABLE, link_fd.to_string());
    let child = command.spawn().map_err(start_error)?;
    drop(command);
    drop(theirs);
    // A child that cannot read it has died or will: `wait_ready` says how.
    let _ = (&ours).write_all(greeting(salts).as_bytes());
    Ok(Starting { child, link: ours })
}

impl Starting {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the new process serves, or fails. Blocking.
    pub fn wait_ready(mut self, timeout: Duration) -> Result<Successor, UpgradeError> {
        let deadline = Instant::now() + timeout;
        let answer = self.link.set_read_timeout(Some(timeout)).and_then(|()| {
            let mut line = String::new();
            BufReader::new(&self.link).read_line(&mut line)?;
            Ok(line)
        });
        let child = &mut self.child;
        let failed = |child: &mut std::process::Child| {
            // The child closed the link or broke it: it is exiting, or hung.
            match wait_until(child, deadline.max(Instant::now() + Duration::from_secs(5))) {
                Some(status) => UpgradeError::Exited {
                    status: status.to_string(),
                },
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    UpgradeError::TimedOut(timeout)
                }
            }
        };
        match answer {
            Ok(line) if line.is_empty() => Err(failed(child)),
            Ok(line) if line.trim() == "ready" => Ok(Successor {
                pid: child.id(),
                link: self.link,
            }),
            Ok(line) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(UpgradeError::Protocol(line.trim().to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = child.kill();
                let _ = child.wait();
                Err(UpgradeError::TimedOut(timeout))
            }
            Err(_) => Err(failed(child)),
        }
    }
}

fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> Option<std::process::ExitStatus> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The link to the quire this process replaces, when started by an upgrade.
pub struct Predecessor {
    link: UnixStream,
    /// The salts it counted visitors with today.
    pub salts: Vec<(Day, Salt)>,
}

impl Predecessor {
    /// The link named by `QUIRE_UPGRADE_FD`, with the greeting read; `None`
    /// when this process was not started by an upgrade.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Predecessor>, UpgradeError> {
        let Some(fd) = env(LINK_VARIABLE) else {
            return Ok(None);
        };
        let link_error = |reason| UpgradeError::Link {
            side: "old",
            reason,
        };
        let fd: RawFd = fd.trim().parse().map_err(|_| {
            link_error(std::io::Error::other(format!(
                "{LINK_VARIABLE}={fd} is not a descriptor"
            )))
        })?;
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(link_error(std::io::Error::last_os_error()));
        }
        // SAFETY: the descriptor is open and was passed to this process for
        // this purpose only; nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sets a flag on a descriptor we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        let link = UnixStream::from(owned);
        link.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(link_error)?;
        let salts = read_greeting(&link).map_err(link_error)?;
        link.set_read_timeout(None).map_err(link_error)?;
        Ok(Some(Predecessor { link, salts }))
    }

    /// Tells the old process this one serves; it then stops accepting.
    pub fn announce_ready(&self) -> Result<(), UpgradeError> {
        (&self.link)
            .write_all(b"ready\n")
            .map_err(|reason| UpgradeError::Link {
                side: "old",
                reason,
            })
    }

    /// Resolves once the old process has exited (the link closes).
    pub async fn exited(self) {
        use tokio::io::AsyncReadExt;
        let link = self
            .link
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(self.link));
        match link {
            Ok(mut link) => {
                let mut rest = Vec::new();
                let _ = link.read_to_end(&mut rest).await;
            }
            Err(e) => {
                tracing::error!("cannot watch the link to the old process ({e}); taking over now")
            }
        }
    }
}

fn greeting(salts: &[(Day, Salt)]) -> String {
    let mut text = format!("{GREETING}\n");
    for (day, salt) in salts {
        text.push_str(&format!("salt {} {}\n", day.0, hex(salt)));
    }
    text.push_str("end\n");
    text
}

fn read_greeting(link: &UnixStream) -> std::io::Result<Vec<(Day, Salt)>> {
    let bad = |line: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected {line:?} from the old process"),
        )
    };
    let mut lines = BufReader::new(link).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    if first != GREETING {
        return Err(bad(&first));
    }
    let mut salts = Vec::new();
    for line in lines {
        let line = line?;
        if line == "end" {
            return Ok(salts);
        }
        let parsed = match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["salt", day, salt] => day.parse().ok().zip(unhex(salt)),
            _ => None,
        };
        let (day, salt) = parsed.ok_or_else(|| bad(&line))?;
        salts.push((Day(day), salt));
    }
    Err(bad("the end of the link"))
}

fn hex(salt: &Salt) -> String {
    salt.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Salt> {
    let mut salt = Salt::default();
    if text.len() != salt.len() * 2 {
        return None;
    }
    for (i, byte) in salt.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(salt)
}

/// Whether this process may write the data directory (the certificate
/// lock, the statistics store): at once, or once the quire it replaces has
/// exited. Tasks that write wait for it.
#[derive(Clone)]
pub struct DataOwnership(tokio::sync::watch::Receiver<bool>);

impl DataOwnership {
    pub fn owned() -> DataOwnership {
        DataOwnership(tokio::sync::watch::Sender::new(true).subscribe())
    }

    /// Not yet owned; owned once the returned sender says `true`.
    pub fn pending() -> (DataOwnership, tokio::sync::watch::Sender<bool>) {
        let sender = tokio::sync::watch::Sender::new(false);
        (DataOwnership(sender.subscribe()), sender)
    }

    pub fn is_owned(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once owned; never, if that cannot happen any more.
    pub async fn acquired(&self) {
        let mut receiver = self.0.clone();
        if receiver.wait_for(|owned| *owned).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_cross_the_link_intact() {
        let (old, new) = UnixStream::pair().unwrap();
        let salts = vec![
            (Day(20_000), [7u8; 16]),
            (Day(20_001), *b"0123456789abcdef"),
        ];
        (&old).write_all(greeting(&salts).as_bytes()).unwrap();
        assert_eq!(read_greeting(&new).unwrap(), salts);
    }

    #[test]
    fn upgrades_that_would_end_the_successor_too_are_refused() {
        let none = |_: &str| None;
        assert!(
            refusal(&none, 4242).is_none(),
            "a plain process may upgrade"
        );
        assert!(
            refusal(&none, 1).is_some(),
            "a container's process 1 may not"
        );
        let unit_without_notify = |key: &str| (key == "INVOCATION_ID").then(|| "abc".to_string());
        let e = refusal(&unit_without_notify, 4242).unwrap().to_string();
        assert!(e.contains("Type=notify"), "{e}");
        let notify_unit = |key: &str| {
            matches!(key, "INVOCATION_ID" | "NOTIFY_SOCKET").then(|| "/run/x".to_string())
        };
        assert!(refusal(&notify_unit, 4242).is_none());
    }

    #[test]
    fn a_foreign_greeting_is_refused() {
        let (old, new) = UnixStream::pair().unwrap();
        (&old).write_all(b"hello\n").unwrap();
        let e = read_greeting(&new).unwrap_err().to_string();
        assert!(e.contains("\"hello\""), "{e}");
    }
}
