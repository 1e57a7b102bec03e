//! Core's sessions in the SQL database (see [`SqlSessionStore`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flagon::session::{
    Changes, Clock, Id, Record, SessionStore, StoreContext, StoreError, StoreFuture, SystemClock,
    Updated, encoded_size,
};
use flagon::{BoxError, WorkerContext};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::{Backend, Db};

/// The table the store keeps sessions in.
pub const SESSION_TABLE: &str = "flagon_sessions";

/// The migration set of the SQL session store (owner `session`): registered by the `db`
/// extension when `[session] store = "db"`, so `db upgrade` (or `auto_upgrade`) creates the
/// table.
pub fn session_migrations() -> crate::MigrationSet {
    crate::migrations!("migrations/session")
}

/// With `[session] store = "db"`: the store on the app's main database, its table's
/// migrations and the sweep worker. The store is registered either way, so that the choice
/// is core's sessions' to make and to check.
pub(crate) fn install(
    app: &mut flagon::Setup<'_>,
    db: &Db,
    sweep_every: Duration,
) -> Result<(), flagon::SetupError> {
    app.session_store("db", SqlSessionStore::factory_on(db));
    // Core's sessions report a `store` that is not a string; here it only decides.
    let chosen = app
        .settings()
        .value::<String>("session.store")
        .ok()
        .flatten();
    if chosen.as_deref() != Some("db") {
        return Ok(());
    }
    if sweep_every.is_zero() {
        return Err(app.config_error("db.session_sweep", "must be longer than 0s"));
    }
    app.add_to::<crate::Migrations>("session", session_migrations());
    let sweeper = SqlSessionStore::on(db);
    app.worker("db.session_sweep", move |ctx| {
        let sweeper = sweeper.clone();
        async move { sweeper.sweep_until_stopped(ctx, sweep_every).await }
    });
    Ok(())
}

/// The format version written into each row's JSON.
const FORMAT: u8 = 1;
/// Default of the size limit: core's `session.max_record_bytes` default, 16 KiB.
const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 10;
/// Rows a sweep deletes per statement.
const SWEEP_BATCH: i64 = 1000;
/// Compare-and-set attempts before an update gives up (each lost attempt means another
/// update of the same session succeeded).
const MAX_ATTEMPTS: u32 = 1000;
/// Fresh ids tried when a created record's id is taken.
const MAX_CREATE_ATTEMPTS: u32 = 8;

/// The migration creating the session table on `backend`: `(up, down)` SQL, version 1,
/// for the owner `session` (the files under `migrations/session/<backend>/`, which
/// [`session_migrations`] embeds).
pub fn session_migration(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Sqlite => (
            include_str!("../migrations/session/sqlite/0001_create_sessions.up.sql"),
            include_str!("../migrations/session/sqlite/0001_create_sessions.down.sql"),
        ),
        Backend::Postgres => (
            include_str!("../migrations/session/postgres/0001_create_sessions.up.sql"),
            include_str!("../migrations/session/postgres/0001_create_sessions.down.sql"),
        ),
        Backend::MySql => (
            include_str!("../migrations/session/mysql/0001_create_sessions.up.sql"),
            include_str!("../migrations/session/mysql/0001_create_sessions.down.sql"),
        ),
    }
}

/// A row's `data` column: the session's values with a format version.
#[derive(Serialize, Deserialize)]
struct Stored<D> {
    v: u8,
    data: D,
}

fn encode(data: &BTreeMap<String, serde_json::Value>) -> Result<String, StoreError> {
    serde_json::to_string(&Stored { v: FORMAT, data }).map_err(|e| StoreError::Encoding(e.into()))
}

fn decode(text: &str) -> Option<BTreeMap<String, serde_json::Value>> {
    let stored: Stored<BTreeMap<String, serde_json::Value>> = serde_json::from_str(text).ok()?;
    (stored.v == FORMAT).then_some(stored.data)
}

fn backend_error(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.into())
}

