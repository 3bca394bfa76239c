//! TLS: certificate bundles and their checks, the hot-swappable resolver, the
//! rustls server configuration (TLS 1.2/1.3, ALPN h2 and http/1.1, session
//! tickets), and manual mode's certificate files. The accept loop that serves
//! it is `crate::net`'s.

pub mod bundle;
pub mod manual;
pub mod resolver;

use std::sync::Arc;

pub use bundle::{BundleError, CertBundle, CertOrigin};
pub use resolver::{ACME_TLS_ALPN, CertResolver};

/// The rustls configuration of the HTTPS listener.
pub fn server_config(
    resolver: Arc<CertResolver>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // acme-tls/1 last: only a tls-alpn-01 validator offers it, and the listener
    // closes such a connection right after the handshake.
    config.alpn_protocols = vec![
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
        resolver::ACME_TLS_ALPN.to_vec(),
    ];
    // Resumption: stateless tickets for TLS 1.3 and 1.2, plus a session cache.
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(Arc::new(config))
}
