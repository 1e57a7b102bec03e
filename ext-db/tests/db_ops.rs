//! Operations: readiness, per-request statement counts, the slow-query log and `echo`,
//! `get_or_404`, errors, use outside requests and shutdown.

mod db_support;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use db_support::{PG_ADMIN, TestDb, app};
use flagon::axum::extract::Path;
use flagon::clap::Command;
use flagon::testing::{LogCapture, TestClient, run_cli, testing_config_toml};
use flagon::tracing::Level;
use flagon::{App, AppHandle, HttpError, Route};
use flagon_db::{Db, OrNotFound, QueriesRecorded, Tx, TxOutcome, first_or_404, get_or_404};

#[derive(flagon_db::sqlx::FromRow)]
struct Note {
    id: i64,
    body: String,
}

async fn notes_table(db: &Db) {
    db.query("CREATE TABLE note (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
        .execute(db)
        .await
        .unwrap();
    db.query("INSERT INTO note (id, body) VALUES (1, 'one'), (2, 'two')")
        .execute(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn readiness_pings_each_pool_and_shows_its_counters() {
    let t = TestDb::sqlite();
    let app = app(&t.url, "max_connections = 4", |_| {});
    let db = app.state::<Db>().unwrap();
    db.query("SELECT 1").execute(&*db).await.unwrap();
    db_support::wait_for_baseline(&db).await;
    let res = TestClient::new(&app).get("/readyz").send().await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let body: serde_json::Value = res.json();
    let check = &body["checks"]["db"];
    assert_eq!(check["status"], "ok", "{body}");
    let detail = &check["detail"];
    assert_eq!(detail["backend"], "sqlite");
    assert_eq!(detail["max"], 4);
    assert_eq!(detail["in_use"], 0);
    assert!(detail["size"].as_u64().unwrap() >= 1, "{detail}");
    assert!(detail.get("idle").is_some());
}

/// A server that accepts connections and never says a word.
async fn silent_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (addr, task)
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_within_its_timeout_when_a_server_is_unreachable() {
    let t = TestDb::sqlite();
    let (silent, _task) = silent_listener().await;
    let closed = closed_port();
    let app = App::builder()
        .settings(testing_config_toml(&format!(
            "[db]\nurl = \"{}\"\n\
             [db.binds.refused]\nurl = \"postgres://app:hunter2@127.0.0.1:{closed}/app\"\nhealth_timeout = \"500ms\"\n\
             [db.binds.silent]\nurl = \"postgres://app:hunter2@{silent}/app\"\nhealth_timeout = \"500ms\"\n",
            t.url
        )))
        .register(Db::extension())
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let started = Instant::now();
    let res = client.get("/readyz").send().await;
    let took = started.elapsed();
    let body: serde_json::Value = res.json();
    println!("readiness with unreachable binds answered in {took:?}: {body}");
    assert_eq!(res.status(), 503, "{body}");
    assert_eq!(
        body["checks"]["db"]["status"], "ok",
        "the main pool is fine"
    );
    for bind in ["db.refused", "db.silent"] {
        let check = &body["checks"][bind];
        assert_eq!(check["status"], "fail", "{bind}: {body}");
        assert!(
            check["detail"]["max"].is_number(),
            "{bind} shows its pool: {body}"
        );
    }
    assert!(
        body["checks"]["db.silent"]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 500ms"),
        "{body}"
    );
    assert!(!body.to_string().contains("hunter2"));
    assert!(
        took < Duration::from_millis(1500),
        "readiness took {took:?}"
    );
}

#[tokio::test]
async fn each_request_reports_its_statements_and_connections() {
    let t = TestDb::sqlite();
    let seen: Arc<Mutex<Vec<QueriesRecorded>>> = Arc::default();
    let sink = seen.clone();
    let app = App::builder()
        .settings(testing_config_toml(&format!("[db]\nurl = \"{}\"\n", t.url)))
        .register(Db::extension())
        .configure(move |s| {
            s.subscribe(move |e: &QueriesRecorded| sink.lock().unwrap().push(e.clone()));
            s.route(
                Route::get(
                    "/work/{id}",
                    |Path(id): Path<i64>, db: Db, mut tx: Tx| async move {
                        for n in 0..3 {
                            tx.query("INSERT INTO note (id, body) VALUES (?, ?)")
                                .bind(id * 10 + n)
                                .bind("x")
                                .execute(&mut *tx)
                                .await?;
                        }
                        let total: i64 = db
                            .query_scalar("SELECT COUNT(*) FROM note")
                            .fetch_one(&db)
                            .await?;
                        let stats = db.request_stats().unwrap();
                        Ok::<_, flagon_db::Error>(format!("{total} {}", stats.statements))
                    },
                )
                .name("work"),
            );
            s.route(Route::get("/none", || async { "no database" }).name("none"));
            Ok(())
        })
        .build()
        .unwrap();
    let db = app.state::<Db>().unwrap();
    notes_table(&db).await;
    let client = TestClient::new(&app);
    let res = client.get("/work/1").send().await;
    assert_eq!(res.text(), "2 4", "the handler sees its own counts");
    let request_id = res.header("x-request-id").unwrap().to_owned();
    client.get("/none").send().await;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "only requests that used the database report");
    let e = &seen[0];
    assert_eq!(e.request_id, request_id);
    assert_eq!(e.route.as_deref(), Some("/work/{id}"));
    assert_eq!(e.status, 200);
    assert_eq!(
        e.stats.statements, 4,
        "three on the transaction, one on the pool"
    );
    assert_eq!(
        e.stats.connections, 2,
        "the transaction's and the pool statement's"
    );
    assert_eq!(e.transaction, Some(TxOutcome::Committed));
    assert!(db.stats().statements >= 6);
}

#[test]
fn slow_statements_are_logged_with_their_text_duration_and_route_never_their_values() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let logs = LogCapture::start(Level::INFO);
    rt.block_on(async {
        let t = TestDb::sqlite();
        let app = app(&t.url, "slow_query = \"1ms\"", |s| {
            s.route(
                Route::get("/report", |db: Db| async move {
                    let n: i64 = db
                        .query_scalar(
                            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
                             SELECT COUNT(*) FROM c",
                        )
                        .bind(300_017_i64)
                        .fetch_one(&db)
                        .await?;
                    Ok::<_, flagon_db::Error>(n.to_string())
                })
                .name("report"),
            );
        });
        let res = TestClient::new(&app).get("/report").send().await;
        assert_eq!(res.text(), "300017");
    });
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("slow statement"))
        .unwrap_or_else(|| panic!("no slow-statement line in:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("WITH RECURSIVE"), "{line}");
    assert!(line.contains("duration_ms="), "{line}");
    assert!(line.contains("route=\"/report\""), "{line}");
    assert!(!line.contains("300017"), "a bound value was logged: {line}");
}

#[test]
fn echo_logs_every_statement_and_is_off_by_default() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = |extra: &'static str| {
        let logs = LogCapture::start(Level::INFO);
        rt.block_on(async {
            let t = TestDb::sqlite();
            let app = app(&t.url, extra, |_| {});
            let db = app.state::<Db>().unwrap();
            db.query("SELECT 41 + 1").execute(&*db).await.unwrap();
        });
        logs.text()
    };
    assert!(run("echo = true").contains("SELECT 41 + 1"));
    assert!(!run("").contains("SELECT 41 + 1"));
}

