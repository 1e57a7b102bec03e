//! The `db` extension and [`Db`], the handle on its pools: an extractor in handlers, app state
//! everywhere else.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use flagon::axum::extract::{FromRequestParts, MatchedPath};
use flagon::axum::response::{IntoResponse, Response};
use flagon::http::request::Parts;
use flagon::{AppHandle, Ext, Extension, RequestLocal, ResponseOutcome, Setup, SetupError};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyPool, Either, Execute, Executor, SqlStr};

use crate::backend::{Backend, redact_url};
use crate::config::{DbConfig, PoolSettings};
use crate::error::Error;
use crate::stats::{
    PoolCounters, PoolStats, Probe, QueriesRecorded, RequestCounters, RequestStats, TimedStream,
    TxOutcome,
};
use crate::tx::{Settled, Slot, TxConn};

/// One pool: the main database or a bind.
pub(crate) struct PoolInner {
    /// `None` for the main database, else the bind's name.
    pub(crate) name: Option<String>,
    /// Made on first use: sqlx starts the pool's maintenance task when it makes the pool,
    /// which needs the runtime, and an app may be built outside one (`routes`, a sync test).
    pool: OnceLock<AnyPool>,
    options: sqlx::any::AnyConnectOptions,
    pub(crate) settings: PoolSettings,
    pub(crate) counters: PoolCounters,
}

impl PoolInner {
    /// The pool, made now if this is its first use (inside the tokio runtime).
    pub(crate) fn pool(&self) -> &AnyPool {
        self.pool
            .get_or_init(|| crate::pool::build(&self.settings, self.options.clone()))
    }

    /// Closes the pool (made first if it never was, so that later uses see it closed).
    async fn close(&self) {
        self.pool().close().await;
    }

    pub(crate) fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("default")
    }
}

/// Everything the extension built, shared by every [`Db`] handle.
pub(crate) struct Shared {
    main: Arc<PoolInner>,
    binds: BTreeMap<String, Arc<PoolInner>>,
    local: RequestLocal<RequestDb>,
}

/// What one request keeps: its counters and its transaction (made on first use of [`Db`] or
/// [`Tx`](crate::Tx) in the request, settled after the response).
pub(crate) struct RequestDb {
    pub(crate) counters: RequestCounters,
    route_cell: OnceLock<Arc<str>>,
    pub(crate) slot: Mutex<Slot>,
    pub(crate) outcome: Mutex<Option<TxOutcome>>,
    app: AppHandle,
    request_id: String,
}

impl RequestDb {
    pub(crate) fn route(&self) -> Option<&str> {
        self.route_cell.get().map(|r| &**r)
    }
}

/// The handle on the app's databases: a connection pool and its backend, cheap to clone.
///
/// - **In a handler** it is an extractor: `async fn list(db: Db)`. Statements run on it
///   (`.fetch_all(&db)`) each take a connection from the pool for that statement alone, and
///   are counted for the request. For one transaction per request use [`Tx`](crate::Tx).
/// - **Everywhere else** (CLI commands, startup hooks, workers, other extensions' `init_app`
///   once `db` is initialised) it is app state: `app.state::<Db>()` on an
///   [`AppHandle`], a [`Setup`] or a built [`App`](flagon::App).
///
/// Write `?` placeholders and run SQL through [`Db::query`], [`Db::query_as`],
/// [`Db::query_scalar`] or [`Db::sql`]: they rewrite them as `$1, $2, …` for PostgreSQL.
/// `&Db` is an [`Executor`]; [`Db::pool`] is the raw sqlx pool (not counted).
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
    pool: Arc<PoolInner>,
    request: Option<Arc<RequestDb>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("bind", &self.pool.label())
            .field("backend", &self.pool.settings.backend)
            .field("url", &redact_url(&self.pool.settings.url))
            .field("in_request", &self.request.is_some())
            .finish()
    }
}

impl Db {
    /// The extension to register: `App::builder().register(Db::extension())`.
    pub fn extension() -> DbExtension {
        DbExtension::default()
    }

    /// The sqlx pool itself, for APIs that take one (statements run on it are not counted).
    pub fn pool(&self) -> &AnyPool {
        self.pool.pool()
    }

    /// The backend the URL names.
    pub fn backend(&self) -> Backend {
        self.pool.settings.backend
    }

    /// The bind's name, or `None` for the main database.
    pub fn bind_name(&self) -> Option<&str> {
        self.pool.name.as_deref()
    }

