//! Challenge answers in PostgreSQL: the `challenges` schema area, the
//! ordering node's publication (rows + `NOTIFY quire_challenge`, then the
//! bounded wait for every live node's acknowledgement), its withdrawal, and
//! what the followers read and acknowledge.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use super::Answer;
use crate::cluster::schema::Area;
use crate::cluster::{self, Channel, Cluster, ClusterError, ClusterEvent};

pub const AREA: Area = Area {
    name: "challenges",
    steps: &["CREATE TABLE quire_challenges (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            key text NOT NULL CHECK (length(key) <= 256),
            value text NOT NULL CHECK (length(value) <= 256),
            created_by text NOT NULL,
            expires timestamptz NOT NULL
        );
        CREATE INDEX quire_challenges_expires ON quire_challenges (expires);
        CREATE TABLE quire_challenge_acks (
            challenge_id bigint NOT NULL REFERENCES quire_challenges (id) ON DELETE CASCADE,
            node text NOT NULL,
            PRIMARY KEY (challenge_id, node)
        );"],
};

/// The most answers one order publishes (Let's Encrypt allows 100 names).
pub const MOST_ANSWERS: usize = 100;
/// The most rows a follower takes in: several orders' worth at once.
const MOST_ROWS: i64 = 1000;
/// How long a row stands, by the database clock, if nobody withdraws it.
const ROW_LIFETIME_SECS: f64 = 600.0;
/// A node heard from this recently must acknowledge before the CA is told.
const LIVE_WITHIN: Duration = Duration::from_secs(15);
/// How long the ordering node waits for acknowledgements; past it the CA is
/// told anyway and may fail a validation that reached a silent node (an
/// order the schedule retries).
const ACK_LIMIT: Duration = Duration::from_secs(10);
/// Acknowledgements arrive by notification; this re-reads them in case one
/// was lost with a connection.
const ACK_RECHECK: Duration = Duration::from_secs(1);

/// Inserts `answers` as this node's, tells every node, and waits (bounded)
/// until every other live node has acknowledged them. Returns the rows' ids.
pub(super) async fn publish(
    cluster: &Cluster,
    answers: &[Answer],
) -> Result<Vec<i64>, ClusterError> {
    if answers.is_empty() {
        return Ok(Vec::new());
    }
    // Subscribed before the rows exist, so no acknowledgement is missed.
    let mut events = cluster.subscribe();
    let node = cluster.node().as_str().to_string();
    let mut client = cluster.client().await?;
    let transaction = client.transaction().await?;
    // Rows of an order whose node died before withdrawing them.
    transaction
        .execute("DELETE FROM quire_challenges WHERE expires < now()", &[])
        .await?;
    let mut ids = Vec::with_capacity(answers.len());
    for (kind, key, value) in answers.iter().filter_map(Answer::to_row) {
        let row = transaction
            .query_one(
                "INSERT INTO quire_challenges (kind, key, value, created_by, expires)
                 VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
                 RETURNING id",
                &[&kind, &key, &value, &node, &ROW_LIFETIME_SECS],
            )
            .await?;
        ids.push(row.get::<_, i64>(0));
    }
    cluster::notify(&transaction, Channel::Challenge, &node).await?;
    transaction.commit().await?;
    drop(client);

    let peers = DatabasePeers { cluster };
    let acks = wait_for_acks(&peers, &ids, &mut events, ACK_LIMIT).await;
    let silent = acks.silent;
    if silent.is_empty() {
        let held = match acks.held.is_empty() {
            true => "no other node is live".to_string(),
            false => format!("{} hold them", acks.held.join(", ")),
        };
        tracing::info!(
            "published {} challenge answer(s) in the cluster; {held}",
            ids.len()
        );
    } else {
        tracing::warn!(
            "nodes {} did not acknowledge the challenge answers within {}s; telling the CA anyway, and validation reaching them may fail (the order is then retried)",
            silent.join(", "),
            ACK_LIMIT.as_secs()
        );
    }
    Ok(ids)
}