#[tokio::test]
async fn a_missing_row_is_core_404_chosen_by_accept() {
    let t = TestDb::sqlite();
    let app = app(&t.url, "", |s| {
        s.route(
            Route::get("/notes/{id}", |Path(id): Path<i64>, db: Db| async move {
                let note: Note = get_or_404(
                    db.query_as("SELECT id, body FROM note WHERE id = ?")
                        .bind(id),
                    &db,
                )
                .await?;
                Ok::<_, HttpError>(format!("{} {}", note.id, note.body))
            })
            .name("note"),
        );
        s.route(
            Route::get(
                "/first/{min}",
                |Path(min): Path<i64>, mut tx: Tx| async move {
                    let note: Note = first_or_404(
                        tx.query_as("SELECT id, body FROM note WHERE id >= ? ORDER BY id")
                            .bind(min),
                        &mut *tx,
                    )
                    .await?;
                    let body: String = tx
                        .query_scalar("SELECT body FROM note WHERE id = ?")
                        .bind(note.id)
                        .fetch_optional(&mut *tx)
                        .await
                        .or_404()?;
                    Ok::<_, flagon_db::Error>(body)
                },
            )
            .name("first"),
        );
        s.route(
            Route::get("/any", |db: Db| async move {
                // More than one row for a lookup by key is a 404 too (Flask's one_or_404).
                let note: Note = get_or_404(db.query_as("SELECT id, body FROM note"), &db).await?;
                Ok::<_, HttpError>(note.body)
            })
            .name("any"),
        );
    });
    notes_table(&app.state::<Db>().unwrap()).await;
    let client = TestClient::new(&app);
    assert_eq!(client.get("/notes/2").send().await.text(), "2 two");
    let res = client.get("/notes/9").send().await;
    assert_eq!(res.status(), 404);
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    let res = client
        .get("/notes/9")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<serde_json::Value>()["error"]["status"], 404);
    assert_eq!(client.get("/first/2").send().await.text(), "two");
    assert_eq!(client.get("/first/3").send().await.status(), 404);
    assert_eq!(client.get("/any").send().await.status(), 404);
}

