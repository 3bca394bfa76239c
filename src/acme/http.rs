//! The HTTPS client that instant-acme talks through. Ours rather than the
//! crate's default so that it can trust an extra root (the local CA, or a test
//! CA such as Pebble), bound every request in time, and remember the CA's last
//! `Retry-After`, which instant-acme reads but does not expose.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error_chain::with_causes;

/// One ACME request may take this long, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most [`AcmeHttp::get_small`] reads: a directory is a few hundred bytes.
const MAX_SMALL_BODY: usize = 64 * 1024;

/// Which certificates the client trusts for the CA's HTTPS endpoint.
#[derive(Clone, Debug)]
pub enum AcmeRoots {
    /// The system's trust store (Let's Encrypt and other public CAs).
    System,
    /// Only these roots, PEM (the local CA; a test CA such as Pebble).
    Pem(String),
}

impl AcmeRoots {
    /// `QUIRE_ACME_ROOTS` names a PEM file of extra roots to trust instead of
    /// the system's, for CAs on a private PKI (Pebble in tests).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<AcmeRoots> {
        match env("QUIRE_ACME_ROOTS") {
            Some(path) => Ok(AcmeRoots::Pem(std::fs::read_to_string(&path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read QUIRE_ACME_ROOTS={path}: {e}; point it at a PEM file of the CA's root, or unset it"
                )
            })?)),
            None => Ok(AcmeRoots::System),
        }
    }

    /// The roots a `[[tls.issuers]]` table names, else as [`AcmeRoots::from_env`].
    pub fn for_issuer(
        roots: Option<&std::path::Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<AcmeRoots> {
        match roots {
            Some(path) => Ok(AcmeRoots::Pem(std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the roots file {} of [[tls.issuers]]: {e}; point roots at a PEM file of the CA's root, or remove it to trust the system's",
                    path.display()
                )
            })?)),
            None => AcmeRoots::from_env(env),
        }
    }
}

#[derive(Clone)]
pub struct AcmeHttp {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    retry_after: Arc<Mutex<Option<SystemTime>>>,
    /// The `rel="alternate"` links of the last response that had any: the
    /// certificate download's other chains.
    alternates: Arc<Mutex<Vec<String>>>,
    metrics: crate::metrics::Metrics,
}

impl AcmeHttp {
    pub fn new(roots: &AcmeRoots, metrics: crate::metrics::Metrics) -> anyhow::Result<AcmeHttp> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = match roots {
            AcmeRoots::System => {
                // The platform verifier builds on the process-wide provider.
                let _ = rustls::crypto::ring::default_provider().install_default();
                HttpsConnectorBuilder::new()
                    .try_with_platform_verifier()
                    .map_err(|e| anyhow::anyhow!("cannot load the system's trusted roots: {e}"))?
            }
            AcmeRoots::Pem(pem) => {
                let mut store = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    store.add(cert?)?;
                }
                anyhow::ensure!(!store.is_empty(), "the ACME root file holds no certificate");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(store)
                    .with_no_client_auth();
                HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        // Without TCP_NODELAY a request's second TLS record waits for the
        // ACK of its first, which the CA delays by up to 40 ms: every ACME
        // round trip paid that.
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        Ok(AcmeHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
            retry_after: Arc::default(),
            alternates: Arc::default(),
            metrics,
        })
    }

    /// The body of a POST of a signed request (JWS, RFC 8555 section 6.2).
    pub async fn post_jose(&self, url: &url::Url, jws: String) -> anyhow::Result<Bytes> {
        let request = http::Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/jose+json")
            .body(BodyWrapper::from(jws.into_bytes()))?;
        self.body_of(url, request).await
    }

    /// A fresh nonce from the CA's `newNonce` URL.
    pub async fn nonce(&self, new_nonce: &url::Url) -> anyhow::Result<String> {
        let request =
            http::Request::head(new_nonce.as_str()).body(BodyWrapper::from(Vec::new()))?;
        let response = self.request(request).await?;
        response
            .parts
            .headers
            .get("replay-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("{new_nonce} sent no Replay-Nonce"))
    }

    /// The CA's other chains for the certificate just downloaded.
    pub fn take_alternates(&self) -> Vec<String> {
        std::mem::take(&mut *self.alternates.lock().expect("alternates poisoned"))
    }

    async fn body_of(
        &self,
        url: &url::Url,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> anyhow::Result<Bytes> {
        let mut response = self.request(request).await?;
        anyhow::ensure!(
            response.parts.status.is_success(),
            "{url} answered {}",
            response.parts.status
        );
        let body = instant_acme::BytesBody::into_bytes(response.body.as_mut())
            .await
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        anyhow::ensure!(body.len() <= 64 * 1024, "{url} sent more than 64 KiB");
        Ok(body)
    }

    /// How long the CA asked us to wait, as of its last response that said so.
    pub fn take_retry_after(&self) -> Option<Duration> {
        let at = self
            .retry_after
            .lock()
            .expect("retry-after poisoned")
            .take()?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// The targets of `Link: <url>;rel="alternate"` headers (RFC 8288), at most
/// a few, each a bounded URL.
fn alternate_links(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|link| {
            let (target, params) = link.trim().split_once('>')?;
            let target = target.strip_prefix('<')?;
            let alternate = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"alternate\"" || p == "rel=alternate"
            });
            (alternate && target.len() <= 2048).then(|| target.to_string())
        })
        .take(16)
        .collect()
}

impl AcmeHttp {
    /// GETs `url` (a CA's directory) outside instant-acme, which reads it
    /// only with an account: its body, bounded in size and, with the
    /// connection, in time.
    pub async fn get_small(&self, url: &url::Url) -> anyhow::Result<Bytes> {
        let request = http::Request::get(url.as_str()).body(BodyWrapper::default())?;
        let read = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach {url}: {}", with_causes(&e)))?;
            anyhow::ensure!(
                response.status().is_success(),
                "{url} answered {}",
                response.status()
            );
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) =
                std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx))
                    .await
            {
                if let Ok(data) = frame?.into_data() {
                    bytes.extend_from_slice(&data);
                    anyhow::ensure!(
                        bytes.len() <= MAX_SMALL_BODY,
                        "{url} sent more than {MAX_SMALL_BODY} bytes"
                    );
                }
            }
            anyhow::Ok(Bytes::from(bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, read)
            .await
            .map_err(|_| anyhow::anyhow!("{url}: no answer within {REQUEST_TIMEOUT:?}"))?
    }
}

fn parse_retry_after(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(secs) => Some(SystemTime::now() + Duration::from_secs(secs)),
        Err(_) => httpdate::parse_http_date(value).ok(),
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let uri = req.uri().clone();
        let response = self.client.request(req);
        let retry_after = self.retry_after.clone();
        let alternates = self.alternates.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let answered = tokio::time::timeout(REQUEST_TIMEOUT, response).await;
            metrics.acme_request(started.elapsed());
            let response = match answered {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    return Err(instant_acme::Error::Other(
                        format!("{uri}: {}", with_causes(&e)).into(),
                    ));
                }
                Err(_) => {
                    return Err(instant_acme::Error::Other(
                        format!("{uri}: no answer within {REQUEST_TIMEOUT:?}").into(),
                    ));
                }
            };
            let links = alternate_links(response.headers());
            if !links.is_empty() {
                *alternates.lock().expect("alternates poisoned") = links;
            }
            if let Some(at) = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after)
            {
                *retry_after.lock().expect("retry-after poisoned") = Some(at);
            }
            Ok(BytesResponse::from(response))
        })
    }
}
