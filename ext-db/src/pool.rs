//! Building a pool from checked settings: sqlx's `Any` pool, opened lazily, with each
//! backend's per-connection settings applied when a connection is opened.

use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::backend::Backend;
use crate::config::PoolSettings;

/// The statement a write transaction begins with on each backend. SQLite's `BEGIN IMMEDIATE`
/// takes the write lock at once, so concurrent writers queue on `busy_timeout` instead of
/// failing with `database is locked` when a deferred transaction upgrades to a write.
pub(crate) fn begin_statement(backend: Backend) -> Option<&'static str> {
    match backend {
        Backend::Sqlite => Some("BEGIN IMMEDIATE"),
        Backend::Postgres | Backend::MySql => None,
    }
}

/// Installs sqlx's drivers for `Any` once per process (whatever features are compiled in).
pub(crate) fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// The statements run on every new connection: SQLite's pragmas, the servers' statement
/// timeouts.
pub(crate) fn session_setup(s: &PoolSettings) -> Vec<String> {
    match s.backend {
        Backend::Sqlite => vec![
            // WAL: readers do not block the writer nor the writer them. It is a property of
            // the file, but setting it on each connection is cheap and survives a file that
            // was created elsewhere.
            "PRAGMA journal_mode = WAL".into(),
            "PRAGMA synchronous = NORMAL".into(),
            format!("PRAGMA busy_timeout = {}", s.busy_timeout.as_millis()),
            "PRAGMA foreign_keys = ON".into(),
        ],
        Backend::Postgres => {
            let ms = s.statement_timeout.map_or(0, |d| d.as_millis());
            vec![
                format!("SET statement_timeout = {ms}"),
                // A transaction left open by a bug is ended by the server, not kept for ever.
                format!(
                    "SET idle_in_transaction_session_timeout = {}",
                    s.statement_timeout.map_or(0, |d| (d * 2).as_millis())
                ),
            ]
        }
        Backend::MySql => {
            let ms = s.statement_timeout.map_or(0, |d| d.as_millis());
            // MySQL names it `max_execution_time` (ms, SELECTs only); MariaDB
            // `max_statement_time` (seconds, every statement). The statement tries MySQL's
            // and falls back to MariaDB's, see `apply_setup`.
            vec![format!("SET SESSION max_execution_time = {ms}")]
        }
    }
}

/// The connect options for `s`'s URL.
pub(crate) fn options(s: &PoolSettings) -> Result<AnyConnectOptions, sqlx::Error> {
    let options: AnyConnectOptions = s.url.parse::<AnyConnectOptions>()?;
    // Statements are logged by Flagon (with the route and the slow threshold), not by sqlx.
    Ok(options
        .log_statements(log::LevelFilter::Off)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(3600)))
}

/// Builds the pool for `s`. Nothing connects yet: the first use opens a connection, so the
/// app starts (and `routes` runs) without a database server. Must run inside the runtime.
pub(crate) fn build(s: &PoolSettings, options: AnyConnectOptions) -> AnyPool {
    install_drivers();
    let setup = session_setup(s);
    let backend = s.backend;
    let statement_timeout = s.statement_timeout;
    AnyPoolOptions::new()
        .max_connections(s.max_connections)
        .min_connections(s.min_connections)
        .acquire_timeout(s.acquire_timeout)
        .idle_timeout(s.idle_timeout)
        .max_lifetime(s.max_lifetime)
        // A server connection may have died (restart, network); SQLite's cannot.
        .test_before_acquire(backend != Backend::Sqlite)
        .after_connect(move |conn, _meta| {
            let setup = setup.clone();
            Box::pin(async move {
                for sql in setup {
                    match conn.execute(sqlx::AssertSqlSafe(sql.clone())).await {
                        Ok(_) => {}
                        Err(e) if backend == Backend::MySql => {
                            // MariaDB: `max_statement_time`, in seconds.
                            let secs = statement_timeout.map_or(0.0, |d| d.as_secs_f64());
                            let alt = format!("SET SESSION max_statement_time = {secs}");
                            conn.execute(sqlx::AssertSqlSafe(alt))
                                .await
                                .map_err(|_| e)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            })
        })
        .connect_lazy_with(options)
}
