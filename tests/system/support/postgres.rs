//! A real PostgreSQL for the cluster tests, from Debian's `postgresql`
//! package: a server on a free loopback port in a temporary directory, run
//! as the `postgres` OS user when the tests run as root (postgres refuses
//! root), one database per test, stopped by its PID.
//!
//! `initdb` runs once per test process into a template that each server
//! copies (a copy takes a tenth of an initdb). Tests that only need a
//! database share one server ([`Postgres::shared`]); tests that stop or
//! restart the engine start their own ([`Postgres::start`]).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::{DEADLINE, free_port};

/// The role quire connects as, with a password like production's: it owns
/// the test databases and has no other rights. Setup and inspection go
/// through the superuser `postgres` over the server's own socket.
const ROLE: &str = "quire";

/// What every server of this test process shares: the binaries, the OS
/// user they run as and the initdb'd template.
struct Install {
    bin: PathBuf,
    /// The `postgres` user's uid and gid when the tests run as root.
    owner: Option<(u32, u32)>,
    template: PathBuf,
}

static INSTALL: OnceLock<Install> = OnceLock::new();
static SHARED: OnceLock<Postgres> = OnceLock::new();

/// A PostgreSQL server on 127.0.0.1, stopped (fast shutdown) by its PID
/// and its directory removed when dropped.
pub struct Postgres {
    /// Holds `data/`, the server's socket and `postgres.log`.
    dir: PathBuf,
    port: u16,
    password: String,
    postmaster: Mutex<Option<Child>>,
    shared: bool,
}

impl Postgres {
    /// A server of its own, for a test that stops or restarts the engine.
    pub fn start() -> Postgres {
        Postgres::start_as(false)
    }

