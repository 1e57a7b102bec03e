//! The sweep as a core background worker: while the app serves, expired session rows go
//! and live ones stay; when the app stops, the worker returns within the shutdown deadline.

#[path = "paginate_common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::TestDb;
use flagon::session::{Id, Record, SessionStore, unix_secs};
use flagon::{Extension, Setup, SetupError};
use flagon_db::sqlx::{self, AnyPool};
use flagon_db::{Backend, SqlSessionStore, session_migration};

struct Sweeper(AnyPool, Backend);

impl Extension for Sweeper {
    fn name(&self) -> &'static str {
        "sweeper"
    }
    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let store = SqlSessionStore::new(self.0.clone(), self.1);
        app.worker("db.session_sweep", move |ctx| {
            let store = store.clone();
            async move {
                store
                    .sweep_until_stopped(ctx, Duration::from_millis(50))
                    .await
            }
        });
        Ok(())
    }
}

async fn rows(pool: &AnyPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM flagon_sessions")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_worker_removes_expired_sessions_while_serving_and_stops_with_the_app() {
    let db = TestDb::sqlite().await;
    db.run_sql(session_migration(db.backend).0).await;
    let store = SqlSessionStore::new(db.pool.clone(), db.backend);
    let now = unix_secs(SystemTime::now());
    for (i, expires_at) in [now - 10, now - 1, now + 3600].into_iter().enumerate() {
        let mut r = Record {
            id: Id::random(),
            data: [(format!("k{i}"), serde_json::json!(i))].into(),
            created_at: now - 100,
            expires_at,
        };
        store.create(&mut r).await.unwrap();
    }
    assert_eq!(rows(&db.pool).await, 3);

    let app = flagon::testing::app_with(Sweeper(db.pool.clone(), db.backend));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pool = db.pool.clone();
    let swept = Arc::new(tokio::sync::Notify::new());
    let done = swept.clone();
    let watch = tokio::spawn(async move {
        let start = Instant::now();
        while rows(&pool).await != 1 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the worker sweeps"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done.notify_one();
    });
    let stopped = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(20),
        app.serve(listener, async move { swept.notified().await }),
    )
    .await
    .expect("the app stops, its worker with it")
    .expect("serving succeeds");
    watch.await.unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(15));
    assert_eq!(rows(&db.pool).await, 1, "the live session stays");
}
