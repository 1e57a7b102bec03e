//! Shared by the `db_*` tests: real databases per test, an app around them, and the handlers
//! the transaction tests drive.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use flagon::axum::extract::Path;
use flagon::http::StatusCode;
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, HttpError, Route, Setup, SetupError};
use flagon_db::sqlx::{self, Connection};
use flagon_db::{Backend, Db, Tx};

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const MY_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";

/// A database created for one test, dropped when the test ends (even by a panic).
pub struct TestDb {
    pub url: String,
    pub name: String,
    pub backend: Backend,
    admin: &'static str,
    _dir: Option<tempfile::TempDir>,
}

fn require_services() -> bool {
    std::env::var("FLAGON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

impl TestDb {
    /// A SQLite file in a temporary directory of its own.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("app.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            name: "app.db".into(),
            backend: Backend::Sqlite,
            admin: "",
            _dir: Some(dir),
        }
    }

    /// A fresh database on the PostgreSQL server, or `None` (with a line saying why) when the
    /// server is unreachable and `FLAGON_TEST_REQUIRE_SERVICES` is not `1`.
    pub async fn postgres() -> Option<TestDb> {
        Self::server(Backend::Postgres, PG_ADMIN).await
    }

    /// A fresh database on the MariaDB/MySQL server, or `None` as for [`TestDb::postgres`].
    pub async fn mysql() -> Option<TestDb> {
        Self::server(Backend::MySql, MY_ADMIN).await
    }

    async fn server(backend: Backend, admin: &'static str) -> Option<TestDb> {
        flagon_db::sqlx::any::install_default_drivers();
        let conn =
            tokio::time::timeout(Duration::from_secs(3), sqlx::AnyConnection::connect(admin)).await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return skip(backend, &e.to_string()),
            Err(_) => return skip(backend, "no answer within 3s"),
        };
        let name = format!("flagon_test_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = admin
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{name}"))
            .unwrap();
        Some(TestDb {
            url,
            name,
            backend,
            admin,
            _dir: None,
        })
    }
}

fn skip(backend: Backend, why: &str) -> Option<TestDb> {
    if require_services() {
        panic!("{backend} is required (FLAGON_TEST_REQUIRE_SERVICES=1) but unreachable: {why}");
    }
    eprintln!("skipped: {backend} unreachable ({why})");
    None
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.admin.is_empty() {
            return;
        }
        let (admin, name, backend) = (self.admin, self.name.clone(), self.backend);
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await else {
                    return;
                };
                let sql = match backend {
                    Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                {
                    eprintln!("could not drop test database {name}: {e}");
                }
            });
        });
        let _ = done.join();
    }
}

