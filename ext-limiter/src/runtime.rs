//! What checks a request at run time: the limiter's shared state, sets of limits, and the
//! tag the limiter's guard leaves on each limited route's requests.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flagon::axum::extract::Request;
use flagon::http::Method;
use flagon::{RequestExt, tracing};

use crate::key::{BucketKey, Grouping, KeyBy, Who};
use crate::parse::Rate;
use crate::response::{Passed, Refusal};
use crate::store::{Bucket, Decision, KeyBudget, LimiterClock};

/// A predicate that exempts a request from every limit (an internal network, a health
/// prober).
pub(crate) type ExemptFn = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// Emitted when the limiter refuses a request (login uses it to slow brute force).
///
/// ```
/// use flagon_limiter::RateLimited;
/// # fn init(app: &mut flagon::Setup<'_>) {
/// app.subscribe(|e: &RateLimited| {
///     eprintln!("{} refused on {:?} by {}", e.key, e.endpoint, e.limit);
/// });
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RateLimited {
    /// The endpoint of the refused request.
    pub endpoint: Option<Arc<str>>,
    /// Who was refused: an address (IPv6 grouped), `user:<id>` or `key:<api key>`.
    pub key: String,
    /// The limit that refused it (`5/minute`).
    pub limit: String,
    /// How long until the same request would be admitted.
    pub retry_after: Duration,
}

/// The limiter's state, shared by its guards, decorators, sweeper and commands.
pub(crate) struct Runtime {
    pub(crate) enabled: bool,
    pub(crate) key_by: KeyBy,
    pub(crate) grouping: Grouping,
    pub(crate) clock: LimiterClock,
    pub(crate) budget: Arc<KeyBudget>,
    pub(crate) legacy: bool,
    pub(crate) on_success: bool,
    pub(crate) exempt_when: Vec<ExemptFn>,
    /// Every bucket, for the sweeper.
    pub(crate) buckets: Mutex<Vec<Arc<Bucket>>>,
    /// Shared limits by scope name, built at finish.
    pub(crate) shared: OnceLock<HashMap<String, Arc<LimitSet>>>,
}

/// Several limits checked together (`100/day; 10/minute`).
pub(crate) struct LimitSet {
    pub(crate) rates: Vec<Rate>,
    buckets: Vec<Arc<Bucket>>,
    per_method: bool,
}

fn method_index(m: &Method) -> u8 {
    match *m {
        Method::GET => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::HEAD => 6,
        Method::OPTIONS => 7,
        _ => 8,
    }
}

impl Runtime {
    pub(crate) fn set(&self, rates: Vec<Rate>, per_method: bool) -> Arc<LimitSet> {
        let buckets: Vec<Arc<Bucket>> = rates
            .iter()
            .map(|r| Arc::new(Bucket::new(*r, &self.clock, &self.budget)))
            .collect();
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(buckets.iter().cloned());
        Arc::new(LimitSet {
            rates,
            buckets,
            per_method,
        })
    }

    pub(crate) fn exempt(&self, req: &Request) -> bool {
        !self.enabled || self.exempt_when.iter().any(|f| f(req))
    }

    pub(crate) fn who(&self, req: &Request) -> Who {
        self.key_by.who(req, self.grouping)
    }

    /// Forgets every key whose bucket is full again; returns the keys still held.
    pub(crate) fn sweep(&self) -> usize {
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        buckets
            .iter()
            .map(|b| {
                b.sweep();
                b.len()
            })
            .sum()
    }

    /// Logs and signals a refusal.
    pub(crate) fn refused(&self, req: &Request, endpoint: &Arc<str>, who: &Who, r: &Refusal) {
        tracing::info!(
            target: "flagon_limiter",
            endpoint = %endpoint,
            key = %who,
            limit = %r.rate,
            "rate limit exceeded"
        );
        if let Some(app) = req.app()
            && app.signals().has::<RateLimited>()
        {
            app.signals().emit(RateLimited {
                endpoint: Some(endpoint.clone()),
                key: who.to_string(),
                limit: r.rate.to_string(),
                retry_after: r.wait,
            });
        }
    }
}

impl LimitSet {
    /// Checks every limit of the set for `who` on `route` (0 for a shared scope); the first
    /// refusal wins. Limits checked before a refusing one keep what they took, as in
    /// Flask-Limiter.
    pub(crate) fn check(
        &self,
        req: &Request,
        route: u32,
        who: Who,
        cost: NonZeroU32,
    ) -> Result<Passed, Refusal> {
        self.decide(req.method(), route, who, cost, true)
    }

    /// As [`check`](Self::check), taking nothing when `take` is false (governor's decision
    /// on a dry store).
    pub(crate) fn decide(
        &self,
        method: &Method,
        route: u32,
        who: Who,
        cost: NonZeroU32,
        take: bool,
    ) -> Result<Passed, Refusal> {
        let key = BucketKey {
            route,
            method: if self.per_method {
                method_index(method)
            } else {
                0
            },
            who,
        };
        let mut best: Option<Passed> = None;
        for b in &self.buckets {
            let decision = if take {
                b.check(&key, cost)
            } else {
                b.peek(&key, cost)
            };
            match decision {
                Decision::Allowed { remaining, reset } => {
                    if best.as_ref().is_none_or(|p| remaining < p.remaining) {
                        best = Some(Passed {
                            rate: b.rate(),
                            remaining,
                            reset,
                        });
                    }
                }
                Decision::Denied { wait, reset } => {
                    return Err(Refusal {
                        rate: b.rate(),
                        wait,
                        reset,
                    });
                }
            }
        }
        Ok(best.expect("a limit set has at least one limit"))
    }
}

/// Left on a limited route's requests by the limiter's guard: which route it is, and the
/// limiter's state, for the route's decorators.
#[derive(Clone)]
pub(crate) struct RouteTag {
    pub(crate) route: u32,
    pub(crate) endpoint: Arc<str>,
    pub(crate) rt: Arc<Runtime>,
}
