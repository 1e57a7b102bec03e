//! The migration lock: one migrating process per database, waited for with a deadline.
//!
//! | backend | lock | scope |
//! |---|---|---|
//! | PostgreSQL | `pg_try_advisory_lock(key)`, polled | the current database (advisory locks are per database); held by the session |
//! | MySQL/MariaDB | `GET_LOCK('flagon_migrations.' + md5(database), 0)`, polled | the server, named after the database; held by the session |
//! | SQLite | an exclusive `flock` on `<database file>.migrate-lock`, polled | the file; an in-memory database takes none |
//!
//! The server locks belong to the connection, which the migrator closes when done instead of
//! returning it to the pool: if the process dies or the future is dropped, the server
//! releases them with the connection. The lock file is left in place (deleting it would let a third process
//! lock a different file than the second one waits on).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Row};

use super::error::MigrateError;
use crate::Backend;

/// The PostgreSQL advisory lock key: "flagonmg" as a big-endian integer.
const PG_KEY: i64 = i64::from_be_bytes(*b"flagonmg");

const MYSQL_NAME: &str = "CONCAT('flagon_migrations.', MD5(COALESCE(DATABASE(), '')))";

const POLL: Duration = Duration::from_millis(100);

/// A held lock; release it with [`Lock::release`] (dropping it releases the file lock; the
/// server locks go with the connection).
pub(crate) enum Lock {
    Server,
    File(std::fs::File),
    None,
}

/// Takes the migration lock on `conn`, polling until `timeout` has passed. `on_wait` is
/// called once, when the lock is found taken.
pub(crate) async fn acquire(
    conn: &mut AnyConnection,
    backend: Backend,
    timeout: Duration,
    on_wait: &mut (dyn FnMut() + Send),
) -> Result<Lock, MigrateError> {
    let start = Instant::now();
    let file = match backend {
        Backend::Sqlite => match sqlite_lock_path(conn).await? {
            Some(path) => Some((open(&path)?, path)),
            None => return Ok(Lock::None),
        },
        _ => None,
    };
    let mut waited = false;
    loop {
        let taken = match (&file, backend) {
            (Some((f, path)), _) => match f.try_lock() {
                Ok(()) => true,
                Err(std::fs::TryLockError::WouldBlock) => false,
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(MigrateError::Io {
                        path: path.clone(),
                        source,
                    });
                }
            },
            (None, Backend::Postgres) => sqlx::query("SELECT pg_try_advisory_lock($1)")
                .bind(PG_KEY)
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get::<bool, _>(0))
                .map_err(MigrateError::db("taking the migration lock"))?,
            (None, _) => {
                let sql = format!("SELECT GET_LOCK({MYSQL_NAME}, 0)");
                let got: Option<i64> = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut *conn)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(MigrateError::db("taking the migration lock"))?;
                got == Some(1)
            }
        };
        if taken {
            return Ok(match file {
                Some((f, _)) => Lock::File(f),
                None => Lock::Server,
            });
        }
        if !waited {
            waited = true;
            on_wait();
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(MigrateError::LockTimeout {
                backend,
                waited: elapsed,
            });
        }
        tokio::time::sleep(POLL.min(timeout - elapsed)).await;
    }
}

impl Lock {
    /// Releases the lock.
    pub(crate) async fn release(
        self,
        conn: &mut AnyConnection,
        backend: Backend,
    ) -> Result<(), MigrateError> {
        let sql = match (self, backend) {
            (Lock::None, _) => return Ok(()),
            (Lock::File(f), _) => {
                // Closing the file releases the lock; unlock first to say so.
                let _ = f.unlock();
                return Ok(());
            }
            (Lock::Server, Backend::Postgres) => "SELECT pg_advisory_unlock($1)".to_owned(),
            (Lock::Server, _) => format!("SELECT RELEASE_LOCK({MYSQL_NAME})"),
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if backend == Backend::Postgres {
            q = q.bind(PG_KEY);
        }
        q.execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(MigrateError::db("releasing the migration lock"))
    }
}

/// `<main database file>.migrate-lock`, or `None` for an in-memory or temporary database.
async fn sqlite_lock_path(conn: &mut AnyConnection) -> Result<Option<PathBuf>, MigrateError> {
    let rows = sqlx::query("PRAGMA database_list")
        .fetch_all(&mut *conn)
        .await
        .map_err(MigrateError::db("finding the SQLite database file"))?;
    for row in rows {
        let name: String = row
            .try_get(1)
            .map_err(MigrateError::db("finding the SQLite database file"))?;
        let file: Option<String> = row
            .try_get(2)
            .map_err(MigrateError::db("finding the SQLite database file"))?;
        if name == "main" {
            return Ok(file
                .filter(|f| !f.is_empty())
                .map(|f| PathBuf::from(format!("{f}.migrate-lock"))));
        }
    }
    Ok(None)
}

fn open(path: &PathBuf) -> Result<std::fs::File, MigrateError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| MigrateError::Io {
            path: path.clone(),
            source,
        })
}