/// An app with `db` on `url` plus `extra` TOML under `[db]`, and `routes`.
pub fn app(url: &str, extra: &str, routes: impl FnOnce(&mut Setup<'_>) + Send + 'static) -> App {
    App::builder()
        .settings(testing_config_toml(&format!(
            "[db]\nurl = \"{url}\"\n{extra}\n"
        )))
        .register(Db::extension())
        .configure(move |s| {
            routes(s);
            Ok::<(), SetupError>(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Creates the `item` table the transaction tests write to.
pub async fn create_items(db: &Db) {
    db.query("CREATE TABLE item (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL)")
        .execute(db)
        .await
        .expect("create table item");
}

pub async fn count_items(db: &Db) -> i64 {
    db.query_scalar::<i64>("SELECT COUNT(*) FROM item")
        .fetch_one(db)
        .await
        .expect("count items")
}

pub async fn has_item(db: &Db, id: i64) -> bool {
    db.query_scalar::<i64>("SELECT COUNT(*) FROM item WHERE id = ?")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("look up item")
        == 1
}

async fn insert(tx: &mut Tx, id: i64) -> Result<(), flagon_db::Error> {
    tx.query("INSERT INTO item (id, name) VALUES (?, ?)")
        .bind(id)
        .bind(format!("item {id}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The routes of the transaction tests: each inserts the item of its id, then answers.
pub fn tx_routes(s: &mut Setup<'_>) {
    s.route(
        Route::get("/ok/{id}", |Path(id): Path<i64>, mut tx: Tx| async move {
            insert(&mut tx, id).await?;
            Ok::<_, flagon_db::Error>("saved")
        })
        .name("ok"),
    );
    s.route(
        Route::get(
            "/redirect/{id}",
            |Path(id): Path<i64>, mut tx: Tx| async move {
                insert(&mut tx, id).await?;
                Ok::<_, flagon_db::Error>((StatusCode::SEE_OTHER, [("location", "/")]))
            },
        )
        .name("redirect"),
    );
    s.route(
        Route::get("/bad/{id}", |Path(id): Path<i64>, mut tx: Tx| async move {
            insert(&mut tx, id).await?;
            Ok::<_, flagon_db::Error>((StatusCode::BAD_REQUEST, "bad input"))
        })
        .name("bad"),
    );
    s.route(
        Route::get("/err/{id}", |Path(id): Path<i64>, mut tx: Tx| async move {
            insert(&mut tx, id).await?;
            Err::<&str, HttpError>(HttpError::internal("the handler failed after writing"))
        })
        .name("err"),
    );
    s.route(
        Route::get(
            "/panic/{id}",
            |Path(id): Path<i64>, mut tx: Tx| async move {
                insert(&mut tx, id).await?;
                if id > 0 {
                    panic!("the handler panicked after writing");
                }
                Ok::<_, flagon_db::Error>("unreachable")
            },
        )
        .name("panic"),
    );
    s.route(
        Route::get("/hang/{id}", |Path(id): Path<i64>, mut tx: Tx| async move {
            insert(&mut tx, id).await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, flagon_db::Error>("too late")
        })
        .name("hang"),
    );
}

/// Waits until the pool has no connection checked out (the baseline), or panics.
pub async fn wait_for_baseline(db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = db.stats();
        if s.in_use == 0 {
            assert!(s.size <= s.max);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pool not back to baseline: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs every transaction scenario against `db`'s app: commit on 2xx/3xx, rollback on an
/// error status, an `Err`, a panic and a dropped request; the pool back to baseline after
/// each. `after_each` checks the server's side (no `idle in transaction`).
pub async fn transaction_scenarios<F, Fut>(client: &TestClient, db: &Db, after_each: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    create_items(db).await;

    let res = client.get("/ok/1").send().await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert!(has_item(db, 1).await, "a 200 commits");
    wait_for_baseline(db).await;
    after_each("commit").await;

    let res = client.get("/redirect/2").send().await;
    assert_eq!(res.status(), 303);
    assert!(has_item(db, 2).await, "a 303 commits");
    wait_for_baseline(db).await;

    let res = client.get("/bad/3").send().await;
    assert_eq!(res.status(), 400);
    assert!(!has_item(db, 3).await, "a 400 rolls back");
    wait_for_baseline(db).await;
    after_each("error status").await;

    let res = client.get("/err/4").send().await;
    assert_eq!(res.status(), 500);
    assert!(!res.text().contains("INSERT"), "no SQL in the body");
    assert!(!has_item(db, 4).await, "an Err rolls back");
    wait_for_baseline(db).await;
    after_each("Err").await;

    let res = client.get("/panic/5").send().await;
    assert_eq!(res.status(), 500);
    assert!(!has_item(db, 5).await, "a panic rolls back");
    wait_for_baseline(db).await;
    after_each("panic").await;

    // The client goes away while the handler holds the transaction: the request future is
    // dropped mid-handler.
    let dropped = tokio::time::timeout(Duration::from_millis(500), client.get("/hang/6").send());
    assert!(dropped.await.is_err(), "the request was still running");
    wait_for_baseline(db).await;
    assert!(!has_item(db, 6).await, "a dropped request rolls back");
    after_each("dropped request").await;

    assert_eq!(count_items(db).await, 2, "exactly the committed rows");
}
