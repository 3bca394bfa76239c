//! Signing an order's certificate. It runs with the state unlocked, between
//! `State::start_issuing` and `State::finish_issuing`, since signing is the
//! slow part of finalizing and every other request needs the state.

use chrono::{DateTime, Duration, Utc};
use x509_parser::prelude::*;

use super::LocalCa;
use super::csr::CheckedCsr;
use super::orders::IssuedCert;
use super::problem::{Problem, ProblemType};
use super::profiles::Profile;

impl LocalCa {
    /// A certificate for `identifiers` and the CSR's key, owned by `account`,
    /// valid from a minute ago for the lifetime of `profile`.
    pub(super) fn sign(
        &self,
        account: &str,
        csr: &CheckedCsr,
        identifiers: &[String],
        profile: Profile,
        now: DateTime<Utc>,
    ) -> Result<IssuedCert, Problem> {
        let internal = |detail: String| Problem::new(ProblemType::ServerInternal, detail);
        let lifetime = Duration::from_std(self.settings.lifetimes.of(profile))
            .map_err(|_| internal("leaf lifetime too long".into()))?;
        let not_before = now - Duration::minutes(1);
        // A leaf outliving its intermediate would not verify at its end.
        let not_after = (not_before + lifetime).min(self.authority.intermediate_not_after());
        let leaf = self
            .authority
            .issue(&csr.key, identifiers, not_before, not_after)
            .map_err(|e| internal(format!("cannot sign the certificate: {e}")))?;
        let (_, parsed) = X509Certificate::from_der(&leaf)
            .map_err(|e| internal(format!("issued an unparsable certificate: {e}")))?;
        let authority_key_id = match parsed
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        {
            Ok(Some(ext)) => match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => aki
                    .key_identifier
                    .as_ref()
                    .map(|k| k.0.to_vec())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let chain_pem = format!(
            "{}{}",
            pem_certificate(&leaf),
            self.authority.intermediate_pem()
        );
        Ok(IssuedCert {
            account: account.to_owned(),
            names: identifiers.to_vec(),
            key_thumbprint: csr.thumbprint.clone(),
            serial: parsed.raw_serial().to_vec(),
            authority_key_id,
            der: leaf.to_vec(),
            chain_pem,
            not_before,
            not_after,
            revoked: false,
            replaced_by: None,
            replaced: false,
        })
    }
}

fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
