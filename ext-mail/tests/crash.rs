//! D5, crash safety, with a real child process killed with SIGKILL: (a) after the business
//! transaction commits and before anything is sent; (b) mid-send, while the server holds the
//! final dot. After a restart every message is delivered, with its Message-ID, none lost.
//!
//! The child is this test binary again, running `child_process` with `FLAGON_MAIL_CHILD` set.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flagon_db::Db;
use flagon_mail::{Mail, Message, Status};
use support::{Smtp, TestDb, addr, mail_app, relay_until, smtp, start};

/// Timeouts short enough for the lease (which must exceed the slowest attempt) to expire
/// within the test, with room for the child to be killed mid-DATA.
fn toml(s: &Smtp) -> String {
    s.toml(s.plain, "none", "")
        .replace(
            "connect_timeout = \"2s\"\ngreeting_timeout = \"2s\"\ncommand_timeout = \"2s\"\ndata_timeout = \"3s\"",
            "connect_timeout = \"500ms\"\ngreeting_timeout = \"500ms\"\ncommand_timeout = \"500ms\"\ndata_timeout = \"3s\"",
        )
        + "[mail.outbox]\nlease = \"7s\"\nretry_initial = \"100ms\"\npoll_interval = \"50ms\"\n"
}

fn spawn_child(
    mode: &str,
    db_url: &str,
    s: &Smtp,
    to: &str,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLAGON_MAIL_CHILD", mode)
        .env("FLAGON_MAIL_CHILD_DB", db_url)
        .env("FLAGON_MAIL_CHILD_TOML", toml(s))
        .env("FLAGON_MAIL_CHILD_TO", to)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The child: (a) `commit` registers a user and queues its mail in one transaction,
/// commits, says so, and waits to be killed; (b) `relay` runs the relay until killed.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("FLAGON_MAIL_CHILD") else {
        return;
    };
    let db_url = std::env::var("FLAGON_MAIL_CHILD_DB").unwrap();
    let toml = std::env::var("FLAGON_MAIL_CHILD_TOML").unwrap();
    let to = std::env::var("FLAGON_MAIL_CHILD_TO").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let app = mail_app(&toml, Some(&db_url));
        start(&app).await;
        let mail = Mail::of(app.handle()).unwrap();
        match mode.as_str() {
            "commit" => {
                let db = app.state::<Db>().unwrap();
                let mut tx = db.begin().await.unwrap();
                tx.query("INSERT INTO users (email) VALUES (?)")
                    .bind(to.clone())
                    .execute(&mut tx)
                    .await
                    .unwrap();
                let m = Message::builder()
                    .to(to.as_str())
                    .subject("Welcome")
                    .text("Hi")
                    .build()
                    .unwrap();
                let id = mail.enqueue_in(&mut tx, &m).await.unwrap();
                tx.commit().await.unwrap();
                println!("COMMITTED {id}");
                std::future::pending::<()>().await;
            }
            "relay" => {
                println!("RELAYING");
                mail.relay(std::future::pending()).await;
            }
            other => panic!("unknown mode {other}"),
        }
    });
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            // The test harness prints `test child_process ... ` before the child's output.
            if let Some(at) = line.find(prefix) {
                return line[at..].to_owned();
            }
        }
    }
    panic!("the child never printed {prefix}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5a_killed_after_commit_before_send_the_message_goes_after_restart() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    // Create the tables first (the app's migration and the business table).
    let app = mail_app(&toml(s), Some(&t.url));
    start(&app).await;
    let db = app.state::<Db>().unwrap();
    db.query("CREATE TABLE users (email VARCHAR(200) NOT NULL)")
        .execute(&*db)
        .await
        .unwrap();

    let to = addr("crash-a-");
    let (mut child, rx) = spawn_child("commit", &t.url, s, &to);
    let line = wait_line(&rx, "COMMITTED");
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let id: i64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();

    // Restart: a new instance on the same database delivers it.
    let mail = Mail::of(app.handle()).unwrap();
    relay_until(&mail, Duration::from_secs(10), || {
        !s.received_for(&to).is_empty()
    })
    .await;
    let got = s.received_for(&to);
    assert_eq!(got.len(), 1, "delivered exactly once after the crash");
    let e = mail.queue().list(Some(Status::Sent), 10).await.unwrap();
    assert!(
        e.iter()
            .any(|x| x.id == id && x.message_id == got[0].message_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5b_killed_mid_send_the_message_is_resent_with_its_message_id() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let app = mail_app(&toml(s), Some(&t.url));
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    // The server holds the first attempt's final dot (and writes a marker), then accepts.
    let to = addr("stall-once-");
    let other = addr("crash-b-");
    let m = Message::builder()
        .to(to.as_str())
        .subject("mid-send")
        .text("b")
        .build()
        .unwrap();
    let id = mail.enqueue(&m).await.unwrap();
    let (mut child, rx) = spawn_child("relay", &t.url, s, &to);
    wait_line(&rx, "RELAYING");
    // Wait until the child is inside DATA, then kill it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let marker = loop {
        let found = std::fs::read_dir(&s.maildir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("stalled-"));
        if let Some(f) = found {
            let text = std::fs::read_to_string(f.path()).unwrap();
            let mine = mail.queue().list(None, 10).await.unwrap();
            if mine.iter().any(|x| x.message_id == text) {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "the child never reached DATA");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        s.received_for(&to).is_empty(),
        "killed before the server accepted"
    );
    // Another message queued meanwhile is not held up by the dead claim.
    mail.enqueue(
        &Message::builder()
            .to(other.as_str())
            .text("b")
            .build()
            .unwrap(),
    )
    .await
    .unwrap();

    // Restart: once the dead relay's lease expires the message is claimed again and sent.
    let started = Instant::now();
    relay_until(&mail, Duration::from_secs(20), || {
        !s.received_for(&to).is_empty()
    })
    .await;
    let got = s.received_for(&to);
    assert_eq!(got.len(), 1, "resent after the crash, once");
    assert_eq!(got[0].message_id, marker, "with the same Message-ID");
    assert_eq!(s.received_for(&other).len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let e = mail.queue().list(None, 10).await.unwrap();
    let row = e.iter().find(|x| x.id == id).unwrap();
    assert_eq!(row.status, Status::Sent);
    assert_eq!(row.attempts, 2, "the killed attempt was counted");
}