/// Deletes the rows `ids` (their acknowledgements go with them) and tells
/// the nodes. A failure only logs: the rows expire on their own.
pub(super) async fn withdraw(cluster: &Cluster, ids: &[i64]) {
    if ids.is_empty() {
        return;
    }
    let result = async {
        let mut client = cluster.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute("DELETE FROM quire_challenges WHERE id = ANY($1)", &[&ids])
            .await?;
        cluster::notify(&transaction, Channel::Challenge, cluster.node().as_str()).await?;
        transaction.commit().await?;
        Ok::<_, ClusterError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(
            "could not withdraw the challenge answers from the cluster ({e}); they expire within {} minutes",
            ROW_LIFETIME_SECS as u64 / 60
        );
    }
}

/// One unexpired answer in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SharedAnswer {
    pub id: i64,
    pub answer: Answer,
}

/// The unexpired answers, newest first, at most [`MOST_ROWS`].
pub(super) async fn current(cluster: &Cluster) -> Result<Vec<SharedAnswer>, ClusterError> {
    let client = cluster.client().await?;
    let rows = client
        .query(
            "SELECT id, kind, key, value FROM quire_challenges
             WHERE expires > now() ORDER BY id DESC LIMIT $1",
            &[&(MOST_ROWS + 1)],
        )
        .await?;
    if rows.len() as i64 > MOST_ROWS {
        tracing::warn!(
            "more than {MOST_ROWS} challenge answers stand in the cluster's database; answering the newest {MOST_ROWS}"
        );
    }
    Ok(rows
        .iter()
        .take(MOST_ROWS as usize)
        .filter_map(|row| {
            let answer = Answer::from_row(row.get(1), row.get(2), row.get(3))?;
            Some(SharedAnswer {
                id: row.get(0),
                answer,
            })
        })
        .collect())
}

/// Records that this node serves `ids` and tells the ordering node. Rows
/// withdrawn meanwhile are skipped.
pub(super) async fn acknowledge(cluster: &Cluster, ids: &[i64]) -> Result<(), ClusterError> {
    let node = cluster.node().as_str();
    let mut client = cluster.client().await?;
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "INSERT INTO quire_challenge_acks (challenge_id, node)
             SELECT id, $2 FROM quire_challenges WHERE id = ANY($1)
             ON CONFLICT DO NOTHING",
            &[&ids, &node],
        )
        .await?;
    cluster::notify(&transaction, Channel::ChallengeAck, node).await?;
    transaction.commit().await?;
    Ok(())
}

/// The other live nodes, by whether they acknowledged every answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Acks {
    pub held: Vec<String>,
    pub silent: Vec<String>,
}

/// Who acknowledged, as the database says.
pub(super) trait Peers {
    /// The live nodes other than this one, by whether they acknowledged
    /// every one of `ids`.
    fn acks(&self, ids: &[i64]) -> impl Future<Output = Result<Acks, ClusterError>> + Send;
}

struct DatabasePeers<'a> {
    cluster: &'a Cluster,
}

impl Peers for DatabasePeers<'_> {
    async fn acks(&self, ids: &[i64]) -> Result<Acks, ClusterError> {
        let live = cluster::nodes::live_nodes(self.cluster, LIVE_WITHIN).await?;
        let client = self.cluster.client().await?;
        let rows = client
            .query(
                "SELECT node, count(*) FROM quire_challenge_acks
                 WHERE challenge_id = ANY($1) GROUP BY node",
                &[&ids],
            )
            .await?;
        let acked: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let me = self.cluster.node().as_str();
        let (held, silent) = live
            .iter()
            .map(|n| n.as_str().to_string())
            .filter(|n| n != me)
            .partition(|n| acked.get(n).copied().unwrap_or(0) >= ids.len() as i64);
        Ok(Acks { held, silent })
    }
}

/// Waits until no live node owes an acknowledgement of `ids`, re-asking
/// `peers` on each acknowledgement (and on reconnection, or a lost one),
/// for at most `limit`. Returns the last answer: who is still silent then.
pub(super) async fn wait_for_acks(
    peers: &impl Peers,
    ids: &[i64],
    events: &mut broadcast::Receiver<ClusterEvent>,
    limit: Duration,
) -> Acks {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = Acks::default();
    loop {
        match peers.acks(ids).await {
            Ok(acks) if acks.silent.is_empty() => return acks,
            Ok(acks) => last = acks,
            // The engine went away mid-wait: the last answer stands.
            Err(e) => tracing::debug!("reading the acknowledgements: {e}"),
        }
        let recheck = tokio::time::Instant::now() + ACK_RECHECK;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return last,
                _ = tokio::time::sleep_until(recheck) => break,
                event = events.recv() => match event {
                    Ok(ClusterEvent::Notified { channel: Channel::ChallengeAck, .. })
                    | Ok(ClusterEvent::Connected)
                    | Err(RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    // The cluster is gone (shutting down): nothing more will come.
                    Err(RecvError::Closed) => return last,
                },
            }
        }
    }
}

