//! The certificate resolver: the live set of certificates behind an atomic
//! pointer. A new set is swapped in whole; handshakes in progress keep the one
//! they started with and no connection is dropped. SNI picks the certificate;
//! an unknown or missing name gets the canonical one.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::bundle::CertBundle;

struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    canonical: Arc<CertifiedKey>,
}

impl CertSet {
    fn new(bundles: &[CertBundle]) -> CertSet {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        // Earlier bundles win a name, so the canonical certificate comes first.
        for bundle in bundles.iter().rev() {
            for name in &bundle.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.insert(parent.to_string(), bundle.certified.clone()),
                    None => exact.insert(name.clone(), bundle.certified.clone()),
                };
            }
        }
        CertSet {
            exact,
            wildcard,
            canonical: bundles[0].certified.clone(),
        }
    }

    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return self.canonical.clone();
        };
        self.exact
            .get(&name)
            .or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
            .unwrap_or(&self.canonical)
            .clone()
    }
}

/// Shared by the TLS listener (reads) and whoever obtains certificates (writes).
pub struct CertResolver {
    current: ArcSwap<CertSet>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertResolver")
    }
}

impl CertResolver {
    /// A resolver serving `bundles`; the first is the canonical certificate.
    pub fn new(canonical: CertBundle) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: ArcSwap::from_pointee(CertSet::new(&[canonical])),
        })
    }

    /// Replaces every certificate at once; the first is the canonical one.
    pub fn install(&self, bundles: &[CertBundle]) {
        assert!(
            !bundles.is_empty(),
            "a resolver needs at least one certificate"
        );
        self.current.store(Arc::new(CertSet::new(bundles)));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(hello.server_name()))
    }
}
