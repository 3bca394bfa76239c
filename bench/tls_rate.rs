//! An open-loop HTTPS load generator for bench/serve-tls.sh: new connections
//! at a fixed rate, each a TLS 1.3 resumption (the client keeps the tickets
//! the server sends) carrying one `GET` with `Connection: close`, read to the
//! end. A closed-loop client such as wrk measures itself once it is the
//! bottleneck: on two cores shared with the server it takes most of the CPU,
//! and the faster the server, the more handshakes it must make, so its event
//! loop lags and the latency it reports grows. At a fixed rate every server
//! gets the same work, and a connection's latency runs from the moment it was
//! due, not from when the client got to it (no coordinated omission), so a
//! stalled server pays for every connection that waited.
//!
//! cargo run --release --example tls-rate -- ADDR HOST PATH CA_PEM RATE SECONDS
//!
//! Prints one line: `rate=R/s due=N done=D failed=F resumed=S p50=A p90=B
//! p99=C p999=E max=M` (latencies in ms, from when the connection was due to
//! its last byte). Exits 1 when a connection failed or more than 1% were
//! full handshakes (the client ran out of tickets).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A connection still running this long after it was due counts as failed.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Connections made, one at a time, before the timed ones.
const WARM_UP: usize = 8;
/// Largest response read: the article is tens of KiB.
const MAX_RESPONSE: usize = 4 << 20;

struct Args {
    addr: SocketAddr,
    host: ServerName<'static>,
    path: String,
    ca: String,
    rate: u32,
    seconds: u32,
}

fn args() -> Result<Args, String> {
    let usage = "usage: tls-rate ADDR HOST PATH CA_PEM RATE SECONDS";
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [addr, host, path, ca, rate, seconds] = a.as_slice() else {
        return Err(usage.into());
    };
    Ok(Args {
        addr: addr.parse().map_err(|e| format!("ADDR {addr}: {e}"))?,
        host: ServerName::try_from(host.clone()).map_err(|e| format!("HOST {host}: {e}"))?,
        path: path.clone(),
        ca: ca.clone(),
        rate: rate.parse().ok().filter(|r| *r > 0).ok_or(format!(
            "RATE {rate}: a whole number of connections per second"
        ))?,
        seconds: seconds
            .parse()
            .ok()
            .filter(|s| *s > 0)
            .ok_or(format!("SECONDS {seconds}: a whole number"))?,
    })
}

/// What one connection came to.
enum Outcome {
    Done { latency: Duration, resumed: bool },
    Failed(String),
}

async fn one(
    connector: TlsConnector,
    args: Arc<Args>,
    request: Arc<Vec<u8>>,
    due: Instant,
) -> Outcome {
    let run = async {
        let tcp = TcpStream::connect(args.addr)
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(args.host.clone(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        tls.write_all(&request).await.map_err(|e| e.to_string())?;
        let mut response = Vec::with_capacity(64 << 10);
        loop {
            let mut chunk = [0u8; 16 << 10];
            match tls.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
                // A server that closes without close_notify has still sent
                // the whole response when Content-Length says so; the
                // status check below decides.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(format!("read: {e}")),
            }
            if response.len() > MAX_RESPONSE {
                return Err("response over 4 MiB".into());
            }
        }
        if !response.starts_with(b"HTTP/1.1 200") {
            let head = String::from_utf8_lossy(&response[..response.len().min(40)]).into_owned();
            return Err(format!("not a 200: {head:?}"));
        }
        Ok(resumed)
    };
    match tokio::time::timeout(GIVE_UP, run).await {
        Ok(Ok(resumed)) => Outcome::Done {
            latency: due.elapsed(),
            resumed,
        },
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => Outcome::Failed(format!("no response within {GIVE_UP:?}")),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match args() {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&args.ca).unwrap_or_else(|e| {
        eprintln!("cannot read CA_PEM {}: {e}", args.ca);
        std::process::exit(2)
    });
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.expect("CA_PEM holds PEM certificates"))
            .expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let request = Arc::new(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            args.path,
            args.host.to_str()
        )
        .into_bytes(),
    );

    // The client keeps up to 8 tickets per server and uses each once; a few
    // connections first fill that store, so the timed ones resume (each
    // brings back at least the ticket it used).
    for _ in 0..WARM_UP {
        let warm_up = one(
            connector.clone(),
            args.clone(),
            request.clone(),
            Instant::now(),
        );
        if let Outcome::Failed(e) = warm_up.await {
            eprintln!("a warm-up connection failed: {e}");
            std::process::exit(1);
        }
    }
    let total = args.rate as u64 * args.seconds as u64;
    let interval = Duration::from_secs(1) / args.rate;
    let start = Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        tasks.push(tokio::spawn(one(
            connector.clone(),
            args.clone(),
            request.clone(),
            due,
        )));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let (mut failed, mut resumed) = (0u64, 0u64);
    let mut first_error = None;
    for task in tasks {
        match task.await.expect("connection task") {
            Outcome::Done {
                latency,
                resumed: r,
            } => {
                latencies.push(latency);
                resumed += r as u64;
            }
            Outcome::Failed(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    latencies.sort();
    let ms = |p| percentile(&latencies, p);
    println!(
        "rate={}/s due={total} done={} failed={failed} resumed={resumed} p50={:.2} p90={:.2} p99={:.2} p999={:.2} max={:.2}",
        args.rate,
        latencies.len(),
        ms(50.0),
        ms(90.0),
        ms(99.0),
        ms(99.9),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    if let Some(e) = first_error {
        eprintln!("{failed} connections failed; the first: {e}");
        std::process::exit(1);
    }
    let full = latencies.len() as u64 - resumed;
    if full * 100 > latencies.len() as u64 {
        eprintln!("{full} connections were full handshakes, not resumptions");
        std::process::exit(1);
    }
}
