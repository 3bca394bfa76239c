//! The certificate of one site in the [`Storage`]: the live pair
//! (`certs/<domain>/fullchain.pem`, `privkey.pem`), every issued certificate in
//! `archive/` (chain and key together in one file), and the renewal status that
//! `quire cert status` reads.
//!
//! Crash safety comes from the order of writes: a new certificate goes to the
//! archive first, in one atomic file, before the live pair is replaced. If a
//! crash tears the pair (key new, chain old), loading finds the mismatch and
//! restores the pair from the newest archived certificate, so nothing is ever
//! ordered twice. Writes present the certificates' [`Lease`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lease::Lease;
use super::schedule::AriWindow;
use super::store::{Storage, StorageError};
use crate::names::DnsName;
use crate::tls::{BundleError, CertBundle};

/// How many archived certificates are kept.
const ARCHIVE_KEEP: usize = 10;

/// A certificate chain and its private key as PEM text.
#[derive(Clone)]
pub struct IssuedCert {
    pub chain_pem: String,
    pub key_pem: String,
}

impl IssuedCert {
    pub fn bundle(&self) -> Result<CertBundle, BundleError> {
        CertBundle::from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
    }
}

/// What the certificate manager did and plans; kept for `quire cert status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RenewalStatus {
    /// The ACME directory of the last attempt.
    pub directory: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// Why the last attempt failed; cleared by a success.
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// When the manager will next look at (or retry) the certificate.
    pub next_check: Option<DateTime<Utc>>,
    /// When the current certificate enters its renewal window.
    pub renew_after: Option<DateTime<Utc>>,
    /// Issuance times of the last seven days, for the weekly cap.
    #[serde(default)]
    pub issued: Vec<DateTime<Utc>>,
    /// Milliseconds the last successful certification took.
    pub last_took_ms: Option<u64>,
    /// The CA that issued the stored certificate ([`Certifier::identity`]);
    /// when the configuration names another, a new one is ordered.
    ///
    /// [`Certifier::identity`]: crate::acme::client::Certifier::identity
    #[serde(default)]
    pub issued_by: Option<String>,
    /// The alert raised, and told to the alert hook, if any.
    #[serde(default)]
    pub alert: Option<super::alert::Alert>,
    /// The ACME profile the stored certificate was ordered with (`[tls]
    /// profile`); `None` for the CA's default.
    #[serde(default)]
    pub profile: Option<String>,
    /// What the CA's renewal information (RFC 9773) said, and when it is
    /// asked again.
    #[serde(default)]
    pub ari: Option<AriStatus>,
    /// The CAs tried before the one that issued the stored certificate, and
    /// why each failed; empty when the first CA issued it.
    #[serde(default)]
    pub passed_over: Vec<super::issuers::PassedOver>,
}

/// The CA's renewal information for one certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AriStatus {
    /// The serial (hex) of the certificate it is about; a new certificate
    /// makes it stale.
    pub serial: String,
    /// The suggested window; `None` when the CA offers no renewal information.
    pub window: Option<AriWindow>,
    pub checked: DateTime<Utc>,
    pub next_check: DateTime<Utc>,
}

/// The stored certificate of the site whose canonical domain is `primary`.
#[derive(Clone)]
pub struct CertStore {
    storage: Arc<dyn Storage>,
    primary: DnsName,
}

/// A certificate read back from the store.
pub struct StoredCert {
    pub bundle: CertBundle,
    pub pem: IssuedCert,
    /// True if the live pair was torn and has been restored from the archive.
    pub recovered: bool,
}

impl CertStore {
    pub fn new(storage: Arc<dyn Storage>, primary: DnsName) -> CertStore {
        CertStore { storage, primary }
    }

