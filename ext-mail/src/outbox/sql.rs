//! The SQL outbox (feature `db`): the table `flagon_mail_outbox` in the app's database.

use std::time::Duration;

use flagon_db::sqlx::{self, Row};
use flagon_db::{Backend, Db, TxConn};
use futures_util::future::BoxFuture;

use super::{Claimed, Entry, RetryWhich, Settle, Status, Store, duration_ms, now_ms, token};
use crate::address::Address;
use crate::error::Error;
use crate::message::Prepared;

/// The outbox table.
pub const TABLE: &str = "flagon_mail_outbox";

/// The outbox's migrations (owner `mail`).
pub fn migrations() -> flagon_db::MigrationSet {
    flagon_db::migrations!("migrations")
}

fn db_err(e: impl Into<flagon::BoxError>) -> Error {
    Error::Outbox(e.into())
}

/// Messages in the app's database.
pub(crate) struct SqlStore {
    db: Db,
}

impl SqlStore {
    pub(crate) fn new(db: Db) -> SqlStore {
        SqlStore { db }
    }
}

const INSERT: &str = "INSERT INTO flagon_mail_outbox (message_id, envelope_from, recipients, raw, status, attempts, available_at, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)";

struct Values {
    message_id: String,
    from: String,
    recipients: String,
    raw: String,
    now: i64,
}

fn values(p: &Prepared) -> Result<Values, Error> {
    let recipients: Vec<&str> = p.recipients().iter().map(Address::as_str).collect();
    Ok(Values {
        message_id: p.message_id().to_owned(),
        from: p.envelope_from().to_string(),
        recipients: serde_json::to_string(&recipients).map_err(db_err)?,
        raw: String::from_utf8(p.raw().to_vec()).map_err(db_err)?,
        now: now_ms(),
    })
}

/// Inserts `p` through `tx` (the caller's transaction); returns the id.
pub(crate) async fn insert_in(tx: &mut TxConn, p: &Prepared) -> Result<i64, Error> {
    let v = values(p)?;
    let backend = tx.backend();
    if backend == Backend::MySql {
        let q = tx
            .query(INSERT)
            .bind(v.message_id)
            .bind(v.from)
            .bind(v.recipients)
            .bind(v.raw)
            .bind(v.now)
            .bind(v.now);
        let r = q.execute(&mut *tx).await.map_err(db_err)?;
        r.last_insert_id()
            .ok_or_else(|| db_err("the database did not return the new row's id"))
    } else {
        let q = tx
            .query_scalar::<i64>(&format!("{INSERT} RETURNING id"))
            .bind(v.message_id)
            .bind(v.from)
            .bind(v.recipients)
            .bind(v.raw)
            .bind(v.now)
            .bind(v.now);
        q.fetch_one(&mut *tx).await.map_err(db_err)
    }
}

