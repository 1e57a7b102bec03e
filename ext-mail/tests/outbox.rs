//! The durable outbox on SQLite, PostgreSQL and MariaDB, delivering to a real SMTP server:
//! retries with backoff (D3), permanent and mixed results (D4), a poison message
//! dead-lettered while later ones go out (D8), a rolled-back transaction queueing nothing,
//! two instances on one PostgreSQL outbox sending 500 messages exactly once, signals.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagon::axum::extract::Path;
use flagon::http::StatusCode;
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, Route};
use flagon_db::{Db, Tx};
use flagon_mail::{Entry, Mail, Message, MessageFailed, MessageQueued, MessageSent, Status};
use support::{Smtp, TestDb, addr, mail_app, relay_until, smtp, start};

const FAST: &str = "[mail.outbox]\nretry_initial = \"100ms\"\nretry_max = \"400ms\"\npoll_interval = \"50ms\"\nlease = \"30s\"\nmax_attempts = 4\n";

fn msg(to: &[&str]) -> Message {
    let mut b = Message::builder().subject("outbox").text("queued body");
    for t in to {
        b = b.to(*t);
    }
    b.build().unwrap()
}

async fn entries(mail: &Mail) -> HashMap<i64, Entry> {
    mail.queue()
        .list(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e))
        .collect()
}

async fn settled(mail: &Mail) -> bool {
    mail.queue()
        .list(Some(Status::Pending), 1)
        .await
        .unwrap()
        .is_empty()
}

/// Runs the relay until nothing is pending (or `limit`).
async fn drain(mail: &Mail, limit: Duration) {
    let m = mail.clone();
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = flag.clone();
    let watcher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if settled(&m).await {
                f.store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            }
        }
    });
    relay_until(mail, limit, || {
        flag.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    watcher.abort();
}

async fn outbox_scenario(s: &Smtp, t: &TestDb) {
    let app = mail_app(
        &format!("{}{FAST}", s.toml(s.plain, "none", "")),
        Some(&t.url),
    );
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    assert!(mail.queue().is_durable());
    let ok = addr("ok-");
    let once = addr("rcpt-once-451-");
    let hard = addr("rcpt-550-");
    let ok_id = mail.enqueue(&msg(&[&ok])).await.unwrap();
    let once_id = mail.enqueue(&msg(&[&once])).await.unwrap();
    let hard_id = mail.enqueue(&msg(&[&hard])).await.unwrap();
    drain(&mail, Duration::from_secs(15)).await;
    let e = entries(&mail).await;
    assert_eq!(e[&ok_id].status, Status::Sent, "{:?}", e[&ok_id]);
    assert_eq!(e[&ok_id].attempts, 1);
    assert_eq!(e[&once_id].status, Status::Sent, "{:?}", e[&once_id]);
    assert_eq!(
        e[&once_id].attempts, 2,
        "the transient failure was retried, the count persisted"
    );
    assert!(
        e[&once_id].last_error.is_none()
            || e[&once_id]
                .last_error
                .as_deref()
                .is_some_and(|x| x.contains("451"))
    );
    assert_eq!(e[&hard_id].status, Status::Failed, "5xx is permanent");
    assert_eq!(e[&hard_id].attempts, 1, "and not retried");
    assert!(e[&hard_id].last_error.as_deref().unwrap().contains("550"));
    assert_eq!(s.received_for(&ok).len(), 1);
    assert_eq!(s.received_for(&once).len(), 1);
    assert!(s.received_for(&hard).is_empty());
    // The message kept its Message-ID across the retry.
    let got = &s.received_for(&once)[0];
    assert_eq!(got.message_id, e[&once_id].message_id);
}

#[tokio::test]
async fn the_outbox_on_sqlite() {
    let Some(s) = smtp() else { return };
    outbox_scenario(s, &TestDb::sqlite()).await;
}

#[tokio::test]
async fn the_outbox_on_postgres() {
    let Some(s) = smtp() else { return };
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    outbox_scenario(s, &t).await;
}

#[tokio::test]
async fn the_outbox_on_mariadb() {
    let Some(s) = smtp() else { return };
    let Some(t) = TestDb::mysql().await else {
        return;
    };
    outbox_scenario(s, &t).await;
}

#[tokio::test]
async fn d3_transient_replies_at_each_phase_are_retried_with_backoff_until_dead_lettered() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let app = mail_app(
        &format!("{}{FAST}", s.toml(s.plain, "none", "")),
        Some(&t.url),
    );
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    let cases = [
        (
            "MAIL 451",
            Message::builder()
                .from(addr("mail-451-").as_str())
                .to(addr("x-").as_str())
                .text("b")
                .build()
                .unwrap(),
        ),
        ("RCPT 452", msg(&[&addr("rcpt-452-")])),
        ("RCPT 552 as 452", msg(&[&addr("rcpt-552-")])),
        ("DATA 451", msg(&[&addr("data-451-")])),
        ("DATA 421", msg(&[&addr("data-421-")])),
    ];
    let mut ids = Vec::new();
    for (what, m) in &cases {
        ids.push((*what, mail.enqueue(m).await.unwrap()));
    }
    // After the first attempt: pending again, due one backoff later (100ms ± 25 %).
    relay_until(&mail, Duration::from_secs(5), || false).await;
    let e = entries(&mail).await;
    for (what, id) in &ids {
        let entry = &e[id];
        assert_eq!(entry.status, Status::Dead, "{what}: {entry:?}");
        assert_eq!(entry.attempts, 4, "{what}: max_attempts, each persisted");
        assert!(entry.last_error.is_some(), "{what}");
    }
    let backoff = flagon_mail::OutboxConfig {
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(1000),
        ..Default::default()
    };
    for (attempt, base) in [(1, 100.0), (2, 200.0), (3, 400.0), (4, 800.0), (5, 1000.0)] {
        let d = backoff.backoff(attempt).as_secs_f64() * 1000.0;
        assert!(
            d >= base * 0.75 - 1.0 && d <= base * 1.25 + 1.0,
            "attempt {attempt}: {d}ms"
        );
    }
    let spread: std::collections::BTreeSet<u128> =
        (0..20).map(|_| backoff.backoff(1).as_micros()).collect();
    assert!(spread.len() > 10, "jitter spreads retries");
}