    /// The database of `[db.binds.NAME]` (Flask's `SQLALCHEMY_BINDS`), counted for the same
    /// request as this handle. An unknown name is [`Error::UnknownBind`].
    pub fn bind(&self, name: &str) -> Result<Db, Error> {
        let pool = self
            .shared
            .binds
            .get(name)
            .ok_or_else(|| Error::UnknownBind(name.to_owned()))?;
        Ok(Db {
            shared: self.shared.clone(),
            pool: pool.clone(),
            request: self.request.clone(),
        })
    }

    /// The names of the configured binds.
    pub fn bind_names(&self) -> impl Iterator<Item = &str> {
        self.shared.binds.keys().map(String::as_str)
    }

    /// The main database, from a bind's handle.
    pub fn main(&self) -> Db {
        Db {
            shared: self.shared.clone(),
            pool: self.shared.main.clone(),
            request: self.request.clone(),
        }
    }

    /// `sql` with its `?` placeholders rewritten for this backend, ready for `sqlx::query`.
    pub fn sql(&self, sql: &str) -> SqlStr {
        crate::tx::to_sql(self.backend(), sql)
    }

    /// `sqlx::query` on [`Db::sql`]`(sql)`: bind values with `.bind(..)`, run with
    /// `.execute(&db)`, `.fetch_all(&mut *tx)`, ….
    pub fn query(&self, sql: &str) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        sqlx::query(self.sql(sql))
    }

    /// `sqlx::query_as::<_, T>` on [`Db::sql`]`(sql)`: rows into a `#[derive(sqlx::FromRow)]`.
    pub fn query_as<T>(
        &self,
        sql: &str,
    ) -> sqlx::query::QueryAs<'static, Any, T, sqlx::any::AnyArguments>
    where
        T: for<'r> sqlx::FromRow<'r, AnyRow>,
    {
        sqlx::query_as(self.sql(sql))
    }

    /// `sqlx::query_scalar::<_, T>` on [`Db::sql`]`(sql)`: the first column of each row.
    pub fn query_scalar<T>(
        &self,
        sql: &str,
    ) -> sqlx::query::QueryScalar<'static, Any, T, sqlx::any::AnyArguments>
    where
        (T,): for<'r> sqlx::FromRow<'r, AnyRow>,
    {
        sqlx::query_scalar(self.sql(sql))
    }

    /// A transaction outside a request (a CLI command, a worker), begun with `BEGIN
    /// IMMEDIATE` on SQLite. Run statements on `&mut *tx`; commit with `tx.commit().await`
    /// (dropping it rolls back). In a handler, take [`Tx`](crate::Tx) instead.
    pub async fn begin(&self) -> Result<TxConn, Error> {
        crate::tx::begin(&self.pool, self.request.clone()).await
    }

    /// The pool's size and counters since the app started.
    pub fn stats(&self) -> PoolStats {
        self.pool.counters.snapshot(self.pool.pool())
    }

    /// What the current request did so far (`None` outside a request).
    pub fn request_stats(&self) -> Option<RequestStats> {
        self.request.as_ref().map(|r| r.counters.snapshot())
    }

    /// Closes every pool (the main one and the binds), waiting for connections in use to
    /// come back. Done for you when the app shuts down.
    pub async fn close(&self) {
        close_all(&self.shared).await;
    }

    pub(crate) fn probe(&self) -> Probe {
        Probe {
            pool: self.pool.clone(),
            request: self.request.as_ref().map(Arc::downgrade),
        }
    }

    pub(crate) fn request(&self) -> Option<&Arc<RequestDb>> {
        self.request.as_ref()
    }

    pub(crate) fn pool_inner(&self) -> &Arc<PoolInner> {
        &self.pool
    }
}

async fn close_all(shared: &Shared) {
    let pools = std::iter::once(&shared.main).chain(shared.binds.values());
    futures_util::future::join_all(pools.map(|p| p.close())).await;
}

impl<S: Send + Sync> FromRequestParts<S> for Db {
    type Rejection = flagon::HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let db = Ext::<Db>::from_request_parts(parts, state).await?;
        let mut db = Db::clone(&db);
        let request =
            db.shared.local.get(parts).ok_or_else(|| {
                flagon::HttpError::internal("Db extracted outside a Flagon request")
            })?;
        if let Some(path) = parts.extensions.get::<MatchedPath>() {
            let _ = request.route_cell.set(Arc::from(path.as_str()));
        }
        db.request = Some(request);
        Ok(db)
    }
}

/// What a statement on `&Db` runs: the query as the caller built it, replayed once its text
/// has been read for the log.
pub(crate) struct Replay {
    pub(crate) sql: SqlStr,
    pub(crate) args: Option<sqlx::any::AnyArguments>,
    pub(crate) persistent: bool,
}

