//! G6: the limiter's Redis goes away (a private `redis-server` this test starts and kills,
//! and a server that accepts connections and never answers). In each `fail_mode` checks
//! answer within the timeout, as the mode says, every failure is logged (rate-limited), and
//! Redis decides again within seconds of coming back, without a restart. The shared server
//! is never touched.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flagon::testing::TestClient;
use flagon::tracing;
use flagon::{App, Route};
use flagon_limiter::{FailMode, Limit, Limiter, LimiterState, limit};

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `redis-server` on `port`; `None` (after one printed line) if it is not installed.
fn start_redis(port: u16) -> Option<Server> {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("FLAGON_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("redis-server could not be started: {e}")
        }
        Err(e) => {
            println!("skipping the outage test: redis-server could not be started: {e}");
            return None;
        }
    };
    let server = Server { child };
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200))
            && redis::cmd("PING").query::<String>(&mut con).is_ok()
        {
            return Some(server);
        }
        assert!(
            Instant::now() < deadline,
            "the private redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn raw(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn app(port: u16, mode: &str) -> App {
    let toml = format!(
        "[limiter]\nstorage = \"redis://127.0.0.1:{port}\"\nfail_mode = \"{mode}\"\ninstances = 4\n\
         [limiter.redis]\nkey_prefix = \"outage:\"\ncommand_timeout = \"100ms\"\n\
         connect_timeout = \"100ms\"\nbreaker_failures = 3\nbreaker_cooldown = \"300ms\"\n\
         [health]\ncache_for = \"0s\"\n"
    );
    common::builder(&toml)
        .register(Limiter::new())
        .route(Route::get("/q", common::ok).name("q").with(limit("8/hour")))
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"))
}

/// The 100 ms timeout plus scheduling slack.
const BOUND: Duration = Duration::from_millis(400);
const FROM: &str = "203.0.113.60:1";

fn failed_over(app: &App) -> u64 {
    app.state::<LimiterState>().unwrap().failed_over()
}

/// 20 requests while Redis cannot decide: each within the bound; returns their statuses,
/// the slowest, and the slowest once the breaker is open (after the first 5).
async fn while_down(client: &TestClient) -> (Vec<u16>, Duration, Duration) {
    let (mut statuses, mut slowest, mut open_slowest) =
        (Vec::new(), Duration::ZERO, Duration::ZERO);
    for i in 0..20 {
        let t = Instant::now();
        let res = client
            .get("/q")
            .peer(common::peer(FROM))
            .header("accept", "application/json")
            .send()
            .await;
        let took = t.elapsed();
        assert!(took < BOUND, "request {i} took {took:?}");
        slowest = slowest.max(took);
        if i >= 5 {
            open_slowest = open_slowest.max(took);
        }
        statuses.push(res.status().as_u16());
        if res.status() == 503 {
            assert_eq!(
                res.header("retry-after"),
                Some("1"),
                "the breaker's cooldown, rounded up"
            );
            assert_eq!(res.header("cache-control"), Some("no-store"));
            assert_eq!(res.header("content-type"), Some("application/problem+json"));
            assert!(res.text().contains("\"status\":503"), "{}", res.text());
        }
    }
    (statuses, slowest, open_slowest)
}

