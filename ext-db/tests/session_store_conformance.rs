//! The SQL session store on SQLite, PostgreSQL and MariaDB, each in a fresh database with
//! the table made by the store's own migration: core's conformance suite (atomic updates
//! under 16 parallel writers, no recreation by an update racing a delete, insert-if-absent,
//! expiry), undecodable rows as misses, the sweep, the size limit, and the store chosen by
//! `[session] store = "db"` in an app.

#[path = "paginate_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::TestDb;
use flagon::session::conformance::{self, RawRecords};
use flagon::session::{
    Changes, Id, ManualClock, Record, Session, SessionStore, StoreError, StoreFuture, unix_secs,
};
use flagon::testing::TestClient;
use flagon::{Extension, HttpError, Route, Setup, SetupError};
use flagon_db::sqlx::{self, AssertSqlSafe};
use flagon_db::{Backend, SqlSessionStore, session_migration};

async fn with_table(db: &TestDb) {
    db.run_sql(session_migration(db.backend).0).await;
}

/// Raw access to the table, for the undecodable-record check.
struct Raw(TestDb);

impl Raw {
    fn sql(&self, sql: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(self.0.backend.sql(sql).into_owned())
    }
}

impl RawRecords for Raw {
    fn plant_undecodable<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let now = unix_secs(std::time::SystemTime::now()) as i64;
            sqlx::query(self.sql(
                "INSERT INTO flagon_sessions (id, data, created_at, expires_at) VALUES (?, ?, ?, ?)",
            ))
            .bind(id.to_hex())
            .bind("{\"version\": 99")
            .bind(now)
            .bind(now + 3600)
            .execute(&self.0.pool)
            .await
            .map_err(|e| StoreError::Backend(e.into()))?;
            Ok(())
        })
    }

    fn holds<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let n: i64 =
                sqlx::query_scalar(self.sql("SELECT COUNT(*) FROM flagon_sessions WHERE id = ?"))
                    .bind(id.to_hex())
                    .fetch_one(&self.0.pool)
                    .await
                    .map_err(|e| StoreError::Backend(e.into()))?;
            Ok(n > 0)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sql_store_passes_cores_conformance_suite_on_every_backend() {
    for db in TestDb::all("the_sql_store_passes_cores_conformance_suite_on_every_backend").await {
        with_table(&db).await;
        let backend = db.backend;
        let store = Arc::new(SqlSessionStore::new(db.pool.clone(), backend));
        conformance::run(store.clone()).await;
        let raw = Raw(db);
        conformance::undecodable_records(&*store, &raw).await;
        println!("conformance passed on {backend}");
    }
}

fn record(clock: &ManualClock, ttl: u64, key: &str) -> Record {
    let now = unix_secs(flagon::session::Clock::now(clock));
    let mut data = BTreeMap::new();
    data.insert(key.to_owned(), serde_json::json!(key));
    Record {
        id: Id::random(),
        data,
        created_at: now,
        expires_at: now + ttl,
    }
}

async fn count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM flagon_sessions")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_expired_rows_only_and_expired_rows_are_never_returned() {
    for db in TestDb::all("the_sweep_deletes_expired_rows_only").await {
        with_table(&db).await;
        let clock = ManualClock::new();
        let store =
            SqlSessionStore::new(db.pool.clone(), db.backend).with_clock(Arc::new(clock.clone()));
        let mut short = Vec::new();
        for i in 0..1205 {
            let mut r = record(&clock, 60, &format!("short{i}"));
            store.create(&mut r).await.unwrap();
            short.push(r);
        }
        let mut long = record(&clock, 3600, "long");
        store.create(&mut long).await.unwrap();
        assert_eq!(
            store.sweep().await.unwrap(),
            0,
            "{}: nothing expired yet",
            db.backend
        );
        assert_eq!(count(&db).await, 1206);

        clock.advance(std::time::Duration::from_secs(61));
        // Past expiry, before any sweep: not returned, not updated.
        assert_eq!(
            store.load(&short[0].id).await.unwrap(),
            None,
            "{}",
            db.backend
        );
        let touch = Changes {
            expires_at: unix_secs(flagon::session::Clock::now(&clock)) + 600,
            ..Changes::default()
        };
        assert_eq!(
            store.update(&short[1].id, &touch).await.unwrap(),
            flagon::session::Updated::Gone
        );
        // The sweep takes them all, across several batches, and leaves the live one.
        assert_eq!(store.sweep().await.unwrap(), 1205, "{}", db.backend);
        assert_eq!(count(&db).await, 1, "{}", db.backend);
        assert_eq!(store.load(&long.id).await.unwrap(), Some(long.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_record_is_refused_and_the_stored_one_kept() {
    for db in TestDb::all("an_oversized_record_is_refused").await {
        with_table(&db).await;
        let clock = ManualClock::new();
        let store = SqlSessionStore::new(db.pool.clone(), db.backend)
            .with_clock(Arc::new(clock.clone()))
            .max_record_bytes(1024);
        let mut big = record(&clock, 600, "big");
        big.data
            .insert("blob".into(), serde_json::json!("x".repeat(2000)));
        let err = store.create(&mut big).await.unwrap_err();
        assert!(
            matches!(err, StoreError::TooLarge { limit: 1024, .. }),
            "{err}"
        );
        assert_eq!(count(&db).await, 0, "{}: nothing written", db.backend);

        let mut r = record(&clock, 600, "small");
        store.create(&mut r).await.unwrap();
        let mut grow = Changes {
            expires_at: r.expires_at + 60,
            ..Changes::default()
        };
        grow.keys
            .insert("blob".into(), Some(serde_json::json!("y".repeat(2000))));
        let err = store.update(&r.id, &grow).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert_eq!(
            store.load(&r.id).await.unwrap(),
            Some(r.clone()),
            "{}: the stored record is as it was",
            db.backend
        );
    }
}

/// An extension offering the store the way `Db` will, with a route using the session.
struct SessionsInDb(flagon_db::sqlx::AnyPool, Backend);

impl Extension for SessionsInDb {
    fn name(&self) -> &'static str {
        "sessions_in_db"
    }
    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.session_store("db", SqlSessionStore::factory(self.0.clone(), self.1));
        app.route(Route::get("/count", count_visits));
        Ok(())
    }
}

async fn count_visits(session: Session) -> Result<String, HttpError> {
    let n: u64 = session.get("n").unwrap_or(0) + 1;
    session.insert("n", n)?;
    Ok(n.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_store_db_in_the_config_keeps_sessions_in_the_table() {
    for db in TestDb::all("session_store_db_in_the_config").await {
        with_table(&db).await;
        let app = flagon::testing::app_with_config(
            SessionsInDb(db.pool.clone(), db.backend),
            "[session]\nstore = \"db\"",
        );
        let client = TestClient::new(&app);
        for want in ["1", "2", "3"] {
            let res = client.get("/count").send().await;
            assert_eq!(res.status(), 200, "{}: {}", db.backend, res.text());
            assert_eq!(res.text(), want, "{}", db.backend);
        }
        assert_eq!(count(&db).await, 1, "{}: one session row", db.backend);
        let data: String = sqlx::query_scalar("SELECT data FROM flagon_sessions")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(data, r#"{"v":1,"data":{"n":3}}"#, "{}", db.backend);
    }
}
