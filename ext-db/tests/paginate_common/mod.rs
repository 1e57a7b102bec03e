//! Databases for the pagination and session store tests: a temp SQLite file, and a fresh
//! database on the machine's PostgreSQL and MariaDB, dropped when the test ends (passing or
//! not). A server that is not reachable skips its test with one line, unless
//! `FLAGON_TEST_REQUIRE_SERVICES=1`, which makes it a failure.

#![allow(dead_code)]

use std::time::Duration;

use flagon_db::Backend;
use flagon_db::sqlx::any::AnyPoolOptions;
use flagon_db::sqlx::{self, AnyPool, AssertSqlSafe, Executor};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const MYSQL: &str = "mysql://root@127.0.0.1:3306";

/// A database for one test.
pub struct TestDb {
    pub pool: AnyPool,
    pub backend: Backend,
    /// The server URL and database name to drop afterwards (none for SQLite).
    server: Option<(&'static str, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// The backends to run a test on: SQLite always, then each server that answers.
    pub async fn all(test: &str) -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite().await];
        for backend in [Backend::Postgres, Backend::MySql] {
            if let Some(db) = TestDb::server(backend, test).await {
                dbs.push(db);
            }
        }
        dbs
    }

    /// A fresh SQLite file in a temp directory, opened in WAL mode.
    pub async fn sqlite() -> TestDb {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .expect("open the SQLite file");
        TestDb {
            pool,
            backend: Backend::Sqlite,
            server: None,
            _dir: Some(dir),
        }
    }

    /// A fresh database `flagon_test_<random>` on the machine's server for `backend`, or
    /// `None` (with one printed line) when it does not answer.
    pub async fn server(backend: Backend, test: &str) -> Option<TestDb> {
        sqlx::any::install_default_drivers();
        let (server, admin_db) = match backend {
            Backend::Postgres => (POSTGRES, "test"),
            Backend::MySql => (MYSQL, "test"),
            Backend::Sqlite => unreachable!("SQLite needs no server"),
        };
        let admin_url = format!("{server}/{admin_db}");
        let admin = match AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&admin_url)
            .await
        {
            Ok(pool) => pool,
            Err(e) => {
                if std::env::var("FLAGON_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
                    panic!("{test}: {backend} at {server} is required but unreachable: {e}");
                }
                println!("{test}: skipped on {backend}: {server} is unreachable ({e})");
                return None;
            }
        };
        let name = format!("flagon_test_{:016x}", rand::random::<u64>());
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        admin.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&format!("{server}/{name}"))
            .await
            .expect("connect to the test database");
        Some(TestDb {
            pool,
            backend,
            server: Some((server, name)),
            _dir: None,
        })
    }

    /// Runs each `;`-separated statement of `sql`.
    pub async fn run_sql(&self, sql: &str) {
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            self.pool
                .execute(AssertSqlSafe(stmt.to_owned()))
                .await
                .unwrap_or_else(|e| panic!("{}: {stmt}: {e}", self.backend));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.server.take() else {
            return;
        };
        // Drop runs outside async code (and during a panic): a thread with its own runtime
        // drops the database. The test's pool is left to its runtime; PostgreSQL is told to
        // end its connections (`WITH (FORCE)`), MariaDB drops a database in use.
        let force = if server == POSTGRES {
            " WITH (FORCE)"
        } else {
            ""
        };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let admin_db = "test";
                if let Ok(admin) = AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&format!("{server}/{admin_db}"))
                    .await
                {
                    let _ = admin
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name}{force}"
                        )))
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}
