//! The open connections of a listener and the progress each one makes: a
//! request received, a response delivered, or another [`PROGRESS_BYTES`] of a
//! response body taken by the connection. Other bytes are not progress: a
//! client that dribbles a preface, pings, or reads a response a few bytes at a
//! time misses its deadline
//! ([`Progress::deadline`]), and when the table is full it is the first to be
//! closed for a newcomer ([`Connections::evict_idlest`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::Limits;

/// Delivering this much more of a response body counts as progress, so a
/// client must read at least this much per `idle_timeout` to keep a response
/// going.
pub const PROGRESS_BYTES: u64 = 8 * 1024;

/// A response that moved this recently is being read: its connection is not
/// closed to make room, however full the table.
const BUSY: Duration = Duration::from_secs(2);

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// No complete request within `header_read_timeout` of the connection
    /// being ready (after the TLS handshake), whatever the protocol.
    NoRequest,
    /// Nothing in flight and no new request for `idle_timeout`.
    Idle,
    /// A response in flight that the client reads too slowly: less than
    /// [`PROGRESS_BYTES`] in `idle_timeout`.
    Stalled,
    /// Closed to make room for a new connection, as the one waiting longest
    /// without progress.
    Evicted,
}

impl Cut {
    pub fn label(self) -> &'static str {
        match self {
            Cut::NoRequest => "no_request",
            Cut::Idle => "idle",
            Cut::Stalled => "stalled",
            Cut::Evicted => "evicted",
        }
    }
}

/// One connection's progress, shared by its task, its stream, its service and
/// the table. Atomics only: the request path takes no lock.
pub struct Progress {
    epoch: Instant,
    /// Milliseconds from `epoch` to the last progress.
    last_ms: AtomicU64,
    requests: AtomicU64,
    /// Requests whose response body has not been handed over in full.
    in_flight: AtomicU64,
    delivered: AtomicU64,
    /// Whether the last request was HTTP/1 (else HTTP/2).
    http1: AtomicBool,
    arrived: Notify,
    evicted: AtomicBool,
    evict: Notify,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            http1: AtomicBool::new(false),
            arrived: Notify::new(),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// The TLS handshake is done (or there is none): the first request's
    /// deadline starts now.
    pub fn ready(&self) {
        self.touch();
    }

