//! The API keys submissions were made with recently, by digest, so a
//! PostgreSQL submission can skip its key lookup and send one statement.
//!
//! Nothing here is trusted: the statement re-checks, in the same snapshot as
//! its insert, that the key is still live and its tenant's settings are the
//! ones cached (see `requests::KeyGuard`). A revoked key or a changed tenant
//! makes it write nothing; the caller then drops the entry and looks the key
//! up again. So the cache only saves a round trip, never widens access.
//! Only keys that were found are cached; unknown keys always go to the
//! database.

use std::collections::HashMap;
use std::sync::Mutex;

use super::api_keys::SubmitKey;
use crate::domain::secret::SecretDigest;

/// Most keys held; when full the cache starts over (a platform has a few
/// keys, so this only bounds memory against a flood of distinct keys).
const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct SubmitKeyCache {
    keys: Mutex<HashMap<String, SubmitKey>>,
}

impl SubmitKeyCache {
    pub fn get(&self, digest: &SecretDigest) -> Option<SubmitKey> {
        self.lock().get(digest.as_str()).cloned()
    }

    pub fn put(&self, digest: &SecretDigest, key: SubmitKey) {
        let mut keys = self.lock();
        if keys.len() >= CAPACITY && !keys.contains_key(digest.as_str()) {
            keys.clear();
        }
        keys.insert(digest.as_str().to_owned(), key);
    }

    pub fn forget(&self, digest: &SecretDigest) {
        self.lock().remove(digest.as_str());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SubmitKey>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}
