//! The harness's end of sd_notify(3): a `NOTIFY_SOCKET` of its own (a unix
//! datagram socket in a temporary folder) through which quire says it is
//! ready and where it listens (`READY=1` with `STATUS=listening http=...`),
//! that a successor took over (`MAINPID=`) and that it stops (`STOPPING=1`).
//! The harness learns addresses and upgrade outcomes here rather than from
//! log lines, which are worded for people and may change.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::DEADLINE;

/// Every datagram quire sent, in order. Clones share the socket, which is
/// kept (and read) while any of them lives.
#[derive(Clone)]
pub struct Notifications(Arc<Channel>);

struct Channel {
    path: PathBuf,
    received: Mutex<Vec<String>>,
    arrived: Condvar,
    _dir: tempfile::TempDir,
}

impl Notifications {
    /// Binds a new socket; `owner` is the uid and gid to hand it to when
    /// quire runs as another user, who must be able to reach and write it.
    pub fn open(owner: Option<u32>) -> Notifications {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        if let Some(id) = owner {
            std::os::unix::fs::chown(dir.path(), Some(id), Some(id)).unwrap();
            std::os::unix::fs::chown(&path, Some(id), Some(id)).unwrap();
        }
        let channel = Arc::new(Channel {
            path,
            received: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            _dir: dir,
        });
        let weak = Arc::downgrade(&channel);
        std::thread::spawn(move || receive(socket, weak));
        Notifications(channel)
    }

    /// What `NOTIFY_SOCKET` is set to.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// The datagrams received so far.
    pub fn all(&self) -> Vec<String> {
        self.0.received.lock().unwrap().clone()
    }

    /// The `n`th datagram (from 0), once it has come.
    pub fn nth(&self, n: usize) -> String {
        self.wait(DEADLINE, |all| all.get(n).cloned())
            .unwrap_or_else(|| panic!("no notification #{n}; received {:?}", self.all()))
    }

    /// Waits up to `patience` until `find` finds something in the datagrams
    /// received so far.
    pub fn wait<T>(
        &self,
        patience: Duration,
        mut find: impl FnMut(&[String]) -> Option<T>,
    ) -> Option<T> {
        let started = Instant::now();
        let mut received = self.0.received.lock().unwrap();
        loop {
            if let Some(found) = find(&received) {
                return Some(found);
            }
            let left = patience.checked_sub(started.elapsed())?;
            received = self.0.arrived.wait_timeout(received, left).unwrap().0;
        }
    }
}

/// Reads datagrams until every [`Notifications`] handle is gone.
fn receive(socket: UnixDatagram, channel: Weak<Channel>) {
    // Woken now and then to notice that the handles are gone.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    loop {
        let received = socket.recv(&mut buffer);
        let Some(channel) = channel.upgrade() else {
            return;
        };
        match received {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                channel.received.lock().unwrap().push(text);
                channel.arrived.notify_all();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the notify socket: {e}"),
        }
    }
}

/// Where a quire that said `READY=1` listens, from its `STATUS=` line.
#[derive(Debug, Default)]
pub struct Listening {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub local_ca: Option<SocketAddr>,
}

impl Listening {
    /// The addresses in the first `READY=1` datagram, if one has come.
    /// Anything but the documented form fails the test: it is a contract
    /// with the operators' scripts too.
    pub fn find(datagrams: &[String]) -> Option<Listening> {
        let ready = datagrams
            .iter()
            .find(|d| d.lines().any(|line| line == "READY=1"))?;
        let status = ready
            .lines()
            .find_map(|line| line.strip_prefix("STATUS="))
            .unwrap_or_else(|| panic!("READY=1 without a STATUS= line: {ready:?}"));
        let mut words = status.split(' ');
        assert_eq!(words.next(), Some("listening"), "{status:?}");
        let mut listening = Listening::default();
        for word in words {
            let (name, addr) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("{word:?} in {status:?} is not name=address"));
            let addr: SocketAddr = addr
                .parse()
                .unwrap_or_else(|e| panic!("{addr:?} in {status:?}: {e}"));
            let slot = match name {
                "http" => &mut listening.http,
                "https" => &mut listening.https,
                "metrics" => &mut listening.metrics,
                "local_ca" => &mut listening.local_ca,
                other => panic!("unknown socket name {other:?} in {status:?}"),
            };
            // A name given twice (two sockets for one key) is reached on either.
            slot.get_or_insert(addr);
        }
        Some(listening)
    }
}

/// The pid in the last `MAINPID=` datagram that is not `current`: the
/// process that took over from it.
pub fn successor(datagrams: &[String], current: u32) -> Option<u32> {
    datagrams
        .iter()
        .rev()
        .filter_map(|d| d.lines().find_map(|line| line.strip_prefix("MAINPID=")))
        .map(|pid| pid.parse::<u32>().expect("a pid after MAINPID="))
        .find(|pid| *pid != current)
}