#[tokio::test]
async fn d4_permanent_and_mixed_results() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let app = mail_app(
        &format!("{}{FAST}", s.toml(s.plain, "none", "")),
        Some(&t.url),
    );
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    let mut ids = Vec::new();
    for code in ["550", "553"] {
        ids.push(
            mail.enqueue(&msg(&[&addr(&format!("rcpt-{code}-"))]))
                .await
                .unwrap(),
        );
    }
    ids.push(mail.enqueue(&msg(&[&addr("data-554-")])).await.unwrap());
    // Mixed: one accepted, one refused for good, one deferred once.
    let ok = addr("mixed-ok-");
    let hard = addr("rcpt-550-");
    let soft = addr("rcpt-once-451-");
    let mixed = mail.enqueue(&msg(&[&ok, &hard, &soft])).await.unwrap();
    drain(&mail, Duration::from_secs(10)).await;
    let e = entries(&mail).await;
    for id in &ids {
        assert_eq!(e[id].status, Status::Failed, "{:?}", e[id]);
        assert_eq!(e[id].attempts, 1, "not retried");
    }
    let m = &e[&mixed];
    assert_eq!(m.status, Status::Sent, "{m:?}");
    assert_eq!(m.attempts, 2);
    assert_eq!(
        m.recipients,
        vec![soft.clone()],
        "only the deferred recipient was retried"
    );
    assert_eq!(
        s.received_for(&ok).len(),
        1,
        "the accepted recipient got it once"
    );
    let second = s.received_for(&soft);
    assert_eq!(second.len(), 1);
    assert_eq!(
        second[0].to,
        vec![soft.to_lowercase()],
        "the retry went to the deferred one only"
    );
    assert!(s.received_for(&hard).is_empty());
    assert_eq!(
        s.received_for(&ok)[0].message_id,
        second[0].message_id,
        "one Message-ID"
    );
}

