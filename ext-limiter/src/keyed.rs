//! [`KeyedLimit`]: the limiter's check, usable without an app.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use crate::error::LimitParseError;
use crate::key::{BucketKey, Who};
use crate::parse::{Rate, parse_limits};
use crate::store::{Bucket, Decision, KeyBudget, LimiterClock, ManualClock};

/// Limits over keys, outside any app: governor's GCRA on a store capped at `max_keys` keys,
/// exactly what the limiter runs for each request.
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use flagon_limiter::{KeyedLimit, ManualClock};
///
/// let clock = ManualClock::new();
/// let limit = KeyedLimit::with_clock("2/second", NonZeroUsize::new(1000).unwrap(), clock.clone())
///     .unwrap();
/// let ip = "203.0.113.7".parse().unwrap();
/// assert_eq!(limit.check_ip(ip), Ok(1));
/// assert_eq!(limit.check_ip(ip), Ok(0));
/// assert_eq!(limit.check_ip(ip), Err(Duration::from_millis(500)));
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(limit.check_ip(ip), Ok(0));
/// ```
#[derive(Debug)]
pub struct KeyedLimit {
    rates: Vec<Rate>,
    buckets: Vec<Bucket>,
    budget: Arc<KeyBudget>,
}

impl KeyedLimit {
    /// `limits` (a limit string) on the machine's monotonic clock.
    pub fn new(limits: &str, max_keys: NonZeroUsize) -> Result<KeyedLimit, LimitParseError> {
        KeyedLimit::build(limits, max_keys, LimiterClock::real())
    }

    /// `limits` on a test clock.
    pub fn with_clock(
        limits: &str,
        max_keys: NonZeroUsize,
        clock: ManualClock,
    ) -> Result<KeyedLimit, LimitParseError> {
        KeyedLimit::build(limits, max_keys, LimiterClock::Manual(clock))
    }

    fn build(
        limits: &str,
        max_keys: NonZeroUsize,
        clock: LimiterClock,
    ) -> Result<KeyedLimit, LimitParseError> {
        let rates = parse_limits(limits)?;
        let budget = KeyBudget::new(max_keys.get());
        let buckets = rates
            .iter()
            .map(|r| Bucket::new(*r, &clock, &budget))
            .collect();
        Ok(KeyedLimit {
            rates,
            buckets,
            budget,
        })
    }

    /// The limits, in order.
    pub fn rates(&self) -> &[Rate] {
        &self.rates
    }

    fn check(&self, who: Who, cost: NonZeroU32) -> Result<u32, Duration> {
        let key = BucketKey {
            route: 0,
            method: 0,
            who,
        };
        let mut remaining = u32::MAX;
        for b in &self.buckets {
            match b.check(&key, cost) {
                Decision::Allowed { remaining: r, .. } => remaining = remaining.min(r),
                Decision::Denied { wait, .. } => return Err(wait),
            }
        }
        Ok(remaining)
    }

    /// Admits one request from `ip` (`Ok(requests left)`) or refuses it (`Err(wait)`).
    pub fn check_ip(&self, ip: IpAddr) -> Result<u32, Duration> {
        self.check(Who::Ip(ip), NonZeroU32::MIN)
    }

    /// Admits a request of `cost` for `key`, or refuses it with the wait.
    pub fn check_key(&self, key: &str, cost: NonZeroU32) -> Result<u32, Duration> {
        self.check(Who::Text(Arc::from(key)), cost)
    }

    /// Keys held (never more than `max_keys`).
    pub fn keys(&self) -> usize {
        self.budget.used()
    }

    /// Forgets keys whose buckets are full again and returns memory.
    pub fn sweep(&self) {
        for b in &self.buckets {
            b.sweep();
        }
    }
}
