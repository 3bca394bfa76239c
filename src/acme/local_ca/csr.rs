//! Certificate signing requests (RFC 8555 §7.4, RFC 2986): taking the CSR out
//! of a finalize payload and checking it against the order (its signature, its
//! key, exactly the order's names) before anything is signed for it.

use rcgen::SignatureAlgorithm;
use serde_json::{Map, Value};
use x509_parser::prelude::*;

use super::authority::LeafKey;
use super::jws::{Jwk, unb64};
use super::problem::{Problem, ProblemType};

/// A CSR that passed the checks: the key to certify.
pub struct CheckedCsr {
    pub key: LeafKey,
    /// The key's RFC 7638 thumbprint, for revocation signed by that key.
    pub thumbprint: String,
}

/// The CSR of a finalize payload, checked against the order's `identifiers`.
pub fn from_payload(
    payload: &Map<String, Value>,
    identifiers: &[String],
    account_key: &Jwk,
) -> Result<CheckedCsr, Problem> {
    let csr = payload
        .get("csr")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::malformed("the payload lacks the string \"csr\""))?;
    let csr = unb64("csr", csr).map_err(|p| Problem::new(ProblemType::BadCsr, p.detail))?;
    check(&csr, identifiers, account_key)
}

/// Checks a CSR against an order (RFC 8555 §7.4): signature, key, and exactly the order's names.
fn check(der: &[u8], identifiers: &[String], account_key: &Jwk) -> Result<CheckedCsr, Problem> {
    let bad = |detail: String| Problem::new(ProblemType::BadCsr, detail);
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| bad(format!("the CSR cannot be parsed: {e}")))?;
    csr.verify_signature()
        .map_err(|_| bad("the CSR's signature does not verify".into()))?;
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let bad_key = |detail: &str| Problem::new(ProblemType::BadPublicKey, detail);
    let jwk = Jwk::from_spki(spki).ok_or_else(|| {
        bad_key("the CSR's key must be ECDSA P-256, P-384 or RSA of at least 2048 bits")
    })?;
    let alg: &'static SignatureAlgorithm = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let bits = rsa.modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err(bad_key("RSA keys must have 2048 to 8192 bits"));
            }
            &rcgen::PKCS_RSA_SHA256
        }
        Ok(x509_parser::public_key::PublicKey::EC(point)) if point.data().len() == 65 => {
            &rcgen::PKCS_ECDSA_P256_SHA256
        }
        Ok(x509_parser::public_key::PublicKey::EC(_)) => &rcgen::PKCS_ECDSA_P384_SHA384,
        _ => return Err(bad_key("unsupported key type")),
    };
    if jwk.thumbprint() == account_key.thumbprint() {
        return Err(bad("the CSR must not use the account key".into()));
    }

    let mut names: Vec<String> = Vec::new();
    for attribute in info.subject.iter_common_name() {
        let cn = attribute
            .as_str()
            .map_err(|_| bad("the CSR's common name is not a string".into()))?;
        names.push(cn.to_ascii_lowercase());
    }
    for extension in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push(dns.to_ascii_lowercase()),
                    other => {
                        return Err(bad(format!(
                            "the CSR names {other}; only the order's DNS names are allowed"
                        )));
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    let extra: Vec<&str> = names
        .iter()
        .filter(|n| !identifiers.contains(n))
        .map(String::as_str)
        .collect();
    let missing: Vec<&str> = identifiers
        .iter()
        .filter(|n| !names.contains(n))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() || !missing.is_empty() {
        return Err(bad(format!(
            "the CSR must name exactly the order's identifiers; extra: [{}], missing: [{}]",
            extra.join(", "),
            missing.join(", ")
        )));
    }
    let key = LeafKey {
        raw: spki.subject_public_key.data.to_vec(),
        alg,
    };
    Ok(CheckedCsr {
        key,
        thumbprint: jwk.thumbprint().to_owned(),
    })
}
