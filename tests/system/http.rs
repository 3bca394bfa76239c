//! HTTP behaviour of the real binary: ETags and 304s, compression, HEAD,
//! static files with ranges and caching, methods, traversal attempts, and
//! IPv4 and IPv6 clients on one socket.

use std::io::Read;

use std::net::{Ipv6Addr, SocketAddr};

use crate::support::{Binary, SiteDir, get, raw_response, raw_status_line, request, wait_for_log};

#[tokio::test]
async fn etags_304s_compression_and_head() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;
    let path = "/posts/markdown-tour/";

    let plain = get(addr, path).await;
    let etag = plain.header("etag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag: {etag}"
    );
    assert_eq!(plain.header("vary"), "accept-encoding");
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(plain.header("cache-control"), "public, no-cache");

    let again = request(addr, "GET", path, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);
    let other = request(
        addr,
        "GET",
        path,
        &[("if-none-match", "\"something-else\"")],
    )
    .await;
    assert_eq!(other.status, 200);

    let gz = request(addr, "GET", path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_ne!(gz.header("etag"), etag, "each encoding has its own etag");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain.body);

    let br = request(
        addr,
        "GET",
        path,
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(br.header("content-encoding"), "br");
    let mut unbrotlied = Vec::new();
    brotli::BrotliDecompress(&mut &br.body[..], &mut unbrotlied).unwrap();
    assert_eq!(unbrotlied, plain.body);
    assert!(br.body.len() < gz.body.len() && gz.body.len() < plain.body.len());
    let br_again = request(
        addr,
        "GET",
        path,
        &[
            ("accept-encoding", "br"),
            ("if-none-match", br.header("etag")),
        ],
    )
    .await;
    assert_eq!(br_again.status, 304);

    let head = request(addr, "HEAD", path, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), plain.body.len().to_string());
    assert_eq!(head.header("etag"), etag);
}

