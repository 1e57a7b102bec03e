//! Out of file descriptors, a failing `accept` is retried with backoff (one warning per
//! episode), and serving resumes once descriptors are free.
//!
//! Alone in its own test binary: it lowers the process's descriptor limit (with `prlimit`)
//! and installs a thread-local log subscriber.

use std::process::Command;
use std::time::Duration;

use flagon::testing::testing_config_toml;
use flagon::{App, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn set_nofile(soft: &str) -> bool {
    Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={soft}:"),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

fn soft_nofile() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "current_thread")]
async fn accept_failures_back_off_and_serving_resumes() {
    let Some(before) = soft_nofile() else {
        eprintln!("skipped: no /proc/self/limits");
        return;
    };
    let logs = flagon::testing::LogCapture::start(tracing::Level::INFO);

    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nmax_connections = 100000\nshutdown_deadline = \"1s\"\n",
        ))
        .route(Route::get("/", || async { "up" }).name("index"))
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Another process connects in a second, when this one has no descriptor left (its own
    // connections would take descriptors from the same table).
    let client = Command::new("bash")
        .args([
            "-c",
            &format!(
                "sleep 1; exec 3<>/dev/tcp/127.0.0.1/{}; sleep 4",
                addr.port()
            ),
        ])
        .stdin(std::process::Stdio::null())
        .spawn();
    let Ok(mut client) = client else {
        eprintln!("skipped: no bash");
        let _ = tx.send(());
        return;
    };
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as u64;
    if !set_nofile(&(open + 16).to_string()) {
        eprintln!("skipped: prlimit is not available");
        let _ = tx.send(());
        return;
    }
    let mut hold = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hold.push(f);
    }
    // Out of descriptors while a connection waits: a second and a half of it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    drop(hold);
    assert!(set_nofile(&before.to_string()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = client.kill();
    let _ = client.wait();

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("served again")
        .unwrap();
    assert!(out.ends_with("up"), "{out}");
    tx.send(()).unwrap();
    server.await.unwrap();

    let log = logs.text();
    let failures = log.matches("accept failed").count();
    assert!(failures >= 1, "the server ran out of descriptors: {log}");
    assert!(
        failures <= 3,
        "one warning per episode, not one per retry: {failures}\n{log}"
    );
    assert!(log.contains("accepting again"), "{log}");
}