/// Unix seconds as the database keeps them.
fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// Core's [`SessionStore`] on the SQL database (`[session] store = "db"`), on SQLite,
/// PostgreSQL and MySQL/MariaDB through sqlx's `Any` driver. Cheap to clone (the pool is
/// shared).
///
/// One row per session in `flagon_sessions` (the table is created by the migrations in
/// `migrations/session/<backend>/`, see [`session_migration`]): the id as 32 hex digits, the
/// values as versioned JSON text, `created_at` and `expires_at` in Unix seconds, and a
/// `version` that every write bumps.
///
/// * **Atomic updates by compare-and-set.** An update reads the live row and its version,
///   applies the request's [`Changes`], and writes back with
///   `UPDATE … WHERE id = ? AND version = ? AND expires_at > ?`; a write that lost a race
///   matches no row and is retried on the row as it is now. So concurrent updates keep each
///   other's keys, and an update never recreates a deleted or expired record. A touch (only
///   the expiry moves) is one `UPDATE`. The same statements work on every backend, take no
///   lock across statements, and never upgrade a SQLite read to a write inside a
///   transaction.
/// * **Expiry.** Rows past `expires_at` are never returned or updated (the comparison is
///   with the sessions' clock, not the server's); [`SqlSessionStore::sweep`] deletes them in batches (run it from a
///   background worker: [`SqlSessionStore::sweep_until_stopped`]).
/// * **Size.** A create or update whose data is over `session.max_record_bytes` (as
///   [`encoded_size`] counts it) fails with [`StoreError::TooLarge`] and writes nothing.
/// * **Undecodable rows** (corrupted, or written by a future format) are a miss: logged,
///   deleted, and `load` returns `None`.
///
/// ```no_run
/// use flagon::{Setup, SetupError};
/// use flagon_db::{Backend, SqlSessionStore};
/// use flagon_db::sqlx::AnyPool;
///
/// fn init(app: &mut Setup<'_>, pool: AnyPool) -> Result<(), SetupError> {
///     // `[session] store = "db"` picks it.
///     app.session_store("db", SqlSessionStore::factory(pool.clone(), Backend::Postgres));
///     let sweeper = SqlSessionStore::new(pool, Backend::Postgres);
///     app.worker("db.session_sweep", move |ctx| {
///         let sweeper = sweeper.clone();
///         async move { sweeper.sweep_until_stopped(ctx, std::time::Duration::from_secs(300)).await }
///     });
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct SqlSessionStore {
    pool: PoolSource,
    backend: Backend,
    clock: Arc<dyn Clock>,
    max_record_bytes: usize,
}

