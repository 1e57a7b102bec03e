//! G6 through a fault-injecting TCP proxy in front of the machine's Redis: replies slowed past
//! the timeout, then connections reset. Checks answer within the timeout meanwhile; once
//! the faults stop, Redis decides again on the same app, and its decisions are exact (late
//! replies to abandoned checks are never taken for later ones). The shared server is never
//! stopped: only the proxy misbehaves.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flagon::testing::TestClient;
use flagon::{App, Route};
use flagon_limiter::{Limiter, LimiterState, limit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards to Redis; replies wait `delay_ms` each; `reset` drops every connection.
struct Proxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    refuse: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let refuse = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (d, r, c) = (delay_ms.clone(), refuse.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if r.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(common::REDIS).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let delay = d.clone();
                let down = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let ms = delay.load(Ordering::SeqCst);
                        if ms > 0 {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut list = c.lock().unwrap();
                list.push(up.abort_handle());
                list.push(down.abort_handle());
            }
        });
        Proxy {
            port,
            delay_ms,
            refuse,
            conns,
        }
    }

    /// Drops every open connection (the halves are aborted, so both sockets close).
    fn reset(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

const FROM: &str = "203.0.113.70:1";
const BOUND: Duration = Duration::from_millis(400);

fn app(port: u16, prefix: &str) -> App {
    let toml = format!(
        "[limiter]\nstorage = \"redis://127.0.0.1:{port}\"\nfail_mode = \"closed\"\n\
         [limiter.redis]\nkey_prefix = \"{prefix}\"\ncommand_timeout = \"100ms\"\n\
         connect_timeout = \"100ms\"\nbreaker_failures = 3\nbreaker_cooldown = \"300ms\"\n"
    );
    common::builder(&toml)
        .register(Limiter::new())
        .route(
            Route::get("/q", common::ok)
                .name("q")
                .with(limit("30/hour")),
        )
        .build()
        .unwrap()
}

/// `n` requests while the proxy misbehaves: each a 503 within the bound.
async fn while_faulty(client: &TestClient, n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        let s = common::status(client, "/q", FROM).await;
        let took = t.elapsed();
        assert!(took < BOUND, "request {i} took {took:?}");
        assert_eq!(s, 503, "request {i}: closed, Redis did not decide");
        slowest = slowest.max(took);
    }
    slowest
}

/// Requests until one is decided by Redis again; returns how long that took.
async fn until_decided(app: &App, client: &TestClient) -> Duration {
    let state = app.state::<LimiterState>().unwrap();
    let t = Instant::now();
    loop {
        let before = state.failed_over();
        let s = common::status(client, "/q", FROM).await;
        if state.failed_over() == before {
            assert_eq!(s, 200);
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "Redis never decided again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Exactly as many admitted as Redis says are left: no reply was matched to the wrong check.
async fn exact(app: &App, client: &TestClient) -> usize {
    let counters = app
        .state::<LimiterState>()
        .unwrap()
        .status("203.0.113.70")
        .await
        .unwrap();
    assert_eq!(counters.len(), 1, "{counters:?}");
    let left = counters[0].remaining as usize;
    let admitted = common::admitted(client, "/q", FROM, left + 5).await;
    assert_eq!(admitted, left, "Redis said {left} were left");
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_replies_and_resets_are_bounded_and_recovered_from() {
    if !common::redis_up("slow_replies_and_resets_are_bounded_and_recovered_from") {
        return;
    }
    let proxy = Proxy::start().await;
    let prefix = common::unique_prefix("proxy");
    let app = app(proxy.port, &prefix);
    let client = TestClient::new(&app);
    assert_eq!(common::admitted(&client, "/q", FROM, 3).await, 3);

    // Slow: every reply 250 ms late, past the 100 ms timeout.
    proxy.delay_ms.store(250, Ordering::SeqCst);
    let slow = while_faulty(&client, 10).await;
    proxy.delay_ms.store(0, Ordering::SeqCst);
    let back_from_slow = until_decided(&app, &client).await;
    let left = exact(&app, &client).await;
    // 30 − 3 − 1: the checks that timed out may still have run on Redis, never more.
    assert!(left <= 26, "{left}");

    // Resets: every connection dropped, and new ones refused for a while.
    assert!(
        app.state::<LimiterState>()
            .unwrap()
            .reset(Some("203.0.113.70"))
            .await
            .unwrap()
            >= 1
    );
    proxy.refuse.store(true, Ordering::SeqCst);
    proxy.reset();
    let reset = while_faulty(&client, 10).await;
    proxy.refuse.store(false, Ordering::SeqCst);
    let back_from_reset = until_decided(&app, &client).await;
    assert!(
        back_from_reset < Duration::from_secs(2),
        "{back_from_reset:?}"
    );
    let left = exact(&app, &client).await;
    assert_eq!(
        left, 29,
        "the reset key started over; one taken by the recovery check"
    );
    println!(
        "proxy: slowest check with 250 ms replies {slow:?}, decided again after {back_from_slow:?}; \
         slowest with connections reset {reset:?}, decided again after {back_from_reset:?}"
    );
}
