//! ACME http-01 challenge responses: token -> key authorization. The certificate
//! manager fills it; the plain HTTP listener answers from it. A hit wakes the
//! manager at once: the CA has just fetched the token, so validation is under
//! way and polling the order now beats sleeping on a fixed interval.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
struct Entry {
    key_authorization: String,
    fetched: bool,
}

#[derive(Clone, Default)]
pub struct ChallengeMap {
    tokens: Arc<RwLock<HashMap<String, Entry>>>,
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

    /// The answer for `token`; a hit counts as the CA fetching it.
    pub fn get(&self, token: &str) -> Option<String> {
        let answer = {
            let mut tokens = self.tokens.write().expect("challenge map poisoned");
            let entry = tokens.get_mut(token)?;
            entry.fetched = true;
            entry.key_authorization.clone()
        };
        self.fetched.notify_waiters();
        Some(answer)
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

    #[tokio::test(start_paused = true)]
    async fn an_unfetched_token_times_out() {
        let map = ChallengeMap::default();
        map.insert("t".into(), "t.thumb".into());
        assert!(!map.wait_fetched("t", Duration::from_secs(5)).await);
    }
}
