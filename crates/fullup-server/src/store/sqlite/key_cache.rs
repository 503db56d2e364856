//! API keys by token hash, kept in memory: every ingest request authenticates, and a
//! database read per request cost more than the rest of authentication. A SQLite
//! database has one node, this process, so every deletion passes through here and the
//! cache can be exact: deleting a key or a site empties it, and a lookup that read the
//! database before such a deletion cannot put its stale answer back (generations).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::models::ApiKey;

/// Keys kept at most; past it the cache starts over (bounded memory, whatever the keys).
const MAX_KEYS: usize = 10_000;

/// The cache; only keys that exist are kept, so unknown tokens cannot fill it.
#[derive(Debug, Default)]
pub(super) struct KeyCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<[u8; 32], ApiKey>,
    generation: u64,
}

impl KeyCache {
    /// The cached key, or the generation to pass to [`KeyCache::put`] after reading it.
    pub fn get(&self, hash: &[u8; 32]) -> Result<ApiKey, u64> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.keys.get(hash).cloned().ok_or(inner.generation)
    }

    /// Keeps `key`, read from the database during `generation`, unless a deletion came since.
    pub fn put(&self, key: ApiKey, generation: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.generation != generation {
            return;
        }
        if inner.keys.len() >= MAX_KEYS {
            inner.keys.clear();
        }
        inner.keys.insert(key.token_hash, key);
    }

    /// Forgets every key (after a key or a site was deleted).
    pub fn invalidate(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.generation += 1;
        inner.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{ApiKeyId, SiteId};

    fn key(byte: u8) -> ApiKey {
        ApiKey {
            id: ApiKeyId::new(crate::domain::time::Timestamp::EPOCH),
            site_id: SiteId::new(crate::domain::time::Timestamp::EPOCH),
            name: String::new(),
            scopes: crate::domain::models::Scopes::default(),
            token_hash: [byte; 32],
            created_at: crate::domain::time::Timestamp::EPOCH,
        }
    }

    #[test]
    fn a_read_that_raced_a_deletion_is_not_kept() {
        let cache = KeyCache::default();
        let generation = cache.get(&[1; 32]).expect_err("empty");
        cache.invalidate();
        cache.put(key(1), generation);
        assert!(cache.get(&[1; 32]).is_err(), "stale key kept");

        let generation = cache.get(&[1; 32]).expect_err("empty");
        cache.put(key(1), generation);
        assert_eq!(cache.get(&[1; 32]).expect("kept").token_hash, [1; 32]);
        cache.invalidate();
        assert!(cache.get(&[1; 32]).is_err(), "deleted key still cached");
    }
}
