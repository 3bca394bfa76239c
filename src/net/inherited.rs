//! Listening sockets that outlive a process, both ends of the `LISTEN_FDS`
//! protocol of sd_listen_fds(3) (the sockets are descriptors 3, 4, ...,
//! `LISTEN_FDS` says how many and `LISTEN_FDNAMES` names them, by
//! [`SocketName`]). [`Inherited`] takes the sockets given at start, by systemd
//! socket activation or by the quire this process replaces; [`pass_sockets`]
//! gives ours to a successor. Both ends live here so that the encoding is
//! written once; the upgrade handshake itself stays in `crate::upgrade`.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::SocketName;

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    #[error(
        "LISTEN_FDS is {0:?}, not a count of sockets; start quire without it, or fix the socket unit"
    )]
    BadCount(String),
    #[error(
        "LISTEN_FDS says descriptor {fd} was passed, but it is not open ({reason}); check the socket unit"
    )]
    NotOpen { fd: RawFd, reason: std::io::Error },
    #[error(
        "the socket named {name:?} (descriptor {fd}) is not a listening TCP socket ({reason}); check the socket unit"
    )]
    NotTcp {
        name: String,
        fd: RawFd,
        reason: std::io::Error,
    },
}

/// Listening sockets given at start, by name.
#[derive(Default)]
pub struct Inherited {
    sockets: Vec<Given>,
}

/// One socket given at start.
struct Given {
    /// `None` for a name quire does not use (or none at all).
    name: Option<SocketName>,
    /// As `LISTEN_FDNAMES` said it, to report a socket nobody took.
    label: String,
    fd: OwnedFd,
}

