//! Counting and timing statements: per pool, per request (Flask-SQLAlchemy's
//! `record_queries`), the slow-query log and `echo`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;

/// Counters of one pool since the app started.
#[derive(Debug, Default)]
pub struct PoolCounters {
    statements: AtomicU64,
    slow: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
}

/// A snapshot of a pool's counters and its current size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Connections open now (idle and in use).
    pub size: u32,
    /// Open connections nobody is using.
    pub idle: u32,
    /// Open connections checked out.
    pub in_use: u32,
    /// The most the pool opens.
    pub max: u32,
    /// Statements run since the app started.
    pub statements: u64,
    /// Of those, the ones slower than `slow_query`.
    pub slow: u64,
    /// Of those, the ones that failed.
    pub failed: u64,
    /// Times a caller got no connection within `acquire_timeout`.
    pub busy: u64,
}

impl PoolCounters {
    pub(crate) fn busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, pool: &sqlx::AnyPool) -> PoolStats {
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
        PoolStats {
            size,
            idle,
            in_use: size - idle,
            max: pool.options().get_max_connections(),
            statements: self.statements.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }
}

/// What one request did with the database: the statements it ran and the connections it took
/// from a pool (one per statement on [`Db`](crate::Db), one for the whole [`Tx`](crate::Tx)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestStats {
    /// Statements run.
    pub statements: u64,
    /// Connections checked out of a pool.
    pub connections: u64,
    /// Time spent in statements (summed, so concurrent ones count twice).
    pub db_time: Duration,
    /// Statements slower than `slow_query`.
    pub slow: u64,
}

/// Emitted after every request that used [`Db`](crate::Db) or [`Tx`](crate::Tx), once its
/// transaction is settled: subscribe to it (`Setup::subscribe`) to feed metrics or a test.
/// The same numbers are logged at DEBUG on target `flagon_db::request`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QueriesRecorded {
    /// Core's request id (as in the request log line and `x-request-id`).
    pub request_id: String,
    /// The matched route's path pattern (`/posts/{id}`), if a route matched.
    pub route: Option<Arc<str>>,
    /// The response status sent.
    pub status: u16,
    /// What the request did.
    pub stats: RequestStats,
    /// How the request's transaction ended, if it began one.
    pub transaction: Option<TxOutcome>,
}

/// How a request's [`Tx`](crate::Tx) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxOutcome {
    /// Committed (the response was 2xx or 3xx).
    Committed,
    /// Rolled back (another status, an error, a panic or a timeout).
    RolledBack,
    /// The commit failed; the response became an error.
    CommitFailed,
}

/// One request's live counters.
#[derive(Debug, Default)]
pub(crate) struct RequestCounters {
    statements: AtomicU64,
    connections: AtomicU64,
    micros: AtomicU64,
    slow: AtomicU64,
    pub(crate) busy: std::sync::atomic::AtomicBool,
}

impl RequestCounters {
    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        RequestStats {
            statements: self.statements.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            db_time: Duration::from_micros(self.micros.load(Ordering::Relaxed)),
            slow: self.slow.load(Ordering::Relaxed),
        }
    }
}

/// Where a statement is counted and logged: its pool and, in a request, the request. The
/// request is held weakly: a transaction kept in its request's slot must not keep the request
/// alive.
#[derive(Clone)]
pub(crate) struct Probe {
    pub(crate) pool: Arc<crate::db::PoolInner>,
    pub(crate) request: Option<std::sync::Weak<crate::db::RequestDb>>,
}

/// One statement being timed. Records when finished or dropped.
pub(crate) struct Timing {
    probe: Counted,
    sql: sqlx::SqlStr,
    started: Instant,
    failed: bool,
    done: bool,
}

/// A probe whose request is held for the duration of one statement.
struct Counted {
    pool: Arc<crate::db::PoolInner>,
    request: Option<Arc<crate::db::RequestDb>>,
}

impl Probe {
    pub(crate) fn start(&self, sql: &sqlx::SqlStr) -> Timing {
        let request = self.request.as_ref().and_then(std::sync::Weak::upgrade);
        if let Some(r) = &request {
            r.counters.statements.fetch_add(1, Ordering::Relaxed);
        }
        self.pool
            .counters
            .statements
            .fetch_add(1, Ordering::Relaxed);
        Timing {
            probe: Counted {
                pool: self.pool.clone(),
                request,
            },
            sql: sql.clone(),
            started: Instant::now(),
            failed: false,
            done: false,
        }
    }
}

impl Timing {
    pub(crate) fn failed(&mut self, e: &sqlx::Error) {
        if !self.failed {
            self.failed = true;
            self.probe
                .pool
                .counters
                .failed
                .fetch_add(1, Ordering::Relaxed);
            if matches!(e, sqlx::Error::PoolTimedOut) {
                self.probe.pool.counters.busy();
                if let Some(r) = &self.probe.request {
                    r.counters.busy.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let took = self.started.elapsed();
        let pool = &self.probe.pool;
        let route = self.probe.request.as_ref().and_then(|r| r.route());
        let slow = pool.settings.slow_query.is_some_and(|t| took >= t);
        if let Some(r) = &self.probe.request {
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            r.counters.micros.fetch_add(us, Ordering::Relaxed);
            if slow {
                r.counters.slow.fetch_add(1, Ordering::Relaxed);
            }
        }
        let bind = pool.name.as_deref().unwrap_or("default");
        if slow {
            pool.counters.slow.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "flagon_db::slow",
                bind,
                route,
                duration_ms = took.as_millis() as u64,
                failed = self.failed,
                statement = %self.sql.as_str(),
                "slow statement"
            );
        } else if pool.settings.echo {
            tracing::info!(
                target: "flagon_db::echo",
                bind,
                route,
                duration_us = took.as_micros() as u64,
                failed = self.failed,
                statement = %self.sql.as_str(),
            );
        }
    }
}

impl Drop for Timing {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A stream of results that times its statement until it ends or is dropped.
pub(crate) struct TimedStream<'e, T> {
    pub(crate) inner: futures_util::stream::BoxStream<'e, Result<T, sqlx::Error>>,
    pub(crate) timing: Timing,
}

impl<T> Stream for TimedStream<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Err(e)) => this.timing.failed(e),
            None => this.timing.finish(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(item)
    }
}
