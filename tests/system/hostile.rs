//! Clients that try to hold connections without asking for anything: a
//! dribbled HTTP/2 preface, hundreds of such connections at once, and a
//! reader that opens its flow-control window a few bytes at a time. The
//! server cuts them, and a normal client is served throughout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    Binary, DEADLINE, SiteDir, TestCa, TlsClient, eventually, get, manual_site, request, sample,
    scrape, tls_connect, tls_handshake, value,
};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Sends the HTTP/2 preface a byte at a time, `every` apart; true if the
/// server closed the connection before it was complete.
async fn dribble(
    stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin),
    every: Duration,
) -> bool {
    let mut sink = [0u8; 1024];
    for byte in PREFACE {
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(every, stream.read(&mut sink)).await {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_dribbled_preface_is_cut_on_every_protocol() {
    let ca = TestCa::new();
    let site = manual_site(
        &ca,
        "\n[limits]\nhandshake_timeout = \"5s\"\nheader_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n",
    );
    let server = Binary::serve(&site, &[]);
    let https = server.https.unwrap();
    // A byte every 300 ms is traffic, never idle for 2 s, yet no request:
    // the preface alone would take 7 s.
    let every = Duration::from_millis(300);

    let mut h2 = tls_connect(https, "blog.test", &ca.root_pem, &[b"h2"])
        .await
        .unwrap();
    assert!(dribble(&mut h2, every).await, "h2 over TLS");

    // h2c, and the protocol guess before it, on the plain port.
    let mut h2c = TcpStream::connect(server.addr).await.unwrap();
    assert!(dribble(&mut h2c, every).await, "h2c");

    assert_eq!(
        cut_count(&server, "https listener", "no_request").await,
        1.0
    );
    assert_eq!(cut_count(&server, "http listener", "no_request").await, 1.0);
}

#[tokio::test]
async fn a_slow_handshake_has_its_own_deadline() {
    let ca = TestCa::new();
    let site = manual_site(
        &ca,
        "\n[limits]\nhandshake_timeout = \"10s\"\nheader_read_timeout = \"2s\"\n",
    );
    let server = Binary::serve(&site, &[]);
    let tcp = TcpStream::connect(server.https.unwrap()).await.unwrap();
    // A client slower than header_read_timeout to finish its handshake, and
    // well within handshake_timeout: the wait for its request starts after.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stream = tls_handshake(tcp, "blog.test", &ca.root_pem, &[b"h2"])
        .await
        .expect("handshake");
    let mut client = TlsClient::new(stream).await;
    assert_eq!(client.get("blog.test", "/").await.status, 200);
    client.close().await;
}

#[tokio::test]
async fn hundreds_of_idle_h2_connections_do_not_lock_out_a_reader() {
    const ATTACKERS: usize = 300;
    // Deadlines far beyond the test: only making room for newcomers can
    // serve the reader.
    let site = SiteDir::empty(
        "\n[limits]\nmax_connections = 100\nheader_read_timeout = \"5m\"\nidle_timeout = \"5m\"\n",
    );
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;

    let mut usual = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get(addr, "/").await.status, 200);
        usual = usual.max(started.elapsed());
    }

    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| tokio::spawn(hold_a_connection(addr)))
        .collect();
    // The reader comes back once the attack has filled the table.
    eventually("the attack fills the table", || async {
        open_connections(&server).await >= 100.0
    })
    .await;

    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        let reply = tokio::time::timeout(Duration::from_secs(3), get(addr, "/"))
            .await
            .unwrap_or_else(|_| {
                panic!("request {i} not answered within 3 s under attack (usual: {usual:?})")
            });
        assert_eq!(reply.status, 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for attacker in &attackers {
        attacker.abort();
    }
    let evicted = cut_count(&server, "http listener", "evicted").await;
    assert!(evicted >= 20.0, "{evicted} connections made room");
    println!("usual latency {usual:?}, slowest under attack {slowest:?}");
}

/// An attacker's connection: the preface a byte a second, then silence, and
/// a new connection a second after the server closes one.
async fn hold_a_connection(addr: SocketAddr) {
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr).await
            && !dribble(&mut stream, Duration::from_secs(1)).await
        {
            let _ = stream.read(&mut [0u8; 64]).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_response_read_a_few_bytes_at_a_time_is_cut() {
    let site = SiteDir::empty("\n[limits]\nidle_timeout = \"2s\"\n");
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(site.path("static/big.bin"), &big).unwrap();
    let server = Binary::serve(&site, &[]);

    // h2c with prior knowledge; every stream starts with a 64-byte window.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 64]));
    // GET /big.bin, authority blog.test: HPACK static entries and literals.
    let mut head = vec![0x82, 0x86, 0x44, 8];
    head.extend(b"/big.bin");
    head.extend([0x41, 9]);
    head.extend(b"blog.test");
    hello.extend(frame(0x1, 0x5, 1, &head));
    stream.write_all(&hello).await.unwrap();

    let (mut reader, mut writer) = stream.into_split();
    let received = tokio::spawn(async move {
        let mut data = 0usize;
        loop {
            let mut header = [0u8; 9];
            if reader.read_exact(&mut header).await.is_err() {
                return (data, false);
            }
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; len];
            if reader.read_exact(&mut payload).await.is_err() {
                return (data, false);
            }
            match header[3] {
                0x0 => data += len,
                0x7 => return (data, true),
                _ => {}
            }
        }
    });
    // A live peer: settings acknowledged, the window opened by 64 bytes
    // every 300 ms (about 200 bytes a second).
    writer.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
    let started = Instant::now();
    while !received.is_finished() && started.elapsed() < DEADLINE {
        let _ = writer
            .write_all(&frame(0x8, 0, 1, &64u32.to_be_bytes()))
            .await;
        let _ = writer
            .write_all(&frame(0x8, 0, 0, &64u32.to_be_bytes()))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(received.is_finished(), "still served after {DEADLINE:?}");
    let (data, goaway) = received.await.unwrap();
    assert!(data < big.len(), "the whole file arrived");
    println!("cut after {data} bytes (GOAWAY: {goaway})");
    assert_eq!(cut_count(&server, "http listener", "stalled").await, 1.0);
    // Counted as the connection took it: a piece, not the whole file.
    let counted = value(
        &metrics(&server).await,
        "quire_http_response_body_bytes_total",
        &[],
    );
    assert!(counted < (256 << 10) as f64, "{counted} body bytes counted");
    assert_eq!(get(server.addr, "/big.bin").await.body.len(), big.len());
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

async fn metrics(server: &Binary) -> prometheus_parse::Scrape {
    let metrics = server.metrics.expect("metrics listener");
    scrape(&request(metrics, "GET", "/metrics", &[]).await.text())
}

async fn open_connections(server: &Binary) -> f64 {
    let labels = [("listener", "http listener")];
    value(&metrics(server).await, "quire_open_connections", &labels)
}

async fn cut_count(server: &Binary, listener: &str, reason: &str) -> f64 {
    let labels = [("listener", listener), ("reason", reason)];
    sample(
        &metrics(server).await,
        "quire_connections_cut_total",
        &labels,
    )
    .unwrap_or(0.0)
}
