//! The real `quire` binary serving a [`SiteDir`]: started with a
//! NOTIFY_SOCKET this harness owns, stopped (and followed across upgrades) by
//! its PID, its log kept for tests that assert on a message.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::notify::{self, Listening, Notifications};
use super::site::SiteDir;
use super::{BIN, DEADLINE};

/// The uid and gid of `nobody` on Linux.
pub const NOBODY: u32 = 65534;

fn serve_command(
    program: &Path,
    site: &SiteDir,
    extra_args: &[&str],
    env: &[(&str, &str)],
    notifications: &Notifications,
) -> Command {
    assert!(
        env.iter().all(|(key, _)| *key != "NOTIFY_SOCKET"),
        "the harness owns NOTIFY_SOCKET: read Binary::notifications instead"
    );
    let mut command = Command::new(program);
    command
        // Not a systemd service, whatever runs the tests.
        .env_remove("INVOCATION_ID")
        .env("NOTIFY_SOCKET", notifications.path())
        .env("RUST_LOG", "quire=info")
        .envs(env.iter().copied())
        .arg("serve")
        .arg("--config")
        .arg(site.config())
        .args(extra_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), id);
        }
    }
}

/// Waits for the binary to log `needle`, for tests about what quire tells
/// the operator (where it listens, whether it is ready or has handed over,
/// [`Binary::notifications`] says).
pub fn wait_for_log(server: &Binary, needle: &str) {
    let started = Instant::now();
    while !server.log().contains(needle) {
        assert!(
            started.elapsed() < DEADLINE,
            "quire never logged `{needle}`:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real binary, serving a [`SiteDir`]. Stopped with SIGTERM on drop.
pub struct Binary {
    /// The plain HTTP listener.
    pub addr: SocketAddr,
    /// The HTTPS listener, in modes that serve TLS.
    pub https: Option<SocketAddr>,
    /// The metrics listener, unless disabled.
    pub metrics: Option<SocketAddr>,
    /// The local CA's listener, in local mode.
    pub local_ca: Option<SocketAddr>,
    /// The serving process: the one started, or the one it upgraded to.
    pub pid: u32,
    /// The started process, until it hands over to a successor.
    child: Option<Child>,
    /// Until it has been stopped and reaped.
    running: bool,
    log: Arc<Mutex<Vec<String>>>,
    notifications: Notifications,
}

impl Binary {
    pub fn serve(site: &SiteDir, extra_args: &[&str]) -> Binary {
        Binary::serve_with_env(site, extra_args, &[])
    }

    pub fn serve_with_env(site: &SiteDir, extra_args: &[&str], env: &[(&str, &str)]) -> Binary {
        Binary::serve_program(Path::new(BIN), site, extra_args, env)
    }

    /// Runs the binary at `program` (a copy of quire that a test replaces).
    pub fn serve_program(
        program: &Path,
        site: &SiteDir,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Binary {
        let notifications = Notifications::open(None);
        let command = serve_command(program, site, extra_args, env, &notifications);
        Binary::launch(command, notifications)
    }

    /// Serves as a user whom file permissions bind. Root reads a `chmod 000`
    /// file regardless, so under root (as in CI) the site folder is handed to
    /// `nobody` and the server runs as `nobody`: a permission test then fails
    /// rather than passes when permissions are not enforced.
    pub fn serve_unprivileged(site: &SiteDir, extra_args: &[&str]) -> Binary {
        // SAFETY: geteuid has no preconditions.
        let as_root = unsafe { libc::geteuid() } == 0;
        let notifications = Notifications::open(as_root.then_some(NOBODY));
        let mut command = serve_command(Path::new(BIN), site, extra_args, &[], &notifications);
        if as_root {
            chown_tree(site.dir.path(), NOBODY);
            std::os::unix::process::CommandExt::uid(&mut command, NOBODY);
            std::os::unix::process::CommandExt::gid(&mut command, NOBODY);
        }
        Binary::launch(command, notifications)
    }

    /// Starts `command` and waits for its `READY=1`, which comes once every
    /// listener is up, with their addresses.
    fn launch(mut command: Command, notifications: Notifications) -> Binary {
        // A successor is orphaned when the process it replaces exits; as a
        // subreaper this test process adopts it, and can reap it by PID.
        // SAFETY: prctl with integer arguments only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut child = command.spawn().expect("start quire");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (closed, stderr_closed) = mpsc::channel::<()>();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
            drop(closed);
        });
        let started = Instant::now();
        let listening = loop {
            if let Some(listening) = notifications.wait(Duration::from_millis(100), Listening::find)
            {
                break Some(listening);
            }
            if child.try_wait().unwrap().is_some() || started.elapsed() > DEADLINE {
                break None;
            }
        };
        match listening {
            Some(Listening {
                http: Some(addr),
                https,
                metrics,
                local_ca,
            }) => Binary {
                addr,
                https,
                metrics,
                local_ca,
                pid: child.id(),
                child: Some(child),
                running: true,
                log,
                notifications,
            },
            listening => {
                let _ = child.kill();
                let _ = child.wait();
                // The whole log, up to the exit.
                let _ = stderr_closed.recv_timeout(DEADLINE);
                let log_text = log.lock().unwrap().join("\n");
                panic!(
                    "quire did not start (listening: {listening:?}; notifications: {:?}):\n{log_text}",
                    notifications.all()
                );
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// What quire told its service manager (here, this harness) so far, and
    /// from now on: a handle that outlives the process.
    pub fn notifications(&self) -> Notifications {
        self.notifications.clone()
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let code = self.wait_exit();
        self.running = false;
        code
    }

    /// Kills with SIGKILL, as a crash would, and reaps the process.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit();
        self.running = false;
    }

    /// Sends SIGHUP: reload the configuration.
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Sends SIGUSR2: upgrade to the binary now at the program's path; then
    /// as [`Binary::adopt_successor`].
    pub fn upgrade(&mut self) -> i32 {
        self.signal(libc::SIGUSR2);
        self.adopt_successor()
    }

    /// Waits until a successor serves (the process it replaces tells the
    /// service manager `MAINPID=`) and this process has exited; from then on
    /// this follows the successor, on the same sockets. Returns the old
    /// process's exit code.
    pub fn adopt_successor(&mut self) -> i32 {
        let current = self.pid;
        let successor = self
            .notifications
            .wait(DEADLINE, |all| notify::successor(all, current))
            .unwrap_or_else(|| {
                panic!(
                    "no successor took over (notifications: {:?}):\n{}",
                    self.notifications.all(),
                    self.log()
                )
            });
        let code = self.wait_exit();
        self.pid = successor;
        code
    }

    /// Sends `signal` to the serving process, without waiting.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on a process this test started has no memory effects.
        unsafe {
            libc::kill(self.pid as libc::pid_t, signal);
        }
    }

    /// Waits for the serving process to exit (the started child, or an
    /// adopted successor) and returns its exit code.
    fn wait_exit(&mut self) -> i32 {
        let started = Instant::now();
        loop {
            let exited = match &mut self.child {
                Some(child) => child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1)),
                None => {
                    let mut status = 0;
                    // SAFETY: waitpid on an adopted child, with a local status.
                    let reaped = unsafe {
                        libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG)
                    };
                    match reaped {
                        0 => None,
                        // Not our child after all: gone once kill(2) finds nothing.
                        // SAFETY: signal 0 only checks that the process exists.
                        r if r < 0 => {
                            (unsafe { libc::kill(self.pid as libc::pid_t, 0) } != 0).then_some(-1)
                        }
                        _ if libc::WIFEXITED(status) => Some(libc::WEXITSTATUS(status)),
                        _ => Some(-1),
                    }
                }
            };
            if let Some(code) = exited {
                self.child = None;
                return code;
            }
            if started.elapsed() > DEADLINE {
                self.signal(libc::SIGKILL);
                panic!("quire (pid {}) did not stop", self.pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.running {
            self.signal(libc::SIGTERM);
            let _ = self.wait_exit();
        }
    }
}
