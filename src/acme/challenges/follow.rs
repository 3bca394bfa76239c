//! The challenge follower, on every node of a cluster: on a challenge
//! notification, on (re)connection and when it fell behind, it reads the
//! unexpired answers, replaces the shared part of this node's http-01 map and
//! tls-alpn-01 answers with them, then acknowledges the new ones. The request
//! path and the handshake only read memory; the tls-alpn-01 certificates are
//! built here, and kept while their answer stands.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use tokio::sync::broadcast::error::RecvError;

use super::Answer;
use super::shared::{self, SharedAnswer};
use crate::cluster::{Channel, Cluster, ClusterEvent};
use crate::shutdown::Shutdown;
use crate::supervisor::Activity;
use crate::tls::CertResolver;
use crate::tls::resolver::alpn_challenge_cert;
use crate::web::ChallengeMap;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Keeps this node answering every node's challenges.
#[derive(Clone)]
pub struct ChallengeFollower {
    pub cluster: Cluster,
    pub http01: ChallengeMap,
    pub resolver: Arc<CertResolver>,
}

impl Activity for ChallengeFollower {
    fn name(&self) -> &'static str {
        "challenge follower"
    }

    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        use tokio::time::Instant;
        let mut events = self.cluster.subscribe();
        let mut held = Held::default();
        // When to read the answers next; `None` while up to date. Once at
        // start: the engine may have connected before we listened.
        let mut next_read = Some(Instant::now());
        let mut retry = FIRST_RETRY;
        let mut failing = false;
        let stopped = shutdown.wait();
        tokio::pin!(stopped);
        loop {
            if next_read.is_some_and(|at| at <= Instant::now()) {
                // A read waits for the engine a few seconds at most; a
                // shutdown meanwhile need not.
                let read = tokio::select! {
                    _ = &mut stopped => return Ok(()),
                    read = self.refresh(&mut held) => read,
                };
                match read {
                    Ok(()) => {
                        if failing {
                            tracing::info!("challenge answers from the cluster are followed again");
                        }
                        (next_read, failing, retry) = (None, false, FIRST_RETRY);
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(
                                "cannot read the cluster's challenge answers ({e}); answering the ones held, retrying"
                            );
                        }
                        failing = true;
                        next_read = Some(Instant::now() + retry);
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
            }
            let due = async {
                match next_read {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stopped => return Ok(()),
                _ = due => {}
                event = events.recv() => match event {
                    // A read already due (a backoff after a failure) stays due then.
                    Ok(ClusterEvent::Notified { channel: Channel::Challenge, .. }) => {
                        next_read.get_or_insert_with(Instant::now);
                    }
                    // Reconnected, or fell behind: notifications were lost.
                    Ok(ClusterEvent::Connected) | Err(RecvError::Lagged(_)) => {
                        next_read = Some(Instant::now());
                    }
                    Ok(_) => {}
                    Err(RecvError::Closed) => anyhow::bail!("the cluster's events ended"),
                },
            }
        }
    }
}

impl ChallengeFollower {
    async fn refresh(&self, held: &mut Held) -> Result<(), crate::cluster::ClusterError> {
        let current = shared::current(&self.cluster).await?;
        let new = held.apply(&current, &self.http01, &self.resolver);
        if !new.is_empty() {
            shared::acknowledge(&self.cluster, &new).await?;
            tracing::info!(
                "answering {} new challenge(s) published in the cluster",
                new.len()
            );
            held.acked.extend(new);
        }
        Ok(())
    }
}

/// What the follower keeps between refreshes.
#[derive(Default)]
struct Held {
    /// tls-alpn-01 certificates by (name, digest), so a refresh reuses them.
    certs: HashMap<(String, Vec<u8>), Arc<CertifiedKey>>,
    /// The rows this node has acknowledged.
    acked: HashSet<i64>,
}

