//! The operator's view of a running server. [`Metrics`] holds the instruments
//! every activity updates (atomic counters and histograms, prometheus-client),
//! and gathers what is read only at scrape time (certificates, tasks, the
//! process, statistics). `process` reads /proc, `health` answers /health and
//! /ready, `exposition` speaks both text formats, `dashboard` renders the HTML
//! page, `recent` keeps the last logged errors for it, `server` is the
//! internal listener with its token rule, over the `sources` they all read;
//! `cluster` is what a node of a cluster adds to each.

pub mod cluster;
pub mod dashboard;
pub mod exposition;
pub mod health;
pub mod process;
pub mod recent;
pub mod server;
pub mod sources;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// What a response was, for request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Page,
    Feed,
    Asset,
    Redirect,
    NotFound,
    Challenge,
    Other,
}

impl RouteKind {
    pub const ALL: [RouteKind; 7] = [
        RouteKind::Page,
        RouteKind::Feed,
        RouteKind::Asset,
        RouteKind::Redirect,
        RouteKind::NotFound,
        RouteKind::Challenge,
        RouteKind::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RouteKind::Page => "page",
            RouteKind::Feed => "feed",
            RouteKind::Asset => "asset",
            RouteKind::Redirect => "redirect",
            RouteKind::NotFound => "not_found",
            RouteKind::Challenge => "challenge",
            RouteKind::Other => "other",
        }
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    Timeout,
    /// The client sent an alert (it rejected our certificate, usually).
    AlertReceived,
    /// Malformed or incompatible hello: scanners, old clients.
    Protocol,
    /// The connection closed or broke mid-handshake.
    Closed,
}

impl HandshakeFailure {
    const ALL: [HandshakeFailure; 4] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::AlertReceived,
        HandshakeFailure::Protocol,
        HandshakeFailure::Closed,
    ];

    fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::AlertReceived => "alert_received",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Closed => "closed",
        }
    }

    /// Classifies the error tokio-rustls returns.
    pub fn of(error: &std::io::Error) -> HandshakeFailure {
        match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::AlertReceived(_)) => HandshakeFailure::AlertReceived,
            Some(_) => HandshakeFailure::Protocol,
            None if error.kind() == std::io::ErrorKind::InvalidData => HandshakeFailure::Protocol,
            None => HandshakeFailure::Closed,
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// Cheap to clone; every clone updates the same instruments.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Instruments>,
}

struct Instruments {
    registry: Registry,
    /// `[route kind][status class]`, created up front so counting is one atomic add.
    requests: Vec<[Counter; 5]>,
    latency: Histogram,
    /// Count and sum of the histogram, for the dashboard (the histogram keeps them private).
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    bytes_out: Counter,
    open_connections: Family<Labels, Gauge>,
    connections: Family<Labels, Counter>,
    connections_cut: Family<Labels, Counter>,
    handshakes: Counter,
    handshake_failures: [Counter; 4],
    acme_latency: Histogram,
    renewal_attempts: Counter,
    renewal_failures: Counter,
    /// Gauges refreshed at every scrape from their sources.
    scraped: Scraped,
    cluster: cluster::Gauges,
}

struct Scraped {
    site_builds: Gauge,
    site_problems: Gauge,
    certificate_not_after: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    certificate_days_left: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    task_restarts: Family<Labels, Gauge>,
    stats_recorded: Gauge,
    stats_dropped: Gauge,
    stats_flushed: Gauge,
    stats_store_bytes: Gauge,
    resident_memory: Gauge,
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    open_fds: Gauge,
    start_time: Gauge,
}

