//! Where an order's challenge answers go: the seam between the ACME client
//! and whoever answers the CA. A single node puts them in its own http-01 map
//! and tls-alpn-01 resolver; in a cluster they also go into PostgreSQL
//! (`shared`), where every node's follower (`follow`) takes them into its
//! memory and acknowledges them, and the CA is told only once the live nodes
//! have, so that validation reaching any node finds the answer.

mod follow;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

pub use follow::ChallengeFollower;
pub use shared::AREA;

use crate::cluster::{Cluster, ClusterError};
use crate::tls::CertResolver;
use crate::web::ChallengeMap;

/// One challenge's answer, as the CA will ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Served at `/.well-known/acme-challenge/<token>` on port 80.
    Http01 {
        token: String,
        key_authorization: String,
    },
    /// A certificate for `name` carrying `digest` (the SHA-256 of the key
    /// authorization), served to `acme-tls/1` handshakes on port 443.
    TlsAlpn01 { name: String, digest: Vec<u8> },
}

const HTTP01: &str = "http-01";
const TLS_ALPN01: &str = "tls-alpn-01";

impl Answer {
    /// (kind, key, value) as the database holds them.
    fn to_row(&self) -> (&'static str, &str, String) {
        match self {
            Answer::Http01 {
                token,
                key_authorization,
            } => (HTTP01, token, key_authorization.clone()),
            Answer::TlsAlpn01 { name, digest } => (
                TLS_ALPN01,
                name,
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
            ),
        }
    }

    /// The answer a database row holds, if it is one this binary knows.
    fn from_row(kind: &str, key: String, value: String) -> Option<Answer> {
        match kind {
            HTTP01 => Some(Answer::Http01 {
                token: key,
                key_authorization: value,
            }),
            TLS_ALPN01 => Some(Answer::TlsAlpn01 {
                name: key.to_ascii_lowercase(),
                digest: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(value)
                    .ok()?,
            }),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("building the tls-alpn-01 answer for {name}: {source:#}")]
    AlpnCertificate { name: String, source: anyhow::Error },
    #[error("an order has at most {most} challenges to publish, not {0}", most = shared::MOST_ANSWERS)]
    TooMany(usize),
    #[error("publishing the challenge answers to the cluster: {0}")]
    Cluster(#[from] ClusterError),
}

/// Publishes and withdraws challenge answers: this node's memory, plus the
/// cluster's database when there is one.
#[derive(Clone)]
pub struct Challenges {
    http01: ChallengeMap,
    resolver: Arc<CertResolver>,
    cluster: Option<Cluster>,
}

impl Challenges {
    pub fn new(
        http01: ChallengeMap,
        resolver: Arc<CertResolver>,
        cluster: Option<Cluster>,
    ) -> Challenges {
        Challenges {
            http01,
            resolver,
            cluster,
        }
    }

    /// Puts `answers` where the CA will find them: in this node's memory at
    /// once and, in a cluster, on every live node (waiting, bounded, for
    /// their acknowledgements). Withdrawn when the returned guard is.
    pub async fn publish(&self, answers: Vec<Answer>) -> Result<Published, ChallengeError> {
        if answers.len() > shared::MOST_ANSWERS {
            return Err(ChallengeError::TooMany(answers.len()));
        }
        // The guard first, so that a failure part way still withdraws.
        let mut published = Published {
            challenges: self.clone(),
            answers: Vec::with_capacity(answers.len()),
            ids: Vec::new(),
            withdrawn: false,
        };
        for answer in answers {
            match &answer {
                Answer::Http01 {
                    token,
                    key_authorization,
                } => self.http01.insert(token.clone(), key_authorization.clone()),
                Answer::TlsAlpn01 { name, digest } => self
                    .resolver
                    .set_alpn_challenge(name, digest)
                    .map_err(|source| ChallengeError::AlpnCertificate {
                        name: name.clone(),
                        source,
                    })?,
            }
            published.answers.push(answer);
        }
        if let Some(cluster) = &self.cluster {
            published.ids = shared::publish(cluster, &published.answers).await?;
        }
        Ok(published)
    }
}

/// Answers in place for one order; withdrawn by [`Published::withdraw`], or
/// when dropped (a failed or cancelled order), whatever the outcome.
pub struct Published {
    challenges: Challenges,
    answers: Vec<Answer>,
    /// The database rows, in a cluster.
    ids: Vec<i64>,
    withdrawn: bool,
}

impl Published {
    /// Waits until the CA has fetched every http-01 token, or `limit` passes:
    /// the moment to poll the order. Only this node's fetches show, so in a
    /// cluster, where the CA may ask another node, it does not wait.
    pub async fn wait_fetched(&self, limit: Duration) {
        if self.challenges.cluster.is_some() {
            return;
        }
        for answer in &self.answers {
            if let Answer::Http01 { token, .. } = answer {
                self.challenges.http01.wait_fetched(token, limit).await;
            }
        }
    }

    /// Removes the answers from this node and from the cluster's database.
    pub async fn withdraw(mut self) {
        self.withdraw_here();
        if let Some(cluster) = &self.challenges.cluster {
            shared::withdraw(cluster, &self.ids).await;
        }
    }

    fn withdraw_here(&mut self) {
        self.withdrawn = true;
        for answer in &self.answers {
            match answer {
                Answer::Http01 { token, .. } => self.challenges.http01.remove(token),
                Answer::TlsAlpn01 { name, .. } => {
                    self.challenges.resolver.clear_alpn_challenge(name)
                }
            }
        }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        if self.withdrawn {
            return;
        }
        self.withdraw_here();
        // Rows left behind expire within minutes anyway; deleting them now
        // spares the other nodes serving a finished order's answers.
        if let (Some(cluster), Ok(runtime)) = (
            self.challenges.cluster.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            let ids = std::mem::take(&mut self.ids);
            runtime.spawn(async move { shared::withdraw(&cluster, &ids).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_survive_the_database_row() {
        for answer in [
            Answer::Http01 {
                token: "tok".into(),
                key_authorization: "tok.thumb".into(),
            },
            Answer::TlsAlpn01 {
                name: "a.example".into(),
                digest: (0..32).collect(),
            },
        ] {
            let (kind, key, value) = answer.to_row();
            assert_eq!(Answer::from_row(kind, key.into(), value), Some(answer));
        }
        assert_eq!(Answer::from_row("dns-01", "k".into(), "v".into()), None);
        assert_eq!(
            Answer::from_row(TLS_ALPN01, "a.example".into(), "not base64!".into()),
            None
        );
    }

    #[tokio::test]
    async fn a_single_node_answers_from_its_memory_until_withdrawn() {
        let now = chrono::Utc::now();
        let localhost = [crate::names::DnsName::localhost()];
        let resolver =
            CertResolver::new(crate::tls::CertBundle::temporary(&localhost, now).unwrap());
        let http01 = ChallengeMap::default();
        let challenges = Challenges::new(http01.clone(), resolver.clone(), None);
        let published = challenges
            .publish(vec![Answer::Http01 {
                token: "tok".into(),
                key_authorization: "tok.thumb".into(),
            }])
            .await
            .unwrap();
        assert_eq!(http01.get("tok").as_deref(), Some("tok.thumb"));
        published.withdraw().await;
        assert_eq!(http01.get("tok"), None);

        // Dropped without withdrawing (a failed order): gone all the same.
        drop(
            challenges
                .publish(vec![Answer::Http01 {
                    token: "tok2".into(),
                    key_authorization: "tok2.thumb".into(),
                }])
                .await
                .unwrap(),
        );
        assert_eq!(http01.get("tok2"), None);
    }
}