#[tokio::test]
async fn a_database_error_is_a_generic_500_with_details_only_in_the_log() {
    let t = TestDb::sqlite();
    let app = app(&t.url, "", |s| {
        s.route(
            Route::get("/broken", |db: Db| async move {
                db.query("SELECT secret_column FROM missing_table")
                    .execute(&db)
                    .await
                    .map_err(flagon_db::Error::from)?;
                Ok::<_, HttpError>("never")
            })
            .name("broken"),
        );
    });
    let res = TestClient::new(&app).get("/broken").send().await;
    assert_eq!(res.status(), 500);
    let body = res.text();
    assert!(
        !body.contains("missing_table") && !body.contains("secret_column"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_is_503_with_retry_after_through_http_error_too() {
    let t = TestDb::sqlite();
    let app = app(
        &t.url,
        "max_connections = 1\nacquire_timeout = \"300ms\"",
        |s| {
            s.route(
                Route::get("/hold", |db: Db| async move {
                    let _held = db.pool().acquire().await.map_err(flagon_db::Error::from)?;
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    Ok::<_, HttpError>("held")
                })
                .name("hold"),
            );
            s.route(
                Route::get("/count", |db: Db| async move {
                    let n: i64 = db
                        .query_scalar("SELECT 1")
                        .fetch_one(&db)
                        .await
                        .map_err(flagon_db::Error::from)?;
                    Ok::<_, HttpError>(n.to_string())
                })
                .name("count"),
            );
        },
    );
    let client = TestClient::new(&app);
    client.start().await.unwrap();
    let holder = tokio::spawn({
        let client = client.clone();
        async move { client.get("/hold").send().await.status() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let res = client.get("/count").send().await;
    let took = started.elapsed();
    assert_eq!(res.status(), 503, "{}", res.text());
    assert_eq!(res.header("retry-after"), Some("1"));
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert_eq!(holder.await.unwrap(), 200);
    assert_eq!(client.get("/count").send().await.text(), "1");
}

#[tokio::test]
async fn startup_hooks_and_commands_use_the_pool_through_app_state() {
    let t = TestDb::sqlite();
    let app = App::builder()
        .settings(testing_config_toml(&format!("[db]\nurl = \"{}\"\n", t.url)))
        .register(Db::extension())
        .configure(|s| {
            // Another extension's init_app, after `db`: the handle is there already.
            assert!(s.state::<Db>().is_some());
            s.on_startup(|app: AppHandle| async move {
                let db = app.state::<Db>().expect("db state");
                notes_table(&db).await;
                Ok(())
            });
            s.command(
                Command::new("notes").about("Counts notes"),
                |ctx| async move {
                    let db = ctx.app().state::<Db>().expect("db state");
                    let n: i64 = db
                        .query_scalar("SELECT COUNT(*) FROM note")
                        .fetch_one(&*db)
                        .await?;
                    writeln!(ctx.out(), "{n} notes")?;
                    Ok(())
                },
            );
            Ok(())
        })
        .build()
        .unwrap();
    let out = run_cli(&app, ["notes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "2 notes");
}

#[tokio::test]
async fn shutdown_closes_the_pools() {
    let t = TestDb::sqlite();
    let app = App::builder()
        .settings(testing_config_toml(&format!(
            "[db]\nurl = \"{}\"\n[db.binds.other]\nurl = \"sqlite::memory:\"\n",
            t.url
        )))
        .register(Db::extension())
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    client.start().await.unwrap();
    let db = app.state::<Db>().unwrap();
    db.query("SELECT 1").execute(&*db).await.unwrap();
    client.shutdown().await;
    assert!(db.pool().is_closed());
    assert!(db.bind("other").unwrap().pool().is_closed());
    let err = db.query("SELECT 1").execute(&*db).await.unwrap_err();
    assert!(matches!(err, flagon_db::sqlx::Error::PoolClosed), "{err}");
}

#[tokio::test]
async fn postgres_placeholders_are_rewritten_by_the_helpers() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let _ = PG_ADMIN;
    let app = app(&t.url, "", |_| {});
    let db = app.state::<Db>().unwrap();
    let sum: i64 = db
        .query_scalar("SELECT CAST(? AS BIGINT) + CAST(? AS BIGINT)")
        .bind(40_i64)
        .bind(2_i64)
        .fetch_one(&*db)
        .await
        .unwrap();
    assert_eq!(sum, 42);
}

#[tokio::test]
async fn an_early_commit_ends_the_transaction_and_two_at_once_are_refused() {
    let t = TestDb::sqlite();
    let app = app(&t.url, "", |s| {
        s.route(
            Route::get("/early", |mut tx: Tx| async move {
                tx.query("INSERT INTO note (id, body) VALUES (10, 'kept')")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, flagon_db::Error>((
                    flagon::http::StatusCode::BAD_REQUEST,
                    "committed before the 400",
                ))
            })
            .name("early"),
        );
        s.route(Route::get("/twice", |_a: Tx, _b: Tx| async move { "unreachable" }).name("twice"));
    });
    let db = app.state::<Db>().unwrap();
    notes_table(&db).await;
    let client = TestClient::new(&app);
    assert_eq!(client.get("/early").send().await.status(), 400);
    let kept: i64 = db
        .query_scalar("SELECT COUNT(*) FROM note WHERE id = 10")
        .fetch_one(&*db)
        .await
        .unwrap();
    assert_eq!(
        kept, 1,
        "an explicit commit is not undone by the error status"
    );
    let res = client.get("/twice").send().await;
    assert_eq!(res.status(), 500, "a second Tx while the first is held");
    db_support::wait_for_baseline(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tx_still_held_after_the_handler_is_rolled_back_and_never_a_success() {
    let t = TestDb::sqlite();
    let seen: Arc<Mutex<Vec<QueriesRecorded>>> = Arc::default();
    let sink = seen.clone();
    let app = App::builder()
        .settings(testing_config_toml(&format!("[db]\nurl = \"{}\"\n", t.url)))
        .register(Db::extension())
        .configure(move |s| {
            s.subscribe(move |e: &QueriesRecorded| sink.lock().unwrap().push(e.clone()));
            s.route(
                Route::get("/leak", |mut tx: Tx| async move {
                    tx.query("INSERT INTO note (id, body) VALUES (20, 'lost')")
                        .execute(&mut *tx)
                        .await?;
                    // A bug: the transaction outlives the handler.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        drop(tx);
                    });
                    Ok::<_, flagon_db::Error>("looks fine")
                })
                .name("leak"),
            );
            s.route(
                Route::get("/panic", |mut tx: Tx| async move {
                    tx.query("INSERT INTO note (id, body) VALUES (21, 'lost')")
                        .execute(&mut *tx)
                        .await?;
                    if tx.backend() == flagon_db::Backend::Sqlite {
                        panic!("boom");
                    }
                    Ok::<_, flagon_db::Error>("unreachable")
                })
                .name("panic"),
            );
            Ok(())
        })
        .build()
        .unwrap();
    let db = app.state::<Db>().unwrap();
    notes_table(&db).await;
    let client = TestClient::new(&app);
    assert_eq!(client.get("/leak").send().await.status(), 500);
    assert_eq!(client.get("/panic").send().await.status(), 500);
    db_support::wait_for_baseline(&db).await;
    let n: i64 = db
        .query_scalar("SELECT COUNT(*) FROM note WHERE id >= 20")
        .fetch_one(&*db)
        .await
        .unwrap();
    assert_eq!(n, 0, "neither write was kept");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|e| e.transaction == Some(TxOutcome::RolledBack)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_server_down_answers_503_within_the_acquire_timeout() {
    let t = TestDb::sqlite();
    let closed = closed_port();
    let app = App::builder()
        .settings(testing_config_toml(&format!(
            "[db]\nurl = \"{}\"\n[db.binds.down]\nurl = \"postgres://app:hunter2@127.0.0.1:{closed}/app\"\nacquire_timeout = \"500ms\"\n",
            t.url
        )))
        .register(Db::extension())
        .route(
            Route::get("/down", |db: Db| async move {
                let down = db.bind("down")?;
                down.query("SELECT 1").execute(&down).await?;
                Ok::<_, flagon_db::Error>("up")
            })
            .name("down"),
        )
        .build()
        .unwrap();
    let started = Instant::now();
    let res = TestClient::new(&app).get("/down").send().await;
    let took = started.elapsed();
    println!("a request to a database that refuses connections answered in {took:?}");
    assert_eq!(res.status(), 503, "{}", res.text());
    assert_eq!(res.header("retry-after"), Some("1"));
    assert!(!res.text().contains("hunter2") && !res.text().contains("127.0.0.1"));
    assert!(took < Duration::from_millis(1200), "{took:?}");
}
