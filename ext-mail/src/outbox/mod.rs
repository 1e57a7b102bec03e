//! The outbox: where [`Mail::enqueue`](crate::Mail::enqueue) puts messages and the relay
//! worker takes them from. [`Queue`] is its public face (list, retry, purge); the stores are
//! in memory ([`OutboxStore::Memory`](crate::OutboxStore::Memory)) or in the app's SQL
//! database (feature `db`).

mod memory;
pub(crate) mod relay;
#[cfg(feature = "db")]
pub(crate) mod sql;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

pub(crate) use memory::MemoryStore;

use crate::address::Address;
use crate::error::Error;
use crate::message::Prepared;

/// Where an outbox message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// Delivered (to every recipient not refused for good).
    Sent,
    /// Refused for good (5xx): kept for inspection, not retried.
    Failed,
    /// Dead-lettered: failed transiently `max_attempts` times; kept, not retried.
    Dead,
}

impl Status {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Dead => "dead",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "dead" => Status::Dead,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One outbox message, as `mail outbox` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The outbox id.
    pub id: i64,
    /// The `Message-ID`.
    pub message_id: String,
    /// Where it stands.
    pub status: Status,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Recipients still to deliver to (pending), or the last attempt's (otherwise).
    pub recipients: Vec<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was queued (Unix ms).
    pub created_at: i64,
    /// When it is next due (Unix ms).
    pub available_at: i64,
    /// When it was sent (Unix ms).
    pub sent_at: Option<i64>,
}

/// A message a relay claimed: its lease is `token`.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    pub(crate) id: i64,
    pub(crate) token: String,
    /// Attempts including this one.
    pub(crate) attempts: u32,
    /// When the lease began.
    pub(crate) claimed_at: std::time::Instant,
    pub(crate) prepared: Prepared,
}

/// How an attempt ends.
#[derive(Clone, Debug)]
pub(crate) enum Settle {
    /// Done; `note` lists recipients refused for good, if any.
    Sent { note: Option<String> },
    /// Try again after `after`, for `recipients` only.
    Retry {
        recipients: Vec<Address>,
        after: Duration,
        error: String,
    },
    /// Refused for good.
    Failed { error: String },
    /// Out of attempts.
    Dead { error: String },
}

/// Which messages `retry` puts back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryWhich {
    /// One message, by outbox id (if failed or dead).
    Id(i64),
    /// Every failed and dead message.
    AllFailed,
}

/// What stores messages (memory, SQL).
pub(crate) trait Store: Send + Sync + 'static {
    fn durable(&self) -> bool;
    fn insert<'a>(&'a self, p: &'a Prepared) -> BoxFuture<'a, Result<i64, Error>>;
    fn claim(&self, n: usize, lease: Duration) -> BoxFuture<'_, Result<Vec<Claimed>, Error>>;
    fn settle<'a>(&'a self, c: &'a Claimed, s: Settle) -> BoxFuture<'a, Result<bool, Error>>;
    /// Gives back a claim that was never attempted (its attempt uncounted).
    fn release<'a>(&'a self, c: &'a Claimed) -> BoxFuture<'a, Result<(), Error>>;
    fn list(
        &self,
        status: Option<Status>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Entry>, Error>>;
    fn retry(&self, which: RetryWhich) -> BoxFuture<'_, Result<u64, Error>>;
    fn purge(&self, sent_before: i64) -> BoxFuture<'_, Result<u64, Error>>;
    fn count(&self, status: Status) -> BoxFuture<'_, Result<u64, Error>>;
}

/// The outbox as an operator sees it: list, retry, purge (`mail outbox …`). Get it with
/// [`Mail::queue`](crate::Mail::queue).
#[derive(Clone)]
pub struct Queue {
    pub(crate) store: Arc<dyn Store>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("durable", &self.store.durable())
            .finish()
    }
}

impl Queue {
    /// Whether messages survive a crash (the SQL store).
    pub fn is_durable(&self) -> bool {
        self.store.durable()
    }

    /// Up to `limit` messages, newest first, of `status` (or all).
    pub async fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<Entry>, Error> {
        self.store.list(status, limit).await
    }

    /// Puts failed or dead messages back to pending, due now, with their attempts reset.
    /// Returns how many.
    pub async fn retry(&self, which: RetryWhich) -> Result<u64, Error> {
        self.store.retry(which).await
    }

    /// How many messages are in `status`.
    pub async fn count(&self, status: Status) -> Result<u64, Error> {
        self.store.count(status).await
    }

    /// Deletes sent messages sent before `before`. Returns how many.
    pub async fn purge_sent_before(&self, before: SystemTime) -> Result<u64, Error> {
        self.store.purge(unix_ms(before)).await
    }
}

/// `t` in Unix milliseconds.
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Now in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// A fresh claim token.
pub(crate) fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
