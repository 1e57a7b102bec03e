//! Flask-SQLAlchemy and Flask-Migrate for Flagon, on [sqlx]: connection pools chosen by
//! URL, one transaction per request, migrations every extension can ship, pagination.
//!
//! An app starts on an embedded SQLite file with no service at all and moves to PostgreSQL
//! or MySQL/MariaDB by changing `[db] url`: statements run on sqlx's `Any` driver, written
//! with `?` placeholders that [`Db::query`] and [`TxConn::query`] rewrite as `$1, $2, …` for
//! PostgreSQL. There is no ORM: rows come back through sqlx's own types (re-exported as
//! [`flagon_db::sqlx`]), into tuples or `#[derive(sqlx::FromRow)]` structs.
//!
//! ```
//! use flagon::axum::extract::Path;
//! use flagon::testing::{TestClient, testing_config_toml};
//! use flagon::{App, Route};
//! use flagon_db::{Db, MigrationSet, Tx, get_or_404};
//!
//! /// `POST /add/{body}`: written in the request's transaction, committed after a 2xx.
//! async fn add(mut tx: Tx, Path(body): Path<String>) -> Result<String, flagon_db::Error> {
//!     let query = tx.query("INSERT INTO note (body) VALUES (?)").bind(body);
//!     query.execute(&mut *tx).await?;
//!     Ok("added".into())
//! }
//!
//! /// `GET /notes/{id}`: a missing row is a 404 that the app's error handlers render.
//! async fn show(db: Db, Path(id): Path<i64>) -> Result<String, flagon_db::Error> {
//!     let query = db.query_as::<(String,)>("SELECT body FROM note WHERE id = ?").bind(id);
//!     let (body,) = get_or_404(query, &db).await?;
//!     Ok(body)
//! }
//!
//! # #[flagon::tokio::main(crate = "flagon::tokio")]
//! # async fn main() {
//! let app = App::builder()
//!     .settings(testing_config_toml("[db]\nurl = \"sqlite::memory:\"\nauto_upgrade = true"))
//!     .register(Db::extension())
//!     .configure(|app| {
//!         // In an app: `flagon_db::migrations!("migrations")`, embedding the directory.
//!         let files = [("0001_notes.up.sql", "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)")];
//!         app.add_to::<flagon_db::Migrations>("app", MigrationSet::from_files("migrations", files));
//!         app.route(Route::post("/add/{body}", add).name("add"));
//!         app.csrf_exempt("add"); // a script posts here, not a form
//!         app.route(Route::get("/notes/{id}", show));
//!         Ok(())
//!     })
//!     .build()
//!     .unwrap();
//! let client = TestClient::new(&app);
//! assert_eq!(client.post("/add/hello").send().await.text(), "added");
//! assert_eq!(client.get("/notes/1").send().await.text(), "hello");
//! assert_eq!(client.get("/notes/2").send().await.status(), 404);
//! # }
//! ```
//!
//! # In handlers, and everywhere else
//!
//! | you need | take | what it is |
//! |---|---|---|
//! | plain queries | [`Db`] (extractor) | the pool; each statement takes a connection for itself |
//! | one transaction per request | [`Tx`] (extractor) | begun on first use (`BEGIN IMMEDIATE` on SQLite); committed when the response is 2xx/3xx, rolled back on any other status, an error, a panic or a dropped request |
//! | a row or a 404 | [`get_or_404`], [`first_or_404`], [`OrNotFound::or_404`] | core's [`HttpError`](flagon::HttpError) 404, rendered by the app's error handlers by `Accept` |
//! | a page of rows | [`PageRequest`] + [`paginate`] → [`Pagination`] | Flask-SQLAlchemy's `paginate`, `iter_pages` and all |
//! | a page of a large table | [`KeysetRequest`] + [`Keyset`] | after/before a signed cursor |
//! | a sort order from the query string | [`OrderBy`] over your [`SortColumn`] enum | anything else is a 400; nothing from the client reaches the SQL |
//! | the pool in a command, a startup hook, a worker, another extension | `app.state::<Db>()` | on an [`AppHandle`](flagon::AppHandle), a [`Setup`](flagon::Setup) after `db`, or a built [`App`](flagon::App) |
//!
//! # Configuration
//!
//! `[db]` in `flagon.toml` (or `FLAGON_DB__KEY`); every duration is humantime (`"3s"`). An
//! unknown key, a bad value, a URL with an unknown scheme or for a backend whose cargo feature
//! is off stops the build naming the key; a URL's password never appears in a message.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | `sqlite://instance/app.db` | `sqlite://PATH` (created on first use; `sqlite::memory:`), `postgres://…`, `mysql://…` / `mariadb://…` |
//! | `max_connections` | 10 | the most connections the pool opens |
//! | `min_connections` | 0 | connections kept open when idle |
//! | `acquire_timeout` | 3s | a request waiting longer for a connection gets 503 + `Retry-After` |
//! | `idle_timeout` | 10m | an idle connection is closed (`0s`: never) |
//! | `max_lifetime` | 30m | a connection is replaced (`0s`: never) |
//! | `statement_timeout` | 30s | PostgreSQL `statement_timeout`, MySQL `max_execution_time`, MariaDB `max_statement_time` (`0s`: off) |
//! | `busy_timeout` | 5s | SQLite: how long a statement waits for another writer |
//! | `slow_query` | 500ms | statements slower than this are logged at WARN with their text, never their values (`0s`: off) |
//! | `echo` | false | log every statement (Flask's `SQLALCHEMY_ECHO`); set `[development.db] echo = true` |
//! | `health_timeout` | 2s | the `/readyz` check's bound |
//! | `auto_upgrade` | false | apply pending migrations before serving (never before a CLI command) |
//! | `migrations_dir` | `migrations` | where `db new` writes the app's next pair |
//! | `migrate_lock_timeout` | 60s | how long migrating waits for another instance's lock |
//! | `session_sweep` | 5m | how often expired rows of the SQL session store go |
//! | `binds.NAME.*` | | another database (Flask's `SQLALCHEMY_BINDS`) with the pool keys above and a required `url`, reached as `db.bind("NAME")` |
//!
//! SQLite is opened the way a web app needs it: WAL, `synchronous=NORMAL`, `busy_timeout`,
//! `foreign_keys=ON`, and write transactions begun with `BEGIN IMMEDIATE`, so concurrent
//! writers wait for each other instead of failing with `database is locked`.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `sqlite` | on | SQLite, bundled (no system library) |
//! | `postgres` | off | PostgreSQL over rustls |
//! | `mysql` | off | MySQL and MariaDB over rustls (`mysql_native_password`, or TLS) |
//!
//! # Migrations
//!
//! Plain SQL files, one directory per backend where SQL differs, embedded at compile time by
//! [`migrations!`] and registered with `app.add_to::<flagon_db::Migrations>(owner, set)`:
//! the app's own set is owner `app`, each extension ships its own (`[session] store = "db"`
//! adds the session table's as owner `session`). The CLI: `db upgrade [TARGET]`, `db
//! downgrade [TARGET]`, `db status`, `db history`, `db new NAME`, `db check`. Two instances
//! upgrading at once take turns on a lock; a failed migration is never recorded. Every set
//! is checked when the app is built. See [`migrate`] for the file layout and the rules.
//!
//! # Sessions
//!
//! `[session] store = "db"` keeps core's server-side sessions in the table `flagon_sessions`
//! ([`SqlSessionStore`]: atomic updates, expired rows swept by a background worker every
//! `session_sweep`), created by its migration.
//!
//! # Operations
//!
//! - `/readyz` has a check per pool (`db`, `db.NAME`): a ping within `health_timeout`, with
//!   the pool's size, idle and in-use connections in its detail.
//! - Each request's statement and connection counts and time in the database are in
//!   [`Db::request_stats`], in the [`QueriesRecorded`] signal and in a DEBUG line on
//!   `flagon_db::request` (Flask-SQLAlchemy's `record_queries`).
//! - Pools close when the app shuts down, after the requests in flight have drained.
//!
//! # Errors
//!
//! | error | status | body |
//! |---|---|---|
//! | [`Error::Busy`]: no connection within `acquire_timeout` | 503, `Retry-After: 1` | generic: no SQL, no URL |
//! | [`Error::Closed`]: the app is shutting down | 503, `Retry-After: 1` | generic |
//! | [`Error::Database`]: anything else from the database | 500 | generic; the details are logged |
//! | [`Error::UnknownBind`], [`Error::TxInUse`]: bugs in the app | 500 | generic |
//! | [`Error::Http`]: a 404 from [`get_or_404`] | its own | by the app's error handlers |
//! | [`PaginateError`]: a bad `page`/`per_page`/cursor, a page past the end | 400 / 404 | a message naming the parameter |
//! | [`MigrateError`]: a `db` command or `auto_upgrade` | exit status 1 | the owner, file and the database's message |
//!
//! A handler returning `Result<_, HttpError>` converts with `.map_err(flagon_db::Error::from)?`
//! or returns `flagon_db::Error`, which is a response itself.

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
