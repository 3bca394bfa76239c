//! Waiting until the new records can be seen: first at the server that took
//! the update (required: a CA asking now would find nothing otherwise), then
//! at the zone's other authoritative servers, as that server lists them in
//! the zone's NS records (best effort: a secondary that cannot be reached
//! from here is logged and skipped, one that stays stale is logged). Polls
//! back off from a fast start; the deadline is read on the injected clock.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::exchange::{self, ExchangeError};
use super::{Dns01Error, TxtRecord};
use crate::clock::SharedClock;
use crate::names::DnsName;

/// How long the zone's servers get to show the records.
const DEADLINE: Duration = Duration::from_secs(120);
const FIRST_POLL: Duration = Duration::from_millis(100);
const MOST_POLL: Duration = Duration::from_secs(5);
/// Enough for any real zone; a longer NS list is cut here.
const MOST_SECONDARIES: usize = 10;
/// The port secondaries answer on: NS records carry none.
const DNS_PORT: u16 = 53;

/// Waits until `primary`, then every reachable secondary of `zone`, answers
/// each of `records`.
pub async fn wait(
    primary: SocketAddr,
    zone: &DnsName,
    records: &[TxtRecord],
    clock: &SharedClock,
) -> Result<(), Dns01Error> {
    let deadline = clock.now() + DEADLINE;
    match poll(primary, records, clock, deadline, Unreachable::Retry).await {
        Outcome::Seen => tracing::debug!("{primary} answers with the dns-01 records"),
        Outcome::Missing(owner) | Outcome::Unreachable(owner, _) => {
            return Err(Dns01Error::NotVisible {
                server: primary.to_string(),
                owner,
                zone: zone.to_string(),
                secs: DEADLINE.as_secs(),
            });
        }
    }
    for secondary in secondaries(primary, zone).await {
        match poll(secondary, records, clock, deadline, Unreachable::Skip).await {
            Outcome::Seen => tracing::debug!("{secondary} answers with the dns-01 records"),
            Outcome::Unreachable(_, e) => tracing::warn!(
                "skipping the authoritative server {secondary} of zone {zone}: {e}; the CA may still reach it"
            ),
            Outcome::Missing(owner) => tracing::warn!(
                "the authoritative server {secondary} of zone {zone} still has no TXT {owner} with the new value; telling the CA all the same"
            ),
        }
    }
    Ok(())
}

/// What a server that does not answer means for the waiting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unreachable {
    /// Ask again until the deadline (the server that took the update).
    Retry,
    /// Give up on the server at once (a secondary).
    Skip,
}

enum Outcome {
    Seen,
    /// The first record still missing at the deadline.
    Missing(String),
    Unreachable(String, ExchangeError),
}

async fn poll(
    server: SocketAddr,
    records: &[TxtRecord],
    clock: &SharedClock,
    deadline: chrono::DateTime<chrono::Utc>,
    unreachable: Unreachable,
) -> Outcome {
    let mut delay = FIRST_POLL;
    loop {
        let mut missing = None;
        for record in records {
            match exchange::txt(server, &record.owner).await {
                Ok(values) if values.contains(&record.value) => {}
                Ok(_) => {
                    missing = Some(record.owner.clone());
                    break;
                }
                Err(e) if unreachable == Unreachable::Skip || clock.now() >= deadline => {
                    return Outcome::Unreachable(record.owner.clone(), e);
                }
                Err(e) => {
                    tracing::debug!("asking {server} for TXT {}: {e}", record.owner);
                    missing = Some(record.owner.clone());
                    break;
                }
            }
        }
        let Some(owner) = missing else {
            return Outcome::Seen;
        };
        let now = clock.now();
        if now >= deadline {
            return Outcome::Missing(owner);
        }
        let wake = (now + chrono::Duration::from_std(delay).unwrap_or_default()).min(deadline);
        clock.sleep_until(wake).await;
        delay = (delay * 2).min(MOST_POLL);
    }
}

/// The addresses of `zone`'s authoritative servers other than `primary`:
/// the NS names `primary` lists, at the addresses it has for them (in-zone
/// names) or else the system resolver's.
async fn secondaries(primary: SocketAddr, zone: &DnsName) -> Vec<SocketAddr> {
    let names = match exchange::ns(primary, zone.as_str()).await {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(
                "cannot list the NS records of zone {zone} at {primary}: {e}; waiting on {primary} only"
            );
            return Vec::new();
        }
    };
    let mut found = HashSet::new();
    for name in names.iter().take(MOST_SECONDARIES) {
        let mut addresses: Vec<SocketAddr> = exchange::addresses(primary, name)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
            .collect();
        if addresses.is_empty() {
            let lookup = tokio::net::lookup_host((name.as_str(), DNS_PORT));
            match tokio::time::timeout(exchange::EXCHANGE_TIMEOUT, lookup).await {
                Ok(Ok(resolved)) => addresses.extend(resolved),
                _ => tracing::warn!(
                    "cannot find the address of {name}, an authoritative server of zone {zone}; skipping it"
                ),
            }
        }
        found.extend(addresses.into_iter().filter(|a| *a != primary));
    }
    let mut found: Vec<SocketAddr> = found.into_iter().collect();
    found.sort();
    found
}
