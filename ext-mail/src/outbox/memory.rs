//! The in-memory outbox: the same states and leases as the SQL one, lost with the process.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{Claimed, Entry, RetryWhich, Settle, Status, Store, duration_ms, now_ms, token};
use crate::error::Error;
use crate::message::Prepared;

struct Row {
    prepared: Prepared,
    status: Status,
    attempts: u32,
    available_at: i64,
    claimed_until: Option<i64>,
    token: Option<String>,
    last_error: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
}

#[derive(Default)]
struct Rows {
    next: i64,
    rows: BTreeMap<i64, Row>,
}

/// Messages in a map behind a mutex (held only for the map operations).
#[derive(Default)]
pub(crate) struct MemoryStore {
    rows: Mutex<Rows>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn entry(id: i64, r: &Row) -> Entry {
    Entry {
        id,
        message_id: r.prepared.message_id().to_owned(),
        status: r.status,
        attempts: r.attempts,
        recipients: r
            .prepared
            .recipients()
            .iter()
            .map(|a| a.to_string())
            .collect(),
        last_error: r.last_error.clone(),
        created_at: r.created_at,
        available_at: r.available_at,
        sent_at: r.sent_at,
    }
}

impl Store for MemoryStore {
    fn durable(&self) -> bool {
        false
    }

    fn insert<'a>(&'a self, p: &'a Prepared) -> BoxFuture<'a, Result<i64, Error>> {
        Box::pin(async move {
            let now = now_ms();
            let mut g = self.lock();
            g.next += 1;
            let id = g.next;
            g.rows.insert(
                id,
                Row {
                    prepared: p.clone(),
                    status: Status::Pending,
                    attempts: 0,
                    available_at: now,
                    claimed_until: None,
                    token: None,
                    last_error: None,
                    created_at: now,
                    sent_at: None,
                },
            );
            Ok(id)
        })
    }

    fn claim(&self, n: usize, lease: Duration) -> BoxFuture<'_, Result<Vec<Claimed>, Error>> {
        Box::pin(async move {
            let now = now_ms();
            let mut g = self.lock();
            let mut due: Vec<(i64, i64)> = g
                .rows
                .iter()
                .filter(|(_, r)| {
                    r.status == Status::Pending
                        && r.available_at <= now
                        && r.claimed_until.is_none_or(|u| u < now)
                })
                .map(|(id, r)| (r.available_at, *id))
                .collect();
            due.sort_unstable();
            let mut out = Vec::new();
            for (_, id) in due.into_iter().take(n) {
                let r = g.rows.get_mut(&id).expect("listed above");
                let t = token();
                r.token = Some(t.clone());
                r.claimed_until = Some(now + duration_ms(lease));
                r.attempts += 1;
                out.push(Claimed {
                    id,
                    token: t,
                    attempts: r.attempts,
                    claimed_at: std::time::Instant::now(),
                    prepared: r.prepared.clone(),
                });
            }
            Ok(out)
        })
    }

    fn settle<'a>(&'a self, c: &'a Claimed, s: Settle) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let now = now_ms();
            let mut g = self.lock();
            let Some(r) = g.rows.get_mut(&c.id) else {
                return Ok(false);
            };
            if r.token.as_deref() != Some(c.token.as_str()) {
                return Ok(false);
            }
            r.token = None;
            r.claimed_until = None;
            match s {
                Settle::Sent { note } => {
                    r.status = Status::Sent;
                    r.sent_at = Some(now);
                    r.last_error = note;
                }
                Settle::Retry {
                    recipients,
                    after,
                    error,
                } => {
                    r.status = Status::Pending;
                    r.available_at = now + duration_ms(after);
                    r.prepared = r.prepared.with_recipients(recipients);
                    r.last_error = Some(error);
                }
                Settle::Failed { error } => {
                    r.status = Status::Failed;
                    r.last_error = Some(error);
                }
                Settle::Dead { error } => {
                    r.status = Status::Dead;
                    r.last_error = Some(error);
                }
            }
            Ok(true)
        })
    }

    fn release<'a>(&'a self, c: &'a Claimed) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut g = self.lock();
            if let Some(r) = g.rows.get_mut(&c.id)
                && r.token.as_deref() == Some(c.token.as_str())
            {
                r.token = None;
                r.claimed_until = None;
                r.attempts = r.attempts.saturating_sub(1);
            }
            Ok(())
        })
    }

    fn list(
        &self,
        status: Option<Status>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Entry>, Error>> {
        Box::pin(async move {
            let g = self.lock();
            Ok(g.rows
                .iter()
                .rev()
                .filter(|(_, r)| status.is_none_or(|s| r.status == s))
                .take(limit)
                .map(|(id, r)| entry(*id, r))
                .collect())
        })
    }

    fn retry(&self, which: RetryWhich) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let now = now_ms();
            let mut g = self.lock();
            let mut n = 0;
            for (id, r) in g.rows.iter_mut() {
                let chosen = match which {
                    RetryWhich::Id(want) => *id == want,
                    RetryWhich::AllFailed => true,
                };
                if chosen && matches!(r.status, Status::Failed | Status::Dead) {
                    r.status = Status::Pending;
                    r.attempts = 0;
                    r.available_at = now;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    fn count(&self, status: Status) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .rows
                .values()
                .filter(|r| r.status == status)
                .count() as u64)
        })
    }

    fn purge(&self, sent_before: i64) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let mut g = self.lock();
            let before = g.rows.len();
            g.rows.retain(|_, r| {
                !(r.status == Status::Sent && r.sent_at.is_some_and(|t| t < sent_before))
            });
            Ok((before - g.rows.len()) as u64)
        })
    }
}
