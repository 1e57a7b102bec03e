//! The SQL store on `flagon-db` (feature `db`).

use flagon_db::Db;
use flagon_db::sqlx::{self, Row};

use super::{RememberStore, StoreError, StoreFuture, TokenRecord};

/// The table the SQL store keeps tokens in.
pub const REMEMBER_TABLE: &str = "flagon_login_remember";

/// The SQL store's migrations (owner `login`), registered by `Login` when
/// `login.remember_store = "db"`, so `db upgrade` (or `[db] auto_upgrade`) creates the table.
pub fn remember_migrations() -> flagon_db::MigrationSet {
    flagon_db::migrations!("migrations/login")
}

/// Remember-me tokens in the app's SQL database (SQLite, PostgreSQL, MySQL/MariaDB), one row
/// per series in `flagon_login_remember`. Rotation is one
/// `UPDATE … WHERE selector = ? AND validator_hash = ?`, so of two concurrent uses of a
/// validator only one applies. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlRememberStore {
    db: Db,
}

impl SqlRememberStore {
    /// A store on `db` (the table must exist: [`remember_migrations`]).
    pub fn on(db: &Db) -> SqlRememberStore {
        SqlRememberStore { db: db.clone() }
    }
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.into())
}

fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn unsecs(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

impl RememberStore for SqlRememberStore {
    fn insert<'a>(&'a self, r: &'a TokenRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.db
                .query(
                    "INSERT INTO flagon_login_remember (selector, user_id, validator_hash, \
                     previous_hash, rotated_at, expires_at, auth_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(r.selector.clone())
                .bind(r.user_id.clone())
                .bind(r.validator_hash.clone())
                .bind(r.previous_hash.clone())
                .bind(secs(r.rotated_at))
                .bind(secs(r.expires_at))
                .bind(r.auth_digest.clone())
                .execute(self.db.pool())
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move {
            let row = self
                .db
                .query(
                    "SELECT selector, user_id, validator_hash, previous_hash, rotated_at, \
                     expires_at, auth_digest FROM flagon_login_remember WHERE selector = ?",
                )
                .bind(selector.to_owned())
                .fetch_optional(self.db.pool())
                .await
                .map_err(backend)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let read = || -> Result<TokenRecord, sqlx::Error> {
                Ok(TokenRecord {
                    selector: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    validator_hash: row.try_get(2)?,
                    previous_hash: row.try_get(3)?,
                    rotated_at: unsecs(row.try_get(4)?),
                    expires_at: unsecs(row.try_get(5)?),
                    auth_digest: row.try_get(6)?,
                })
            };
            read().map(Some).map_err(backend)
        })
    }

    fn rotate<'a>(
        &'a self,
        selector: &'a str,
        current: &'a str,
        next: &'a str,
        now: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Assignments read the row as it was (PostgreSQL, SQLite) or left to right
            // (MySQL): either way `previous_hash` gets the old validator hash.
            let done = self
                .db
                .query(
                    "UPDATE flagon_login_remember SET previous_hash = validator_hash, \
                     validator_hash = ?, rotated_at = ? WHERE selector = ? AND validator_hash = ?",
                )
                .bind(next.to_owned())
                .bind(secs(now))
                .bind(selector.to_owned())
                .bind(current.to_owned())
                .execute(self.db.pool())
                .await
                .map_err(backend)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn delete<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.db
                .query("DELETE FROM flagon_login_remember WHERE selector = ?")
                .bind(selector.to_owned())
                .execute(self.db.pool())
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let done = self
                .db
                .query("DELETE FROM flagon_login_remember WHERE user_id = ?")
                .bind(user_id.to_owned())
                .execute(self.db.pool())
                .await
                .map_err(backend)?;
            Ok(done.rows_affected())
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let done = self
                .db
                .query("DELETE FROM flagon_login_remember WHERE expires_at <= ?")
                .bind(secs(now))
                .execute(self.db.pool())
                .await
                .map_err(backend)?;
            Ok(done.rows_affected())
        })
    }
}
