//! Telling the service manager how the service is doing (sd_notify(3)):
//! `READY=1` once serving, with a `STATUS=` line saying where; `MAINPID=`
//! when a successor takes over; `STOPPING=1` at the end. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing. The system tests own a
//! `NOTIFY_SOCKET` too, and learn from it what they used to read in the log.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;

use crate::net::SocketName;

/// One message to the service manager.
#[derive(Debug)]
pub enum Notification<'a> {
    /// Serving, and where.
    Ready(&'a Status),
    /// The process with this pid serves from now on: the upgrade's successor.
    MainPid(u32),
    /// Shutting down.
    Stopping,
}

impl Notification<'_> {
    /// The datagram: newline-separated `KEY=value` lines.
    pub fn encode(&self) -> String {
        match self {
            Notification::Ready(status) => format!("READY=1\nSTATUS={status}"),
            Notification::MainPid(pid) => format!("MAINPID={pid}"),
            Notification::Stopping => "STOPPING=1".to_string(),
        }
    }
}

/// The `STATUS=` text, which `systemctl status` shows the operator and
/// scripts may read: `listening` then one `name=address` per listening
/// socket, with the names of `[listen]` and `LISTEN_FDNAMES`, e.g.
/// `listening http=127.0.0.1:8080 https=[::]:8443 metrics=127.0.0.1:9100`.
/// Words rather than JSON because the operator reads it first; it still
/// splits cleanly on spaces and the first `=`, since an address has no space
/// and an IPv6 one is bracketed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    listening: Vec<(SocketName, SocketAddr)>,
}

impl Status {
    /// Listening on these sockets, listed in [`SocketName`]'s order whatever
    /// order they were started in, so the line reads the same on every start.
    pub fn listening(sockets: impl IntoIterator<Item = (SocketName, SocketAddr)>) -> Status {
        let mut listening: Vec<_> = sockets.into_iter().collect();
        listening.sort_by_key(|(name, _)| *name);
        Status { listening }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("listening")?;
        for (name, addr) in &self.listening {
            write!(f, " {}={addr}", name.as_str())?;
        }
        Ok(())
    }
}

/// Sends `notification` to the service manager, if there is one. False when
/// there is one and it could not be told; the failure is logged.
pub fn notify(env: &dyn Fn(&str) -> Option<String>, notification: &Notification) -> bool {
    let Some(path) = env("NOTIFY_SOCKET") else {
        return true;
    };
    let state = notification.encode();
    match send(&path, &state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("cannot tell systemd {state:?} through {path}: {e}");
            false
        }
    }
}

fn send(path: &str, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    match path.strip_prefix('@') {
        // A name in the abstract namespace (Linux).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &address)?;
        }
        None => {
            socket.send_to(state.as_bytes(), path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_carries_every_listening_address_by_its_listen_name_in_one_order() {
        let status = Status::listening([
            (SocketName::LocalCa, "127.0.0.1:8444".parse().unwrap()),
            (SocketName::Https, "[::]:8443".parse().unwrap()),
            (SocketName::Metrics, "127.0.0.1:9100".parse().unwrap()),
            (SocketName::Http, "127.0.0.1:8080".parse().unwrap()),
        ]);
        assert_eq!(
            Notification::Ready(&status).encode(),
            "READY=1\nSTATUS=listening http=127.0.0.1:8080 https=[::]:8443 metrics=127.0.0.1:9100 local_ca=127.0.0.1:8444"
        );
    }

    #[test]
    fn the_status_splits_back_into_names_and_addresses() {
        let sockets = [
            (SocketName::Http, "[::1]:80".parse().unwrap()),
            (SocketName::Https, "[fe80::1%2]:443".parse().unwrap()),
        ];
        let text = Status::listening(sockets).to_string();
        let mut words = text.split(' ');
        assert_eq!(words.next(), Some("listening"));
        let parsed: Vec<(&str, SocketAddr)> = words
            .map(|word| {
                let (name, addr) = word.split_once('=').unwrap();
                (name, addr.parse().unwrap())
            })
            .collect();
        let expected: Vec<(&str, SocketAddr)> = sockets
            .iter()
            .map(|(name, addr)| (name.as_str(), *addr))
            .collect();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn handover_and_stopping_are_the_bare_systemd_keys() {
        assert_eq!(Notification::MainPid(4242).encode(), "MAINPID=4242");
        assert_eq!(Notification::Stopping.encode(), "STOPPING=1");
        assert_eq!(
            Notification::Ready(&Status::listening([])).encode(),
            "READY=1\nSTATUS=listening"
        );
    }

    #[test]
    fn notifications_reach_the_socket_named_by_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let path_text = path.to_str().unwrap().to_string();
        let env = |key: &str| (key == "NOTIFY_SOCKET").then(|| path_text.clone());
        let status = Status::listening([(SocketName::Http, "127.0.0.1:80".parse().unwrap())]);
        assert!(notify(&env, &Notification::Ready(&status)));
        let mut buffer = [0u8; 128];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=listening http=127.0.0.1:80");
    }

    #[test]
    fn abstract_names_are_supported() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("quire-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        let at = format!("@{name}");
        assert!(notify(&|_| Some(at.clone()), &Notification::Stopping));
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }

    #[test]
    fn without_a_service_manager_nothing_is_sent_and_nothing_fails() {
        assert!(notify(&|_| None, &Notification::Stopping));
    }
}
