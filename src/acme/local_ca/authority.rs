//! The certificate authority behind the local ACME server: the root and the
//! intermediate it signs (kept on disk, created on first use, replaced before
//! they end), the key identifiers of the intermediates it replaced, the leaves
//! issued for finalized orders, and the CA endpoint's own certificate. Both CA
//! certificates carry name constraints, so trusting root.pem trusts it only for
//! the names local mode serves, never for the whole web.

use std::fs::{self, DirBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::*;

use super::files::{LocalCaError, corrupt, read_optional, write_atomic};
use super::retired::{RETIRED_FILE, read_retired, retire};

/// Names every local CA may certify, with all names below them: loopback names
/// and the testing TLD RFC 6761 reserves, which no public CA certifies.
const BASE_NAMES: [&str; 2] = ["localhost", "test"];
/// A year, so that a root.pem copied into a trust store stops mattering soon.
const ROOT_LIFETIME_DAYS: i64 = 365;
/// A root this close to its end is replaced at startup, with its intermediate.
const ROOT_RENEW_DAYS: i64 = 60;
const INTERMEDIATE_LIFETIME_DAYS: i64 = 365;
/// An intermediate this close to its end is replaced at startup, so that leaves
/// issued from it never outlive it.
const INTERMEDIATE_RENEW_DAYS: i64 = 30;

/// A CSR's public key, in the form rcgen signs certificates for.
pub struct LeafKey {
    pub raw: Vec<u8>,
    pub alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for LeafKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

pub struct Authority {
    /// The DNS names (and everything below them) the root may certify.
    permitted: Vec<String>,
    root_pem: String,
    intermediate_pem: String,
    intermediate_der: CertificateDer<'static>,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_not_after: DateTime<Utc>,
    /// Key identifiers of intermediates this CA used before the current one.
    retired: Vec<Vec<u8>>,
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // Filling a buffer from the OS only fails if the OS has no randomness at all.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("operating system randomness unavailable");
    // Positive, and minimal in DER, so the bytes are the serial's content octets.
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    SerialNumber::from_slice(&bytes)
}

fn asn1_time(t: DateTime<Utc>) -> Result<ASN1Time, rcgen::Error> {
    ASN1Time::from_timestamp(t.timestamp()).map_err(|_| rcgen::Error::Time)
}

fn set_validity(
    params: &mut CertificateParams,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(), rcgen::Error> {
    params.not_before = asn1_time(not_before)?.to_datetime();
    params.not_after = asn1_time(not_after)?.to_datetime();
    Ok(())
}

fn ca_params(
    name: String,
    path_len: u8,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "quire");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, not_before, not_after)?;
    Ok(params)
}

fn time(t: ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or_default()
}

fn short_id() -> String {
    let mut bytes = [0u8; 4];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("operating system randomness unavailable");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CA certificate's subject key identifier.
fn subject_key_id(der: &[u8]) -> Option<Vec<u8>> {
    let (_, x509) = X509Certificate::from_der(der).ok()?;
    x509.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

/// A certificate and key pair read back from PEM, checked to belong together.
struct Loaded {
    der: CertificateDer<'static>,
    key: KeyPair,
}

fn load_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<Loaded, LocalCaError> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| corrupt(cert_path, format!("no PEM certificate: {e}")))?;
    let key = KeyPair::from_pem(key_pem)
        .map_err(|e| corrupt(key_path, format!("no usable PEM private key: {e}")))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| corrupt(cert_path, format!("cannot parse: {e}")))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(corrupt(
            key_path,
            format!("the key does not belong to {}", cert_path.display()),
        ));
    }
    Ok(Loaded { der, key })
}

/// Whether `name` is `base` or below it, as a DNS name constraint reads
/// (RFC 5280 §4.2.1.10); a base with a leading dot admits only names below it.
fn within(name: &str, base: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let base = base.to_ascii_lowercase();
    match base.strip_prefix('.') {
        Some(_) => name.ends_with(&base),
        None => name == base || name.ends_with(&format!(".{base}")),
    }
}

/// The base names and the given domains, without those another entry already covers.
fn permitted_names(domains: &[String]) -> Vec<String> {
    let mut names: Vec<String> = BASE_NAMES.iter().map(|n| n.to_string()).collect();
    let mut domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    domains.sort_by_key(|d| d.matches('.').count());
    for domain in domains {
        if !names.iter().any(|n| within(&domain, n)) {
            names.push(domain);
        }
    }
    names
}