fn claimed_row(
    row: &sqlx::any::AnyRow,
    token: &str,
    claimed_at: std::time::Instant,
) -> Result<Claimed, Error> {
    let id: i64 = row.try_get("id").map_err(db_err)?;
    let message_id: String = row.try_get("message_id").map_err(db_err)?;
    let from: String = row.try_get("envelope_from").map_err(db_err)?;
    let recipients: String = row.try_get("recipients").map_err(db_err)?;
    let raw: String = row.try_get("raw").map_err(db_err)?;
    let attempts: i64 = row.try_get("attempts").map_err(db_err)?;
    let from = Address::new(&from).map_err(db_err)?;
    let recipients = recipients_of(&recipients)?
        .iter()
        .map(|a| Address::new(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    if recipients.is_empty() {
        return Err(db_err("no recipients"));
    }
    Ok(Claimed {
        id,
        token: token.to_owned(),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        claimed_at,
        prepared: Prepared::from_parts(message_id, from, recipients, raw.into_bytes()),
    })
}

fn status_of(row: &sqlx::any::AnyRow) -> Result<Status, Error> {
    let s: String = row.try_get("status").map_err(db_err)?;
    Status::parse(&s).ok_or_else(|| db_err(format!("unknown outbox status `{s}`")))
}

fn recipients_of(text: &str) -> Result<Vec<String>, Error> {
    serde_json::from_str(text).map_err(db_err)
}

impl Store for SqlStore {
    fn durable(&self) -> bool {
        true
    }

    fn insert<'a>(&'a self, p: &'a Prepared) -> BoxFuture<'a, Result<i64, Error>> {
        Box::pin(async move {
            let mut tx = self.db.begin().await.map_err(db_err)?;
            let id = insert_in(&mut tx, p).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(id)
        })
    }

    fn claim(&self, n: usize, lease: Duration) -> BoxFuture<'_, Result<Vec<Claimed>, Error>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let now = now_ms();
            let t = token();
            let lock = match self.db.backend() {
                // SQLite has one writer at a time: the transaction (`BEGIN IMMEDIATE`) is
                // the lock.
                Backend::Sqlite => "",
                _ => " FOR UPDATE SKIP LOCKED",
            };
            let select = format!(
                "SELECT id FROM flagon_mail_outbox WHERE status = 'pending' AND available_at <= ? \
                 AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY available_at, id LIMIT {n}{lock}"
            );
            let mut tx = self.db.begin().await.map_err(db_err)?;
            let ids: Vec<i64> = tx
                .query_scalar::<i64>(&select)
                .bind(now)
                .bind(now)
                .fetch_all(&mut tx)
                .await
                .map_err(db_err)?;
            if ids.is_empty() {
                tx.commit().await.map_err(db_err)?;
                return Ok(Vec::new());
            }
            let list = ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let update = format!(
                "UPDATE flagon_mail_outbox SET claim_token = ?, claimed_until = ?, attempts = attempts + 1 \
                 WHERE id IN ({list})"
            );
            tx.query(&update)
                .bind(t.clone())
                .bind(now + duration_ms(lease))
                .execute(&mut tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            let rows = self
                .db
                .query(
                    "SELECT id, message_id, envelope_from, recipients, raw, attempts FROM flagon_mail_outbox \
                     WHERE claim_token = ? ORDER BY available_at, id",
                )
                .bind(t.clone())
                .fetch_all(&self.db)
                .await
                .map_err(db_err)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get("id").map_err(db_err)?;
                match claimed_row(&row, &t, started) {
                    Ok(c) => out.push(c),
                    Err(e) => {
                        // A row that cannot be read would fail every claim: dead-letter it
                        // now, so it never holds up the rest of the queue.
                        tracing::error!(target: "flagon_mail::outbox", id, error = %e, cause = ?std::error::Error::source(&e), "unreadable outbox row dead-lettered");
                        self.db
                            .query(
                                "UPDATE flagon_mail_outbox SET status = 'dead', last_error = ?, claim_token = NULL, \
                                 claimed_until = NULL WHERE id = ? AND claim_token = ?",
                            )
                            .bind(format!("unreadable row: {e}: {:?}", std::error::Error::source(&e).map(|s| s.to_string())))
                            .bind(id)
                            .bind(t.clone())
                            .execute(&self.db)
                            .await
                            .map_err(db_err)?;
                    }
                }
            }
            Ok(out)
        })
    }

    fn settle<'a>(&'a self, c: &'a Claimed, s: Settle) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let now = now_ms();
            let q = match s {
                Settle::Sent { note } => self
                    .db
                    .query(
                        "UPDATE flagon_mail_outbox SET status = 'sent', sent_at = ?, last_error = ?, \
                         claim_token = NULL, claimed_until = NULL WHERE id = ? AND claim_token = ?",
                    )
                    .bind(now)
                    .bind(note),
                Settle::Retry {
                    recipients,
                    after,
                    error,
                } => {
                    let list: Vec<&str> = recipients.iter().map(Address::as_str).collect();
                    let list = serde_json::to_string(&list).map_err(db_err)?;
                    self.db
                        .query(
                            "UPDATE flagon_mail_outbox SET status = 'pending', available_at = ?, recipients = ?, \
                             last_error = ?, claim_token = NULL, claimed_until = NULL WHERE id = ? AND claim_token = ?",
                        )
                        .bind(now + duration_ms(after))
                        .bind(list)
                        .bind(Some(error))
                }
                Settle::Failed { error } => self
                    .db
                    .query(
                        "UPDATE flagon_mail_outbox SET status = 'failed', last_error = ?, \
                         claim_token = NULL, claimed_until = NULL WHERE id = ? AND claim_token = ?",
                    )
                    .bind(Some(error)),
                Settle::Dead { error } => self
                    .db
                    .query(
                        "UPDATE flagon_mail_outbox SET status = 'dead', last_error = ?, \
                         claim_token = NULL, claimed_until = NULL WHERE id = ? AND claim_token = ?",
                    )
                    .bind(Some(error)),
            };
            let r = q
                .bind(c.id)
                .bind(c.token.clone())
                .execute(&self.db)
                .await
                .map_err(db_err)?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn release<'a>(&'a self, c: &'a Claimed) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.db
                .query(
                    "UPDATE flagon_mail_outbox SET claim_token = NULL, claimed_until = NULL, attempts = attempts - 1 \
                     WHERE id = ? AND claim_token = ?",
                )
                .bind(c.id)
                .bind(c.token.clone())
                .execute(&self.db)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn list(
        &self,
        status: Option<Status>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Entry>, Error>> {
        Box::pin(async move {
            let cols = "id, message_id, status, attempts, recipients, last_error, created_at, available_at, sent_at";
            let rows = match status {
                Some(s) => {
                    self.db
                        .query(&format!(
                            "SELECT {cols} FROM flagon_mail_outbox WHERE status = ? ORDER BY id DESC LIMIT {limit}"
                        ))
                        .bind(s.as_str())
                        .fetch_all(&self.db)
                        .await
                }
                None => {
                    self.db
                        .query(&format!(
                            "SELECT {cols} FROM flagon_mail_outbox ORDER BY id DESC LIMIT {limit}"
                        ))
                        .fetch_all(&self.db)
                        .await
                }
            }
            .map_err(db_err)?;
            rows.iter()
                .map(|row| {
                    let recipients: String = row.try_get("recipients").map_err(db_err)?;
                    let attempts: i64 = row.try_get("attempts").map_err(db_err)?;
                    Ok(Entry {
                        id: row.try_get("id").map_err(db_err)?,
                        message_id: row.try_get("message_id").map_err(db_err)?,
                        status: status_of(row)?,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        // An unreadable list is shown as stored.
                        recipients: recipients_of(&recipients)
                            .unwrap_or_else(|_| vec![recipients.clone()]),
                        last_error: row.try_get("last_error").map_err(db_err)?,
                        created_at: row.try_get("created_at").map_err(db_err)?,
                        available_at: row.try_get("available_at").map_err(db_err)?,
                        sent_at: row.try_get("sent_at").map_err(db_err)?,
                    })
                })
                .collect()
        })
    }

    fn retry(&self, which: RetryWhich) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let sql = "UPDATE flagon_mail_outbox SET status = 'pending', attempts = 0, available_at = ?, \
                       claim_token = NULL, claimed_until = NULL WHERE status IN ('failed', 'dead')";
            let r = match which {
                RetryWhich::Id(id) => {
                    self.db
                        .query(&format!("{sql} AND id = ?"))
                        .bind(now_ms())
                        .bind(id)
                        .execute(&self.db)
                        .await
                }
                RetryWhich::AllFailed => self.db.query(sql).bind(now_ms()).execute(&self.db).await,
            }
            .map_err(db_err)?;
            Ok(r.rows_affected())
        })
    }

    fn count(&self, status: Status) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let n: i64 = self
                .db
                .query_scalar::<i64>("SELECT COUNT(*) FROM flagon_mail_outbox WHERE status = ?")
                .bind(status.as_str())
                .fetch_one(&self.db)
                .await
                .map_err(db_err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn purge(&self, sent_before: i64) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let r = self
                .db
                .query("DELETE FROM flagon_mail_outbox WHERE status = 'sent' AND sent_at < ?")
                .bind(sent_before)
                .execute(&self.db)
                .await
                .map_err(db_err)?;
            Ok(r.rows_affected())
        })
    }
}
