//! PostgreSQL: the request's transaction with the server's view of its sessions
//! (`pg_stat_activity`), pool exhaustion (H1) and the statement timeout.

mod db_support;

use std::time::{Duration, Instant};

use db_support::{PG_ADMIN, TestDb, app, transaction_scenarios, tx_routes, wait_for_baseline};
use flagon::Route;
use flagon::testing::TestClient;
use flagon_db::sqlx::{self, Connection};
use flagon_db::{Db, Tx};

/// Sessions of `database` that are `idle in transaction`, seen from another connection.
async fn idle_in_transaction(database: &str) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(PG_ADMIN).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
    )
    .bind(database)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    n
}

/// Waits (briefly: a dropped request's rollback runs on a task) until no session of
/// `database` is idle in a transaction.
async fn assert_none_idle_in_transaction(database: &str, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = idle_in_transaction(database).await;
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} session(s) idle in transaction after {after}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_transaction_commits_or_rolls_back_and_leaves_no_session_idle_in_transaction() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let app = app(&t.url, "", tx_routes);
    let client = TestClient::new(&app);
    let db = app.state::<Db>().unwrap();
    let name = t.name.clone();
    transaction_scenarios(&client, &db, |after| {
        let name = name.clone();
        async move { assert_none_idle_in_transaction(&name, after).await }
    })
    .await;
    // The hanging request's transaction was seen by the server and is gone.
    assert_eq!(idle_in_transaction(&t.name).await, 0);
    client.shutdown().await;
    assert!(db.pool().is_closed(), "shutdown closes the pool");
}

#[tokio::test]
async fn connections_get_the_statement_timeout() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let app = app(&t.url, "statement_timeout = \"1500ms\"", |_| {});
    let db = app.state::<Db>().unwrap();
    let shown: String = db
        .query_scalar("SHOW statement_timeout")
        .fetch_one(&*db)
        .await
        .unwrap();
    assert_eq!(shown, "1500ms");
    let started = Instant::now();
    let err = db
        .query("SELECT 1 FROM pg_sleep(10)")
        .execute(&*db)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// H1: ten times the pool's size in concurrent slow requests. Those that get a connection
/// finish; the others are answered 503 with `Retry-After` once `acquire_timeout` passes, with
/// no SQL or URL in the body. Afterwards the pool serves normally again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_answers_503_within_the_acquire_timeout_then_recovers() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let acquire = Duration::from_millis(1000);
    let app = app(
        &t.url,
        "max_connections = 2\nacquire_timeout = \"1s\"",
        |s| {
            s.route(
                Route::get("/slow", |mut tx: Tx| async move {
                    tx.query("SELECT 1 FROM pg_sleep(2.5)")
                        .execute(&mut *tx)
                        .await?;
                    Ok::<_, flagon_db::Error>("slept")
                })
                .name("slow"),
            );
            s.route(
                Route::get("/quick", |db: Db| async move {
                    let one: i32 = db.query_scalar("SELECT 1").fetch_one(&db).await?;
                    Ok::<_, flagon_db::Error>(one.to_string())
                })
                .name("quick"),
            );
        },
    );
    let client = TestClient::new(&app);
    client.start().await.unwrap();
    let db = app.state::<Db>().unwrap();

    let started = Instant::now();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let sent = Instant::now();
                let res = client.get("/slow").send().await;
                (
                    res.status().as_u16(),
                    sent.elapsed(),
                    res.header("retry-after").map(str::to_owned),
                    res.text(),
                )
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = Vec::new();
    for r in requests {
        let (status, took, retry_after, body) = r.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert_eq!(retry_after.as_deref(), Some("1"), "503 carries Retry-After");
                for leak in ["pg_sleep", "postgres://", "SELECT", &t.name] {
                    assert!(!body.contains(leak), "the 503 body shows {leak}: {body}");
                }
                refused.push(took);
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    refused.sort();
    let slowest = refused.last().copied().unwrap_or_default();
    println!(
        "H1 postgres: 20 concurrent slow requests on a pool of 2: {ok} served, {} refused 503 \
         after {:?} (fastest) to {:?} (slowest), acquire_timeout {acquire:?}; all done in {:?}",
        refused.len(),
        refused.first().copied().unwrap_or_default(),
        slowest,
        started.elapsed()
    );
    assert!(ok >= 2, "the pool's connections served their requests");
    assert!(
        refused.len() >= 14,
        "the rest were refused: {}",
        refused.len()
    );
    assert!(
        slowest < acquire + Duration::from_millis(700),
        "a refusal took {slowest:?}, beyond acquire_timeout {acquire:?}"
    );
    assert!(db.stats().busy >= refused.len() as u64);

    // Full recovery: the pool serves every request again.
    wait_for_baseline(&db).await;
    for _ in 0..5 {
        let res = client.get("/quick").send().await;
        assert_eq!(res.status(), 200, "{}", res.text());
    }
    assert_eq!(idle_in_transaction(&t.name).await, 0);
}

/// A client that closes its TCP connection mid-handler, against the app served for real: the
/// transaction rolls back, no session stays idle in transaction, and stopping the server
/// closes the pool after the requests drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_closing_its_connection_mid_handler_rolls_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let app = app(&t.url, "", tx_routes);
    let db = app.state::<Db>().unwrap();
    db_support::create_items(&db).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let app = app.clone();
        async move {
            app.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        }
    });

    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /hang/7 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // The handler has written and now waits, holding its transaction.
    let deadline = Instant::now() + Duration::from_secs(5);
    while idle_in_transaction(&t.name).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the handler never held a transaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(sock);
    assert_none_idle_in_transaction(&t.name, "the client closed its connection").await;
    wait_for_baseline(&db).await;
    assert!(!db_support::has_item(&db, 7).await, "rolled back");

    // A normal request over TCP still commits.
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /ok/8 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    sock.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(db_support::has_item(&db, 8).await);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert!(
        db.pool().is_closed(),
        "the pools close once serving stopped"
    );
}