impl std::fmt::Debug for SqlSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSessionStore")
            .field("backend", &self.backend)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl SqlSessionStore {
    /// A store on `pool`, whose server is `backend`, reading the system clock, refusing
    /// records over 16 KiB. The session table must exist ([`session_migration`]).
    pub fn new(pool: AnyPool, backend: Backend) -> SqlSessionStore {
        SqlSessionStore {
            pool: PoolSource::Pool(pool),
            backend,
            clock: Arc::new(SystemClock),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// A store on the app's main database (what `[session] store = "db"` uses). The pool is
    /// made on the store's first statement, so this is safe at build time, outside a runtime.
    pub fn on(db: &Db) -> SqlSessionStore {
        SqlSessionStore {
            pool: PoolSource::Db(db.clone()),
            backend: db.backend(),
            clock: Arc::new(SystemClock),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// Reads `clock` to decide what has expired (sessions' own clock, from
    /// [`StoreContext::clock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqlSessionStore {
        self.clock = clock;
        self
    }

    /// Refuses records whose data is over `bytes` of JSON ([`StoreError::TooLarge`]).
    pub fn max_record_bytes(mut self, bytes: usize) -> SqlSessionStore {
        self.max_record_bytes = bytes;
        self
    }

    /// The store factory for [`Setup::session_store`](flagon::Setup::session_store): a
    /// store on `pool` with the sessions' clock and `session.max_record_bytes`. The pool
    /// may be lazy (`connect_lazy`): the factory runs when the app is built and makes no
    /// connection.
    pub fn factory(
        pool: AnyPool,
        backend: Backend,
    ) -> impl Fn(&StoreContext<'_>) -> Result<Arc<dyn SessionStore>, BoxError> + Send + Sync + 'static
    {
        move |ctx| {
            let store = SqlSessionStore::new(pool.clone(), backend)
                .with_clock(ctx.clock())
                .max_record_bytes(ctx.session_config().max_record_bytes);
            Ok(Arc::new(store) as Arc<dyn SessionStore>)
        }
    }

    /// [`SqlSessionStore::factory`] on the app's main database: registered by the `db`
    /// extension as `[session] store = "db"`.
    pub fn factory_on(
        db: &Db,
    ) -> impl Fn(&StoreContext<'_>) -> Result<Arc<dyn SessionStore>, BoxError> + Send + Sync + 'static
    {
        let db = db.clone();
        move |ctx| {
            let store = SqlSessionStore::on(&db)
                .with_clock(ctx.clock())
                .max_record_bytes(ctx.session_config().max_record_bytes);
            Ok(Arc::new(store) as Arc<dyn SessionStore>)
        }
    }

    fn now(&self) -> i64 {
        secs(self.clock.unix_now())
    }

    fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(self.backend.sql(sql).into_owned())
    }

    fn check_size(&self, data: &BTreeMap<String, serde_json::Value>) -> Result<(), StoreError> {
        let size = encoded_size(data);
        if size > self.max_record_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: self.max_record_bytes,
            });
        }
        Ok(())
    }

    /// Deletes the rows past their expiry, in batches of 1000, and returns how many went.
    /// Expired rows are never returned anyway; this keeps the table small.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let sql = match self.backend {
            Backend::MySql => "DELETE FROM flagon_sessions WHERE expires_at <= ? LIMIT ?",
            Backend::Sqlite | Backend::Postgres => {
                "DELETE FROM flagon_sessions WHERE id IN \
                 (SELECT id FROM flagon_sessions WHERE expires_at <= ? LIMIT ?)"
            }
        };
        let mut total = 0;
        loop {
            let done = sqlx::query(self.sql(sql))
                .bind(self.now())
                .bind(SWEEP_BATCH)
                .execute(self.pool.get())
                .await
                .map_err(backend_error)?
                .rows_affected();
            total += done;
            if done < SWEEP_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Runs [`sweep`](SqlSessionStore::sweep) every `every` until the app stops: the body
    /// of a core background worker. A failed sweep is logged and tried again next time.
    pub async fn sweep_until_stopped(
        &self,
        ctx: WorkerContext,
        every: Duration,
    ) -> Result<(), BoxError> {
        let mut tick = flagon::tokio::time::interval(every);
        tick.set_missed_tick_behavior(flagon::tokio::time::MissedTickBehavior::Delay);
        loop {
            flagon::tokio::select! {
                _ = tick.tick() => match self.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "expired sessions swept"),
                    Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed; trying again later"),
                },
                () = ctx.stopping() => return Ok(()),
            }
        }
    }

    /// The live row `id`: its data, created_at, expires_at and version. An undecodable row
    /// is deleted and reported as none.
    async fn live(&self, id: &Id) -> Result<Option<(Record, i64)>, StoreError> {
        let row: Option<AnyRow> = sqlx::query(self.sql(
            "SELECT data, created_at, expires_at, version FROM flagon_sessions \
             WHERE id = ? AND expires_at > ?",
        ))
        .bind(id.to_hex())
        .bind(self.now())
        .fetch_optional(self.pool.get())
        .await
        .map_err(backend_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        // Columns the table's own types cannot be read as are a backend fault; only data that
        // does not decode as a record is an undecodable record.
        let read = |row: &AnyRow| -> Result<(String, i64, i64, i64), sqlx::Error> {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        };
        let (text, created_at, expires_at, version) = read(&row).map_err(backend_error)?;
        let Some(data) = decode(&text) else {
            tracing::warn!(session = ?id, "an undecodable session record was deleted");
            self.delete_row(id).await?;
            return Ok(None);
        };
        let record = Record {
            id: *id,
            data,
            created_at: u64::try_from(created_at).unwrap_or(0),
            expires_at: u64::try_from(expires_at).unwrap_or(0),
        };
        Ok(Some((record, version)))
    }

    async fn delete_row(&self, id: &Id) -> Result<(), StoreError> {
        sqlx::query(self.sql("DELETE FROM flagon_sessions WHERE id = ?"))
            .bind(id.to_hex())
            .execute(self.pool.get())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn create_record(&self, record: &mut Record) -> Result<(), StoreError> {
        self.check_size(&record.data)?;
        let data = encode(&record.data)?;
        for _ in 0..MAX_CREATE_ATTEMPTS {
            let inserted = sqlx::query(self.sql(
                "INSERT INTO flagon_sessions (id, data, created_at, expires_at, version) \
                 VALUES (?, ?, ?, ?, 0)",
            ))
            .bind(record.id.to_hex())
            .bind(data.as_str())
            .bind(secs(record.created_at))
            .bind(secs(record.expires_at))
            .execute(self.pool.get())
            .await;
            match inserted {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    record.id = Id::random();
                }
                Err(e) => return Err(backend_error(e)),
            }
        }
        Err(StoreError::Backend(
            "no free session id found after several fresh random ids".into(),
        ))
    }

    async fn update_record(&self, id: &Id, changes: &Changes) -> Result<Updated, StoreError> {
        if changes.is_touch() {
            let done = sqlx::query(self.sql(
                "UPDATE flagon_sessions SET expires_at = ?, version = version + 1 \
                 WHERE id = ? AND expires_at > ?",
            ))
            .bind(secs(changes.expires_at))
            .bind(id.to_hex())
            .bind(self.now())
            .execute(self.pool.get())
            .await
            .map_err(backend_error)?;
            return Ok(if done.rows_affected() > 0 {
                Updated::Applied
            } else {
                Updated::Gone
            });
        }
        for attempt in 0..MAX_ATTEMPTS {
            let Some((mut record, version)) = self.live(id).await? else {
                return Ok(Updated::Gone);
            };
            changes.apply_to(&mut record.data);
            self.check_size(&record.data)?;
            let done = sqlx::query(self.sql(
                "UPDATE flagon_sessions SET data = ?, expires_at = ?, version = version + 1 \
                 WHERE id = ? AND version = ? AND expires_at > ?",
            ))
            .bind(encode(&record.data)?)
            .bind(secs(changes.expires_at))
            .bind(id.to_hex())
            .bind(version)
            .bind(self.now())
            .execute(self.pool.get())
            .await
            .map_err(backend_error)?;
            if done.rows_affected() > 0 {
                return Ok(Updated::Applied);
            }
            // Another write won: retry on the row as it is now, backing off a little once
            // the race repeats.
            if attempt >= 2 {
                flagon::tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)))).await;
            } else {
                flagon::tokio::task::yield_now().await;
            }
        }
        Err(StoreError::Backend(
            format!("session update lost {MAX_ATTEMPTS} races in a row").into(),
        ))
    }
}

