//! Other programs the tests run beside quire (Pebble, certbot, curl,
//! openssl, Chromium): found on PATH or named with the package to install,
//! and stopped by their own PID.

use std::process::{Child, Command};

/// A started peer process, stopped by its own PID when dropped.
pub struct Peer(pub Child);

impl Peer {
    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

/// Runs an interop peer, failing with the install command when it is missing.
pub fn peer_command(program: &str, package: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is missing: install it with `apt-get install -y {package}` (bash .ci/test does this)"
    );
    Command::new(program)
}
