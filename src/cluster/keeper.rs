//! The keeper: one LISTEN connection per node, kept open for as long as the
//! node runs. On every (re)connection it migrates the schema, listens on
//! every [`Channel`], tells subscribers [`ClusterEvent::Connected`] (they
//! re-read what notifications they may have missed) and writes the node's
//! heartbeat every few seconds on the same connection, which also finds a
//! dead connection quickly. Failures set [`EngineHealth::Down`] and are
//! retried with backoff; the log says each change of state once.

use std::sync::Weak;
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::connect::{self, error_text};
use super::{Area, Channel, ClusterEvent, EngineHealth, Shared, nodes, schema};
use crate::config::ClusterConfig;

/// How often the node says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// The first retry is quick: a cut connection (a restarted server, a killed
/// backend) usually comes back at once.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(10);

pub(super) struct Keeper {
    pub shared: Weak<Shared>,
    pub config: ClusterConfig,
    pub tls: MakeRustlsConnect,
    pub areas: Vec<&'static Area>,
}

impl Keeper {
    /// Runs until the last [`super::Cluster`] is dropped.
    pub async fn run(self) {
        let mut areas: Vec<&Area> = vec![&super::lease::AREA, &nodes::AREA];
        areas.extend(self.areas.iter().copied());
        let started = match self.shared.upgrade() {
            Some(shared) => shared.clock.now(),
            None => return,
        };
        let mut retry = FIRST_RETRY;
        loop {
            let error = match self.session(&areas, started, &mut retry).await {
                Some(error) => error,
                None => return,
            };
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            let now = shared.clock.now();
            shared.health.send_if_modified(|health| match health {
                EngineHealth::Down { .. } => {
                    tracing::debug!("the shared PostgreSQL is still unreachable: {error}");
                    false
                }
                _ => {
                    tracing::error!(
                        "the shared PostgreSQL {} is unreachable: {error}; serving what this node holds, statistics are buffered, and no certificate is ordered until it is back",
                        shared.target
                    );
                    *health = EngineHealth::Down {
                        since: now,
                        error: error.clone(),
                    };
                    true
                }
            });
            drop(shared);
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    /// One connection, from connecting until it fails (the reason), or
    /// `None` once the cluster is dropped.
    async fn session(
        &self,
        areas: &[&Area],
        started: chrono::DateTime<chrono::Utc>,
        retry: &mut Duration,
    ) -> Option<String> {
        let settings = connect::settings(&self.config, "listen");
        let (mut client, mut connection) = match settings.connect(self.tls.clone()).await {
            Ok(pair) => pair,
            Err(e) => return Some(error_text(&e)),
        };
        let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(message)) => {
                        if messages.send(Ok(message)).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = messages.send(Err(error_text(&e)));
                        return;
                    }
                    None => {
                        let _ = messages.send(Err("the server closed the connection".into()));
                        return;
                    }
                }
            }
        });
        let _stop_driver = AbortOnDrop(driver);

        let steps = match schema::migrate(&mut client, areas).await {
            Ok(steps) => steps,
            Err(e) => return Some(e.to_string()),
        };
        let listen: String = Channel::ALL
            .iter()
            .map(|c| format!("LISTEN {};", c.name()))
            .collect();
        if let Err(e) = client.batch_execute(&listen).await {
            return Some(error_text(&e));
        }
        {
            let shared = self.shared.upgrade()?;
            let report = shared.report().clone();
            if let Err(e) = nodes::heartbeat(&client, &shared.node, started, &report).await {
                return Some(error_text(&e));
            }
            for step in steps {
                tracing::info!("shared PostgreSQL schema migrated: {step}");
            }
            shared.migrated.send_replace(true);
            let was = shared.health.send_replace(EngineHealth::Up);
            if was != EngineHealth::Up {
                tracing::info!(
                    "connected to the shared PostgreSQL {} as node {}",
                    shared.target,
                    shared.node
                );
            }
            let _ = shared.events.send(ClusterEvent::Connected);
        }
        *retry = FIRST_RETRY;

        loop {
            let beat = {
                let shared = self.shared.upgrade()?;
                let beat = shared.beat.clone();
                async move { beat.notified().await }
            };
            tokio::select! {
                message = received.recv() => match message {
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        let shared = self.shared.upgrade()?;
                        if let Some(channel) = Channel::from_name(note.channel()) {
                            let _ = shared.events.send(ClusterEvent::Notified {
                                channel,
                                payload: note.payload().to_string(),
                            });
                        }
                    }
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        tracing::debug!("PostgreSQL notice: {notice}");
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Some(e),
                    None => return Some("the connection ended".into()),
                },
                () = tokio::time::sleep(HEARTBEAT) => {}
                () = beat => {}
            }
            let shared = self.shared.upgrade()?;
            let report = shared.report().clone();
            let node = shared.node.clone();
            drop(shared);
            if let Err(e) = nodes::heartbeat(&client, &node, started, &report).await {
                return Some(error_text(&e));
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