/// The ids among `current` not yet in `acked`; `acked` keeps only the ids
/// still current, so it stays as small as the table.
pub(super) fn to_acknowledge(acked: &mut HashSet<i64>, current: &[i64]) -> Vec<i64> {
    let current: HashSet<i64> = current.iter().copied().collect();
    acked.retain(|id| current.contains(id));
    let mut new: Vec<i64> = current.difference(acked).copied().collect();
    new.sort_unstable();
    new
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Peers whose acknowledgements the test sets, counting how often they
    /// are asked.
    struct FakePeers {
        acks: Mutex<Acks>,
        asked: Mutex<usize>,
    }

    impl FakePeers {
        fn new(silent: &[&str]) -> FakePeers {
            FakePeers {
                acks: Mutex::new(Acks {
                    held: Vec::new(),
                    silent: silent.iter().map(|s| s.to_string()).collect(),
                }),
                asked: Mutex::new(0),
            }
        }

        fn acknowledge(&self, node: &str) {
            let mut acks = self.acks.lock().unwrap();
            acks.silent.retain(|n| n != node);
            acks.held.push(node.to_string());
        }
    }

    impl Peers for FakePeers {
        async fn acks(&self, _ids: &[i64]) -> Result<Acks, ClusterError> {
            *self.asked.lock().unwrap() += 1;
            Ok(self.acks.lock().unwrap().clone())
        }
    }

    fn ack() -> ClusterEvent {
        ClusterEvent::Notified {
            channel: Channel::ChallengeAck,
            payload: "node-2".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_node_holds_the_order_back_no_longer_than_the_limit() {
        let peers = FakePeers::new(&["node-2", "node-3"]);
        let (_tx, mut events) = broadcast::channel(16);
        let started = tokio::time::Instant::now();
        let acks = wait_for_acks(&peers, &[1], &mut events, ACK_LIMIT).await;
        assert_eq!(acks.silent, ["node-2", "node-3"]);
        assert_eq!(started.elapsed(), ACK_LIMIT);
        // Re-asked about once a second meanwhile, not in a spin.
        let asked = *peers.asked.lock().unwrap();
        assert!((10..=12).contains(&asked), "asked {asked} times");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_acknowledgement_ends_the_wait_at_once() {
        let peers = std::sync::Arc::new(FakePeers::new(&["node-2"]));
        let (tx, mut events) = broadcast::channel(16);
        let started = tokio::time::Instant::now();
        let waiter = {
            let peers = peers.clone();
            tokio::spawn(async move { wait_for_acks(&*peers, &[1], &mut events, ACK_LIMIT).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        // An acknowledgement of another node's, or for another order: still waiting.
        tx.send(ack()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        peers.acknowledge("node-2");
        tx.send(ack()).unwrap();
        let acks = waiter.await.unwrap();
        assert_eq!(acks.held, ["node-2"]);
        assert!(acks.silent.is_empty());
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn no_live_peer_means_no_wait() {
        let peers = FakePeers::new(&[]);
        let (_tx, mut events) = broadcast::channel(16);
        let started = tokio::time::Instant::now();
        let acks = wait_for_acks(&peers, &[1, 2], &mut events, ACK_LIMIT).await;
        assert_eq!(acks, Acks::default());
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[test]
    fn only_new_answers_are_acknowledged_and_the_memory_stays_small() {
        let mut acked = HashSet::new();
        assert_eq!(to_acknowledge(&mut acked, &[3, 1, 2]), [1, 2, 3]);
        acked.extend([1, 2, 3]);
        assert!(to_acknowledge(&mut acked, &[1, 2, 3]).is_empty());
        assert_eq!(to_acknowledge(&mut acked, &[2, 4]), [4]);
        assert_eq!(acked, HashSet::from([2]));
    }
}