impl Inherited {
    /// Reads `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES`. Sockets meant
    /// for another process (`LISTEN_PID` names someone else) are left alone.
    /// A predecessor cannot know our PID before it starts us, so it passes
    /// none, and `from_predecessor` accepts that.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        own_pid: u32,
        from_predecessor: bool,
    ) -> Result<Inherited, InheritError> {
        let Some(count) = env("LISTEN_FDS") else {
            return Ok(Inherited::default());
        };
        let meant_for_us = match env("LISTEN_PID") {
            Some(pid) => pid.trim().parse::<u32>().ok() == Some(own_pid),
            None => from_predecessor,
        };
        if !meant_for_us {
            return Ok(Inherited::default());
        }
        let count: RawFd = count
            .trim()
            .parse()
            .ok()
            .filter(|n| (0..=64).contains(n))
            .ok_or_else(|| InheritError::BadCount(count.clone()))?;
        let names: Vec<String> = env("LISTEN_FDNAMES")
            .map(|names| names.split(':').map(str::to_string).collect())
            .unwrap_or_default();
        let mut sockets = Vec::new();
        for (index, fd) in (FIRST_FD..FIRST_FD + count).enumerate() {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(InheritError::NotOpen {
                    fd,
                    reason: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: the descriptor is open (checked above) and, passed to us
            // at start, owned by nothing else in this process.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // Not handed on to programs we start (the post-issue hook).
            // SAFETY: sets a flag on a descriptor we own.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            let label = names.get(index).cloned().unwrap_or_default();
            sockets.push(Given {
                name: label.parse().ok(),
                label,
                fd: owned,
            });
        }
        Ok(Inherited { sockets })
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The TCP socket named `name`, or else one bound to `configured` (a
    /// systemd socket unit that names none), ready for tokio.
    pub fn take_tcp(
        &mut self,
        name: SocketName,
        configured: SocketAddr,
    ) -> Result<Option<std::net::TcpListener>, InheritError> {
        let by_name = self.position(name);
        let by_address = || {
            self.sockets.iter().position(|given| {
                configured.port() != 0
                    && local_tcp_address(given.fd.as_raw_fd()).is_ok_and(|a| a == configured)
            })
        };
        let Some(index) = by_name.or_else(by_address) else {
            return Ok(None);
        };
        let Given { label, fd, .. } = self.sockets.remove(index);
        let raw = fd.as_raw_fd();
        let listener = std::net::TcpListener::from(fd);
        let not_tcp = |reason| InheritError::NotTcp {
            name: label.clone(),
            fd: raw,
            reason,
        };
        listener.local_addr().map_err(not_tcp)?;
        listener.set_nonblocking(true).map_err(not_tcp)?;
        Ok(Some(listener))
    }

    /// The Unix socket named `name`, ready for tokio.
    pub fn take_unix(&mut self, name: SocketName) -> Option<std::os::unix::net::UnixListener> {
        let index = self.position(name)?;
        let listener = std::os::unix::net::UnixListener::from(self.sockets.remove(index).fd);
        listener.set_nonblocking(true).ok()?;
        Some(listener)
    }

    fn position(&self, name: SocketName) -> Option<usize> {
        self.sockets
            .iter()
            .position(|given| given.name == Some(name))
    }

    /// Names (or descriptors) of the sockets nobody took; they are closed.
    pub fn unused(self) -> Vec<String> {
        self.sockets
            .into_iter()
            .map(|given| match given.label.is_empty() {
                true => format!("descriptor {}", given.fd.as_raw_fd()),
                false => given.label,
            })
            .collect()
    }
}

fn local_tcp_address(fd: RawFd) -> std::io::Result<SocketAddr> {
    // SAFETY: the descriptor stays owned by the caller; ManuallyDrop keeps
    // this temporary view from closing it.
    let listener = std::mem::ManuallyDrop::new(unsafe { std::net::TcpListener::from_raw_fd(fd) });
    listener.local_addr()
}

/// Makes `command` start with `sockets` as descriptors 3, 4, ... named for
/// `LISTEN_FDNAMES`, and `extra` right after them; returns the descriptor
/// number `extra` gets.
///
/// std reports a failed exec through a pipe it opens while spawning. Should
/// that pipe land on a descriptor being placed here, the report is lost and
/// the child aborts instead; callers check the program can be run first.
pub fn pass_sockets(
    command: &mut Command,
    sockets: &[(SocketName, BorrowedFd<'_>)],
    extra: BorrowedFd<'_>,
) -> std::io::Result<RawFd> {
    let count = sockets.len() as RawFd;
    let extra_fd = FIRST_FD + count;
    // Copies numbered above every target, so that placing one cannot
    // overwrite another still to be placed. They close in this process when
    // `command` is dropped.
    let copies = sockets
        .iter()
        .map(|(_, fd)| *fd)
        .chain([extra])
        .map(|fd| {
            // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor we then own.
            let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, extra_fd + 1) };
            match copy {
                -1 => Err(std::io::Error::last_os_error()),
                // SAFETY: a descriptor fcntl just made for us.
                copy => Ok(unsafe { OwnedFd::from_raw_fd(copy) }),
            }
        })
        .collect::<std::io::Result<Vec<OwnedFd>>>()?;
    let names: Vec<&str> = sockets.iter().map(|(name, _)| name.as_str()).collect();
    command
        .env("LISTEN_FDS", count.to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        .env_remove("LISTEN_PID");
    // SAFETY: between fork and exec the closure only calls dup2(2), which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for (target, copy) in (FIRST_FD..).zip(&copies) {
                // dup2 leaves the target without FD_CLOEXEC: it survives exec.
                if libc::dup2(copy.as_raw_fd(), target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(extra_fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn sockets_meant_for_another_process_are_left_alone() {
        let vars = [("LISTEN_FDS", "2"), ("LISTEN_PID", "1")];
        let inherited = Inherited::from_env(&env(&vars), 4242, false).unwrap();
        assert!(inherited.is_empty());
        // Without LISTEN_PID only a predecessor's handover counts; a stray
        // LISTEN_FDS alone is ignored.
        let vars = [("LISTEN_FDS", "2")];
        assert!(
            Inherited::from_env(&env(&vars), 4242, false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_given_socket_is_taken_by_its_name_and_an_unknown_one_reported_as_named() {
        let listeners: Vec<std::net::TcpListener> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let bound = listeners[0].local_addr().unwrap();
        let sockets = listeners
            .into_iter()
            .zip(["https", "spare"])
            .map(|(listener, label)| Given {
                name: label.parse().ok(),
                label: label.to_string(),
                fd: listener.into(),
            })
            .collect();
        let mut inherited = Inherited { sockets };
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        assert!(
            inherited
                .take_tcp(SocketName::Http, unbound)
                .unwrap()
                .is_none()
        );
        let https = inherited.take_tcp(SocketName::Https, unbound).unwrap();
        assert_eq!(https.unwrap().local_addr().unwrap(), bound);
        assert_eq!(inherited.unused(), ["spare"]);
    }

    #[test]
    fn a_bad_count_is_refused_with_its_value() {
        let vars = [("LISTEN_FDS", "many"), ("LISTEN_PID", "4242")];
        let e = Inherited::from_env(&env(&vars), 4242, false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"many\""), "{e}");
    }
}