    /// A request came in; while `closing`, the connection's task is told
    /// (see [`Progress::next_request`]), which takes a lock not worth taking
    /// the rest of the time.
    pub fn request_received(&self, version: http::Version, closing: bool) {
        self.http1
            .store(version <= http::Version::HTTP_11, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.touch();
        if closing {
            self.arrived.notify_waiters();
        }
    }

    /// A request is being answered until the returned guard is dropped: once
    /// its response body has been handed to the connection in full, or
    /// abandoned.
    pub fn answering(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn speaks_http1(&self) -> bool {
        self.http1.load(Ordering::Relaxed)
    }

    /// Resolves at the next request received while closing; registered when
    /// `enable`d or first polled.
    pub fn next_request(&self) -> tokio::sync::futures::Notified<'_> {
        self.arrived.notified()
    }

    /// When the connection must have made progress by, and what it is
    /// closed for if it has not.
    pub fn deadline(&self, limits: &Limits) -> (Instant, Cut) {
        let last = self.last();
        let (limit, cut) = if self.requests.load(Ordering::Relaxed) == 0 {
            (limits.header_read_timeout, Cut::NoRequest)
        } else if self.in_flight() > 0 {
            (limits.idle_timeout, Cut::Stalled)
        } else {
            (limits.idle_timeout, Cut::Idle)
        };
        (last.checked_add(limit).unwrap_or_else(far_future), cut)
    }

    /// Resolves when the table asks this connection to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Resolves when the connection has missed its deadline or was evicted,
    /// saying which.
    pub async fn cut(&self, limits: &Limits) -> Cut {
        let evicted = self.evict.notified();
        tokio::pin!(evicted);
        loop {
            let (deadline, cut) = self.deadline(limits);
            if Instant::now() >= deadline {
                return cut;
            }
            tokio::select! {
                () = evicted.as_mut() => return Cut::Evicted,
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// One request being answered on a connection.
pub struct InFlight(Arc<Progress>);

impl InFlight {
    /// The connection took `bytes` more of the response body.
    pub fn delivered(&self, bytes: usize) {
        let progress = &self.0;
        let before = progress
            .delivered
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if (before + bytes as u64) / PROGRESS_BYTES != before / PROGRESS_BYTES {
            progress.touch();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An instant no deadline reaches, for limits too large to add.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// The listener's table of open connections.
#[derive(Clone, Default)]
pub struct Connections {
    table: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Progress>>,
}

/// A connection's place in the table, given up when dropped.
pub struct Entry {
    connections: Connections,
    id: u64,
    pub progress: Arc<Progress>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while holding it.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open(&self) -> Entry {
        let progress = Arc::new(Progress::new());
        let mut table = self.lock();
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(id, progress.clone());
        Entry {
            connections: self.clone(),
            id,
            progress,
        }
    }

    /// Asks the connection that has gone longest without progress to close,
    /// unless every connection is busy delivering a response. Returns whether
    /// one was asked.
    pub fn evict_idlest(&self) -> bool {
        let now = Instant::now();
        let table = self.lock();
        let idlest = table
            .open
            .values()
            .filter(|p| !p.evicted.load(Ordering::Relaxed))
            .filter(|p| p.in_flight() == 0 || now.saturating_duration_since(p.last()) >= BUSY)
            .min_by_key(|p| p.last());
        match idlest {
            Some(progress) => {
                progress.evicted.store(true, Ordering::Relaxed);
                progress.evict.notify_one();
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_request_is_due_from_the_end_of_the_handshake() {
        let limits = limits();
        let progress = Progress::new();
        // A slow handshake has its own limit; it does not eat into this one.
        tokio::time::advance(Duration::from_secs(8)).await;
        progress.ready();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(progress.deadline(&limits).0 > Instant::now());
        assert_eq!(progress.cut(&limits).await, Cut::NoRequest);
        assert_eq!(
            progress.epoch.elapsed(),
            Duration::from_secs(18),
            "cut 10 s after the handshake"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_response_bytes_are_progress() {
        let limits = limits();
        let progress = Arc::new(Progress::new());
        progress.ready();
        progress.request_received(http::Version::HTTP_2, false);
        let answer = progress.answering();
        // Megabytes of body keep the response going; after it, nothing does.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(30)).await;
            answer.delivered(1 << 20);
        }
        drop(answer);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(progress.deadline(&limits).1, Cut::Idle);
        assert!(progress.deadline(&limits).0 > Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(progress.deadline(&limits).0 <= Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_is_cut_and_a_steady_one_is_not() {
        let limits = limits();
        let slow = Arc::new(Progress::new());
        let steady = Arc::new(Progress::new());
        let mut answers = Vec::new();
        for p in [&slow, &steady] {
            p.ready();
            p.request_received(http::Version::HTTP_2, false);
            answers.push(p.answering());
        }
        // 64 bytes every 5 s, against 8 KiB every 5 s, for three minutes.
        for _ in 0..36 {
            tokio::time::advance(Duration::from_secs(5)).await;
            answers[0].delivered(64);
            answers[1].delivered(PROGRESS_BYTES as usize);
        }
        assert_eq!(slow.deadline(&limits).1, Cut::Stalled);
        assert!(slow.deadline(&limits).0 <= Instant::now(), "slow reader");
        assert!(steady.deadline(&limits).0 > Instant::now(), "steady reader");
        drop(answers.pop());
        assert_eq!(steady.deadline(&limits).1, Cut::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_runs_only_between_responses() {
        let limits = limits();
        let progress = Arc::new(Progress::new());
        progress.ready();
        progress.request_received(http::Version::HTTP_11, false);
        drop(progress.answering());
        tokio::time::advance(Duration::from_secs(59)).await;
        progress.request_received(http::Version::HTTP_11, false);
        drop(progress.answering());
        tokio::time::advance(Duration::from_secs(59)).await;
        let (deadline, cut) = progress.deadline(&limits);
        assert_eq!(cut, Cut::Idle);
        assert_eq!(deadline - Instant::now(), Duration::from_secs(1));
        assert_eq!(progress.cut(&limits).await, Cut::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn limits_too_large_to_add_never_overflow() {
        let limits = Limits {
            header_read_timeout: Duration::MAX,
            ..Limits::default()
        };
        let progress = Progress::new();
        assert!(progress.deadline(&limits).0 > Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn the_idlest_goes_first_and_busy_ones_stay() {
        let connections = Connections::default();
        let dribbler = connections.open();
        dribbler.progress.ready();
        tokio::time::advance(Duration::from_secs(5)).await;
        let reader = connections.open();
        reader.progress.ready();
        reader
            .progress
            .request_received(http::Version::HTTP_2, false);
        let answer = reader.progress.answering();
        let newcomer = connections.open();
        newcomer.progress.ready();

        assert!(connections.evict_idlest());
        assert_eq!(dribbler.progress.cut(&limits()).await, Cut::Evicted);
        // The reader is busy; the newcomer is the idlest left.
        assert!(connections.evict_idlest());
        assert_eq!(newcomer.progress.cut(&limits()).await, Cut::Evicted);
        assert!(!connections.evict_idlest(), "a busy reader stays");
        // Until its response stops moving.
        tokio::time::advance(BUSY).await;
        assert!(connections.evict_idlest());

        drop((dribbler, reader, newcomer, answer));
        assert_eq!(connections.len(), 0);
    }
}
