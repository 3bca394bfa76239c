//! The certificate resolver: the live set of certificates behind an atomic
//! pointer. A new set is swapped in whole; handshakes in progress keep the one
//! they started with and no connection is dropped. SNI picks the certificate;
//! an unknown or missing name gets the canonical one.
//!
//! It also answers ACME tls-alpn-01 (RFC 8737): a handshake offering only the
//! `acme-tls/1` protocol gets the challenge certificate for its name, if one is
//! set, and nothing else. Like the http-01 map, those certificates come in two
//! parts: this node's own, and (in a cluster) every node's, replaced whole by
//! the challenge follower, which builds them off the handshake path.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::bundle::{CertBundle, CertOrigin};

struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    canonical: Arc<CertifiedKey>,
    served: Vec<ServedCert>,
}

/// What a served certificate is, for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCert {
    pub names: Vec<String>,
    pub issuer: String,
    pub not_after: chrono::DateTime<chrono::Utc>,
    /// The self-signed stand-in served until the first real certificate.
    pub temporary: bool,
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
            served: bundles
                .iter()
                .map(|b| ServedCert {
                    names: b.names.clone(),
                    issuer: b.issuer.clone(),
                    not_after: b.not_after,
                    temporary: b.origin == CertOrigin::Temporary,
                })
                .collect(),
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
    /// Counts installs, so that tests and health checks can wait for a swap.
    installs: tokio::sync::watch::Sender<u64>,
    alpn_challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    shared_alpn_challenges: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

/// The ALPN protocol of tls-alpn-01 validation.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

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
            installs: tokio::sync::watch::Sender::new(0),
            alpn_challenges: RwLock::default(),
            shared_alpn_challenges: ArcSwap::default(),
        })
    }

    /// Replaces every certificate at once; the first is the canonical one.
    pub fn install(&self, bundles: &[CertBundle]) {
        assert!(
            !bundles.is_empty(),
            "a resolver needs at least one certificate"
        );
        self.current.store(Arc::new(CertSet::new(bundles)));
        self.installs.send_modify(|n| *n += 1);
    }

    /// Changes with every [`CertResolver::install`].
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.installs.subscribe()
    }

    /// The canonical certificate being served.
    pub fn canonical(&self) -> Arc<CertifiedKey> {
        self.current.load().canonical.clone()
    }

    /// The certificates being served, canonical first.
    pub fn served(&self) -> Vec<ServedCert> {
        self.current.load().served.clone()
    }

    /// Serves a tls-alpn-01 answer of this node's own for `name`.
    pub fn set_alpn_challenge(&self, name: &str, digest: &[u8]) -> anyhow::Result<()> {
        let answer = alpn_challenge_cert(name, digest)?;
        self.alpn_challenges
            .write()
            .expect("alpn challenges poisoned")
            .insert(name.to_ascii_lowercase(), answer);
        Ok(())
    }

    /// Replaces the shared tls-alpn-01 answers whole (lowercase name ->
    /// [`alpn_challenge_cert`]); this node's own answers stay.
    pub fn replace_shared_alpn_challenges(&self, answers: HashMap<String, Arc<CertifiedKey>>) {
        self.shared_alpn_challenges.store(Arc::new(answers));
    }

    /// The tls-alpn-01 answer for `name` (lowercase): this node's own first.
    fn alpn_answer(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let own = self
            .alpn_challenges
            .read()
            .expect("alpn challenges poisoned")
            .get(name)
            .cloned();
        own.or_else(|| self.shared_alpn_challenges.load().get(name).cloned())
    }

    pub fn clear_alpn_challenge(&self, name: &str) {
        self.alpn_challenges
            .write()
            .expect("alpn challenges poisoned")
            .remove(&name.to_ascii_lowercase());
    }
}

/// A tls-alpn-01 answer for `name`: a self-signed certificate carrying the
/// SHA-256 digest of the key authorization. It makes a key, so it is built
/// before a validator connects, never in the handshake.
pub fn alpn_challenge_cert(name: &str, digest: &[u8]) -> anyhow::Result<Arc<CertifiedKey>> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).context("tls-alpn-01 key")?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            return self.alpn_answer(&hello.server_name()?.to_ascii_lowercase());
        }
        Some(self.current.load().pick(hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_refresh_keeps_this_nodes_own_alpn_answers() {
        let now = chrono::Utc::now();
        let localhost = [crate::names::DnsName::localhost()];
        let resolver = CertResolver::new(CertBundle::temporary(&localhost, now).unwrap());
        resolver.set_alpn_challenge("A.example", &[1; 32]).unwrap();
        let own = resolver.alpn_answer("a.example").unwrap();
        let shared = alpn_challenge_cert("b.example", &[2; 32]).unwrap();
        resolver.replace_shared_alpn_challenges(HashMap::from([
            ("a.example".to_string(), shared.clone()),
            ("b.example".to_string(), shared.clone()),
        ]));
        assert!(Arc::ptr_eq(
            &resolver.alpn_answer("a.example").unwrap(),
            &own
        ));
        assert!(Arc::ptr_eq(
            &resolver.alpn_answer("b.example").unwrap(),
            &shared
        ));

        resolver.replace_shared_alpn_challenges(HashMap::new());
        assert!(Arc::ptr_eq(
            &resolver.alpn_answer("a.example").unwrap(),
            &own
        ));
        assert!(resolver.alpn_answer("b.example").is_none());
        resolver.clear_alpn_challenge("a.example");
        assert!(resolver.alpn_answer("a.example").is_none());
    }
}
