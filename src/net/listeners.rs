//! [`Listeners`]: the listeners a command serves, gathered with the limits and
//! metrics they share and started together under a [`Supervisor`]. `quire
//! serve`, `quire cert renew` (run without a server) and `quire local-ca` each
//! start theirs this one way.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{App, Cores, Listener, LiveLimits, SocketName};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::supervisor::Supervisor;

/// How long past the grace period a listener may take to close what is left
/// before the supervisor cuts it off.
const CLOSING_SLACK: Duration = Duration::from_secs(5);

/// A set of listening sockets and what each serves.
pub struct Listeners {
    limits: LiveLimits,
    metrics: Metrics,
    cores: Cores,
    listeners: Vec<Listener>,
}

impl Listeners {
    /// Listeners served on `cores`.
    pub fn new(limits: LiveLimits, metrics: Metrics, cores: Cores) -> Listeners {
        Listeners {
            limits,
            metrics,
            cores,
            listeners: Vec::new(),
        }
    }

    /// Serves `app` on `socket`, over TLS when given an acceptor.
    pub fn add(
        &mut self,
        name: SocketName,
        socket: Arc<TcpListener>,
        tls: Option<TlsAcceptor>,
        app: App,
    ) {
        self.listeners.push(Listener {
            name,
            socket,
            tls,
            app,
            limits: self.limits.clone(),
            metrics: self.metrics.clone(),
            cores: self.cores.clone(),
        });
    }

    /// Every socket by name, to hand to a successor.
    pub fn sockets(&self) -> Vec<(SocketName, BorrowedFd<'_>)> {
        self.listeners
            .iter()
            .map(|listener| (listener.name, listener.socket.as_fd()))
            .collect()
    }

    /// Every bound address by name, for the readiness status.
    pub fn addresses(&self) -> Vec<(SocketName, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|listener| Some((listener.name, listener.socket.local_addr().ok()?)))
            .collect()
    }

    /// How long a supervisor of these listeners lets them drain at shutdown:
    /// the grace period in force, and a moment to close.
    pub fn stop_deadline(&self) -> Duration {
        self.limits.load().shutdown_grace + CLOSING_SLACK
    }

    /// Starts every listener under `supervisor`.
    pub fn spawn(&self, supervisor: &mut Supervisor) {
        for listener in &self.listeners {
            supervisor.spawn(listener.clone());
        }
    }

    /// Starts every listener under a supervisor of their own, for a command
    /// that serves only for a while; stopping it drains them.
    pub fn start(&self) -> Supervisor {
        let mut supervisor = Supervisor::new(Shutdown::new(), self.stop_deadline());
        self.spawn(&mut supervisor);
        supervisor
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::config::Limits;
    use crate::net::live_limits;

    #[tokio::test]
    async fn started_listeners_serve_until_stopped_and_are_handed_over_by_name() {
        let socket = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let mut listeners = Listeners::new(
            live_limits(Limits::default()),
            Metrics::new(),
            Cores::current(),
        );
        let app =
            App::Router(axum::Router::new().route("/", axum::routing::get(|| async { "hello" })));
        listeners.add(SocketName::Metrics, socket, None, app);
        let names: Vec<SocketName> = listeners.sockets().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [SocketName::Metrics]);

        let running = listeners.start();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
        running.stop().await;
        drop(listeners);
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
