//! Where an order's challenge answers go: the seam between the ACME client
//! and whoever answers the CA. A single node puts them in its own http-01 map
//! and tls-alpn-01 resolver; in a cluster they also go into PostgreSQL
//! (`shared`), where every node's follower (`follow`) takes them into its
//! memory and acknowledges them, and the CA is told only once the live nodes
//! have, so that validation reaching any node finds the answer. dns-01
//! answers go to the zone's DNS server instead (`super::dns01`), which every
//! node and the CA already share: they never go into the database.

mod follow;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

pub use follow::ChallengeFollower;
pub use shared::AREA;

use super::dns01::{Dns01, Dns01Error, TxtRecord};
use super::lease::Lease;
use crate::cluster::{Cluster, ClusterError};
use crate::names::DnsName;
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
    /// A TXT record `_acme-challenge.<name>` holding `value` (the base64url
    /// SHA-256 of the key authorization), published in the zone's DNS.
    Dns01 { name: DnsName, value: String },
}

const HTTP01: &str = "http-01";
const TLS_ALPN01: &str = "tls-alpn-01";

impl Answer {
    /// (kind, key, value) as the database holds them; `None` for dns-01,
    /// which is not shared through it.
    fn to_row(&self) -> Option<(&'static str, &str, String)> {
        match self {
            Answer::Http01 {
                token,
                key_authorization,
            } => Some((HTTP01, token, key_authorization.clone())),
            Answer::TlsAlpn01 { name, digest } => Some((
                TLS_ALPN01,
                name,
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
            )),
            Answer::Dns01 { .. } => None,
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
    #[error("publishing the dns-01 answers: {0}")]
    Dns(#[from] Dns01Error),
    #[error("the CA asked for dns-01 answers, but no [tls.dns] says where to publish them")]
    NoDns,
}

/// Publishes and withdraws challenge answers: this node's memory, plus the
/// cluster's database when there is one.
#[derive(Clone)]
pub struct Challenges {
    http01: ChallengeMap,
    resolver: Arc<CertResolver>,
    cluster: Option<Cluster>,
    dns: Option<Arc<Dns01>>,
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
            dns: None,
        }
    }

    /// dns-01 answers go through `dns`.
    pub fn with_dns(self, dns: Dns01) -> Challenges {
        Challenges {
            dns: Some(Arc::new(dns)),
            ..self
        }
    }

    /// Deletes dns-01 records an earlier order left behind (a crash), if
    /// dns-01 is in use.
    pub async fn clean_leftovers(&self, lease: &Lease) {
        if let Some(dns) = &self.dns {
            dns.clean_leftovers(lease).await;
        }
    }

    /// Puts `answers` where the CA will find them: in this node's memory at
    /// once and, in a cluster, on every live node (waiting, bounded, for
    /// their acknowledgements); dns-01 answers in the zone, noted in the
    /// store under `lease`. Withdrawn when the returned guard is.
    pub async fn publish(
        &self,
        answers: Vec<Answer>,
        lease: &Lease,
    ) -> Result<Published, ChallengeError> {
        if answers.len() > shared::MOST_ANSWERS {
            return Err(ChallengeError::TooMany(answers.len()));
        }
        // The guard first, so that a failure part way still withdraws.
        let mut published = Published {
            challenges: self.clone(),
            answers: Vec::with_capacity(answers.len()),
            ids: Vec::new(),
            dns_records: Vec::new(),
            lease: lease.clone(),
            withdrawn: false,
        };
        let mut records = Vec::new();
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
                Answer::Dns01 { name, value } => {
                    records.push(TxtRecord::for_name(name, value.clone()));
                }
            }
            published.answers.push(answer);
        }
        if !records.is_empty() {
            let dns = self.dns.as_ref().ok_or(ChallengeError::NoDns)?;
            // Noted for withdrawal first: a failure part way still deletes.
            published.dns_records = records.clone();
            dns.publish(&records, lease).await?;
        }
        if let Some(cluster) = &self.cluster {
            let shareable: Vec<Answer> = (published.answers.iter())
                .filter(|a| a.to_row().is_some())
                .cloned()
                .collect();
            published.ids = shared::publish(cluster, &shareable).await?;
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
    /// The TXT records added to the zone.
    dns_records: Vec<TxtRecord>,
    /// What the note of pending dns-01 records is written under.
    lease: Lease,
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

    /// Removes the answers from this node, the cluster's database and the
    /// zone.
    pub async fn withdraw(mut self) {
        self.withdraw_here();
        if let Some(cluster) = &self.challenges.cluster {
            shared::withdraw(cluster, &self.ids).await;
        }
        if let (Some(dns), false) = (&self.challenges.dns, self.dns_records.is_empty()) {
            dns.withdraw(&self.dns_records, &self.lease).await;
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
                Answer::Dns01 { .. } => {}
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
        // Records left in the zone are deleted at the next start anyway
        // (they are noted); deleting them now keeps the zone tidy.
        if let (Some(dns), Ok(runtime)) = (
            self.challenges.dns.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            let records = std::mem::take(&mut self.dns_records);
            let lease = self.lease.clone();
            if !records.is_empty() {
                runtime.spawn(async move { dns.withdraw(&records, &lease).await });
            }
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
            let (kind, key, value) = answer.to_row().unwrap();
            assert_eq!(Answer::from_row(kind, key.into(), value), Some(answer));
        }
        let dns = Answer::Dns01 {
            name: DnsName::localhost(),
            value: "v".into(),
        };
        assert_eq!(dns.to_row(), None);
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
        let lease = Lease::new(
            "certificates".into(),
            1,
            Duration::from_secs(60),
            now + chrono::Duration::minutes(1),
            None,
        );
        let published = challenges
            .publish(
                vec![Answer::Http01 {
                    token: "tok".into(),
                    key_authorization: "tok.thumb".into(),
                }],
                &lease,
            )
            .await
            .unwrap();
        assert_eq!(http01.get("tok").as_deref(), Some("tok.thumb"));
        published.withdraw().await;
        assert_eq!(http01.get("tok"), None);

        // Dropped without withdrawing (a failed order): gone all the same.
        drop(
            challenges
                .publish(
                    vec![Answer::Http01 {
                        token: "tok2".into(),
                        key_authorization: "tok2.thumb".into(),
                    }],
                    &lease,
                )
                .await
                .unwrap(),
        );
        assert_eq!(http01.get("tok2"), None);

        // dns-01 answers need [tls.dns]; nothing stays published.
        let refused = challenges
            .publish(
                vec![
                    Answer::Http01 {
                        token: "tok3".into(),
                        key_authorization: "tok3.thumb".into(),
                    },
                    Answer::Dns01 {
                        name: DnsName::localhost(),
                        value: "v".into(),
                    },
                ],
                &lease,
            )
            .await;
        assert!(matches!(refused, Err(ChallengeError::NoDns)));
        assert_eq!(http01.get("tok3"), None);
    }
}
