//! Telling systemd how the service is doing (sd_notify(3)): `READY=1` once
//! serving, `MAINPID=` when a successor takes over, `STOPPING=1` at the end.
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=value` lines) to the service
/// manager, if there is one. False when there is one and it could not be
/// told; the failure is logged.
pub fn notify(env: &dyn Fn(&str) -> Option<String>, state: &str) -> bool {
    let Some(path) = env("NOTIFY_SOCKET") else {
        return true;
    };
    match send(&path, state) {
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
    fn states_reach_the_socket_named_by_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let path_text = path.to_str().unwrap().to_string();
        let env = |key: &str| (key == "NOTIFY_SOCKET").then(|| path_text.clone());
        assert!(notify(&env, "READY=1"));
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
    }

    #[test]
    fn abstract_names_are_supported() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("quire-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        let at = format!("@{name}");
        assert!(notify(&|_| Some(at.clone()), "STOPPING=1"));
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }
}
