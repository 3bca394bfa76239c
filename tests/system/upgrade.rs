//! Zero-downtime upgrade: the binary file is replaced and the running quire
//! told to upgrade (SIGUSR2, `quire upgrade`) while clients keep asking. No
//! request fails, the new binary serves, statistics go on counting the same
//! readers, and a broken new binary leaves the old one serving.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Installs `from` at `to` as an operator would: write aside, then rename
/// over the running binary.
///
/// `cp` writes the copy, not this process: a test thread that forks while
/// this process holds the file open for writing would hand that descriptor
/// to its child until the child's exec, and executing the copy in that
/// window fails with "Text file busy" (ETXTBSY).
fn install(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let aside = to.with_extension("new");
    let copied = std::process::Command::new("cp")
        .arg(from)
        .arg(&aside)
        .status()
        .expect("run cp");
    assert!(
        copied.success(),
        "cp {} {}: {copied}",
        from.display(),
        aside.display()
    );
    std::fs::rename(&aside, to).unwrap();
}

/// Outcomes of sequential requests, each on a new connection.
#[derive(Default)]
struct Tally {
    ok: usize,
    failures: Vec<String>,
    slowest: Duration,
}

/// Sends GET / over a new TLS connection per request, one after another,
/// until `stop`; counts what came back.
fn sequential_load(
    https: SocketAddr,
    root: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = match tls_connect(https, "localhost", &root, &[b"http/1.1"]).await {
                    Ok(stream) => {
                        let mut client = TlsClient::new(stream).await;
                        let reply = client
                            .get_with("localhost", "/", &[("user-agent", FIREFOX)])
                            .await;
                        client.close().await;
                        match reply {
                            Ok(reply) if reply.status == 200 => Ok(()),
                            Ok(reply) => Err(format!("status {}", reply.status)),
                            Err(e) => Err(format!("no response: {e}")),
                        }
                    }
                    Err(e) => Err(format!("cannot connect: {e}")),
                };
                let mut tally = tally.lock().unwrap();
                tally.slowest = tally.slowest.max(started.elapsed());
                match outcome {
                    Ok(()) => tally.ok += 1,
                    Err(e) => tally.failures.push(e),
                }
            }
        })
    })
}

