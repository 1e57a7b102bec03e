//! MariaDB / MySQL: the request's transaction, the statement timeout, pool exhaustion.

mod db_support;

use std::time::{Duration, Instant};

use db_support::{TestDb, app, transaction_scenarios, tx_routes, wait_for_baseline};
use flagon::Route;
use flagon::testing::TestClient;
use flagon_db::{Db, Tx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_transaction_commits_on_success_and_rolls_back_otherwise() {
    let Some(t) = TestDb::mysql().await else {
        return;
    };
    let app = app(&t.url, "", tx_routes);
    let client = TestClient::new(&app);
    let db = app.state::<Db>().unwrap();
    transaction_scenarios(&client, &db, |_| async {}).await;
}

#[tokio::test]
async fn connections_get_the_statement_timeout() {
    let Some(t) = TestDb::mysql().await else {
        return;
    };
    let app = app(&t.url, "statement_timeout = \"1500ms\"", |_| {});
    let db = app.state::<Db>().unwrap();
    let version: String = db
        .query_scalar("SELECT VERSION()")
        .fetch_one(&*db)
        .await
        .unwrap();
    if version.contains("MariaDB") {
        let secs: f64 = db
            .query_scalar("SELECT @@SESSION.max_statement_time")
            .fetch_one(&*db)
            .await
            .unwrap();
        assert_eq!(secs, 1.5);
    } else {
        let ms: i64 = db
            .query_scalar("SELECT @@SESSION.max_execution_time")
            .fetch_one(&*db)
            .await
            .unwrap();
        assert_eq!(ms, 1500);
    }
    let started = Instant::now();
    let slept = db.query("SELECT SLEEP(10)").execute(&*db).await;
    // MariaDB aborts the statement with an error; MySQL's SLEEP returns 1 when interrupted.
    let _ = slept;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the statement ran past its timeout: {:?}",
        started.elapsed()
    );
}

/// H1 on MariaDB: the extra requests get 503 + Retry-After within the acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_answers_503_within_the_acquire_timeout_then_recovers() {
    let Some(t) = TestDb::mysql().await else {
        return;
    };
    let app = app(
        &t.url,
        "max_connections = 2\nacquire_timeout = \"1s\"",
        |s| {
            s.route(
                Route::get("/slow", |mut tx: Tx| async move {
                    tx.query("SELECT SLEEP(2.5)").execute(&mut *tx).await?;
                    Ok::<_, flagon_db::Error>("slept")
                })
                .name("slow"),
            );
        },
    );
    let client = TestClient::new(&app);
    client.start().await.unwrap();
    let db = app.state::<Db>().unwrap();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let sent = Instant::now();
                let res = client.get("/slow").send().await;
                (
                    res.status().as_u16(),
                    sent.elapsed(),
                    res.header("retry-after").is_some(),
                )
            })
        })
        .collect();
    let (mut ok, mut refused, mut slowest) = (0, 0, Duration::ZERO);
    for r in requests {
        let (status, took, retry_after) = r.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert!(retry_after);
                refused += 1;
                slowest = slowest.max(took);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    println!("H1 mariadb: {ok} served, {refused} refused 503, slowest refusal {slowest:?}");
    assert!(ok >= 2 && refused >= 14, "{ok} served, {refused} refused");
    assert!(slowest < Duration::from_millis(1700), "{slowest:?}");
    wait_for_baseline(&db).await;
    let res = client.get("/slow").send().await;
    assert_eq!(res.status(), 200, "recovered");
}