impl Held {
    /// Replaces the shared answers with `current` and returns the ids this
    /// node now serves and has not acknowledged yet.
    fn apply(
        &mut self,
        current: &[SharedAnswer],
        http01: &ChallengeMap,
        resolver: &CertResolver,
    ) -> Vec<i64> {
        let mut tokens = HashMap::new();
        let mut names = HashMap::new();
        let mut certs = HashMap::new();
        let mut served = Vec::with_capacity(current.len());
        for shared in current {
            match &shared.answer {
                Answer::Http01 {
                    token,
                    key_authorization,
                } => {
                    tokens.insert(token.clone(), key_authorization.clone());
                }
                // Never in the database: the zone's DNS serves it.
                Answer::Dns01 { .. } => continue,
                Answer::TlsAlpn01 { name, digest } => {
                    let key = (name.clone(), digest.clone());
                    let cert = match self.certs.remove(&key) {
                        Some(cert) => cert,
                        None => match alpn_challenge_cert(name, digest) {
                            Ok(cert) => cert,
                            // Not served, so not acknowledged.
                            Err(e) => {
                                tracing::warn!("building the tls-alpn-01 answer for {name}: {e:#}");
                                continue;
                            }
                        },
                    };
                    names.insert(name.clone(), cert.clone());
                    certs.insert(key, cert);
                }
            }
            served.push(shared.id);
        }
        http01.replace_shared(tokens);
        resolver.replace_shared_alpn_challenges(names);
        self.certs = certs;
        shared::to_acknowledge(&mut self.acked, &served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http01(id: i64, token: &str) -> SharedAnswer {
        SharedAnswer {
            id,
            answer: Answer::Http01 {
                token: token.into(),
                key_authorization: format!("{token}.thumb"),
            },
        }
    }

    fn alpn(id: i64, name: &str, digest: u8) -> SharedAnswer {
        SharedAnswer {
            id,
            answer: Answer::TlsAlpn01 {
                name: name.into(),
                digest: vec![digest; 32],
            },
        }
    }

    fn node() -> (ChallengeMap, Arc<CertResolver>) {
        let localhost = [crate::names::DnsName::localhost()];
        let now = chrono::Utc::now();
        let bundle = crate::tls::CertBundle::temporary(&localhost, now).unwrap();
        (ChallengeMap::default(), CertResolver::new(bundle))
    }

    #[test]
    fn a_refresh_replaces_the_shared_answers_and_keeps_this_nodes_own() {
        let (map, resolver) = node();
        let mut held = Held::default();
        map.insert("own".into(), "own.thumb".into());

        let new = held.apply(&[http01(1, "a"), http01(2, "b")], &map, &resolver);
        assert_eq!(new, [1, 2]);
        held.acked.extend(new);
        assert_eq!(map.get("a").as_deref(), Some("a.thumb"));

        // "a" withdrawn, "c" published: only "c" is acknowledged.
        let new = held.apply(&[http01(2, "b"), http01(3, "c")], &map, &resolver);
        assert_eq!(new, [3]);
        assert_eq!(map.get("a"), None);
        assert_eq!(map.get("b").as_deref(), Some("b.thumb"));
        assert_eq!(map.get("c").as_deref(), Some("c.thumb"));
        assert_eq!(map.get("own").as_deref(), Some("own.thumb"));

        // Everything withdrawn: this node's own answer still stands.
        assert!(held.apply(&[], &map, &resolver).is_empty());
        assert_eq!(map.get("b"), None);
        assert_eq!(map.get("own").as_deref(), Some("own.thumb"));
        assert!(held.acked.is_empty());
    }

    #[test]
    fn alpn_certificates_are_built_once_per_answer() {
        let (map, resolver) = node();
        let mut held = Held::default();
        held.apply(&[alpn(1, "a.example", 1)], &map, &resolver);
        let first = held.certs[&("a.example".to_string(), vec![1; 32])].clone();
        held.apply(
            &[alpn(1, "a.example", 1), alpn(2, "b.example", 2)],
            &map,
            &resolver,
        );
        assert!(Arc::ptr_eq(
            &held.certs[&("a.example".to_string(), vec![1; 32])],
            &first
        ));
        // A new order for the same name: a new digest, a new certificate.
        held.apply(&[alpn(3, "a.example", 3)], &map, &resolver);
        assert_eq!(held.certs.len(), 1);
        assert!(!Arc::ptr_eq(
            &held.certs[&("a.example".to_string(), vec![3; 32])],
            &first
        ));
    }
}
