//! TLS clients: a handshake trusting only a given root, what the server
//! presented (its names and serial), and GET requests over HTTP/1.1 or HTTP/2 as ALPN chose.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::DEADLINE;
use super::http::Reply;

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

/// The serial of the certificate the server at `addr` presents for
/// `server_name`, trusting only `root_pem`; an error while it presents
/// none signed under that root.
pub async fn served_serial(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
) -> std::io::Result<String> {
    let stream = tls_connect(addr, server_name, root_pem, &[]).await?;
    Ok(peer_certificate(&stream).1)
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