/// curl, reusing its connection for 20 requests per run, runs after run
/// (HTTP/1.1 and HTTP/2 in turn) until `stop`: (requests answered 200,
/// failures).
fn curl_load(
    https: SocketAddr,
    root: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    peer_command("curl", "curl");
    std::thread::spawn(move || {
        let (mut ok, mut failures) = (0, Vec::new());
        let port = https.port();
        for protocol in ["--http1.1", "--http2"].iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let out = peer_command("curl", "curl")
                .args(["-sS", protocol, "--max-time", "20", "--cacert"])
                .arg(&root)
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .args(["-o", "/dev/null", "-w", "%{http_code}\\n"])
                .arg(format!("https://localhost:{port}/?n=[1-20]"))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let codes = String::from_utf8_lossy(&out.stdout);
            ok += codes.lines().filter(|c| *c == "200").count();
            failures.extend(
                codes
                    .lines()
                    .filter(|c| *c != "200")
                    .map(|c| format!("curl got {c}")),
            );
            if !out.status.success() {
                failures.push(format!(
                    "curl failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        (ok, failures)
    })
}

/// Asks the metrics listener for `/ready` until `stop`, as a load balancer
/// would; returns the answers that were not 200.
fn readiness_probe(
    metrics: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut not_ready = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let reply = runtime.block_on(get(metrics, "/ready"));
            if reply.status != 200 {
                not_ready.push(format!("{}: {}", reply.status, reply.text()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        not_ready
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn replacing_the_binary_under_sequential_load_loses_no_request() {
    clear_of_utc_midnight();
    let site = local_site("");
    let program = site.path("bin/quire");
    install(Path::new(BIN), &program);
    let mut server = Binary::serve_program(&program, &site, &[], &[]);
    let notifications = server.notifications();
    let https = server.https.unwrap();
    assert_eq!(
        notifications.nth(0),
        format!(
            "READY=1\nSTATUS=listening http={} https={https} metrics={} local_ca={}",
            server.addr,
            server.metrics.unwrap(),
            server.local_ca.unwrap()
        )
    );
    wait_for_log(&server, "obtained a certificate");
    let root_path = site.path("data/local-ca/root.pem");
    let root = std::fs::read_to_string(&root_path).unwrap();
    let old_pid = server.pid;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let load = sequential_load(https, root, stop.clone(), tally.clone());
    let curl = curl_load(https, root_path, stop.clone());
    let readiness = readiness_probe(server.metrics.unwrap(), stop.clone());
    wait_until("50 requests before the upgrade", || {
        tally.lock().unwrap().ok >= 50
    });

    install(Path::new(BIN), &program);
    let before = tally.lock().unwrap().ok;
    let started = Instant::now();
    assert_eq!(server.upgrade(), 0, "the old process exits cleanly");
    let handover = started.elapsed();
    assert_eq!(notifications.nth(1), format!("MAINPID={}", server.pid));
    wait_for_log(&server, "this process now owns");
    let during = tally.lock().unwrap().ok - before;
    let after_handover = tally.lock().unwrap().ok;
    wait_until("50 requests after the upgrade", || {
        tally.lock().unwrap().ok >= after_handover + 50
    });
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the load ran");
    let (curl_ok, curl_failures) = curl.join().expect("curl ran");
    let not_ready = readiness.join().expect("the probe ran");
    assert!(
        not_ready.is_empty(),
        "/ready said no during the upgrade: {not_ready:?}"
    );

    let tally = tally.lock().unwrap();
    assert!(
        tally.failures.is_empty() && curl_failures.is_empty(),
        "failed requests: {:?} {:?}\n{}",
        tally.failures,
        curl_failures,
        server.log()
    );
    assert_ne!(server.pid, old_pid);
    let exe = std::fs::read_link(format!("/proc/{}/exe", server.pid)).unwrap();
    assert_eq!(exe, program, "the successor runs the new file");
    assert!(curl_ok > 0, "curl's requests were answered");
    eprintln!(
        "upgrade under load: {} sequential requests (new connection each) and {curl_ok} curl requests (keep-alive), 0 failed; {during} answered during the {handover:?} from SIGUSR2 to the old process's exit; slowest request {:?}",
        tally.ok, tally.slowest
    );

    // The views of both processes were kept, and the reader stayed one
    // visitor: the salts crossed over.
    let (code, out, err) = site.run(&["stats", "--config", "quire.toml", "--days", "1"]);
    assert_eq!(code, 0, "{err}");
    let total: Vec<usize> = out
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(total[0], tally.ok, "views: one per page request\n{out}");
    assert_eq!(total[1], 1, "one reader\n{out}");

    assert_eq!(server.terminate(), 0);
    assert_eq!(notifications.nth(2), "STOPPING=1");
}

#[test]
fn a_broken_new_binary_leaves_the_old_one_serving_and_quire_upgrade_says_why() {
    let site = local_site("");
    let program = site.path("bin/quire");
    install(Path::new(BIN), &program);
    let mut server = Binary::serve_program(&program, &site, &[], &[]);
    let broken = site.path("broken.sh");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'cannot start: missing library' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    install(&broken, &program);

    let (code, _, err) = site.run(&["upgrade", "--config", "quire.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("exited (exit status: 3) before it was ready")
            && err.contains("keeps serving"),
        "{err}"
    );
    wait_for_log(&server, "cannot start: missing library");
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(get(server.addr, "/"))
        .status;
    assert_eq!(status, 301, "the old process still answers");

    // With a working binary in place, the command upgrades.
    install(Path::new(BIN), &program);
    let old_pid = server.pid;
    let (code, out, err) = site.run(&["upgrade", "--config", "quire.toml"]);
    assert_eq!(code, 0, "{err}\nserver log:\n{}", server.log());
    assert!(out.contains("has taken over the sockets"), "{out}");
    assert_eq!(server.adopt_successor(), 0);
    assert_ne!(server.pid, old_pid);
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(get(server.addr, "/"))
        .status;
    assert_eq!(status, 301, "the new process answers");
}

#[test]
fn systemd_socket_activation_gives_quire_its_sockets() {
    let site = local_site("");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut command = peer_command("systemd-socket-activate", "systemd");
    for port in &ports {
        command.args(["-l", &format!("127.0.0.1:{port}")]);
    }
    let mut activator = command
        .arg("--fdname=http:https:metrics:local_ca")
        .args(["-E", "RUST_LOG=quire=info", BIN, "serve", "--config"])
        .arg(site.config())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = activator.stderr.take().unwrap();
    let activator = Peer(activator);
    let log = Arc::new(Mutex::new(String::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            lines.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    wait_until("systemd-socket-activate to listen", || {
        log.lock().unwrap().matches("Listening on").count() == ports.len()
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The first connection starts quire, and waits in the kernel's backlog
    // until quire takes the socket and answers it.
    let http: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    let reply = runtime.block_on(get(http, "/"));
    assert_eq!(reply.status, 301, "{}", log.lock().unwrap());
    assert_eq!(
        reply.header("location"),
        format!("https://localhost:{}/", ports[1]),
        "the site's address comes from the given https socket"
    );
    wait_until(
        "a certificate from the local CA on the given sockets",
        || log.lock().unwrap().contains("obtained a certificate"),
    );
    let root = std::fs::read_to_string(site.path("data/local-ca/root.pem")).unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", ports[1]).parse().unwrap();
    let status = runtime.block_on(async {
        let stream = tls_connect(https, "localhost", &root, &[b"h2"])
            .await
            .unwrap();
        let mut client = TlsClient::new(stream).await;
        let status = client.get("localhost", "/").await.status;
        client.close().await;
        status
    });
    assert_eq!(status, 200);
    let metrics: SocketAddr = format!("127.0.0.1:{}", ports[2]).parse().unwrap();
    assert_eq!(runtime.block_on(get(metrics, "/health")).status, 200);
    assert!(
        !log.lock().unwrap().contains("matches no [listen] address"),
        "every socket was used:\n{}",
        log.lock().unwrap()
    );

    // systemd-socket-activate execs quire: the PID is quire's.
    let status = activator.stop();
    assert!(status.success(), "{status}: {}", log.lock().unwrap());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_at_shutdown_gets_its_next_request_answered_with_close() {
    let site = local_site("");
    let server = Binary::serve(&site, &[]);
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let get = || {
        hyper::Request::get("/")
            .header("host", "localhost")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let first = sender.send_request(get()).await.unwrap();
    assert!(first.headers().get("connection").is_none(), "kept alive");
    drop(first);

    // The connection is idle when shutdown begins; a request the client
    // sends next is still answered, and says the connection ends with it.
    server.signal(libc::SIGTERM);
    wait_for_log(&server, "shutting down");
    let next = sender
        .send_request(get())
        .await
        .expect("answered, not reset");
    assert_eq!(next.status(), 301);
    assert_eq!(next.headers()["connection"], "close");
    drop(next);
    tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("the server closes the connection")
        .unwrap()
        .unwrap();
    assert_eq!(server.terminate(), 0);
}

#[test]
fn a_stop_during_an_upgrade_stops_the_new_process_too() {
    let site = local_site("");
    let program = site.path("bin/quire");
    install(Path::new(BIN), &program);
    let server = Binary::serve_program(&program, &site, &[], &[]);
    // A new binary that never becomes ready.
    let hanging = site.path("hanging.sh");
    std::fs::write(&hanging, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(
        &hanging,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    install(&hanging, &program);

    server.signal(libc::SIGUSR2);
    wait_for_log(&server, "upgrade: starting the binary");
    server.signal(libc::SIGTERM);
    wait_for_log(&server, "stopping the new process");
    let log = server.log();
    let new_pid: libc::pid_t = log
        .split("stopping the new process (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in:\n{log}"));
    let started = Instant::now();
    assert_eq!(server.terminate(), 0, "the old process stops cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "without waiting for the new one to be ready"
    );
    wait_until("the new process to be gone", || {
        // Reaped here if this test process adopted it as a zombie.
        // SAFETY: waitpid with a null status, and kill with signal 0, which
        // only asks whether the process exists.
        unsafe {
            libc::waitpid(new_pid, std::ptr::null_mut(), libc::WNOHANG);
            libc::kill(new_pid, 0) != 0
        }
    });
}
