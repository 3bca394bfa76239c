//! Leases on the certificate [`Storage`](super::store::Storage): a name, a time-to-live and a token that grows
//! with each new holder. Whoever writes presents its lease, so a process that
//! lost the lease (paused past its expiry, then taken over) cannot overwrite
//! the new holder's certificates. [`LeaseSlot`] shares the lease between who
//! takes it (at start, or once a predecessor has exited) and who writes and
//! renews it (the certificate manager, through
//! [`keep_lease`](super::store::keep_lease) on the injected clock).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

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
    /// For [`Storage`](super::store::Storage) implementations: `hold` is kept as long as the lease.
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

    /// The same lease with a later expiry, for [`Storage::renew`](super::store::Storage::renew).
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
}
