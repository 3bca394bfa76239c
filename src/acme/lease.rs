//! Leases on the [`Storage`]: a name, a time-to-live and a token that grows
//! with each new holder. Whoever writes presents its lease, so a process that
//! lost the lease (paused past its expiry, then taken over) cannot overwrite
//! the new holder's certificates. [`LeaseSlot`] shares the lease between who
//! takes it (at start, or once a predecessor has exited) and who writes and
//! renews it (the certificate manager), renewing on the injected clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::store::{Storage, StorageError};

/// Grows with each new holder of a lease (a fencing token).
pub type LeaseToken = u64;

/// A held lease. Copies share what the engine holds for it (the file store's
/// lock file), which is given up when the last copy is dropped.
#[derive(Clone)]
pub struct Lease {
    name: String,
    token: LeaseToken,
    ttl: Duration,
    expires: DateTime<Utc>,
    _hold: Option<Arc<dyn Send + Sync>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("token", &self.token)
            .field("expires", &self.expires)
            .finish()
    }
}

impl Lease {
    /// For [`Storage`] implementations: `hold` is kept as long as the lease.
    pub fn new(
        name: String,
        token: LeaseToken,
        ttl: Duration,
        expires: DateTime<Utc>,
        hold: Option<Arc<dyn Send + Sync>>,
    ) -> Lease {
        Lease {
            name,
            token,
            ttl,
            expires,
            _hold: hold,
        }
    }

    /// The same lease with a later expiry, for [`Storage::renew`].
    pub fn renewed(&self, expires: DateTime<Utc>) -> Lease {
        Lease {
            expires,
            ..self.clone()
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn token(&self) -> LeaseToken {
        self.token
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn expires(&self) -> DateTime<Utc> {
        self.expires
    }

    /// When to renew: with a third of the time-to-live left, so that one
    /// missed turn (a slow store, a busy runtime) does not lose the lease.
    pub fn renew_at(&self) -> DateTime<Utc> {
        self.expires - chrono::Duration::from_std(self.ttl / 3).unwrap_or_default()
    }
}

/// The lease this process holds, if any yet, shared by its holders.
#[derive(Clone, Default)]
pub struct LeaseSlot(Arc<Mutex<Option<Lease>>>);

impl LeaseSlot {
    pub fn holding(lease: Lease) -> LeaseSlot {
        let slot = LeaseSlot::default();
        slot.fill(lease);
        slot
    }

    pub fn fill(&self, lease: Lease) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
    }

    pub fn current(&self) -> Option<Lease> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The lease, renewed first if `now` is past its renewal time.
    pub async fn keep(
        &self,
        storage: &dyn Storage,
        now: DateTime<Utc>,
    ) -> Result<Lease, StorageError> {
        let lease = self.current().ok_or(StorageError::NoLease)?;
        if now < lease.renew_at() {
            return Ok(lease);
        }
        let renewed = storage.renew(&lease).await?;
        self.fill(renewed.clone());
        Ok(renewed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::store::FileStore;
    use crate::clock::{Clock, ManualClock};

    #[tokio::test]
    async fn the_slot_renews_on_the_clock_and_keeps_writes_going() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let store = FileStore::new(dir.path(), clock.clone());
        let slot = LeaseSlot::default();
        assert!(matches!(
            slot.keep(&store, clock.now()).await,
            Err(StorageError::NoLease)
        ));
        slot.fill(
            store
                .acquire("certificates", Duration::from_secs(300))
                .await
                .unwrap(),
        );
        let first = slot.current().unwrap();
        assert_eq!(
            first.renew_at(),
            clock.now() + chrono::Duration::seconds(200)
        );

        // Before its renewal time the lease is kept as it is...
        clock.advance(chrono::Duration::seconds(199));
        let kept = slot.keep(&store, clock.now()).await.unwrap();
        assert_eq!(kept.expires(), first.expires());
        // ...at it, it is renewed for a full time-to-live from now.
        clock.advance(chrono::Duration::seconds(1));
        let kept = slot.keep(&store, clock.now()).await.unwrap();
        assert_eq!(kept.expires(), clock.now() + chrono::Duration::seconds(300));
        assert_eq!(kept.token(), first.token());
        assert_eq!(slot.current().unwrap().expires(), kept.expires());

        // A long pause: writes are refused until the holder renews.
        clock.advance(chrono::Duration::hours(17));
        let stale = slot.current().unwrap();
        assert!(matches!(
            store.put("certs/x", b"x", &stale).await,
            Err(StorageError::LeaseExpired { .. })
        ));
        let kept = slot.keep(&store, clock.now()).await.unwrap();
        store.put("certs/x", b"x", &kept).await.unwrap();
    }
}