impl Execute<'_, Any> for Replay {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&AnyStatement> {
        None
    }

    fn take_arguments(
        &mut self,
    ) -> Result<Option<sqlx::any::AnyArguments>, sqlx::error::BoxDynError> {
        Ok(self.args.take())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Reads a query's text and arguments (the `Any` driver ignores a cached statement and uses
/// the text, so nothing is lost).
pub(crate) fn replay<'q, E: Execute<'q, Any>>(mut query: E) -> Result<Replay, sqlx::Error> {
    let args = query.take_arguments().map_err(sqlx::Error::Encode)?;
    let persistent = query.persistent();
    Ok(Replay {
        sql: query.sql(),
        args,
        persistent,
    })
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let replay = match replay(query) {
            Ok(r) => r,
            Err(e) => return futures_util::stream::once(async { Err(e) }).boxed(),
        };
        if let Some(r) = &self.request {
            r.counters.connection();
        }
        let timing = self.probe().start(&replay.sql);
        TimedStream {
            inner: self.pool.pool().fetch_many(replay),
            timing,
        }
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let replay = match replay(query) {
            Ok(r) => r,
            Err(e) => return futures_util::future::ready(Err(e)).boxed(),
        };
        if let Some(r) = &self.request {
            r.counters.connection();
        }
        let mut timing = self.probe().start(&replay.sql);
        let pool = self.pool.pool();
        async move {
            let out = pool.fetch_optional(replay).await;
            if let Err(e) = &out {
                timing.failed(e);
            }
            drop(timing);
            out
        }
        .boxed()
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.pool().prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.pool().describe(sql)
    }
}

/// The `db` extension: reads `[db]`, builds the pools, and adds the [`Db`] and
/// [`Tx`](crate::Tx) extractors, a readiness check per pool and the pools' shutdown.
///
/// ```
/// use flagon::App;
/// use flagon_db::Db;
///
/// let app = App::builder()
///     .settings(flagon::testing::testing_config_toml("[db]\nurl = \"sqlite::memory:\"\n"))
///     .register(Db::extension())
///     .build()
///     .unwrap();
/// let db = app.state::<Db>().unwrap();
/// assert_eq!(db.backend(), flagon_db::Backend::Sqlite);
/// ```
#[derive(Debug, Default)]
pub struct DbExtension {
    _private: (),
}

impl Extension for DbExtension {
    fn name(&self) -> &'static str {
        "db"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let cfg: DbConfig = app.config("db")?;
        let key_error =
            |app: &Setup<'_>, p: crate::config::KeyProblem| app.config_error(&p.key, p.message);
        let main = cfg.main().map_err(|p| key_error(app, p))?;
        let binds = cfg.binds().map_err(|p| key_error(app, p))?;

        let open = |app: &Setup<'_>, name: Option<String>, s: PoolSettings| {
            prepare_sqlite_dir(&s).map_err(|m| app.config_error(&format!("{}.url", s.key), m))?;
            let options = crate::pool::options(&s).map_err(|e| {
                let _ = e; // the error may quote the URL: say what is wrong without it
                app.config_error(
                    &format!("{}.url", s.key),
                    format!("`{}` is not a valid database URL", redact_url(&s.url)),
                )
            })?;
            Ok::<_, SetupError>(Arc::new(PoolInner {
                name,
                pool: OnceLock::new(),
                options,
                settings: s,
                counters: PoolCounters::default(),
            }))
        };
        let main = open(app, None, main)?;
        let mut bind_pools = BTreeMap::new();
        for (name, s) in binds {
            let pool = open(app, Some(name.clone()), s)?;
            bind_pools.insert(name, pool);
        }

        let local: RequestLocal<RequestDb> = app.request_local(|head| RequestDb {
            counters: RequestCounters::default(),
            route_cell: OnceLock::new(),
            slot: Mutex::new(Slot::Empty),
            outcome: Mutex::new(None),
            app: head.app().clone(),
            request_id: head.id().to_string(),
        });
        app.after_response(local, settle);

        let shared = Arc::new(Shared {
            main: main.clone(),
            binds: bind_pools,
            local,
        });
        let db = Db {
            shared: shared.clone(),
            pool: main,
            request: None,
        };
        for pool in std::iter::once(&shared.main).chain(shared.binds.values()) {
            crate::health::register(app, pool.clone());
        }
        let closing = shared.clone();
        app.on_shutdown(move |_app| {
            let shared = closing.clone();
            async move { close_all(&shared).await }
        });
        crate::session_store::install(app, &db, cfg.session_sweep)?;
        install_migrations(app, &db, &cfg);
        app.provide(db);
        Ok(())
    }
}