#[tokio::test]
async fn d8_a_poison_message_is_dead_lettered_while_later_ones_go_out() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let toml = format!("{}{FAST}concurrency = 1\n", s.toml(s.plain, "none", ""));
    let app = mail_app(&toml, Some(&t.url));
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    let db = app.state::<Db>().unwrap();
    // At the head of the queue: a row nobody can read, and a message that always fails.
    db.query("INSERT INTO flagon_mail_outbox (message_id, envelope_from, recipients, raw, status, attempts, available_at, created_at) VALUES ('<bad@x>', 'app@example.com', 'not json', 'x', 'pending', 0, 0, 0)")
        .execute(&*db)
        .await
        .unwrap();
    let forever = mail.enqueue(&msg(&[&addr("rcpt-451-")])).await.unwrap();
    let later: Vec<String> = (0..5).map(|_| addr("later-")).collect();
    for l in &later {
        mail.enqueue(&msg(&[l])).await.unwrap();
    }
    drain(&mail, Duration::from_secs(10)).await;
    for l in &later {
        assert_eq!(s.received_for(l).len(), 1, "later messages were delivered");
    }
    let e = entries(&mail).await;
    assert_eq!(e[&forever].status, Status::Dead);
    assert_eq!(e[&forever].attempts, 4);
    let bad = e.values().find(|x| x.message_id == "<bad@x>").unwrap();
    assert_eq!(bad.status, Status::Dead);
    assert!(
        bad.last_error.as_deref().unwrap().contains("unreadable"),
        "{bad:?}"
    );
    // `retry` puts a dead message back.
    assert_eq!(
        mail.queue()
            .retry(flagon_mail::RetryWhich::Id(forever))
            .await
            .unwrap(),
        1
    );
    assert_eq!(entries(&mail).await[&forever].status, Status::Pending);
}

async fn register(
    Path(email): Path<String>,
    mail: Mail,
    mut tx: Tx,
) -> Result<(StatusCode, &'static str), flagon::HttpError> {
    tx.query("INSERT INTO users (email) VALUES (?)")
        .bind(email.clone())
        .execute(&mut *tx)
        .await
        .map_err(flagon_db::Error::from)?;
    let welcome = Message::builder()
        .to(email.as_str())
        .subject("Welcome")
        .text("Hi")
        .build()?;
    mail.enqueue_in(&mut tx, &welcome).await?;
    if email.starts_with("fail") {
        // The registration fails after queueing: the transaction rolls back, with the mail.
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
    }
    Ok((StatusCode::OK, "registered"))
}

