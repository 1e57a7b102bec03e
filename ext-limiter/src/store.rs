//! The in-process backend: governor's GCRA over a key store with a hard cap.
//!
//! governor's own keyed stores grow without bound until `retain_recent` runs (governor
//! #171). [`BoundedStore`] implements governor's `StateStore` over a `DashMap` of governor's
//! own `InMemoryState` cells, and refuses to hold more keys than the limiter's budget, which
//! every store of one app shares: a new key that finds the budget spent is decided on one
//! overflow cell shared by all such keys (strict, never unlimited) until the sweeper frees
//! room. The decision itself is always governor's GCRA.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use governor::clock::{Clock, FakeRelativeClock, QuantaClock, QuantaInstant, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, RateLimiter, StateStore};

use crate::key::{BucketKey, Who};
use crate::parse::Rate;

/// A clock the test drives by hand, for exact tests without sleeping.
///
/// Clones share one time. Give it to [`Limiter::clock`](crate::Limiter::clock); governor's
/// limiters then read it instead of the machine's monotonic clock (governor takes the clock
/// as a parameter of `RateLimiter::new`, so this is governor's own GCRA on a test clock).
///
/// ```
/// let clock = flagon_limiter::ManualClock::new();
/// clock.advance(std::time::Duration::from_secs(6));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(FakeRelativeClock);

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.advance(by);
    }
}

/// The time source of every limiter of one app: the machine's (TSC through quanta) or a
/// [`ManualClock`].
#[derive(Clone, Debug)]
pub(crate) enum LimiterClock {
    Real(QuantaClock, QuantaInstant),
    Manual(ManualClock),
}

impl LimiterClock {
    pub(crate) fn real() -> LimiterClock {
        let clock = QuantaClock::default();
        let start = clock.now();
        LimiterClock::Real(clock, start)
    }
}

impl Clock for LimiterClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        match self {
            LimiterClock::Real(clock, start) => clock.now().duration_since(*start),
            LimiterClock::Manual(m) => m.0.now(),
        }
    }
}

/// How many keys all stores of one limiter may hold together.
#[derive(Debug)]
pub(crate) struct KeyBudget {
    cap: usize,
    used: AtomicUsize,
    overflowed: AtomicU64,
}

impl KeyBudget {
    pub(crate) fn new(cap: usize) -> Arc<KeyBudget> {
        Arc::new(KeyBudget {
            cap,
            used: AtomicUsize::new(0),
            overflowed: AtomicU64::new(0),
        })
    }

    fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Keys held now, across every store.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Decisions made on the overflow cell because the budget was spent.
    pub(crate) fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

/// The keys and cells one limit holds.
#[derive(Debug)]
struct StoreInner {
    map: DashMap<BucketKey, InMemoryState>,
    overflow: InMemoryState,
    budget: Arc<KeyBudget>,
}

/// governor's `StateStore` with a cap on keys. A `dry` view of the same cells lets governor
/// decide without recording anything (for `deduct_when`): it runs governor's decision on the
/// current state and never writes or inserts.
#[derive(Debug)]
pub(crate) struct BoundedStore {
    inner: Arc<StoreInner>,
    dry: bool,
}

/// A cell's theoretical arrival time, read without changing it.
fn tat(cell: &InMemoryState) -> Option<Nanos> {
    cell.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>)
        .err()
        .flatten()
}

impl StateStore for BoundedStore {
    type Key = BucketKey;

    fn measure_and_replace<T, F, E>(&self, key: &BucketKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let s = &*self.inner;
        if self.dry {
            let prev = match s.map.get(key) {
                Some(cell) => tat(&cell),
                None if s.budget.used() >= s.budget.cap => tat(&s.overflow),
                None => None,
            };
            return f(prev).map(|(t, _)| t);
        }
        if let Some(cell) = s.map.get(key) {
            return cell.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if !s.budget.try_take() {
            s.budget.overflowed.fetch_add(1, Ordering::Relaxed);
            return s.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        match s.map.entry(key.clone()) {
            Entry::Occupied(cell) => {
                // Another request inserted it meanwhile.
                s.budget.give_back(1);
                cell.get().measure_and_replace(&NotKeyed::NonKey, f)
            }
            Entry::Vacant(slot) => slot
                .insert(InMemoryState::default())
                .measure_and_replace(&NotKeyed::NonKey, f),
        }
    }
}

impl ShrinkableKeyedStateStore<BucketKey> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        if self.dry {
            return;
        }
        let mut dropped = 0;
        self.inner.map.retain(|_, cell| {
            let keep = tat(cell).is_some_and(|t| t > drop_below);
            dropped += usize::from(!keep);
            keep
        });
        self.inner.budget.give_back(dropped);
    }