/// The constraints both CA certificates carry: the permitted DNS names, and the
/// loopback addresses the CA endpoint's own certificate names.
fn name_constraints(permitted: &[String]) -> NameConstraints {
    let mut subtrees: Vec<GeneralSubtree> = permitted
        .iter()
        .map(|n| GeneralSubtree::DnsName(n.clone()))
        .collect();
    subtrees.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        8,
    )));
    subtrees.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        128,
    )));
    NameConstraints {
        permitted_subtrees: subtrees,
        excluded_subtrees: Vec::new(),
    }
}

/// The DNS names a CA certificate's name constraints permit; empty when it has
/// none, which leaves it valid for every name.
fn permitted_dns(cert: &X509Certificate) -> Vec<String> {
    let Ok(Some(constraints)) = cert.name_constraints() else {
        return Vec::new();
    };
    constraints
        .value
        .permitted_subtrees
        .iter()
        .flatten()
        .filter_map(|subtree| match subtree.base {
            GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Why a CA certificate must be replaced, if it must: it is valid for names
/// outside `needed`'s reach, lacks one of them, or ends within `renew_days`.
fn unfit(
    cert: &X509Certificate,
    needed: &[String],
    now: DateTime<Utc>,
    renew_days: i64,
) -> Option<String> {
    let permitted = permitted_dns(cert);
    if permitted.is_empty() {
        return Some("it has no name constraints, so it is trusted for every name".into());
    }
    if let Some(missing) = needed
        .iter()
        .find(|n| !permitted.iter().any(|p| within(n, p)))
    {
        return Some(format!("its name constraints do not cover {missing}"));
    }
    let not_after = time(cert.validity().not_after);
    if not_after - now < Duration::days(renew_days) {
        return Some(format!(
            "it expires on {}",
            crate::clock::for_people(not_after)
        ));
    }
    None
}

impl Authority {
    /// Opens the CA in `dir` for `domains` (with the base names): a root that is
    /// unconstrained, does not cover them, or nears its end is replaced, logged.
    pub fn open(
        dir: &Path,
        domains: &[String],
        now: DateTime<Utc>,
    ) -> Result<Authority, LocalCaError> {
        let dir_err = |source| LocalCaError::Write {
            path: dir.to_owned(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(dir_err)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(dir_err)?;

        let needed = permitted_names(domains);
        let (root_cert, root_key) = (dir.join("root.pem"), dir.join("root.key"));
        let make_root = || -> Result<(String, Loaded), LocalCaError> {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = ca_params(
                format!("quire local CA {}", short_id()),
                1,
                now - Duration::hours(1),
                now + Duration::days(ROOT_LIFETIME_DAYS),
            )?;
            params.name_constraints = Some(name_constraints(&needed));
            let cert = params.self_signed(&key)?;
            write_atomic(&root_key, &key.serialize_pem())?;
            write_atomic(&root_cert, &cert.pem())?;
            let der = cert.der().clone();
            Ok((cert.pem(), Loaded { der, key }))
        };
        let mut root_replaced = false;
        let (root_pem, root) = match (read_optional(&root_cert)?, read_optional(&root_key)?) {
            (Some(cert_pem), Some(key_pem)) => {
                let root = load_pair(&root_cert, &cert_pem, &root_key, &key_pem)?;
                let (_, x509) = X509Certificate::from_der(&root.der)
                    .map_err(|e| corrupt(&root_cert, format!("cannot parse: {e}")))?;
                match unfit(&x509, &needed, now, ROOT_RENEW_DAYS) {
                    None => (cert_pem, root),
                    Some(why) => {
                        let made = make_root()?;
                        root_replaced = true;
                        tracing::warn!(
                            "replaced the local CA root {}: {why}; clients must now trust the new one",
                            root_cert.display()
                        );
                        made
                    }
                }
            }
            (None, None) => {
                let made = make_root()?;
                tracing::info!("made a new local CA root in {}", root_cert.display());
                made
            }
            (Some(_), None) => {
                return Err(LocalCaError::Incomplete {
                    present: root_cert,
                    missing: root_key,
                });
            }
            (None, Some(_)) => {
                return Err(LocalCaError::Incomplete {
                    present: root_key,
                    missing: root_cert,
                });
            }
        };
        let (_, root_x509) = X509Certificate::from_der(&root.der)
            .map_err(|e| corrupt(&root_cert, format!("cannot parse: {e}")))?;
        let root_not_after = time(root_x509.validity().not_after);
        let permitted = permitted_dns(&root_x509);

        let (int_cert, int_key) = (dir.join("intermediate.pem"), dir.join("intermediate.key"));
        let retired_path = dir.join(RETIRED_FILE);
        let mut retired = read_retired(&retired_path)?;
        let old_cert = read_optional(&int_cert);
        let existing = match (old_cert.as_ref(), read_optional(&int_key)) {
            (Ok(Some(cert_pem)), Ok(Some(key_pem))) => {
                load_pair(&int_cert, cert_pem, &int_key, &key_pem).and_then(|loaded| {
                    let (_, x509) = X509Certificate::from_der(&loaded.der)
                        .map_err(|e| corrupt(&int_cert, e))?;
                    x509.verify_signature(Some(root_x509.public_key()))
                        .map_err(|_| corrupt(&int_cert, "not signed by root.pem"))?;
                    if let Some(why) = unfit(&x509, &needed, now, INTERMEDIATE_RENEW_DAYS) {
                        return Err(corrupt(&int_cert, why));
                    }
                    let not_after = time(x509.validity().not_after);
                    Ok((cert_pem.clone(), loaded, not_after))
                })
            }
            _ => Err(corrupt(&int_cert, "missing")),
        };
        let (intermediate_pem, intermediate, intermediate_not_after) = match existing {
            Ok(found) => found,
            Err(why) => {
                if root_replaced {
                    tracing::info!("making a new local CA intermediate under the new root");
                } else if int_cert.exists() {
                    tracing::warn!("making a new local CA intermediate: {why}");
                } else {
                    tracing::info!("making the local CA intermediate");
                }
                // Recorded before the replacement is written, so that a crash
                // between the two cannot forget the leaves it signed.
                let old_key_id = old_cert.ok().flatten().and_then(|pem| {
                    use rustls::pki_types::pem::PemObject;
                    subject_key_id(&CertificateDer::from_pem_slice(pem.as_bytes()).ok()?)
                });
                if let Some(key_id) = old_key_id {
                    retire(&retired_path, &mut retired, key_id)?;
                }
                let root_issuer = Issuer::from_ca_cert_der(&root.der, root.key)
                    .map_err(|e| corrupt(&root_cert, e))?;
                let not_after =
                    (now + Duration::days(INTERMEDIATE_LIFETIME_DAYS)).min(root_not_after);
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let mut params = ca_params(
                    format!("quire local CA intermediate {}", short_id()),
                    0,
                    now - Duration::hours(1),
                    not_after,
                )?;
                params.use_authority_key_identifier_extension = true;
                // Repeated below the root for verifiers that do not apply a
                // trust anchor's own constraints.
                params.name_constraints = Some(name_constraints(&permitted));
                let cert = params.signed_by(&key, &root_issuer)?;
                write_atomic(&int_key, &key.serialize_pem())?;
                write_atomic(&int_cert, &cert.pem())?;
                let der = cert.der().clone();
                (cert.pem(), Loaded { der, key }, not_after)
            }
        };
        let intermediate_der = intermediate.der;
        // Its leaves are found by it in renewal information once it is retired.
        if subject_key_id(&intermediate_der).is_none() {
            return Err(corrupt(&int_cert, "it has no subject key identifier"));
        }
        let issuer = Issuer::from_ca_cert_der(&intermediate_der, intermediate.key)
            .map_err(|e| corrupt(&int_cert, e))?;
        Ok(Authority {
            permitted,
            root_pem,
            intermediate_pem,
            intermediate_der,
            intermediate: issuer,
            intermediate_not_after,
            retired,
        })
    }

    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    pub fn intermediate_pem(&self) -> &str {
        &self.intermediate_pem
    }

    /// Whether `key_id` is that of an intermediate this CA used before the current one.
    pub fn retired(&self, key_id: &[u8]) -> bool {
        self.retired.iter().any(|id| id == key_id)
    }

    pub fn intermediate_not_after(&self) -> DateTime<Utc> {
        self.intermediate_not_after
    }

    /// The DNS names (each with the names below it) this CA may certify.
    pub fn permitted(&self) -> &[String] {
        &self.permitted
    }

    /// Whether a leaf for `name` would verify under the root's name constraints.
    pub fn permits(&self, name: &str) -> bool {
        self.permitted.iter().any(|base| within(name, base))
    }

    /// A server-auth certificate for `names` and `key`, signed by the intermediate.
    pub fn issue(
        &self,
        key: &impl PublicKeyData,
        names: &[String],
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<CertificateDer<'static>, rcgen::Error> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        if let Some(first) = names.first().filter(|n| n.len() <= 64) {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        set_validity(&mut params, not_before, not_after)?;
        Ok(params.signed_by(key, &self.intermediate)?.der().clone())
    }

    /// The CA endpoint's TLS configuration: a fresh key and a certificate for the loopback names.
    pub fn server_config(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Arc<rustls::ServerConfig>, LocalCaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let names = ["127.0.0.1", "::1", "localhost"].map(String::from);
        let leaf = self.issue(
            &key,
            &names,
            now - Duration::hours(1),
            self.intermediate_not_after,
        )?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf, self.intermediate_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