    /// The server every test of this process shares, started on first use
    /// and stopped when the process exits. Give each test its own database;
    /// never stop or restart it (start your own for that).
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| Postgres::start_as(true))
    }

    fn start_as(shared: bool) -> Postgres {
        let install = install();
        let dir = owned_dir(install, "quire-pg-");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(install.template.join("data"))
            .arg(dir.join("data"))
            .status()
            .expect("run cp");
        assert!(copied.success(), "copying the PostgreSQL template failed");
        let postgres = Postgres {
            dir,
            port: free_port(),
            password: random_password(),
            postmaster: Mutex::new(None),
            shared,
        };
        postgres.launch();
        postgres.sql(
            "postgres",
            &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{}'", postgres.password),
        );
        postgres
    }

    /// Creates the database `name` (lowercase letters, digits and `_`,
    /// unique on this server: name it after the test) owned by the quire
    /// role, and returns its connection string.
    pub fn database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "database name {name:?}: use 1..=63 lowercase letters, digits and _"
        );
        self.sql("postgres", &format!("CREATE DATABASE {name} OWNER {ROLE}"));
        self.url(name)
    }

    /// The connection string of database `name` as the quire role.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{ROLE}:{}@127.0.0.1:{}/{name}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.lock().unwrap().as_ref().map(Child::id)
    }

    /// Runs `sql` (one or more statements) in database `db` as the
    /// superuser and returns what it printed: one line per row, columns
    /// separated by `|`, without the trailing newline. Blocking: meant for
    /// setup and inspection, not for timing-sensitive paths.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let mut psql = Command::new(install().bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run psql");
        psql.stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .expect("write to psql");
        let output = psql.wait_with_output().expect("wait for psql");
        assert!(
            output.status.success(),
            "psql on {db} failed: {}\nSQL: {sql}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .trim_end_matches('\n')
            .to_owned()
    }

    /// Terminates the connections to `db` whose application_name is LIKE
    /// `application_name_like` (e.g. `quire/node-a/listen`), as a network
    /// cut would; returns how many there were.
    pub fn terminate_backends(&self, db: &str, application_name_like: &str) -> u64 {
        let quoted = |s: &str| s.replace('\'', "''");
        self.sql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{}' AND application_name LIKE '{}'",
                quoted(db),
                quoted(application_name_like)
            ),
        )
        .parse()
        .unwrap()
    }

    /// Turns TLS on with this certificate chain and key (PEM): written into
    /// the data directory, owned by the server's user, key 0600, then
    /// `ssl = on` and a reload. Connections may still choose plain TCP;
    /// `pg_stat_ssl` tells which one a connection took.
    pub fn enable_tls(&self, chain_pem: &str, key_pem: &str) {
        let install = install();
        for (name, text) in [("server.crt", chain_pem), ("server.key", key_pem)] {
            let path = self.dir.join("data").join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if let Some((uid, gid)) = install.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        }
        self.sql("postgres", "ALTER SYSTEM SET ssl = on");
        assert_eq!(self.sql("postgres", "SELECT pg_reload_conf()"), "t");
    }

    /// Stops the server the way `pg_ctl stop -m immediate` does (SIGQUIT:
    /// no checkpoint, clients cut at once) and waits for it to exit.
    pub fn stop_immediate(&self) {
        assert!(
            !self.shared,
            "the shared server is never stopped by a test: start your own"
        );
        assert!(
            self.stop(libc::SIGQUIT),
            "stop_immediate: the server was not running"
        );
    }

    /// Starts the server again on the same port and data directory (fast
    /// shutdown first if it runs), and waits until it takes connections.
    pub fn restart(&self) {
        assert!(
            !self.shared,
            "the shared server is never restarted by a test: start your own"
        );
        self.stop(libc::SIGINT);
        self.launch();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn launch(&self) {
        let install = install();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("open the PostgreSQL log");
        let mut command = Command::new(install.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        as_owner(&mut command, install);
        // Its own process group, so a Ctrl-C meant for the tests does not
        // reach it before the test that owns it stops it; and SIGQUIT if the
        // test process dies without stopping it (set after the uid change,
        // which clears it).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // SAFETY: prctl with integer arguments only sets a flag on the child.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            });
        }
        let mut child = spawn_from_long_lived_thread(command);
        let started = Instant::now();
        while !self.pidfile_says_ready(child.id()) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "PostgreSQL exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "PostgreSQL was not ready within {DEADLINE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        *self.postmaster.lock().unwrap() = Some(child);
        // Ready means it takes connections: prove it with one.
        assert_eq!(self.sql("postgres", "SELECT 1"), "1");
    }

    /// The postmaster writes its PID on the first line of `postmaster.pid`
    /// and its status on the eighth; a file left by an earlier run names
    /// another PID.
    fn pidfile_says_ready(&self, pid: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().collect();
        lines.first() == Some(&pid.to_string().as_str())
            && lines.get(7).map(|status| status.trim()) == Some("ready")
    }

    /// Signals the postmaster by its PID and reaps it; false if it was not
    /// running. SIGINT is PostgreSQL's fast shutdown: SIGTERM would wait
    /// for every client (a node's pool) to disconnect.
    fn stop(&self, signal: libc::c_int) -> bool {
        let mut postmaster = self
            .postmaster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(mut child) = postmaster.take() else {
            return false;
        };
        // SAFETY: kill(2) on our own child's PID, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let _ = child.wait();
        true
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop(libc::SIGINT);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shared server and the template outlive every test: statics are
/// never dropped, so they go when the process exits.
extern "C" fn clean_up_at_exit() {
    if let Some(shared) = SHARED.get() {
        shared.stop(libc::SIGINT);
        let _ = std::fs::remove_dir_all(&shared.dir);
    }
    if let Some(install) = INSTALL.get() {
        let _ = std::fs::remove_dir_all(&install.template);
    }
}

fn install() -> &'static Install {
    INSTALL.get_or_init(|| {
        let bin = find_bin();
        // SAFETY: geteuid has no preconditions.
        let owner = (unsafe { libc::geteuid() } == 0).then(postgres_user);
        let mut install = Install {
            bin,
            owner,
            template: PathBuf::new(),
        };
        install.template = owned_dir(&install, "quire-pg-template-");
        let mut initdb = Command::new(install.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(install.template.join("data"))
            .args(["-U", "postgres", "--auth-local=trust"])
            .args(["--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .stdout(Stdio::null());
        as_owner(&mut initdb, &install);
        let output = initdb.output().expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Loopback only; durability is not what these tests check, and
        // three nodes of several tests at once need more than 100 connections.
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(install.template.join("data/postgresql.conf"))
            .unwrap();
        conf.write_all(
            b"\nlisten_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\n\
              full_page_writes = off\nmax_connections = 300\n",
        )
        .unwrap();
        // SAFETY: registers a plain function, called once at exit.
        unsafe { libc::atexit(clean_up_at_exit) };
        install
    })
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian keeps the server
/// binaries off PATH).
fn find_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb): install it with \
             `apt-get install -y postgresql` (bash .ci/test does this)"
        )
    })
}

fn postgres_user() -> (u32, u32) {
    // SAFETY: getpwnam with a NUL-terminated name; the entry is read at once,
    // before any other call could reuse its static buffer.
    let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    assert!(
        !entry.is_null(),
        "the tests run as root and PostgreSQL refuses root, but there is no `postgres` user: \
         install the package that creates it with `apt-get install -y postgresql`"
    );
    // SAFETY: checked non-null above.
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

/// Runs `command` as the `postgres` user when the tests run as root.
fn as_owner(command: &mut Command, install: &Install) {
    if let Some((uid, gid)) = install.owner {
        std::os::unix::process::CommandExt::uid(command, uid);
        std::os::unix::process::CommandExt::gid(command, gid);
    }
}

/// A fresh temporary directory that the server's user owns.
fn owned_dir(install: &Install, prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
        .keep();
    if let Some((uid, gid)) = install.owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    dir
}

fn random_password() -> String {
    let mut bytes = [0u8; 12];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut bytes,
    )
    .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Spawns from one thread that lives as long as the process: the child's
/// parent-death signal follows the spawning thread, not the process, and a
/// test's thread (or a tokio blocking thread) ends long before the server
/// should.
fn spawn_from_long_lived_thread(command: Command) -> Child {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut command, reply) in incoming {
                let _ = reply.send(command.spawn());
            }
        });
        Mutex::new(requests)
    });
    let (reply, spawned) = mpsc::channel();
    spawner.lock().unwrap().send((command, reply)).unwrap();
    spawned.recv().unwrap().expect("start postgres")
}