/// After Redis is back: requests until one is decided by Redis (no fail-over counted);
/// returns how long that took.
async fn recovery(app: &App, client: &TestClient) -> Duration {
    let back = Instant::now();
    loop {
        let before = failed_over(app);
        let s = common::status(client, "/q", FROM).await;
        if failed_over(app) == before {
            assert_eq!(s, 200, "Redis restarted empty: the quota starts over");
            return back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "Redis never decided again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(client: &TestClient) -> (u16, flagon::serde_json::Value) {
    let res = client.get("/readyz").send().await;
    let status = res.status().as_u16();
    (status, flagon::serde_json::from_str(&res.text()).unwrap())
}

/// A writer the test's log lines go to.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Kills the server after two decided requests, checks `mode` while it is down, restarts it
/// and waits for recovery. Returns the statuses while down.
async fn outage(mode: &str, log: &Log) -> Option<Vec<u16>> {
    let port = free_port();
    let server = start_redis(port)?;
    let app = app(port, mode);
    let client = TestClient::new(&app);
    assert_eq!(common::status(&client, "/q", FROM).await, 200);
    // The script cache emptied (a restart or SCRIPT FLUSH): EVALSHA fails with NOSCRIPT and
    // the script is loaded again, within the same check.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut raw(port))
        .unwrap();
    assert_eq!(common::status(&client, "/q", FROM).await, 200);
    assert_eq!(failed_over(&app), 0, "Redis decided both");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("outage:*")
        .query(&mut raw(port))
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (status, body) = readyz(&client).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"]["limiter"]["detail"]["reachable"], true,
        "{body}"
    );

    drop(server); // SIGKILL: connections reset, new ones refused
    let (statuses, slowest, open_slowest) = while_down(&client).await;
    assert!(
        failed_over(&app) >= 20,
        "every check while down was decided by fail_mode"
    );
    assert!(
        open_slowest < Duration::from_millis(50),
        "the open breaker answers at once: {open_slowest:?}"
    );
    let (status, body) = readyz(&client).await;
    assert_eq!(
        body["checks"]["limiter"]["detail"]["reachable"], false,
        "{body}"
    );
    assert_eq!(
        body["checks"]["limiter"]["detail"]["fail_mode"], mode,
        "{body}"
    );
    if mode == "closed" {
        assert_eq!(
            status, 503,
            "closed: every limited request fails, so does readiness: {body}"
        );
    } else {
        assert_eq!(status, 200, "{mode}: the app serves without Redis: {body}");
    }
    let lines = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let warned = lines.matches("Redis limiter call failed").count();
    assert_eq!(
        warned, 1,
        "one warning per 10 s, the rest held back:\n{lines}"
    );
    assert!(lines.contains("Redis limiter circuit open"), "{lines}");

    let _server = start_redis(port).expect("restarted");
    let took = recovery(&app, &client).await;
    assert!(
        took < Duration::from_secs(2),
        "Redis decided again after {took:?}"
    );
    let (status, body) = readyz(&client).await;
    assert_eq!(status, 200, "{body}");
    println!(
        "fail_mode={mode}: while down, slowest check {slowest:?}, slowest with the breaker open \
         {open_slowest:?}; Redis decided again {took:?} after it restarted"
    );
    Some(statuses)
}

fn logged() -> (Log, tracing::subscriber::DefaultGuard) {
    let log = Log::default();
    let writer = log.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (log, tracing::subscriber::set_default(sub))
}

#[tokio::test]
async fn fail_open_admits_and_warns() {
    let (log, _guard) = logged();
    let Some(statuses) = outage("open", &log).await else {
        return;
    };
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

#[tokio::test]
async fn fail_closed_answers_503_with_retry_after() {
    let (log, _guard) = logged();
    let Some(statuses) = outage("closed", &log).await else {
        return;
    };
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
}

#[tokio::test]
async fn fail_local_divides_the_quota_by_the_instances() {
    let (log, _guard) = logged();
    let Some(statuses) = outage("local", &log).await else {
        return;
    };
    // 8/hour over 4 instances: this one admits 2 on its own.
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(admitted, 2, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_redis_that_never_answers_is_cut_off_by_the_timeout() {
    // Accepts connections and reads nothing back: every check would hang without a timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let app = app(port, "closed");
    let client = TestClient::new(&app);
    let (statuses, slowest, open_slowest) = while_down(&client).await;
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    assert!(
        open_slowest < Duration::from_millis(50),
        "open breaker: {open_slowest:?}"
    );
    println!("Redis silent: slowest check {slowest:?}, with the breaker open {open_slowest:?}");
    hold.abort();
}

/// A decorator's own `fail_mode` overrides the app's: here the app fails open, the login
/// route and a shared scope fail closed.
#[tokio::test]
async fn a_limit_can_fail_its_own_way() {
    let port = free_port();
    let Some(server) = start_redis(port) else {
        return;
    };
    let toml = format!(
        "[limiter]\nstorage = \"redis://127.0.0.1:{port}\"\nfail_mode = \"open\"\n\
         [limiter.redis]\nkey_prefix = \"own:\"\ncommand_timeout = \"100ms\"\n"
    );
    let app = common::builder(&toml)
        .register(Limiter::new())
        .route(Route::get("/q", common::ok).name("q").with(limit("8/hour")))
        .route(
            Route::get("/login", common::ok).name("login").with(
                Limit::new("5/minute")
                    .fail_mode(FailMode::Closed)
                    .decorator(),
            ),
        )
        .route(
            Route::get("/up", common::ok).name("up").with(
                Limit::new("5/minute")
                    .shared("uploads")
                    .fail_mode(FailMode::Closed)
                    .decorator(),
            ),
        )
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    for path in ["/q", "/login", "/up"] {
        assert_eq!(common::status(&client, path, FROM).await, 200, "{path}");
    }
    drop(server);
    for _ in 0..3 {
        assert_eq!(common::status(&client, "/q", FROM).await, 200);
        assert_eq!(common::status(&client, "/login", FROM).await, 503);
        assert_eq!(common::status(&client, "/up", FROM).await, 503);
    }
}
