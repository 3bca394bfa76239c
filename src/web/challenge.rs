//! ACME http-01 challenge responses: token -> key authorization. The certificate
//! manager fills it; the plain HTTP listener answers from it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone, Default)]
pub struct ChallengeMap {
    tokens: Arc<RwLock<HashMap<String, String>>>,
}

impl ChallengeMap {
    pub fn insert(&self, token: String, key_authorization: String) {
        self.tokens
            .write()
            .expect("challenge map poisoned")
            .insert(token, key_authorization);
    }

    pub fn remove(&self, token: &str) {
        self.tokens
            .write()
            .expect("challenge map poisoned")
            .remove(token);
    }

    pub fn get(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .expect("challenge map poisoned")
            .get(token)
            .cloned()
    }
}