    pub fn primary(&self) -> &DnsName {
        &self.primary
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}/{}/{name}", crate::datadir::CERTS, self.primary)
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    async fn read_text(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .storage
            .get(key)
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The live pair if it is whole; otherwise the newest archived certificate,
    /// written back as the live pair when `lease` is held (a reader that holds
    /// none, `quire cert status` or a process waiting for its predecessor,
    /// leaves the repair to the holder). `None` when nothing usable is stored.
    pub async fn load(&self, lease: Option<&Lease>) -> Result<Option<StoredCert>, StorageError> {
        let live = match (
            self.read_text(&self.key("fullchain.pem")).await?,
            self.read_text(&self.key("privkey.pem")).await?,
        ) {
            (Some(chain_pem), Some(key_pem)) => Some(IssuedCert { chain_pem, key_pem }),
            _ => None,
        };
        if let Some(pem) = live {
            match pem.bundle() {
                Ok(bundle) => {
                    return Ok(Some(StoredCert {
                        bundle,
                        pem,
                        recovered: false,
                    }));
                }
                Err(e) => tracing::warn!(
                    "stored certificate for {} is unusable ({e}); looking in the archive",
                    self.primary
                ),
            }
        }
        for key in self.storage.list(&self.key("archive")).await?.iter().rev() {
            let Some(text) = self.read_text(key).await? else {
                continue;
            };
            let pem = split_archived(&text);
            if let Ok(bundle) = pem.bundle() {
                if let Some(lease) = lease {
                    self.write_pair(&pem, lease).await?;
                }
                tracing::warn!("restored the certificate for {} from {key}", self.primary);
                return Ok(Some(StoredCert {
                    bundle,
                    pem,
                    recovered: true,
                }));
            }
        }
        Ok(None)
    }

    async fn write_pair(&self, pem: &IssuedCert, lease: &Lease) -> Result<(), StorageError> {
        self.storage
            .put(&self.key("privkey.pem"), pem.key_pem.as_bytes(), lease)
            .await?;
        self.storage
            .put(&self.key("fullchain.pem"), pem.chain_pem.as_bytes(), lease)
            .await
    }

    /// Archives `cert` (the durable copy), then makes it the live pair.
    pub async fn save(
        &self,
        cert: &IssuedCert,
        bundle: &CertBundle,
        now: DateTime<Utc>,
        lease: &Lease,
    ) -> Result<(), StorageError> {
        let serial: String = bundle
            .serial
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        let archived = format!("{}{}", cert.chain_pem, cert.key_pem);
        self.storage
            .put(
                &self.key(&format!(
                    "archive/{}-{serial}.pem",
                    now.format("%Y%m%dT%H%M%S%.3fZ")
                )),
                archived.as_bytes(),
                lease,
            )
            .await?;
        self.write_pair(cert, lease).await?;
        let archive = self.storage.list(&self.key("archive")).await?;
        for old in archive
            .iter()
            .take(archive.len().saturating_sub(ARCHIVE_KEEP))
        {
            self.storage.delete(old, lease).await?;
        }
        Ok(())
    }

    pub async fn status(&self) -> Result<RenewalStatus, StorageError> {
        Ok(self
            .storage
            .get(&self.key("status.json"))
            .await?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default())
    }

    pub async fn save_status(
        &self,
        status: &RenewalStatus,
        lease: &Lease,
    ) -> Result<(), StorageError> {
        let json = serde_json::to_vec_pretty(status).expect("status serializes");
        self.storage
            .put(&self.key("status.json"), &json, lease)
            .await
    }
}

/// An archived file holds the chain followed by the key.
fn split_archived(text: &str) -> IssuedCert {
    match text
        .find("-----BEGIN PRIVATE KEY-----")
        .or_else(|| text.find("-----BEGIN EC PRIVATE KEY-----"))
        .or_else(|| text.find("-----BEGIN RSA PRIVATE KEY-----"))
    {
        Some(at) => IssuedCert {
            chain_pem: text[..at].to_string(),
            key_pem: text[at..].to_string(),
        },
        None => IssuedCert {
            chain_pem: text.to_string(),
            key_pem: String::new(),
        },
    }
}
