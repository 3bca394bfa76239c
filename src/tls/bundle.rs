//! A certificate chain with its private key, parsed from PEM and checked before
//! it may serve: the key matches, the chain is in order, it is valid now, and it
//! names every configured domain. Each failure says what to do. A bundle knows
//! where it came from ([`CertOrigin`]), so nobody guesses it from its issuer.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::*;

use crate::names::SiteName;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}; check the path and that quire may read it")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no certificate found; the file must hold PEM `BEGIN CERTIFICATE` blocks, the site's certificate first, then its issuers"
    )]
    NoCertificate,
    #[error(
        "no private key found; the key file must hold one PEM `PRIVATE KEY` block (PKCS#8, RSA or EC)"
    )]
    NoKey,
    #[error("the private key is not usable ({0}); use an ECDSA P-256/P-384, Ed25519 or RSA key")]
    UnsupportedKey(#[source] rustls::Error),
    #[error(
        "the private key does not belong to the certificate; use the key file from the same issuance as the certificate"
    )]
    KeyMismatch,
    #[error(
        "the certificate file cannot be parsed ({0}); the file must hold PEM certificates only"
    )]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error(
        "certificate {index} of the chain cannot be parsed ({source}); the file must hold PEM certificates only"
    )]
    Parse {
        index: usize,
        source: x509_parser::nom::Err<X509Error>,
    },
    #[error(
        "certificate {0} of the chain is not signed by certificate {1}; order the chain as: site certificate, then each issuer"
    )]
    ChainOrder(usize, usize),
    #[error("the certificate expired on {}; renew it", crate::clock::for_people(*.0))]
    Expired(DateTime<Utc>),
    #[error(
        "an issuer certificate in the chain expired on {}, so clients cannot verify it; renew, or put the CA's current intermediate in the chain",
        crate::clock::for_people(*.0)
    )]
    IssuerExpired(DateTime<Utc>),
    #[error(
        "the certificate is not valid before {}; check the system clock, or wait",
        crate::clock::for_people(*.0)
    )]
    NotYetValid(DateTime<Utc>),
    #[error(
        "the certificate does not cover {missing}; it names {names}; get one that covers every domain in [domains] names"
    )]
    NamesMissing { missing: String, names: String },
    #[error("cannot make the temporary certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertOrigin {
    /// The self-signed stand-in served until the first real certificate
    /// ([`CertBundle::temporary`]).
    Temporary,
    /// PEM from an ACME CA, or read back from the store that keeps it
    /// ([`CertBundle::from_pem`]).
    Issued,
    /// The operator's files in manual mode ([`CertBundle::from_files`]).
    Manual,
}

/// A parsed chain and key, ready for the certificate resolver.
#[derive(Clone)]
pub struct CertBundle {
    pub certified: Arc<CertifiedKey>,
    /// DNS names of the site certificate (subject alternative names).
    pub names: Vec<String>,
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The earliest expiry among the issuers in the chain (None for a bare leaf):
    /// a chain whose intermediate expired no longer verifies for clients.
    pub issuers_not_after: Option<DateTime<Utc>>,
    /// Serial number and authority key identifier of the leaf, which name it
    /// for ACME Renewal Information (RFC 9773).
    pub serial: Vec<u8>,
    pub authority_key_id: Option<Vec<u8>>,
    pub origin: CertOrigin,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("names", &self.names)
            .field("issuer", &self.issuer)
            .field("not_after", &self.not_after)
            .field("origin", &self.origin)
            .finish()
    }
}

fn time(t: ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default()
}

