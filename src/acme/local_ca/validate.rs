//! Challenge validation: one bounded attempt at http-01 (RFC 8555 §8.3) or
//! tls-alpn-01 (RFC 8737) against this machine's own listeners, whatever the
//! identifier resolves to, since the local CA only certifies local names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x509_parser::prelude::*;

use super::problem::{Problem, ProblemType};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 8 * 1024;
/// Status line and headers may take this much beyond the body.
const MAX_HEAD: usize = 8 * 1024;
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

fn connection(detail: String) -> Problem {
    Problem::new(ProblemType::Connection, detail)
}

fn incorrect(detail: String) -> Problem {
    Problem::new(ProblemType::IncorrectResponse, detail)
}

pub async fn http01(
    target: SocketAddr,
    identifier: &str,
    token: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let url = format!("http://{identifier}/.well-known/acme-challenge/{token}");
    let body = tokio::time::timeout(TIMEOUT, fetch(target, identifier, token, &url))
        .await
        .map_err(|_| {
            connection(format!(
                "{url} (at {target}) did not answer within 5 seconds"
            ))
        })??;
    let body = String::from_utf8_lossy(&body);
    if body.trim() == key_authorization {
        Ok(())
    } else {
        Err(incorrect(format!(
            "{url} answered {:?}, not the key authorization {key_authorization:?}",
            truncate(body.trim())
        )))
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(100) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

async fn fetch(
    target: SocketAddr,
    identifier: &str,
    token: &str,
    url: &str,
) -> Result<Vec<u8>, Problem> {
    let unreachable =
        |e: std::io::Error| connection(format!("cannot fetch {url} from {target}: {e}"));
    let mut stream = TcpStream::connect(target).await.map_err(unreachable)?;
    let request = format!(
        "GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {identifier}\r\n\
         User-Agent: quire-local-ca\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(unreachable)?;
    let mut response = Vec::new();
    (&mut stream)
        .take((MAX_HEAD + MAX_BODY + 1) as u64)
        .read_to_end(&mut response)
        .await
        .map_err(unreachable)?;
    if response.len() > MAX_HEAD + MAX_BODY {
        return Err(incorrect(format!("{url} answered more than 8 KiB")));
    }
    let bad = |what: &str| Problem::unauthorized(format!("{url} answered {what}"));
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("without a complete HTTP response head"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let body = &response[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad("with no HTTP status line"))?;
    if status != 200 {
        return Err(bad(&format!(
            "HTTP {status}; it must answer 200 with the key authorization (redirects are not followed)"
        )));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_ascii_lowercase())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        dechunk(body).ok_or_else(|| bad("a malformed chunked body"))?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("a bad Content-Length"))?;
        body.get(..length)
            .ok_or_else(|| bad("fewer bytes than its Content-Length"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    if body.len() > MAX_BODY {
        return Err(incorrect(format!("{url} answered more than 8 KiB")));
    }
    Ok(body)
}

fn dechunk(mut input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = input.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&input[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        input = &input[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(input.get(..size)?);
        input = input.get(size + 2..)?;
    }
}

/// Accepts any certificate: tls-alpn-01 certificates are self-signed by design;
/// what matters is checked after the handshake. Handshake signatures are still
/// verified, so the server must hold the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    /// Verifies with the certificate's key directly: webpki would refuse the
    /// certificate itself for its critical acmeIdentifier extension.
    fn verify_handshake(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let (_, parsed) = X509Certificate::from_der(cert).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let key = parsed.public_key().subject_public_key.data.as_ref();
        let algorithms = self
            .0
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .ok_or_else(bad)?;
        if algorithms
            .iter()
            .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
        {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(bad())
        }
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub async fn tls_alpn01(
    target: SocketAddr,
    identifier: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let der = tokio::time::timeout(TIMEOUT, handshake(target, identifier))
        .await
        .map_err(|_| {
            connection(format!(
                "the TLS handshake for {identifier} at {target} did not finish within 5 seconds"
            ))
        })??;
    check_certificate(&der, identifier, key_authorization)
}

async fn handshake(target: SocketAddr, identifier: &str) -> Result<Vec<u8>, Problem> {
    let tls_problem = |detail: String| Problem::new(ProblemType::Tls, detail);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| {
            Problem::new(
                ProblemType::ServerInternal,
                format!("cannot set up the tls-alpn-01 client: {e}"),
            )
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    let name = ServerName::try_from(identifier.to_owned())
        .map_err(|_| Problem::malformed(format!("{identifier} is not a DNS name")))?;
    let tcp = TcpStream::connect(target)
        .await
        .map_err(|e| connection(format!("cannot connect to {target} for {identifier}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            tls_problem(format!(
                "TLS handshake with {target} for {identifier} (ALPN acme-tls/1) failed: {e}"
            ))
        })?;
    let (_, connection) = stream.get_ref();
    if connection.alpn_protocol() != Some(ACME_TLS_ALPN) {
        return Err(tls_problem(format!(
            "{target} did not negotiate ALPN acme-tls/1 for {identifier}"
        )));
    }
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.to_vec())
        .ok_or_else(|| tls_problem(format!("{target} sent no certificate for {identifier}")))
}

/// RFC 8737 §3: exactly the identifier as SAN, and a critical acmeIdentifier
/// extension holding the OCTET STRING of SHA-256(key authorization).
pub(super) fn check_certificate(
    der: &[u8],
    identifier: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| incorrect(format!("the tls-alpn-01 certificate cannot be parsed: {e}")))?;
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san.value.general_names.clone(),
        _ => Vec::new(),
    };
    let only_identifier = matches!(names.as_slice(),
        [GeneralName::DNSName(name)] if name.eq_ignore_ascii_case(identifier));
    if !only_identifier {
        return Err(incorrect(format!(
            "the tls-alpn-01 certificate must name exactly {identifier} as its one subjectAltName"
        )));
    }
    let extension = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER_OID)
        .ok_or_else(|| {
            incorrect("the tls-alpn-01 certificate lacks the acmeIdentifier extension".into())
        })?;
    if !extension.critical {
        return Err(incorrect(
            "the acmeIdentifier extension of the tls-alpn-01 certificate is not critical".into(),
        ));
    }
    let expected = [
        &[0x04, 0x20][..],
        &Sha256::digest(key_authorization.as_bytes()),
    ]
    .concat();
    if extension.value != expected.as_slice() {
        return Err(incorrect(
            "the acmeIdentifier extension does not hold SHA-256 of the key authorization".into(),
        ));
    }
    Ok(())
}
