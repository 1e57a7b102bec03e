//! Outbox throughput to the local aiosmtpd server, with one and with four concurrent
//! senders, on SQLite and PostgreSQL: prints messages per second and checks that every
//! message arrived exactly once. Run it alone for figures:
//! `cargo test -p flagon-mail --release --test throughput -- --nocapture --test-threads=1`.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use flagon_mail::{Mail, Message};
use support::{Smtp, TestDb, addr, mail_app, relay_until, smtp, start};

const MESSAGES: usize = 300;

async fn measure(s: &Smtp, t: &TestDb, concurrency: usize) -> f64 {
    let toml = format!(
        "{}[mail.outbox]\nconcurrency = {concurrency}\nbatch = 16\npoll_interval = \"20ms\"\n",
        s.toml(s.plain, "none", "")
    );
    let app = mail_app(&toml, Some(&t.url));
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    let to = addr("throughput-");
    for i in 0..MESSAGES {
        let m = Message::builder()
            .to(to.as_str())
            .subject(format!("n{i}"))
            .text("throughput body\n")
            .build()
            .unwrap();
        mail.enqueue(&m).await.unwrap();
    }
    let before = s.stored();
    let started = Instant::now();
    relay_until(&mail, Duration::from_secs(300), || {
        s.stored() >= before + MESSAGES
    })
    .await;
    let took = started.elapsed();
    let got = s.received_for(&to);
    let ids: HashSet<&str> = got.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(got.len(), MESSAGES, "every message arrived");
    assert_eq!(ids.len(), MESSAGES, "each once");
    let rate = MESSAGES as f64 / took.as_secs_f64();
    println!(
        "outbox throughput ({}, {concurrency} worker{}): {MESSAGES} messages in {:.2}s = {rate:.0} messages/s",
        t.backend,
        if concurrency == 1 { "" } else { "s" },
        took.as_secs_f64()
    );
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_throughput_with_one_and_four_workers() {
    let Some(s) = smtp() else { return };
    let one = measure(s, &TestDb::sqlite(), 1).await;
    let four = measure(s, &TestDb::sqlite(), 4).await;
    if let Some(t) = TestDb::postgres().await {
        measure(s, &t, 1).await;
    }
    if let Some(t) = TestDb::postgres().await {
        measure(s, &t, 4).await;
    }
    assert!(one > 0.0 && four > 0.0);
}