impl CertBundle {
    /// Reads a chain and a key from the operator's PEM files.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<CertBundle, BundleError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| BundleError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let bundle = CertBundle::from_pem(&read(cert_file)?, &read(key_file)?)?;
        Ok(CertBundle {
            origin: CertOrigin::Manual,
            ..bundle
        })
    }

    /// Parses PEM text as issued by a CA and checks that the parts fit together
    /// (key matches the certificate, chain in order). Dates and names are
    /// checked by [`CertBundle::check`].
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertBundle, BundleError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(BundleError::Pem)?;
        if chain.is_empty() {
            return Err(BundleError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| BundleError::NoKey)?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(BundleError::UnsupportedKey)?;
        let certified = CertifiedKey::new(chain.clone(), signing);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(BundleError::KeyMismatch);
            }
            // Unknown means rustls cannot tell for this key type; the handshake will.
            Err(_) => {}
        }

        let parsed: Vec<X509Certificate> = chain
            .iter()
            .enumerate()
            .map(|(i, der)| {
                X509Certificate::from_der(der)
                    .map(|(_, cert)| cert)
                    .map_err(|source| BundleError::Parse {
                        index: i + 1,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        for (i, pair) in parsed.windows(2).enumerate() {
            let (cert, issuer) = (&pair[0], &pair[1]);
            if cert.issuer() != issuer.subject()
                || cert.verify_signature(Some(issuer.public_key())).is_err()
            {
                return Err(BundleError::ChainOrder(i + 1, i + 2));
            }
        }
        let leaf = &parsed[0];
        let mut names: Vec<String> = leaf
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            // Old certificates carry the name only in the subject's common name.
            names.extend(
                leaf.subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .map(str::to_ascii_lowercase),
            );
        }
        let authority_key_id =
            leaf.extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                    }
                    _ => None,
                });
        Ok(CertBundle {
            certified: Arc::new(certified),
            names,
            issuer: leaf.issuer().to_string(),
            not_before: time(leaf.validity().not_before),
            not_after: time(leaf.validity().not_after),
            issuers_not_after: parsed[1..]
                .iter()
                .map(|c| time(c.validity().not_after))
                .min(),
            serial: leaf.raw_serial().to_vec(),
            authority_key_id,
            origin: CertOrigin::Issued,
        })
    }

    /// A self-signed certificate for `domains`, valid for a day from `now`.
    /// It serves until the first real certificate arrives, so the HTTPS port
    /// is never closed; browsers warn, which is the truth.
    pub fn temporary(
        domains: &[impl std::fmt::Display],
        now: DateTime<Utc>,
    ) -> Result<CertBundle, BundleError> {
        let (chain, key) = self_signed_pem(domains, now)?;
        let bundle = CertBundle::from_pem(chain.as_bytes(), key.as_bytes())?;
        Ok(CertBundle {
            origin: CertOrigin::Temporary,
            ..bundle
        })
    }

    /// Whether the certificate names `domain` (directly or by a wildcard).
    pub fn covers(&self, domain: &str) -> bool {
        self.names.iter().any(|name| match name.strip_prefix("*.") {
            Some(parent) => domain
                .split_once('.')
                .is_some_and(|(_, rest)| rest == parent),
            None => name == domain,
        })
    }

    /// Whether the certificate names `name`: a host directly or by a
    /// wildcard, a wildcard only by the same wildcard.
    pub fn covers_name(&self, name: &SiteName) -> bool {
        match name {
            SiteName::Host(host) => self.covers(host.as_str()),
            SiteName::Wildcard(_) => self.names.contains(&name.to_string()),
        }
    }

    /// Checks dates against `now` and that every domain is covered.
    pub fn check(&self, domains: &[SiteName], now: DateTime<Utc>) -> Result<(), BundleError> {
        if now > self.not_after {
            return Err(BundleError::Expired(self.not_after));
        }
        if let Some(expired) = self.issuers_not_after.filter(|t| now > *t) {
            return Err(BundleError::IssuerExpired(expired));
        }
        if now < self.not_before {
            return Err(BundleError::NotYetValid(self.not_before));
        }
        let missing: Vec<String> = domains
            .iter()
            .filter(|d| !self.covers_name(d))
            .map(SiteName::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(BundleError::NamesMissing {
                missing: missing.join(", "),
                names: self.names.join(", "),
            });
        }
        Ok(())
    }
}

/// The common name of the temporary certificate, for people who look at it.
const TEMPORARY_CERT_NAME: &str = "quire temporary certificate";

/// The temporary certificate as PEM (chain, key).
fn self_signed_pem(
    domains: &[impl std::fmt::Display],
    now: DateTime<Utc>,
) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let names: Vec<String> = domains.iter().map(ToString::to_string).collect();
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, TEMPORARY_CERT_NAME);
    let start = now - chrono::Duration::minutes(5);
    params.not_before = to_offset(start);
    params.not_after = to_offset(now + chrono::Duration::days(1));
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn to_offset(t: DateTime<Utc>) -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .unwrap_or(::time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_certificate_says_so_and_a_loaded_one_does_not() {
        let now = Utc::now();
        let domains = ["blog.test".parse::<SiteName>().unwrap()];
        let temporary = CertBundle::temporary(&domains, now).unwrap();
        assert_eq!(temporary.origin, CertOrigin::Temporary);
        assert!(temporary.check(&domains, now).is_ok());
        // The same certificate read back from its files is not the stand-in:
        // what it is comes from how it was made, not from its issuer's name.
        let (chain, key) = self_signed_pem(&domains, now).unwrap();
        let loaded = CertBundle::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(loaded.origin, CertOrigin::Issued);
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, &chain).unwrap();
        std::fs::write(&key_file, &key).unwrap();
        let manual = CertBundle::from_files(&cert_file, &key_file).unwrap();
        assert_eq!(manual.origin, CertOrigin::Manual);
    }
}