async fn rollback_scenario(s: &Smtp, t: &TestDb) {
    let toml = format!(
        "{}{FAST}[db]\nurl = \"{}\"\nauto_upgrade = true\n",
        s.toml(s.plain, "none", ""),
        t.url
    );
    let app = App::builder()
        .settings(testing_config_toml(&toml))
        .register(Db::extension())
        .register(Mail::extension())
        .route(Route::post("/register/{email}", register).name("register"))
        .configure(|app| {
            app.csrf_exempt("register");
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    client.start().await.unwrap();
    let db = app.state::<Db>().unwrap();
    db.query("CREATE TABLE users (email VARCHAR(200) NOT NULL)")
        .execute(&*db)
        .await
        .unwrap();
    let mail = Mail::of(app.handle()).unwrap();
    let failing = addr("fail-");
    let res = client.post(&format!("/register/{failing}")).send().await;
    assert_eq!(res.status(), 422, "{}", res.text());
    assert!(
        mail.queue().list(None, 10).await.unwrap().is_empty(),
        "a rolled-back registration queued nothing"
    );
    let good = addr("good-");
    let res = client.post(&format!("/register/{good}")).send().await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let queued = mail.queue().list(None, 10).await.unwrap();
    assert_eq!(queued.len(), 1, "a committed registration queued its mail");
    drain(&mail, Duration::from_secs(10)).await;
    assert_eq!(s.received_for(&good).len(), 1);
    assert!(s.received_for(&failing).is_empty());
}

#[tokio::test]
async fn a_rolled_back_registration_queues_nothing_on_sqlite() {
    let Some(s) = smtp() else { return };
    rollback_scenario(s, &TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_rolled_back_registration_queues_nothing_on_postgres() {
    let Some(s) = smtp() else { return };
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    rollback_scenario(s, &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_outbox_send_500_messages_exactly_once() {
    let Some(s) = smtp() else { return };
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let toml = format!(
        "{}{FAST}concurrency = 4\nbatch = 8\n",
        s.toml(s.plain, "none", "")
    );
    let a = mail_app(&toml, Some(&t.url));
    start(&a).await;
    let b = mail_app(&toml, Some(&t.url));
    let (ma, mb) = (Mail::of(a.handle()).unwrap(), Mail::of(b.handle()).unwrap());
    let to = addr("five-hundred-");
    for i in 0..500 {
        let m = Message::builder()
            .to(to.as_str())
            .subject(format!("n{i}"))
            .text("b")
            .build()
            .unwrap();
        ma.enqueue(&m).await.unwrap();
    }
    let done = |s: &Smtp| s.received_for(&to).len() >= 500;
    let ra = {
        let ma = ma.clone();
        tokio::spawn(async move { drain(&ma, Duration::from_secs(120)).await })
    };
    let rb = {
        let mb = mb.clone();
        tokio::spawn(async move { drain(&mb, Duration::from_secs(120)).await })
    };
    let _ = (ra.await, rb.await);
    assert!(done(s));
    let got = s.received_for(&to);
    let mut ids: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *ids.entry(r.message_id.clone()).or_default() += 1;
    }
    assert_eq!(got.len(), 500, "500 deliveries");
    assert_eq!(ids.len(), 500, "500 distinct messages");
    assert!(ids.values().all(|n| *n == 1), "each exactly once");
    let e = entries(&ma).await;
    assert!(
        e.values()
            .all(|x| x.status == Status::Sent && x.attempts == 1)
    );
}

#[tokio::test]
async fn the_memory_outbox_and_the_signals() {
    // No database: the in-memory queue, the test transport, every signal.
    let app = App::builder()
        .settings(testing_config_toml(&format!(
            "[mail]\ndefault_sender = \"app@example.com\"\n{FAST}"
        )))
        .register(Mail::extension())
        .configure(|app| {
            let log: Arc<Mutex<Vec<String>>> = Arc::default();
            app.provide(log.clone());
            let l = log.clone();
            app.subscribe(move |e: &MessageQueued| {
                l.lock().unwrap().push(format!("queued {}", e.outbox_id))
            });
            let l = log.clone();
            app.subscribe(move |e: &MessageSent| {
                l.lock().unwrap().push(format!("sent {:?}", e.outbox_id))
            });
            let l = log;
            app.subscribe(move |e: &MessageFailed| {
                l.lock().unwrap().push(format!("failed {}", e.permanent))
            });
            Ok(())
        })
        .build()
        .unwrap();
    let mail = Mail::of(app.handle()).unwrap();
    assert!(!mail.queue().is_durable());
    let id = mail.enqueue(&msg(&["ann@example.com"])).await.unwrap();
    let outbox = mail.outbox().unwrap();
    assert!(outbox.is_empty(), "queued, not sent yet");
    relay_until(&mail, Duration::from_secs(5), || !outbox.is_empty()).await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(entries(&mail).await[&id].status, Status::Sent);
    mail.send(&msg(&["bob@example.com"])).await.unwrap();
    assert_eq!(outbox.len(), 2);
    let log = app.state::<Arc<Mutex<Vec<String>>>>().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            format!("queued {id}"),
            format!("sent Some({id})"),
            "sent None".into()
        ]
    );
}

#[tokio::test]
async fn the_relay_worker_runs_while_serving_and_stops_with_the_server() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let app = mail_app(
        &format!("{}{FAST}", s.toml(s.plain, "none", "")),
        Some(&t.url),
    );
    let mail = Mail::of(app.handle()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = app.clone();
    let server = tokio::spawn(async move {
        served
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    // `auto_upgrade` runs before serving; wait for the table.
    let first = addr("served-");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if mail.enqueue(&msg(&[&first])).await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox table never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.wait_for(&first, 1, Duration::from_secs(10)).await.len(),
        1,
        "the worker sent it"
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    // The server awaited its worker; a message queued now (by an instance that does not
    // serve) waits for the next relay.
    let later = mail_app(
        &format!("{}{FAST}", s.toml(s.plain, "none", "")),
        Some(&t.url),
    );
    let later = Mail::of(later.handle()).unwrap();
    let after = addr("after-stop-");
    later.enqueue(&msg(&[&after])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        s.received_for(&after).is_empty(),
        "no relay after the server stopped"
    );
    assert_eq!(
        later
            .queue()
            .list(Some(Status::Pending), 10)
            .await
            .unwrap()
            .len(),
        1,
        "kept for the next start"
    );
}

#[tokio::test]
async fn d2_a_stored_message_with_bare_line_feeds_is_sent_as_one_message() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let app = mail_app(
        &format!("{}{FAST}", s.toml(s.plain, "none", "")),
        Some(&t.url),
    );
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    let db = app.state::<Db>().unwrap();
    let to = addr("raw-lf-");
    // Bytes as another writer might have stored them: bare LFs, bare CRs, lone dots.
    let raw = format!(
        "From: app@example.com\nTo: {to}\nSubject: raw\nMessage-ID: <raw-lf@example.com>\n\nline one\n.\nMAIL FROM:<evil@example.net>\nRCPT TO:<evil@example.net>\r.\r\n..x\n.\nlast line\n"
    );
    db.query("INSERT INTO flagon_mail_outbox (message_id, envelope_from, recipients, raw, status, attempts, available_at, created_at) VALUES ('<raw-lf@example.com>', 'app@example.com', ?, ?, 'pending', 0, 0, 0)")
        .bind(serde_json::to_string(&[&to]).unwrap())
        .bind(raw)
        .execute(&*db)
        .await
        .unwrap();
    drain(&mail, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = s.received_for(&to);
    assert_eq!(got.len(), 1, "exactly one message");
    assert!(
        s.received_for("evil@example.net").is_empty(),
        "no smuggled transaction"
    );
    let text = String::from_utf8_lossy(&got[0].raw);
    assert!(
        text.contains("\r\n.\r\nMAIL FROM:<evil@example.net>\r\n"),
        "{text:?}"
    );
    assert!(text.contains("\r\n..x\r\n"), "{text:?}");
    assert!(
        text.trim_end().ends_with("last line"),
        "the whole message arrived: {text:?}"
    );
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "every line ending is CRLF"
    );
}

#[tokio::test]
async fn readiness_reports_the_outbox_counts() {
    let t = TestDb::sqlite();
    let app = mail_app(
        &format!("[mail]\ndefault_sender = \"app@example.com\"\n{FAST}"),
        Some(&t.url),
    );
    let client = TestClient::new(&app);
    client.start().await.unwrap();
    let mail = Mail::of(app.handle()).unwrap();
    mail.enqueue(&msg(&["ann@example.com"])).await.unwrap();
    mail.enqueue(&msg(&["bob@example.com"])).await.unwrap();
    let res = client.get("/readyz").send().await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let body: serde_json::Value = res.json();
    let check = &body["checks"]["mail.outbox"];
    assert_eq!(check["status"], "ok", "{body}");
    assert_eq!(check["detail"]["pending"], 2, "{body}");
    assert_eq!(check["detail"]["durable"], true, "{body}");
    assert_eq!(check["detail"]["dead"], 0, "{body}");
    // The database gone: not ready.
    app.state::<Db>().unwrap().pool().close().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = client.get("/readyz").send().await;
    assert_eq!(res.status(), 503, "{}", res.text());
}

#[tokio::test]
async fn d6_a_stalled_server_reply_holds_one_sender_while_the_rest_flow() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let toml = format!("{}{FAST}concurrency = 2\n", s.toml(s.plain, "none", ""));
    let app = mail_app(&toml, Some(&t.url));
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    let stalled = mail.enqueue(&msg(&[&addr("stall-")])).await.unwrap();
    let rest: Vec<String> = (0..10).map(|_| addr("flowing-")).collect();
    for r in &rest {
        mail.enqueue(&msg(&[r])).await.unwrap();
    }
    let started = std::time::Instant::now();
    let flowed = std::cell::Cell::new(None);
    relay_until(&mail, Duration::from_secs(10), || {
        let all = rest.iter().all(|r| !s.received_for(r).is_empty());
        if all {
            flowed.set(Some(started.elapsed()));
        }
        all
    })
    .await;
    assert!(
        rest.iter().all(|r| s.received_for(r).len() == 1),
        "the others were delivered"
    );
    // The relay then waits for the stalled attempt (cut at 3s) before it stops.
    let flowed = flowed.get().expect("delivered");
    assert!(
        flowed < Duration::from_secs(2),
        "while the stalled one waited: {flowed:?}"
    );
    // The stalled attempt was cut by data_timeout (3s) and is due for a retry.
    relay_until(&mail, Duration::from_secs(4), || false).await;
    let e = entries(&mail).await;
    assert!(e[&stalled].attempts >= 1);
    assert!(
        e[&stalled]
            .last_error
            .as_deref()
            .is_some_and(|x| x.contains("data-end")),
        "{:?}",
        e[&stalled]
    );
}
