//! The one shared test helper: a throwaway site folder, the real `quire` binary
//! (or the in-process server) started on a loopback port 0, stopped by its own
//! PID, and a small HTTP/1.1 client.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
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
            "[site]\ntitle = \"Test blog\"\nbase_url = \"https://blog.test/\"\nauthor = \"Tess Ter\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n[tls]\nmode = \"off\"\n{extra_config}"
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

/// The uid and gid of `nobody` on Linux.
pub const NOBODY: u32 = 65534;

fn serve_command(
    program: &Path,
    site: &SiteDir,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(program);
    command
        // Not a systemd service, whatever runs the tests.
        .env_remove("INVOCATION_ID")
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

/// Sets the permission bits of `rel` in a [`SiteDir`].
pub fn chmod(site: &SiteDir, rel: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(site.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
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

/// The example site in local mode on free ports, certified for `localhost`.
pub fn local_site(extra: &str) -> SiteDir {
    let site = SiteDir::example("");
    let config = format!(
        "[site]\ntitle = \"Test blog\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\nlocal_ca = \"127.0.0.1:0\"\n\n[tls]\nmode = \"local\"\n{extra}"
    );
    std::fs::write(site.config(), config).unwrap();
    site
}

/// Waits for the binary to log `needle`.
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
    /// The serving process: the one started, or the one it upgraded to.
    pub pid: u32,
    /// The started process, until it hands over to a successor.
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
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
        Binary::launch(serve_command(program, site, extra_args, env))
    }

    /// Serves as a user whom file permissions bind. Root reads a `chmod 000`
    /// file regardless, so under root (as in CI) the site folder is handed to
    /// `nobody` and the server runs as `nobody`: a permission test then fails
    /// rather than passes when permissions are not enforced.
    pub fn serve_unprivileged(site: &SiteDir, extra_args: &[&str]) -> Binary {
        let mut command = serve_command(Path::new(BIN), site, extra_args, &[]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            chown_tree(site.dir.path(), NOBODY);
            std::os::unix::process::CommandExt::uid(&mut command, NOBODY);
            std::os::unix::process::CommandExt::gid(&mut command, NOBODY);
        }
        Binary::launch(command)
    }

    fn launch(mut command: Command) -> Binary {
        // A successor is orphaned when the process it replaces exits; as a
        // subreaper this test process adopts it, and can reap it by PID.
        // SAFETY: prctl with integer arguments only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut child = command.spawn().expect("start quire");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, addr_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut https = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on https://").nth(1) {
                    https = Some(addr.trim().parse::<SocketAddr>().expect("address in log"));
                }
                // The startup summary comes after every listener is up.
                if line.contains("serving ") && line.contains("(open ") {
                    let _ = found.send(https);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let started = addr_rx.recv_timeout(DEADLINE);
        let log_text = log.lock().unwrap().join("\n");
        let http = log_text
            .split("listening on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok());
        let metrics = log_text
            .split("metrics and dashboard on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok());
        match (started, http) {
            (Ok(https), Some(addr)) => Binary {
                addr,
                https,
                metrics,
                pid: child.id(),
                child: Some(child),
                log,
            },
            _ => {
                let _ = child.kill();
                panic!("quire did not start:\n{log_text}");
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let code = self.wait_exit();
        std::mem::forget(self);
        code
    }

    /// Kills with SIGKILL, as a crash would, and reaps the process.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit();
        std::mem::forget(self);
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

    /// Waits until a successor serves and this process has exited; from
    /// then on this follows the successor. Returns the old process's exit
    /// code.
    pub fn adopt_successor(&mut self) -> i32 {
        let started = Instant::now();
        let successor = loop {
            let found = self.log.lock().unwrap().iter().rev().find_map(|line| {
                line.split("upgrade: pid ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<u32>()
                    .ok()
                    .filter(|pid| *pid != self.pid)
            });
            if let Some(pid) = found {
                break pid;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no successor took over:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
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
        self.signal(libc::SIGTERM);
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
    async fn read(response: hyper::Response<hyper::body::Incoming>) -> Reply {
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
    Reply::read(response).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[]).await
}

/// Writes raw bytes and returns the status line of the answer, for requests a
/// well-behaved client library would refuse to send.
pub async fn raw_status_line(addr: SocketAddr, request: &[u8]) -> String {
    raw_response(addr, request)
        .await
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Writes raw bytes and returns the whole answer, read until the server closes.
pub async fn raw_response(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may refuse a bad request before it has all of it.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut buf))
        .await
        .expect("answer in time");
    String::from_utf8_lossy(&buf).into_owned()
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

/// A test certificate authority made at run time: root -> intermediate -> leaf.
pub struct TestCa {
    pub root_pem: String,
    intermediate: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate with its chain and key, as PEM.
pub struct Issued {
    /// Leaf, then intermediate.
    pub chain_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "quire test root");
        let root =
            rcgen::CertifiedIssuer::self_signed(root_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "quire test intermediate");
        let intermediate =
            rcgen::CertifiedIssuer::signed_by(params, rcgen::KeyPair::generate().unwrap(), &root)
                .unwrap();
        TestCa {
            root_pem: root.pem(),
            intermediate,
        }
    }

    /// An ECDSA P-256 leaf for `names`.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_with(names, rcgen::KeyPair::generate().unwrap(), None)
    }

    pub fn issue_with(
        &self,
        names: &[&str],
        key: rcgen::KeyPair,
        not_after: Option<(i32, u8, u8)>,
    ) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "quire test leaf");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        if let Some((y, m, d)) = not_after {
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let leaf = params.signed_by(&key, &self.intermediate).unwrap();
        Issued {
            chain_pem: format!("{}{}", leaf.pem(), self.intermediate.pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes a certificate pair where manual mode reads it (rename, as tools do).
pub fn install_pair(site: &SiteDir, issued: &Issued) {
    site.write("tls/privkey.pem", &issued.key_pem);
    site.write("tls/fullchain.pem", &issued.chain_pem);
}

/// The example site in manual mode, serving a fresh certificate from `ca`
/// for blog.test and www.blog.test. `extra` is appended to the config.
pub fn manual_site(ca: &TestCa, extra: &str) -> SiteDir {
    let site = SiteDir::example("");
    let config = format!(
        "[site]\ntitle = \"Test blog\"\nbase_url = \"https://blog.test/\"\n\n[domains]\nnames = [\"blog.test\", \"www.blog.test\"]\n\n[listen]\nhttp = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n[tls]\nmode = \"manual\"\ncert_file = \"tls/fullchain.pem\"\nkey_file = \"tls/privkey.pem\"\n{extra}"
    );
    std::fs::write(site.config(), config).unwrap();
    install_pair(&site, &ca.issue(&["blog.test", "www.blog.test"]));
    site
}

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects with TLS, trusting only `root_pem`, offering `alpn`.
pub async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr).await?;
    tls_handshake(tcp, server_name, root_pem, alpn).await
}

/// The TLS handshake of [`tls_connect`], on a connection already open.
pub async fn tls_handshake(
    tcp: TcpStream,
    server_name: &str,
    root_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream> {
    let connector = tls_connector(root_pem, alpn);
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
}

fn tls_connector(root_pem: &str, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The DNS names and serial of the certificate the server presented.
pub fn peer_certificate(stream: &TlsStream) -> (Vec<String>, String, usize) {
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server sent certificates");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let names = leaf
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (names, leaf.raw_serial_as_string(), chain.len())
}

/// Sends GET requests over an established TLS stream, with HTTP/2 if ALPN chose it.
pub struct TlsClient {
    h1: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    h2: Option<hyper::client::conn::http2::SendRequest<Empty<Bytes>>>,
    pub protocol: String,
    connection: tokio::task::JoinHandle<()>,
    _hangup: HangUp,
}

/// Shuts the connection's socket down when dropped. The connection task
/// would close it only when next polled, and a test that drops its client
/// and then blocks to stop the server never polls it again: the server
/// would wait out its shutdown grace for a client that is gone.
struct HangUp(std::os::fd::OwnedFd);

impl Drop for HangUp {
    fn drop(&mut self) {
        // SAFETY: shutdown(2) on our own duplicate of the socket.
        unsafe {
            libc::shutdown(self.0.as_raw_fd(), libc::SHUT_RDWR);
        }
    }
}

impl TlsClient {
    pub async fn new(stream: TlsStream) -> TlsClient {
        let _hangup = HangUp(stream.get_ref().0.as_fd().try_clone_to_owned().unwrap());
        let protocol = stream
            .get_ref()
            .1
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        if protocol == "h2" {
            let (sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(stream),
            )
            .await
            .unwrap();
            TlsClient {
                h1: None,
                h2: Some(sender),
                protocol,
                connection: tokio::spawn(async move {
                    let _ = connection.await;
                }),
                _hangup,
            }
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            TlsClient {
                h1: Some(sender),
                h2: None,
                protocol,
                connection: tokio::spawn(async move {
                    let _ = connection.await;
                }),
                _hangup,
            }
        }
    }

    /// Closes the connection and waits until it is closed, so that a server
    /// stopped next has nothing to drain.
    pub async fn close(self) {
        drop((self.h1, self.h2));
        tokio::time::timeout(DEADLINE, self.connection)
            .await
            .expect("the connection closes")
            .expect("the connection task");
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Reply {
        self.get_with(host, path, &[]).await.expect("response")
    }

    /// A GET with extra headers; the error when the server closes instead.
    pub async fn get_with(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, hyper::Error> {
        let uri = format!("https://{host}{path}");
        let mut request = hyper::Request::builder().uri(&uri).header("host", host);
        if self.h2.is_none() {
            request = request.uri(path);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).unwrap();
        let response = match (&mut self.h1, &mut self.h2) {
            (Some(h1), _) => h1.send_request(request).await,
            (_, Some(h2)) => h2.send_request(request).await,
            _ => unreachable!(),
        }?;
        Ok(Reply::read(response).await)
    }
}

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

/// Asserts that everything under `dir` is private to its owner: directories
/// 0700, files (keys, certificates, sled's, archives) without group or other
/// permissions.
pub fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            assert_private(&entry.path());
        } else {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
        }
    }
}

/// Waits out the last two minutes before a UTC midnight, if it is in them.
///
/// Statistics count views and visitors per UTC day, so a test comparing
/// counts across a run of the real binary (on the real clock) must not
/// straddle midnight: the same reader would count as two visitors.
pub fn clear_of_utc_midnight() {
    use chrono::Timelike;
    const MARGIN: u32 = 120;
    let left = 86_400 - chrono::Utc::now().num_seconds_from_midnight();
    if left <= MARGIN {
        std::thread::sleep(Duration::from_secs(u64::from(left) + 1));
    }
}

/// A free loopback port, for a peer that must be told one in advance.
///
/// Taken outside the kernel's ephemeral range, and never the same twice in
/// this process: the kernel hands ephemeral ports to every `bind(:0)` and
/// outgoing connection of the tests running beside this one, so a port
/// picked there could be taken before the peer binds it.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let (first, count) = ports_outside_ephemeral_range();
    // Processes running the suite side by side start apart.
    let start = std::process::id() % count;
    for _ in 0..count {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (first + (start + offset) % count) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {first}..{}", first + count);
}

/// The first port and count of a span of ports the kernel does not hand out
/// on its own: below `ip_local_port_range` (32768-60999 by default), or above.
fn ports_outside_ephemeral_range() -> (u32, u32) {
    const WANTED: u32 = 10_000;
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("read /proc/sys/net/ipv4/ip_local_port_range");
    let bounds: Vec<u32> = range
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let (low, high) = (bounds[0], bounds[1]);
    if low >= 1024 + WANTED {
        (low - WANTED, WANTED)
    } else if high + WANTED <= 65_535 {
        (high + 1, WANTED)
    } else {
        panic!(
            "the ephemeral port range {low}-{high} leaves no room for test peers' ports; narrow it: sysctl -w net.ipv4.ip_local_port_range=\"32768 60999\""
        )
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

/// Where screenshots are kept for people to look at after a run.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium takes a screenshot of `url` at `width`x`height`.
pub fn screenshot(url: &str, width: u32, height: u32, file: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut chromium = peer_command("chromium", "chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = chromium.spawn().expect("start chromium");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(DEADLINE * 2) {
        Ok(output) => output.expect("chromium ran"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("chromium did not finish");
        }
    };
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(file.exists(), "no screenshot; chromium said:\n{log}");
    log
}

/// How many distinct colours a PNG has: a blank page has one or two.
pub fn distinct_colours(file: &Path) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let mut colours: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    for pixel in pixels[..info.buffer_size()].chunks(channels) {
        colours.insert(pixel);
        if colours.len() > 500 {
            break;
        }
    }
    colours.len()
}

/// Parses a Prometheus exposition with a real parser.
pub fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses")
}

/// The value of `name` with these labels, if the exposition has it.
pub fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => Some(v),
        ref other => panic!("{name} is not a plain value: {other:?}"),
    }
}

/// The value of `name` with these labels, which the exposition must have.
pub fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(scrape, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}