impl SessionStore for SqlSessionStore {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        Box::pin(self.create_record(record))
    }

    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move { Ok(self.live(id).await?.map(|(record, _)| record)) })
    }

    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        Box::pin(self.update_record(id, changes))
    }

    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        Box::pin(self.delete_row(id))
    }
}

/// Where the store's connections come from: a pool it was given, or the app's [`Db`], whose
/// pool is made on first use.
#[derive(Clone)]
enum PoolSource {
    Pool(AnyPool),
    Db(Db),
}

impl PoolSource {
    fn get(&self) -> &AnyPool {
        match self {
            PoolSource::Pool(pool) => pool,
            PoolSource::Db(db) => db.pool(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_a_format_version() {
        let mut data = BTreeMap::new();
        data.insert("n".to_owned(), serde_json::json!(1));
        let text = encode(&data).unwrap();
        assert_eq!(text, r#"{"v":1,"data":{"n":1}}"#);
        assert_eq!(decode(&text), Some(data));
        assert_eq!(decode(r#"{"v":2,"data":{"n":1}}"#), None);
        assert_eq!(decode("{"), None);
        assert_eq!(decode(r#"{"n":1}"#), None);
    }

    #[test]
    fn every_backend_has_its_migration() {
        for b in [Backend::Sqlite, Backend::Postgres, Backend::MySql] {
            let (up, down) = session_migration(b);
            assert!(up.contains("CREATE TABLE flagon_sessions"), "{b}");
            assert!(down.contains("DROP TABLE flagon_sessions"), "{b}");
        }
    }
}
