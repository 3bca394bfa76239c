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
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: preferred_suites(),
        ..rustls::crypto::ring::default_provider()
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.ignore_client_order = true;
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

/// The cipher suites in the server's order of preference, which it applies
/// whatever the client's order. AES-128-GCM first: as strong as a web
/// server needs, fewer rounds than AES-256, and its SHA-256 key schedule runs
/// on the SHA instructions x86 and ARM servers have, where SHA-384's has none
/// (perf, resumed TLS 1.3 connections: a tenth of the CPU went to SHA-384's
/// block function when clients chose AES-256-GCM). ChaCha20 stays for
/// clients without AES hardware that offer nothing else.
fn preferred_suites() -> Vec<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite::*;
    vec![
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::DnsName;
    use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};

    /// Runs a TLS 1.3 handshake in memory from a client that lists `offered`
    /// in its order of preference; the suite the server chose.
    fn negotiated(offered: Vec<rustls::SupportedCipherSuite>) -> rustls::CipherSuite {
        let bundle = CertBundle::temporary(&[DnsName::localhost()], chrono::Utc::now()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(bundle.certified.cert[0].clone()).unwrap();
        let server_config = server_config(CertResolver::new(bundle)).unwrap();
        let client_provider = rustls::crypto::CryptoProvider {
            cipher_suites: offered,
            ..rustls::crypto::ring::default_provider()
        };
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap())
                .unwrap();
        let mut server = rustls::ServerConnection::new(server_config).unwrap();
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        server.negotiated_cipher_suite().unwrap().suite()
    }

    #[test]
    fn the_server_chooses_aes_128_even_when_the_client_prefers_aes_256() {
        let suite = negotiated(vec![TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256]);
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }

    #[test]
    fn a_client_offering_only_aes_256_still_connects() {
        let suite = negotiated(vec![TLS13_AES_256_GCM_SHA384]);
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    }
}