#[tokio::test]
async fn static_files_types_ranges_and_caching() {
    let site = SiteDir::example("");
    site.write("static/files/notes.txt", "0123456789");
    let server = Binary::serve(&site, &[]);
    let addr = server.addr;

    let home = get(addr, "/").await.text();
    let style = home
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(
        style.starts_with("/style.") && style.ends_with(".css") && style != "/style.css",
        "{style}"
    );
    let fingerprinted = get(addr, &style).await;
    assert_eq!(fingerprinted.status, 200);
    assert_eq!(
        fingerprinted.header("content-type"),
        "text/css; charset=utf-8"
    );
    assert_eq!(
        fingerprinted.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    let plain = get(addr, "/style.css").await;
    assert_eq!(plain.body, fingerprinted.body);
    assert_eq!(plain.header("cache-control"), "public, max-age=600");
    assert!(
        !get(addr, "/highlight.css").await.body.is_empty(),
        "highlighting theme is served"
    );

    let txt = get(addr, "/files/notes.txt").await;
    assert_eq!(txt.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(txt.header("accept-ranges"), "bytes");
    let last_modified = txt.header("last-modified").to_string();
    httpdate::parse_http_date(&last_modified).expect("Last-Modified is an HTTP date");
    let cached = request(
        addr,
        "GET",
        "/files/notes.txt",
        &[("if-modified-since", &last_modified)],
    )
    .await;
    assert_eq!(cached.status, 304);

    let part = request(addr, "GET", "/files/notes.txt", &[("range", "bytes=2-5")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), "bytes 2-5/10");
    assert_eq!(&part.body[..], b"2345");
    let tail = request(addr, "GET", "/files/notes.txt", &[("range", "bytes=-3")]).await;
    assert_eq!(&tail.body[..], b"789");
    let beyond = request(addr, "GET", "/files/notes.txt", &[("range", "bytes=50-")]).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), "bytes */10");
    let changed = request(
        addr,
        "GET",
        "/files/notes.txt",
        &[("range", "bytes=0-1"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(
        changed.status, 200,
        "If-Range with an old ETag gets the whole file"
    );
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let status = raw_status_line(server.addr, big.as_bytes()).await;
    assert!(
        status.is_empty() || status.starts_with("HTTP/1.1 431"),
        "{status}"
    );
    let fine = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(4 * 1024)
    );
    assert!(
        raw_status_line(server.addr, fine.as_bytes())
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn only_get_and_head_are_allowed() {
    let site = SiteDir::example("");
    let server = Binary::serve(&site, &[]);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let reply = request(server.addr, method, "/", &[]).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), "GET, HEAD");
    }
}

#[tokio::test]
async fn traversal_attempts_never_leave_the_site() {
    let site = SiteDir::example("");
    // A secret next to the site folders, which no request may reach.
    site.write("secret.txt", "top secret");
    let server = Binary::serve(&site, &[]);
    let attempts: &[&[u8]] = &[
        b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /../quire.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /static/../../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /%2e%2e%2fsecret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /..%5csecret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /%252e%252e/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /style.css%00.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET //etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /images/../../../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ];
    for attempt in attempts {
        let status = raw_status_line(server.addr, attempt).await;
        let shown =
            String::from_utf8_lossy(attempt.split(|&b| b == b'\r').next().unwrap()).into_owned();
        assert!(
            status.starts_with("HTTP/1.1 404") || status.starts_with("HTTP/1.1 400"),
            "{shown} -> {status}"
        );
    }
    // A NUL byte in the request line is malformed HTTP; the server refuses it.
    let status = raw_status_line(
        server.addr,
        b"GET /a\0b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        status.is_empty() || status.starts_with("HTTP/1.1 400"),
        "{status}"
    );
    // And the server is still fine.
    assert_eq!(get(server.addr, "/").await.status, 200);
}

#[tokio::test]
async fn redirects_never_leave_the_site() {
    let site = SiteDir::empty("");
    site.write("content/about.md", "+++\ntitle = \"About\"\n+++\nHello.\n");
    let server = Binary::serve(&site, &[]);
    // A browser reads a Location of `//about/` as `https://about/`.
    for (path, expected) in [
        ("//about", "/about/"),
        ("///about", "/about/"),
        ("//about?x=1", "/about/?x=1"),
        ("/%2F%2Fabout", "/about/"),
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: blog.test\r\nConnection: close\r\n\r\n");
        let answer = raw_response(server.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 301"), "{path} -> {answer}");
        let location = answer
            .lines()
            .find_map(|line| line.strip_prefix("location: "))
            .unwrap_or_default();
        assert_eq!(location, expected, "{path}");
    }
}

#[tokio::test]
async fn every_address_means_ipv6_and_ipv4_and_clients_are_named_plainly() {
    let site = SiteDir::example("");
    site.write(
        "quire.toml",
        "[site]\ntitle = \"Test blog\"\nbase_url = \"https://blog.test/\"\n\n[listen]\nhttp = \"[::]:0\"\nmetrics = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n[tls]\nmode = \"off\"\n",
    );
    let server = Binary::serve_with_env(
        &site,
        &[],
        &[("RUST_LOG", "quire=info,quire::request=debug")],
    );
    let port = server.addr.port();
    // An IPv4 client reaches the same socket, and is 127.0.0.1 (not
    // ::ffff:127.0.0.1), so the proxy rule for 127.0.0.1 applies to it.
    let proxied = [("x-forwarded-for", "203.0.113.7")];
    let ipv4 = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(request(ipv4, "GET", "/", &proxied).await.status, 200);
    wait_for_log(&server, "client=\"203.0.113.7\"");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        assert!(server.addr.ip().is_unspecified() && server.addr.is_ipv6());
        let ipv6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        assert_eq!(request(ipv6, "GET", "/about/", &[]).await.status, 200);
        wait_for_log(&server, "client=\"::1\"");
    } else {
        // A machine without IPv6 gets IPv4 alone, and is told so.
        wait_for_log(&server, "IPv6 is not available here");
    }
    assert!(!server.log().contains("::ffff:"), "{}", server.log());
}