/// What the scrape reads from the rest of the server.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub site_builds: u64,
    pub site_problems: usize,
    /// (domain, not after) of the certificate being served.
    pub certificates: Vec<(String, DateTime<Utc>)>,
    pub task_restarts: Vec<(&'static str, u64)>,
    pub stats_recorded: u64,
    pub stats_dropped: u64,
    pub stats_flushed: u64,
    pub stats_store_bytes: Option<u64>,
    /// Only a node of a cluster has them.
    pub cluster: Option<cluster::Figures>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("quire");
        let requests_family = Family::<[(&'static str, &'static str); 2], Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route kind and status class",
            requests_family.clone(),
        );
        let requests = RouteKind::ALL
            .iter()
            .map(|kind| {
                STATUS_CLASSES.map(|class| {
                    requests_family
                        .get_or_create_owned(&[("route", kind.label()), ("status", class)])
                })
            })
            .collect();
        let latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response headers",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let bytes_out = Counter::default();
        registry.register_with_unit(
            "http_response_body",
            "Response body bytes handed to connections (before TLS); a stalled or aborted response counts only what was taken",
            prometheus_client::registry::Unit::Bytes,
            bytes_out.clone(),
        );
        let open_connections = Family::<Labels, Gauge>::default();
        registry.register(
            "open_connections",
            "Connections open now, by listener",
            open_connections.clone(),
        );
        let connections = Family::<Labels, Counter>::default();
        registry.register(
            "connections",
            "Connections accepted, by listener",
            connections.clone(),
        );
        let connections_cut = Family::<Labels, Counter>::default();
        registry.register(
            "connections_cut",
            "Connections the server closed for lack of progress (no request, idle, \
             a response not read) or to make room in a full table, by listener and reason",
            connections_cut.clone(),
        );
        let handshakes = Counter::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes completed",
            handshakes.clone(),
        );
        let failures_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, by reason",
            failures_family.clone(),
        );
        let handshake_failures = HandshakeFailure::ALL
            .map(|r| failures_family.get_or_create_owned(&[("reason", r.label())]));
        let acme_latency = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register_with_unit(
            "acme_request_duration",
            "Time of each request to the ACME CA",
            prometheus_client::registry::Unit::Seconds,
            acme_latency.clone(),
        );
        let renewal_attempts = Counter::default();
        registry.register(
            "certificate_orders",
            "Certificate orders started (first issue and renewals)",
            renewal_attempts.clone(),
        );
        let renewal_failures = Counter::default();
        registry.register(
            "certificate_order_failures",
            "Certificate orders that failed",
            renewal_failures.clone(),
        );
        let scraped = Scraped {
            site_builds: Gauge::default(),
            site_problems: Gauge::default(),
            certificate_not_after: Family::default(),
            certificate_days_left: Family::default(),
            task_restarts: Family::default(),
            stats_recorded: Gauge::default(),
            stats_dropped: Gauge::default(),
            stats_flushed: Gauge::default(),
            stats_store_bytes: Gauge::default(),
            resident_memory: Gauge::default(),
            cpu_seconds: Gauge::default(),
            open_fds: Gauge::default(),
            start_time: Gauge::default(),
        };
        registry.register(
            "site_builds",
            "Site builds since start, the first included",
            scraped.site_builds.clone(),
        );
        registry.register(
            "site_problems",
            "Problems (broken files) in the last site build",
            scraped.site_problems.clone(),
        );
        registry.register(
            "certificate_not_after_timestamp_seconds",
            "When the served certificate expires, by domain",
            scraped.certificate_not_after.clone(),
        );
        registry.register(
            "certificate_days_left",
            "Days until the served certificate expires, by domain",
            scraped.certificate_days_left.clone(),
        );
        registry.register(
            "task_restarts",
            "Times a supervised task was restarted after failing",
            scraped.task_restarts.clone(),
        );
        registry.register(
            "stats_views_recorded",
            "Views recorded by the statistics since start",
            scraped.stats_recorded.clone(),
        );
        registry.register(
            "stats_views_dropped",
            "Views dropped since start: the buffers were full, or the store failed for so long that the views waiting for it outgrew them",
            scraped.stats_dropped.clone(),
        );
        registry.register(
            "stats_views_flushed",
            "Views written to the statistics store since start",
            scraped.stats_flushed.clone(),
        );
        registry.register_with_unit(
            "stats_store_size",
            "Size of the statistics store on disk",
            prometheus_client::registry::Unit::Bytes,
            scraped.stats_store_bytes.clone(),
        );
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of the process",
            prometheus_client::registry::Unit::Bytes,
            scraped.resident_memory.clone(),
        );
        registry.register_with_unit(
            "process_cpu",
            "CPU time used by the process (user and system)",
            prometheus_client::registry::Unit::Seconds,
            scraped.cpu_seconds.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            scraped.open_fds.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "When the process started, in Unix time",
            scraped.start_time.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]),
        );
        Metrics {
            inner: Arc::new(Instruments {
                registry,
                requests,
                latency,
                latency_count: AtomicU64::new(0),
                latency_sum_micros: AtomicU64::new(0),
                bytes_out,
                open_connections,
                connections,
                connections_cut,
                handshakes,
                handshake_failures,
                acme_latency,
                renewal_attempts,
                renewal_failures,
                scraped,
                cluster: cluster::Gauges::new(),
            }),
        }
    }

    /// One answered request; its body is counted by [`Metrics::body_sent`]
    /// as the connection takes it, not here.
    pub fn request(&self, kind: RouteKind, status: u16, took: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        let row = RouteKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.inner.requests[row][class].inc();
        self.inner.latency.observe(took.as_secs_f64());
        self.inner.latency_count.fetch_add(1, Ordering::Relaxed);
        self.inner
            .latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Response body bytes handed to a connection.
    pub fn body_sent(&self, bytes: u64) {
        self.inner.bytes_out.inc_by(bytes);
    }

    pub fn connection_opened(&self, listener: &'static str) {
        let labels = vec![("listener", listener.to_string())];
        self.inner.connections.get_or_create(&labels).inc();
        self.inner.open_connections.get_or_create(&labels).inc();
    }

    pub fn connection_closed(&self, listener: &'static str) {
        let labels = vec![("listener", listener.to_string())];
        self.inner.open_connections.get_or_create(&labels).dec();
    }

    pub fn connection_cut(&self, listener: &'static str, reason: &'static str) {
        let labels = vec![
            ("listener", listener.to_string()),
            ("reason", reason.to_string()),
        ];
        self.inner.connections_cut.get_or_create(&labels).inc();
    }

    pub fn handshake(&self, outcome: Result<(), HandshakeFailure>) {
        match outcome {
            Ok(()) => {
                self.inner.handshakes.inc();
            }
            Err(reason) => {
                let i = HandshakeFailure::ALL
                    .iter()
                    .position(|r| *r == reason)
                    .unwrap_or(0);
                self.inner.handshake_failures[i].inc();
            }
        }
    }

    pub fn acme_request(&self, took: Duration) {
        self.inner.acme_latency.observe(took.as_secs_f64());
    }

    pub fn certificate_order(&self, succeeded: bool) {
        self.inner.renewal_attempts.inc();
        if !succeeded {
            self.inner.renewal_failures.inc();
        }
    }

    /// Requests so far by route kind (all statuses), and their total.
    pub fn request_totals(&self) -> (Vec<(&'static str, u64)>, u64) {
        let rows: Vec<(&'static str, u64)> = RouteKind::ALL
            .iter()
            .zip(&self.inner.requests)
            .map(|(kind, counters)| (kind.label(), counters.iter().map(Counter::get).sum()))
            .collect();
        let total = rows.iter().map(|(_, n)| n).sum();
        (rows, total)
    }

    /// How many requests were timed, and their mean time in seconds.
    pub fn latency_summary(&self) -> (u64, f64) {
        let count = self.inner.latency_count.load(Ordering::Relaxed);
        let sum = self.inner.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (count, if count == 0 { 0.0 } else { sum / count as f64 })
    }

    /// The exposition, in OpenMetrics text; see [`exposition`] for the other format.
    pub fn render(&self, snapshot: &Snapshot, now: DateTime<Utc>) -> String {
        let scraped = &self.inner.scraped;
        scraped.certificate_not_after.clear();
        scraped.certificate_days_left.clear();
        for (domain, not_after) in &snapshot.certificates {
            let labels = vec![("domain", domain.clone())];
            scraped
                .certificate_not_after
                .get_or_create(&labels)
                .set(not_after.timestamp() as f64);
            let days = (*not_after - now).num_seconds() as f64 / 86_400.0;
            scraped
                .certificate_days_left
                .get_or_create(&labels)
                .set(days);
        }
        for (task, restarts) in &snapshot.task_restarts {
            scraped
                .task_restarts
                .get_or_create(&vec![("task", task.to_string())])
                .set(*restarts as i64);
        }
        scraped.site_builds.set(snapshot.site_builds as i64);
        scraped.site_problems.set(snapshot.site_problems as i64);
        scraped.stats_recorded.set(snapshot.stats_recorded as i64);
        scraped.stats_dropped.set(snapshot.stats_dropped as i64);
        scraped.stats_flushed.set(snapshot.stats_flushed as i64);
        scraped
            .stats_store_bytes
            .set(snapshot.stats_store_bytes.unwrap_or(0) as i64);
        let process = process::read();
        scraped.resident_memory.set(process.resident_bytes as i64);
        scraped.cpu_seconds.set(process.cpu_seconds);
        scraped.open_fds.set(process.open_fds as i64);
        scraped.start_time.set(process.start_time as i64);
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let written = encode_registry(&mut out, &self.inner.registry).and_then(|()| {
            if let Some(figures) = &snapshot.cluster {
                self.inner.cluster.set(figures);
                encode_registry(&mut out, &self.inner.cluster.registry)?;
            }
            encode_eof(&mut out)
        });
        written.expect("writing to a String cannot fail");
        out
    }
}
