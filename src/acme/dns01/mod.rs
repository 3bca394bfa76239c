//! dns-01 answers (RFC 8555 section 8.4) published by dynamic update: TXT
//! records `_acme-challenge.<name>` added to the zone with an RFC 2136
//! UPDATE signed by TSIG (`wire`, `tsig`, `exchange`), then waited for
//! (`propagation`) until the server that took the update answers with them,
//! and the zone's other authoritative servers too when they are reachable,
//! before the CA is told to look. Afterwards exactly those records are
//! deleted, whatever the outcome.
//!
//! Crash safety: the records are noted in the certificate store before they
//! are added, and the note is cleared once they are deleted; at the next
//! start, and before each new order, records a note still lists are deleted
//! first. The wire codec is our own: dns-01 needs a small, fixed part of DNS
//! (one UPDATE, three kinds of query, HMAC-SHA2 TSIG), which ring already
//! linked here covers, where a full DNS library would add a large build.

mod exchange;
mod propagation;
mod tsig;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::exchange::{ExchangeError, rcode_name};
use self::wire::TxtChange;
use super::lease::Lease;
use super::store::{Storage, StorageError};
use crate::clock::SharedClock;
use crate::config::{DnsUpdateSettings, SecretSource};
use crate::names::DnsName;

/// Where the records of an order in progress are noted.
const PENDING_KEY: &str = "acme/dns-pending/records.json";
/// How long resolving the server's name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// An order has at most this many names; a note listing more is not ours.
const MOST_RECORDS: usize = 100;

/// One dns-01 answer: a TXT record at `_acme-challenge.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxtRecord {
    pub owner: String,
    pub value: String,
}

impl TxtRecord {
    /// The record answering for `name` (a wildcard's base for a wildcard).
    pub fn for_name(name: &DnsName, value: String) -> TxtRecord {
        TxtRecord {
            owner: format!("_acme-challenge.{name}"),
            value,
        }
    }
}

/// The records an order added and has not deleted yet.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pending {
    records: Vec<TxtRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum Dns01Error {
    #[error(
        "cannot find the address of the DNS server {server} ([tls.dns] server): {why}; check the name, or write its IP address"
    )]
    Resolve { server: String, why: String },
    #[error("updating zone {zone} at the DNS server {server} with TSIG key `{key}`: {why}")]
    Update {
        zone: String,
        server: String,
        key: String,
        why: String,
    },
    #[error(
        "the DNS server {server} still does not answer TXT {owner} with the new value {secs}s after the update; check that it serves zone {zone} itself (not only forwards updates to another primary)"
    )]
    NotVisible {
        server: String,
        owner: String,
        zone: String,
        secs: u64,
    },
    #[error("noting the pending dns-01 records in the store: {0}")]
    Store(#[from] StorageError),
}

/// Publishes and deletes dns-01 records with one zone's primary server.
pub struct Dns01 {
    settings: DnsUpdateSettings,
    storage: Arc<dyn Storage>,
    clock: SharedClock,
}

