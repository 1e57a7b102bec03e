//! Per-account login throttling (ASVS 2.2.1, B8): a token bucket per account name, so that
//! guessing one account's password from many addresses is slowed to
//! `login.max_failures_per_hour`, and its owner is never locked out for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::sha256_hex;

/// Most accounts tracked at once; beyond it the fullest buckets (least recently failed)
/// are dropped.
const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Failures still allowed (fractional refill).
    tokens: f64,
    /// When `tokens` was computed (Unix seconds).
    at: u64,
}

/// Failed-login buckets, keyed by a digest of the account name (never the name itself).
#[derive(Debug)]
pub(crate) struct Throttle {
    per_hour: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Throttle {
    pub fn new(per_hour: u32) -> Throttle {
        Throttle {
            per_hour,
            buckets: Mutex::default(),
        }
    }

    fn key(account: &str) -> String {
        sha256_hex(account.trim().to_lowercase().as_bytes())
    }

    fn refill(&self, b: &mut Bucket, now: u64) {
        let rate = f64::from(self.per_hour) / 3600.0;
        let elapsed = now.saturating_sub(b.at) as f64;
        b.tokens = (b.tokens + elapsed * rate).min(f64::from(self.per_hour));
        b.at = now;
    }

    /// `Err(retry_after)` when the account has no failure left to spend.
    pub fn check(&self, account: &str, now: u64) -> Result<(), Duration> {
        if self.per_hour == 0 {
            return Ok(());
        }
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = map.get_mut(&Self::key(account)) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            return Ok(());
        }
        let rate = f64::from(self.per_hour) / 3600.0;
        Err(Duration::from_secs(
            ((1.0 - b.tokens) / rate).ceil().max(1.0) as u64,
        ))
    }

    /// Spends one failure of the account.
    pub fn failed(&self, account: &str, now: u64) {
        if self.per_hour == 0 {
            return;
        }
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&Self::key(account)) {
            let fullest = map.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| k.clone());
            if let Some(k) = fullest {
                map.remove(&k);
            }
        }
        let full = f64::from(self.per_hour);
        let b = map.entry(Self::key(account)).or_insert(Bucket {
            tokens: full,
            at: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// A successful login forgets the account's failures.
    pub fn succeeded(&self, account: &str) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&Self::key(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_and_never_locks_out_for_good() {
        let t = Throttle::new(100);
        for i in 0..100 {
            assert!(t.check("Alice", 1000).is_ok(), "attempt {i}");
            t.failed("alice ", 1000);
        }
        let wait = t.check("alice", 1000).unwrap_err();
        assert!(wait <= Duration::from_secs(36), "{wait:?}");
        assert!(
            t.check("bob", 1000).is_ok(),
            "other accounts are not affected"
        );
        assert!(t.check("alice", 1040).is_ok(), "one more after 36 s");
        t.succeeded("alice");
        assert!(t.check("alice", 1141).is_ok());
    }
}
