//! Flask-SQLAlchemy for Flagon, on sqlx: connection pools chosen by URL, one transaction per
//! request, `get_or_404`, readiness and statement counts. No ORM: you write SQL.
//!
//! Queries run on sqlx's `Any` driver, so one binary moves from the embedded SQLite file to
//! PostgreSQL or MySQL/MariaDB by changing `[db] url` alone. Write `?` placeholders and build
//! queries with [`Db::query`], [`Db::query_as`], [`Db::query_scalar`] (or the same methods on
//! a [`Tx`]): they rewrite them as `$1, $2, …` for PostgreSQL ([`Backend::sql`]).
//!
//! ```
//! use flagon::testing::{TestClient, testing_config_toml};
//! use flagon::{App, AppHandle, Route};
//! use flagon_db::{Db, Tx};
//!
//! // One transaction per request: committed because the handler answers 200.
//! async fn add(mut tx: Tx) -> Result<&'static str, flagon_db::Error> {
//!     tx.query("INSERT INTO todo (title) VALUES (?)")
//!         .bind("write the docs")
//!         .execute(&mut *tx)
//!         .await?;
//!     Ok("added")
//! }
//!
//! // Plain statements on the pool.
//! async fn count(db: Db) -> Result<String, flagon_db::Error> {
//!     let n: i64 = db.query_scalar("SELECT COUNT(*) FROM todo").fetch_one(&db).await?;
//!     Ok(n.to_string())
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = App::builder()
//!     .settings(testing_config_toml("[db]\nurl = \"sqlite::memory:\"\n"))
//!     .register(Db::extension())
//!     .configure(|s| {
//!         // Outside requests the pool is app state (startup hooks, commands, workers).
//!         s.on_startup(|app: AppHandle| async move {
//!             let db = app.state::<Db>().expect("db is registered");
//!             db.query("CREATE TABLE todo (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
//!                 .execute(&*db)
//!                 .await?;
//!             Ok(())
//!         });
//!         Ok(())
//!     })
//!     .route(Route::get("/add", add))
//!     .route(Route::get("/count", count))
//!     .build()
//!     .unwrap();
//! let client = TestClient::new(&app);
//! assert_eq!(client.get("/add").send().await.text(), "added");
//! assert_eq!(client.get("/count").send().await.text(), "1");
//! # });
//! ```
//!
//! # Handlers
//!
//! - [`Db`] is the pool: each statement run on `&db` takes a connection for itself.
//! - [`Tx`] is the request's transaction, begun on first extraction and settled after the
//!   response: **committed** on 2xx/3xx, **rolled back** on any other status, an `Err`, a
//!   panic, a timeout or a dropped request (the client went away). Run statements on
//!   `&mut *tx`. On SQLite it begins with `BEGIN IMMEDIATE`, so concurrent writers queue on
//!   `busy_timeout` instead of failing with `database is locked`.
//! - Rows: `#[derive(sqlx::FromRow)]` with [`Db::query_as`]. The derive names the crate
//!   `sqlx`, so an app that uses it adds `sqlx = { version = "0.9", default-features = false }`
//!   to its own `Cargo.toml` (the version flagon-db re-exports as [`sqlx`]).
//! - [`get_or_404`], [`first_or_404`] and [`OrNotFound::or_404`]: a missing row is core's
//!   [`HttpError`](flagon::HttpError) 404, so the app's error handlers and `Accept` decide the
//!   page.
//! - [`Db::bind`] reaches a database of `[db.binds.NAME]` (Flask's `SQLALCHEMY_BINDS`).
//!
//! # Outside requests
//!
//! `app.state::<Db>()` on an [`AppHandle`](flagon::AppHandle) (startup hooks, workers,
//! `CommandContext::app()` in CLI commands), on a built [`App`](flagon::App), or on the
//! [`Setup`](flagon::Setup) of an extension that `requires` `db`. Transactions there:
//! [`Db::begin`]. The pool is made on first use, inside the runtime; nothing connects until
//! then, so `routes` and `config` run without a database server.
//!
//! # Configuration
//!
//! `[db]` in `flagon.toml` (or `FLAGON_DB__KEY`); `[db.binds.NAME]` takes the same keys, each
//! with the same default, and requires `url`. Durations are humantime (`"3s"`, `"250ms"`).
//! Unknown keys and bad values stop the build, naming the key; a URL is never shown with its
//! password.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | `sqlite://instance/app.db` | `sqlite://path` (created with its directory), `sqlite::memory:` (one connection), `postgres://…`, `mysql://…` / `mariadb://…` |
//! | `max_connections` | `10` | the most connections the pool opens |
//! | `min_connections` | `0` | connections kept open when idle |
//! | `acquire_timeout` | `3s` | wait for a free connection, then 503 + `Retry-After` |
//! | `idle_timeout` | `10m` | close idle connections after this (`0s`: never) |
//! | `max_lifetime` | `30m` | replace connections after this (`0s`: never) |
//! | `statement_timeout` | `30s` | server-side limit per statement (`0s`: off): PostgreSQL `statement_timeout` (and `idle_in_transaction_session_timeout` at twice it), MySQL `max_execution_time`, MariaDB `max_statement_time`; none on SQLite |
//! | `busy_timeout` | `5s` | SQLite: how long a statement waits for a lock |
//! | `slow_query` | `500ms` | statements slower than this are logged at WARN (`0s`: off) |
//! | `echo` | `false` | log every statement at INFO (Flask's `SQLALCHEMY_ECHO`); off in every profile, turn it on with `[development.db] echo = true` |
//! | `health_timeout` | `2s` | how long the `/readyz` check waits for a connection and a ping |
//!
//! SQLite connections are opened with `journal_mode=WAL`, `synchronous=NORMAL`,
//! `busy_timeout` and `foreign_keys=ON`, and `mode=rwc` (created if missing). Server
//! connections are tested before they are handed out (a restarted server's dead connections
//! are replaced).
//!
//! # Operations
//!
//! - **Readiness**: a check per pool in `/readyz` (`db`, `db.NAME`) that takes a connection and
//!   pings it within `health_timeout`; its detail shows `backend`, `size`, `idle`, `in_use`,
//!   `max` and `ping_ms`.
//! - **Slow statements**: WARN on target `flagon_db::slow` with the statement text (never the
//!   bound values), `duration_ms`, `route` and `bind`. `echo` logs on `flagon_db::echo`.
//! - **Per request** (Flask-SQLAlchemy's `record_queries`): [`Db::request_stats`] in the
//!   handler; after the response, the [`QueriesRecorded`] signal (statements, connections,
//!   time in the database, how the transaction ended) and a DEBUG line on
//!   `flagon_db::request` with the request id. Only requests that used the database pay for it.
//! - **Pool counters**: [`Db::stats`].
//! - **Shutdown**: the pools close in the app's shutdown hooks, after requests and workers have
//!   drained.
//!
//! # Errors
//!
//! Every fallible call returns [`Error`]. Returned from a handler (or converted to core's
//! `HttpError` with `?`) it answers with a generic page and logs the details:
//!
//! | error | status |
//! |---|---|
//! | [`Error::Busy`]: no connection within `acquire_timeout` | 503, `Retry-After: 1` |
//! | [`Error::Closed`]: the pool is closed (shutting down) | 503, `Retry-After: 1` |
//! | [`Error::Database`]: any other sqlx error | 500 |
//! | [`Error::UnknownBind`], [`Error::TxInUse`]: a bug in the app | 500 |
//! | [`Error::Http`]: a 404 from `get_or_404`, or an `HttpError` passed through | its own |
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sqlite` | yes | SQLite, bundled (no system library) |
//! | `postgres` | no | PostgreSQL over rustls |
//! | `mysql` | no | MySQL and MariaDB over rustls |
//!
//! A URL whose backend's feature is off stops the build naming `db.url` and the feature.

// `migrations!` expands to paths through `::flagon_db`; this makes them resolve inside the
// crate too.
extern crate self as flagon_db;

mod backend;
mod config;
mod db;
mod error;
mod fetch;
mod health;
mod keyset;
pub mod migrate;
mod order_by;
mod paginate;
mod pool;
mod session_store;
mod stats;
mod tx;

pub use backend::{Backend, redact_url};
pub use config::{BindConfig, DEFAULT_URL, DbConfig};
pub use db::{Db, DbExtension};
pub use error::{Error, RETRY_AFTER_SECS};
pub use fetch::{OrNotFound, first_or_404, get_or_404};
pub use flagon_db_macros::migrations;
pub use keyset::{CursorKey, Keyset, KeysetPage, KeysetRequest};
pub use migrate::{MigrateError, MigrationSet, Migrations, Migrator, Target};
pub use order_by::{Direction, OrderBy, Sort, SortColumn};
pub use paginate::{
    DEFAULT_MAX_PER_PAGE, DEFAULT_PER_PAGE, IterPages, PageLink, PageLinks, PageRequest, Paginate,
    PaginateError, Pagination, Select, SqlValue, paginate,
};
pub use session_store::{SESSION_TABLE, SqlSessionStore, session_migration, session_migrations};
pub use sqlx;
pub use stats::{PoolStats, QueriesRecorded, RequestStats, TxOutcome};
pub use tx::{Tx, TxConn};
