//! The in-process store (development, tests, one instance).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{RememberStore, StoreFuture, TokenRecord};

/// Tokens in a map behind one lock, at most `capacity` of them: when full, expired series go
/// first, then the one expiring soonest. Lost on restart (every remember-me cookie then
/// stops working), and not shared between instances: use `db` or `redis` for those.
#[derive(Debug)]
pub struct MemoryRememberStore {
    capacity: usize,
    map: Mutex<HashMap<String, TokenRecord>>,
}

impl MemoryRememberStore {
    /// A store of at most `capacity` series (at least 1).
    pub fn new(capacity: usize) -> MemoryRememberStore {
        MemoryRememberStore {
            capacity: capacity.max(1),
            map: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenRecord>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many series are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl RememberStore for MemoryRememberStore {
    fn insert<'a>(&'a self, record: &'a TokenRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut map = self.lock();
            if map.len() >= self.capacity && !map.contains_key(&record.selector) {
                let now = flagon::session::unix_secs(std::time::SystemTime::now());
                map.retain(|_, r| r.expires_at > now);
                if map.len() >= self.capacity {
                    let soonest = map
                        .values()
                        .min_by_key(|r| r.expires_at)
                        .map(|r| r.selector.clone());
                    if let Some(s) = soonest {
                        map.remove(&s);
                    }
                }
            }
            map.insert(record.selector.clone(), record.clone());
            Ok(())
        })
    }

    fn get<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move { Ok(self.lock().get(selector).cloned()) })
    }

    fn rotate<'a>(
        &'a self,
        selector: &'a str,
        current: &'a str,
        next: &'a str,
        now: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut map = self.lock();
            match map.get_mut(selector) {
                Some(r) if r.validator_hash == current => {
                    r.previous_hash = Some(std::mem::replace(&mut r.validator_hash, next.into()));
                    r.rotated_at = now;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn delete<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.lock().remove(selector);
            Ok(())
        })
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut map = self.lock();
            let before = map.len();
            map.retain(|_, r| r.user_id != user_id);
            Ok((before - map.len()) as u64)
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut map = self.lock();
            let before = map.len();
            map.retain(|_, r| r.expires_at > now);
            Ok((before - map.len()) as u64)
        })
    }
}