/// The `db` commands, the build-time check of every registered migration set, and
/// `auto_upgrade`, all on the main database.
fn install_migrations(app: &mut Setup<'_>, db: &Db, cfg: &DbConfig) {
    let backend = db.backend();
    let lock_timeout = cfg.migrate_lock_timeout;
    let migrator = move |app: &AppHandle| {
        crate::migrate::Migrator::from_registry(app.registry::<crate::Migrations>(), backend)
            .map(|m| m.lock_timeout(lock_timeout))
    };

    let commands_db = db.clone();
    let dir = cfg.migrations_dir.clone();
    app.command(crate::migrate::commands(), move |ctx| {
        let db = commands_db.clone();
        let dir = dir.clone();
        async move {
            let migrator = migrator(ctx.app())?;
            let mut out = ctx.out();
            let interactive = out.colour();
            crate::migrate::run_cli(
                ctx.matches(),
                db.pool(),
                &migrator,
                &dir,
                &mut out,
                interactive,
            )
            .await?;
            Ok(())
        }
    });

    // A set with a bad file, a missing requirement or a cycle fails `build()`, naming it.
    app.on_finish(move |late| {
        match crate::migrate::Migrator::from_registry(late.registry::<crate::Migrations>(), backend)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(SetupError::init("db", e)),
        }
    });

    if cfg.auto_upgrade {
        let startup_db = db.clone();
        app.before_serving(move |handle| {
            let db = startup_db.clone();
            async move {
                let migrator = migrator(&handle)?;
                crate::migrate::auto_upgrade(db.pool(), &migrator).await?;
                Ok(())
            }
        });
    }
}

/// Creates the directory of a SQLite file (Flask-SQLAlchemy creates the instance folder the
/// same way, at `init_app`).
fn prepare_sqlite_dir(s: &PoolSettings) -> Result<(), String> {
    let Some(file) = &s.sqlite_file else {
        return Ok(());
    };
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the directory `{}`: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// After the response: commit or roll back the request's transaction, add `Retry-After` to
/// a busy pool's 503, and report what the request did.
async fn settle(req: Arc<RequestDb>, res: Response, outcome: ResponseOutcome) -> Response {
    {
        let mut res = res;
        let status = res.status();
        let keep = outcome.completed && (status.is_success() || status.is_redirection());
        let settled = req.slot.lock().unwrap_or_else(|e| e.into_inner()).finish();
        let mut tx_outcome = *req.outcome.lock().unwrap_or_else(|e| e.into_inner());
        let open = match settled {
            Settled::Open(tx) => Some(tx),
            Settled::Nothing => None,
            Settled::StillHeld => {
                // It rolls back when the `Tx` is dropped. A success must not be sent for
                // writes that will not be kept (a `Tx` moved into a task that outlives the
                // handler); after a panic the response is a 500 already.
                if keep {
                    tracing::error!(target: "flagon_db", route = req.route(), "the request's Tx was still in use when the response was ready (moved into a task?): rolled back, answering 500");
                    res = flagon::HttpError::internal(
                        "the request's transaction was still in use after the handler returned",
                    )
                    .into_response();
                }
                tx_outcome = Some(TxOutcome::RolledBack);
                None
            }
        };
        if let Some(tx) = open {
            if keep {
                match tx.commit().await {
                    Ok(()) => tx_outcome = Some(TxOutcome::Committed),
                    Err(e) => {
                        tracing::error!(target: "flagon_db", error = %e.sqlx().map_or(String::new(), ToString::to_string), route = req.route(), "commit failed");
                        res = e.into_response();
                        tx_outcome = Some(TxOutcome::CommitFailed);
                    }
                }
            } else {
                if let Err(e) = tx.rollback().await {
                    tracing::warn!(target: "flagon_db", error = %e, "rollback failed; the connection is closed");
                }
                tx_outcome = Some(TxOutcome::RolledBack);
            }
        }
        if req.counters.busy.load(std::sync::atomic::Ordering::Relaxed) {
            crate::error::add_retry_after(&mut res);
        }
        let stats = req.counters.snapshot();
        tracing::debug!(
            target: "flagon_db::request",
            request_id = %req.request_id,
            route = req.route(),
            statements = stats.statements,
            connections = stats.connections,
            db_time_us = stats.db_time.as_micros() as u64,
            transaction = ?tx_outcome,
        );
        let signals = req.app.signals();
        if signals.has::<QueriesRecorded>() {
            signals.emit(QueriesRecorded {
                request_id: req.request_id.clone(),
                route: req.route_cell.get().cloned(),
                status: res.status().as_u16(),
                stats,
                transaction: tx_outcome,
            });
        }
        res
    }
}