    fn shrink_to_fit(&self) {
        self.inner.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.inner.map.len()
    }

    fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }
}

type Gov = RateLimiter<BucketKey, BoundedStore, LimiterClock, StateInformationMiddleware>;

/// The outcome of one check of one limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Admitted; `remaining` requests are left in the burst, and the bucket is full again
    /// after `reset`.
    Allowed { remaining: u32, reset: Duration },
    /// Refused; the same request is admitted after `wait`, and the bucket is full after
    /// `reset`.
    Denied { wait: Duration, reset: Duration },
}

/// One limit (one [`Rate`]) over every key: one governor keyed limiter.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: Rate,
    inner: Arc<StoreInner>,
    gov: Gov,
    /// The same cells through a dry store: governor's decision, nothing recorded. Created
    /// right after `gov`, so its start instant is the same up to the nanoseconds between.
    dry: Gov,
}

impl Bucket {
    pub(crate) fn new(rate: Rate, clock: &LimiterClock, budget: &Arc<KeyBudget>) -> Bucket {
        let inner = Arc::new(StoreInner {
            map: DashMap::new(),
            overflow: InMemoryState::default(),
            budget: budget.clone(),
        });
        let make = |dry: bool| -> Gov {
            RateLimiter::<_, _, _, governor::middleware::NoOpMiddleware<Nanos>>::new(
                rate.quota(),
                BoundedStore {
                    inner: inner.clone(),
                    dry,
                },
                clock.clone(),
            )
            .with_middleware::<StateInformationMiddleware>()
        };
        let gov = make(false);
        let dry = make(true);
        Bucket {
            rate,
            inner,
            gov,
            dry,
        }
    }

    pub(crate) fn rate(&self) -> Rate {
        self.rate
    }

    /// Checks (and on success, takes) `cost` cells for `key`.
    pub(crate) fn check(&self, key: &BucketKey, cost: NonZeroU32) -> Decision {
        Self::decide(&self.gov, self.rate, key, cost)
    }

    /// What [`check`](Self::check) would decide now, taking nothing.
    pub(crate) fn peek(&self, key: &BucketKey, cost: NonZeroU32) -> Decision {
        Self::decide(&self.dry, self.rate, key, cost)
    }

    fn decide(gov: &Gov, rate: Rate, key: &BucketKey, cost: NonZeroU32) -> Decision {
        let interval = rate.interval();
        let burst = rate.count();
        let outcome = match cost {
            n if n.get() == 1 => gov.check_key(key).map_err(Some),
            n => match gov.check_key_n(key, n) {
                Ok(r) => r.map_err(Some),
                // More than the burst: never admissible.
                Err(_) => Err(None),
            },
        };
        match outcome {
            Ok(snap) => {
                let remaining = snap.remaining_burst_capacity();
                Decision::Allowed {
                    remaining,
                    reset: interval * (burst - remaining),
                }
            }
            Err(Some(not_until)) => {
                let wait = not_until.wait_time_from(gov.clock().now());
                Decision::Denied {
                    wait,
                    reset: wait + interval * (burst - 1),
                }
            }
            Err(None) => Decision::Denied {
                wait: rate.period(),
                reset: rate.period(),
            },
        }
    }

    /// Forgets keys whose state equals a fresh one, and returns memory.
    pub(crate) fn sweep(&self) {
        self.gov.retain_recent();
        self.gov.shrink_to_fit();
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.gov.len()
    }

    /// The keys held for `who` (every route and method).
    pub(crate) fn keys_of(&self, who: &Who) -> Vec<BucketKey> {
        self.inner
            .map
            .iter()
            .filter(|e| e.key().who == *who)
            .map(|e| e.key().clone())
            .collect()
    }

    /// Forgets `who`'s keys (every key when `who` is `None`): their buckets are full again.
    /// Returns how many were removed.
    pub(crate) fn forget(&self, who: Option<&Who>) -> usize {
        let inner = &*self.inner;
        let mut dropped = 0;
        inner.map.retain(|k, _| {
            let keep = who.is_some_and(|w| k.who != *w);
            dropped += usize::from(!keep);
            keep
        });
        inner.budget.give_back(dropped);
        dropped
    }
}
