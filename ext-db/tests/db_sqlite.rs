//! SQLite, the embedded default: how connections are opened, the request's transaction, and
//! 50 concurrent writers (H4).

mod db_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use db_support::{TestDb, app, transaction_scenarios, tx_routes};
use flagon::Route;
use flagon::testing::TestClient;
use flagon_db::sqlx::Row;
use flagon_db::{Db, Tx};

#[tokio::test]
async fn connections_open_in_wal_with_the_web_pragmas() {
    let t = TestDb::sqlite();
    let app = app(&t.url, "busy_timeout = \"4s\"", |_| {});
    let db = app.state::<Db>().unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    let pragma = |name: &'static str| format!("PRAGMA {name}");
    let row = flagon_db::sqlx::query(flagon_db::sqlx::AssertSqlSafe(pragma("journal_mode")))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "wal");
    let mut read = async |name: &'static str| -> i64 {
        let row: (i64,) = flagon_db::sqlx::query_as(flagon_db::sqlx::AssertSqlSafe(pragma(name)))
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("PRAGMA {name}: {e}"));
        row.0
    };
    assert_eq!(read("synchronous").await, 1, "NORMAL");
    assert_eq!(read("foreign_keys").await, 1);
    assert_eq!(read("busy_timeout").await, 4000);
    drop(conn);
    assert!(
        std::path::Path::new(&t.url["sqlite://".len()..]).exists(),
        "created on first use"
    );
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    let t = TestDb::sqlite();
    let app = app(&t.url, "", |_| {});
    let db = app.state::<Db>().unwrap();
    db.query("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        .execute(&*db)
        .await
        .unwrap();
    db.query("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parent(id))")
        .execute(&*db)
        .await
        .unwrap();
    let err = db
        .query("INSERT INTO child (id, parent) VALUES (1, 99)")
        .execute(&*db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_transaction_commits_on_success_and_rolls_back_otherwise() {
    let t = TestDb::sqlite();
    let app = app(&t.url, "", tx_routes);
    let client = TestClient::new(&app);
    let db = app.state::<Db>().unwrap();
    transaction_scenarios(&client, &db, |_| async {}).await;
}

/// H4: 50 concurrent writers, each reading then writing the same row in its request's
/// transaction. With a deferred `BEGIN` the read-to-write upgrade fails at once with `database
/// is locked`; `BEGIN IMMEDIATE` makes writers queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_writers_never_see_database_is_locked() {
    let t = TestDb::sqlite();
    let app = app(
        &t.url,
        "max_connections = 8\nacquire_timeout = \"10s\"",
        |s| {
            s.route(
                Route::get("/incr", |mut tx: Tx| async move {
                    let n: i64 = tx
                        .query_scalar("SELECT n FROM counter WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.query("UPDATE counter SET n = ? WHERE id = 1")
                        .bind(n + 1)
                        .execute(&mut *tx)
                        .await?;
                    Ok::<_, flagon_db::Error>("ok")
                })
                .name("incr"),
            );
        },
    );
    let db = app.state::<Db>().unwrap();
    db.query("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        .execute(&*db)
        .await
        .unwrap();
    db.query("INSERT INTO counter (id, n) VALUES (1, 0)")
        .execute(&*db)
        .await
        .unwrap();
    let client = TestClient::new(&app);
    client.start().await.unwrap();

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let run_for = Duration::from_secs(3);
    let started = Instant::now();
    let writers: Vec<_> = (0..50)
        .map(|_| {
            let (client, ok, failed) = (client.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while started.elapsed() < run_for {
                    let res = client.get("/incr").send().await;
                    if res.status() == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("writer failed: {} {}", res.status(), res.text());
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let n: i64 = db
        .query_scalar("SELECT n FROM counter WHERE id = 1")
        .fetch_one(&*db)
        .await
        .unwrap();
    println!(
        "H4 sqlite: 50 writers, {ok} writes in {:.2}s = {:.0} writes/s, {failed} failed",
        took.as_secs_f64(),
        ok as f64 / took.as_secs_f64()
    );
    assert_eq!(failed, 0, "no writer may fail (database is locked)");
    assert!(ok > 50, "the writers made progress");
    assert_eq!(
        n as u64, ok,
        "every committed increment is there, none lost"
    );
    assert_eq!(db.stats().busy, 0);
}
