//! The one shared test helper: a throwaway site folder, the real `quire` binary
//! (or the in-process server) started on a loopback port 0, stopped by its own
//! PID, and a small HTTP/1.1 client.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const BIN: &str = env!("CARGO_BIN_EXE_quire");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Generous, for a loaded 2-core CI machine; only reached when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A site in a temporary folder: content/, static/, and quire.toml.
pub struct SiteDir {
    pub dir: tempfile::TempDir,
}

impl SiteDir {
    /// An empty site with a config that serves plain HTTP on a free port.
    pub fn empty(extra_config: &str) -> SiteDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("content/posts")).unwrap();
        std::fs::create_dir_all(dir.path().join("static")).unwrap();
        let config = format!(
            "[site]\ntitle = \"Test blog\"\nbase_url = \"https://blog.test/\"\nauthor = \"Tess Ter\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\n\n[tls]\nmode = \"off\"\n{extra_config}"
        );
        std::fs::write(dir.path().join("quire.toml"), config).unwrap();
        SiteDir { dir }
    }

    /// The repository's example content and theme.
    pub fn example(extra_config: &str) -> SiteDir {
        let site = SiteDir::empty(extra_config);
        copy_tree(&Path::new(REPO).join("content"), &site.path("content"));
        copy_tree(&Path::new(REPO).join("static"), &site.path("static"));
        site
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("quire.toml")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Write then rename, as editors do, so the watcher never sees half a file.
        let tmp = path.with_extension("partial~");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Runs a `quire` command to completion: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("run quire");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The real binary, serving a [`SiteDir`]. Stopped with SIGTERM on drop.
pub struct Binary {
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    pub fn serve(site: &SiteDir, extra_args: &[&str]) -> Binary {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(site.config())
            .args(extra_args)
            .env("RUST_LOG", "quire=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start quire");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, addr_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = found.send(addr.trim().parse::<SocketAddr>().expect("address in log"));
                }
                lines.lock().unwrap().push(line);
            }
        });
        match addr_rx.recv_timeout(DEADLINE) {
            Ok(addr) => Binary { addr, child, log },
            Err(_) => {
                let _ = child.kill();
                panic!("quire did not start:\n{}", log.lock().unwrap().join("\n"));
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        self.signal_term();
        let code = self.wait_exit();
        std::mem::forget(self);
        code
    }

    fn signal_term(&self) {
        // SAFETY: kill(2) on our own child's PID has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    fn wait_exit(&mut self) -> i32 {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if started.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("quire did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.signal_term();
        let _ = self.wait_exit();
    }
}

/// A response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

/// Sends one request on a new connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "blog.test");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = tokio::time::timeout(
        DEADLINE,
        sender.send_request(builder.body(Empty::<Bytes>::new()).unwrap()),
    )
    .await
    .expect("response in time")
    .expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[]).await
}

/// Writes raw bytes and returns the status line of the answer, for requests a
/// well-behaved client library would refuse to send.
pub async fn raw_status_line(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut buf))
        .await
        .expect("answer in time");
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Polls `probe` until it returns true; for changes that arrive through the
/// file system watcher, whose timing the test does not control.
pub async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A post with TOML front matter.
pub fn post(title: &str, date: &str, extra: &str, body: &str) -> String {
    format!("+++\ntitle = \"{title}\"\ndate = {date}\n{extra}+++\n\n{body}\n")
}