impl Dns01 {
    /// Warns when the secret file is open to other users: the key can
    /// change the zone.
    pub fn new(
        settings: DnsUpdateSettings,
        storage: Arc<dyn Storage>,
        clock: SharedClock,
    ) -> Dns01 {
        if let SecretSource::File(path) = &settings.key.source {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        "the TSIG secret file {} can be read by other users (mode {mode:o}); whoever reads it can change zone {}: run chmod 600 on it",
                        path.display(),
                        settings.zone
                    );
                }
            }
        }
        Dns01 {
            settings,
            storage,
            clock,
        }
    }

    /// Adds `records` (noted first), then waits until they can be seen.
    /// Records an earlier order left behind are deleted first.
    pub async fn publish(&self, records: &[TxtRecord], lease: &Lease) -> Result<(), Dns01Error> {
        self.clean_leftovers(lease).await;
        let mut pending = self.pending().await?;
        pending.records.extend(records.iter().cloned());
        self.note(&pending, lease).await?;

        let server = self.server().await?;
        if let Err(e) = self.update(server, records, true).await {
            // The update may have been applied before the answer was lost.
            self.withdraw(records, lease).await;
            return Err(e);
        }
        tracing::info!(
            "added {} dns-01 record(s) to zone {} at {}: {}; waiting until the zone's servers answer with them",
            records.len(),
            self.settings.zone,
            self.settings.server,
            owners(records)
        );
        propagation::wait(server, &self.settings.zone, records, &self.clock).await
    }

    /// Deletes exactly `records`, and takes them off the note once deleted;
    /// a failure is logged and the note kept for the next attempt.
    pub async fn withdraw(&self, records: &[TxtRecord], lease: &Lease) {
        let deleted = match self.server().await {
            Ok(server) => self.update(server, records, false).await,
            Err(e) => Err(e),
        };
        if let Err(e) = deleted {
            tracing::warn!(
                "could not delete the dns-01 record(s) {}: {e}; they are deleted before the next order",
                owners(records)
            );
            return;
        }
        tracing::info!(
            "deleted the dns-01 record(s) {} from zone {}",
            owners(records),
            self.settings.zone
        );
        let kept = match self.pending().await {
            Ok(mut pending) => {
                pending.records.retain(|r| !records.contains(r));
                self.note(&pending, lease).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            tracing::warn!("could not update the note of pending dns-01 records: {e}");
        }
    }

    /// Deletes the records a crashed or failed order left behind.
    pub async fn clean_leftovers(&self, lease: &Lease) {
        match self.pending().await {
            Ok(pending) if pending.records.is_empty() => {}
            Ok(pending) => {
                tracing::info!(
                    "deleting dns-01 record(s) an earlier order left behind: {}",
                    owners(&pending.records)
                );
                self.withdraw(&pending.records, lease).await;
            }
            Err(e) => tracing::warn!("cannot read the note of pending dns-01 records: {e}"),
        }
    }

    async fn pending(&self) -> Result<Pending, Dns01Error> {
        let Some(bytes) = self.storage.get(PENDING_KEY).await? else {
            return Ok(Pending::default());
        };
        match serde_json::from_slice::<Pending>(&bytes) {
            Ok(pending) if pending.records.len() <= MOST_RECORDS => Ok(pending),
            _ => {
                tracing::warn!(
                    "the note of pending dns-01 records ({PENDING_KEY}) is unreadable; ignoring it"
                );
                Ok(Pending::default())
            }
        }
    }

    async fn note(&self, pending: &Pending, lease: &Lease) -> Result<(), Dns01Error> {
        if pending.records.is_empty() {
            return Ok(self.storage.delete(PENDING_KEY, lease).await?);
        }
        let bytes = serde_json::to_vec(pending).expect("records serialize");
        Ok(self.storage.put(PENDING_KEY, &bytes, lease).await?)
    }

    /// The server's address, resolved now (it may move between orders).
    async fn server(&self) -> Result<SocketAddr, Dns01Error> {
        let server = &self.settings.server;
        let refused = |why: String| Dns01Error::Resolve {
            server: server.to_string(),
            why,
        };
        let found = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((server.host.as_str(), server.port)),
        )
        .await
        .map_err(|_| refused(format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs())))?
        .map_err(|e| refused(e.to_string()))?
        .next();
        found.ok_or_else(|| refused("it has no address".into()))
    }

    async fn update(
        &self,
        server: SocketAddr,
        records: &[TxtRecord],
        add: bool,
    ) -> Result<(), Dns01Error> {
        let changes: Vec<TxtChange> = records
            .iter()
            .map(|r| TxtChange {
                owner: r.owner.clone(),
                value: r.value.clone(),
                add,
            })
            .collect();
        exchange::update(
            server,
            self.settings.zone.as_str(),
            &changes,
            &self.settings.key,
        )
        .await
        .map_err(|e| Dns01Error::Update {
            zone: self.settings.zone.to_string(),
            server: self.settings.server.to_string(),
            key: self.settings.key.name.to_string(),
            why: advice(&self.settings, &e),
        })
    }
}

fn owners(records: &[TxtRecord]) -> String {
    let owners: Vec<&str> = records.iter().map(|r| r.owner.as_str()).collect();
    owners.join(", ")
}

/// What went wrong with an update, and what to check; never the secret.
fn advice(settings: &DnsUpdateSettings, e: &ExchangeError) -> String {
    let key = &settings.key.name;
    let zone = &settings.zone;
    match e {
        ExchangeError::Connect(_) | ExchangeError::Io(_) | ExchangeError::Timeout => format!(
            "{e}; check tls.dns.server, and that the server takes DNS over TCP from this host"
        ),
        ExchangeError::Tsig(tsig::TsigError::Server(tsig::BADKEY)) => format!(
            "the server does not know the key (BADKEY); check that tls.dns.tsig_key names a key statement on the server, with algorithm {}",
            settings.key.algorithm
        ),
        ExchangeError::Tsig(tsig::TsigError::Server(tsig::BADSIG)) => format!(
            "the server rejected the signature (BADSIG): the secret in {} is not the server's secret for key `{key}`; copy it from the server's key statement",
            settings.key.source
        ),
        ExchangeError::Tsig(tsig::TsigError::Server(tsig::BADTIME)) => {
            "the server's clock and this one differ by more than 5 minutes (BADTIME); synchronise both with NTP".to_string()
        }
        ExchangeError::Tsig(e) => format!(
            "{e}, so the answer cannot be trusted and the update counts as failed; check that the server's key statement for `{key}` holds the same secret"
        ),
        ExchangeError::Rcode(5) => format!(
            "the server REFUSED the update; check that its update-policy (or allow-update) lets key `{key}` change TXT records in zone {zone}"
        ),
        ExchangeError::Rcode(9) => format!(
            "the server is not authoritative for zone {zone} or not the key's to update (NOTAUTH); check tls.dns.zone, and that tls.dns.server is the zone's primary"
        ),
        ExchangeError::Rcode(10) => format!(
            "a record lies outside zone {zone} (NOTZONE); check tls.dns.zone against [domains] names"
        ),
        ExchangeError::Rcode(rcode) => format!(
            "the server answered {}; its log says why",
            rcode_name(*rcode)
        ),
        ExchangeError::Wire(_) | ExchangeError::Mismatch => {
            format!("{e}; check that tls.dns.server is a DNS server")
        }
    }
}
