//! ACME http-01 challenge responses: token -> key authorization. The certificate
//! manager fills it; the plain HTTP listener answers from it. A hit wakes the
//! manager at once: the CA has just fetched the token, so validation is under
//! way and polling the order now beats sleeping on a fixed interval.
//!
//! In a cluster a second, shared part holds the answers every node published
//! (the challenge follower replaces it whole from the database), so that a
//! node answers for an order another node started. The two parts are apart so
//! that a refresh of the shared one never removes an answer this node's own
//! order just put in.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

#[derive(Default)]
struct Entry {
    key_authorization: String,
    fetched: bool,
}

#[derive(Clone, Default)]
pub struct ChallengeMap {
    /// This node's own answers, with whether the CA fetched them.
    tokens: Arc<RwLock<HashMap<String, Entry>>>,
    /// Every node's answers, as the database last listed them.
    shared: Arc<ArcSwap<HashMap<String, String>>>,
    fetched: Arc<Notify>,
}

impl ChallengeMap {
    pub fn insert(&self, token: String, key_authorization: String) {
        self.tokens.write().expect("challenge map poisoned").insert(
            token,
            Entry {
                key_authorization,
                fetched: false,
            },
        );
    }

    pub fn remove(&self, token: &str) {
        self.tokens
            .write()
            .expect("challenge map poisoned")
            .remove(token);
    }

    /// Replaces the shared part whole (token -> key authorization); this
    /// node's own answers stay.
    pub fn replace_shared(&self, answers: HashMap<String, String>) {
        self.shared.store(Arc::new(answers));
    }

    /// The answer for `token`; a hit on an own answer counts as the CA
    /// fetching it.
    pub fn get(&self, token: &str) -> Option<String> {
        let own = {
            let mut tokens = self.tokens.write().expect("challenge map poisoned");
            tokens.get_mut(token).map(|entry| {
                entry.fetched = true;
                entry.key_authorization.clone()
            })
        };
        match own {
            Some(answer) => {
                self.fetched.notify_waiters();
                Some(answer)
            }
            None => self.shared.load().get(token).cloned(),
        }
    }

    fn was_fetched(&self, token: &str) -> bool {
        self.tokens
            .read()
            .expect("challenge map poisoned")
            .get(token)
            .is_some_and(|e| e.fetched)
    }

    /// Waits until the CA has fetched `token`, or `limit` passes. Returns
    /// whether it was fetched.
    pub async fn wait_fetched(&self, token: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a fetch in between still wakes us.
            let notified = self.fetched.notified();
            if self.was_fetched(token) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.was_fetched(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fetch_wakes_the_waiter() {
        let map = ChallengeMap::default();
        map.insert("t".into(), "t.thumb".into());
        let waiter = {
            let map = map.clone();
            tokio::spawn(async move { map.wait_fetched("t", Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(map.get("t").as_deref(), Some("t.thumb"));
        assert!(waiter.await.unwrap());
        assert_eq!(map.get("unknown"), None);
    }

    #[test]
    fn a_shared_refresh_keeps_this_nodes_own_answers() {
        let map = ChallengeMap::default();
        map.insert("own".into(), "own.thumb".into());
        map.replace_shared(HashMap::from([("other".into(), "other.thumb".into())]));
        assert_eq!(map.get("own").as_deref(), Some("own.thumb"));
        assert_eq!(map.get("other").as_deref(), Some("other.thumb"));

        // The database no longer lists either: the shared answer goes, the
        // own one (published a moment ago, perhaps not yet listed) stays.
        map.replace_shared(HashMap::new());
        assert_eq!(map.get("own").as_deref(), Some("own.thumb"));
        assert_eq!(map.get("other"), None);

        // An own answer withdrawn is answered from the shared part until the
        // follower's next refresh, which no longer lists it.
        map.replace_shared(HashMap::from([("own".into(), "own.thumb".into())]));
        map.remove("own");
        assert_eq!(map.get("own").as_deref(), Some("own.thumb"));
        map.replace_shared(HashMap::new());
        assert_eq!(map.get("own"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfetched_token_times_out() {
        let map = ChallengeMap::default();
        map.insert("t".into(), "t.thumb".into());
        assert!(!map.wait_fetched("t", Duration::from_secs(5)).await);
    }
}
