//! The Redis storage on the machine's Redis: the same decisions and headers as in-process
//! storage, every key with a TTL, foreign or clock-skewed values handled (G7), and
//! `limiter status` / `limiter reset` on both storages.

mod common;

use flagon::axum::response::IntoResponse;
use flagon::http::StatusCode;
use flagon::testing::{TestClient, run_cli};
use flagon::{App, Route};
use flagon_limiter::{Limit, Limiter, LimiterState, limit, shared_limit};

use common::{ok, peer};

async fn refuse() -> flagon::axum::response::Response {
    (StatusCode::UNAUTHORIZED, "no").into_response()
}

fn routes() -> Vec<Route> {
    vec![
        Route::get("/login", ok)
            .name("login")
            .with(limit("5/minute")),
        Route::get("/cost", ok)
            .name("cost")
            .with(Limit::new("10/minute").cost(3).decorator()),
        Route::get("/pm", ok)
            .and_put(ok)
            .name("pm")
            .with(Limit::new("2/minute").per_method().decorator()),
        Route::get("/a", ok)
            .name("a")
            .with(shared_limit("ab", "3/minute")),
        Route::get("/b", ok)
            .name("b")
            .with(shared_limit("ab", "3/minute")),
        Route::get("/plain", ok).name("plain"),
        Route::post("/deduct", refuse).name("deduct").with(
            Limit::new("2/minute")
                .deduct_when(|r| r.status() == 401)
                .decorator(),
        ),
        Route::get("/multi", ok)
            .name("multi")
            .with(limit("4/minute; 2/second")),
    ]
}

fn app(toml: &str) -> App {
    let mut b = common::builder(toml)
        .register(Limiter::new())
        .configure(|app| {
            app.csrf_exempt("pm");
            app.csrf_exempt("deduct");
            Ok(())
        });
    for r in routes() {
        b = b.route(r);
    }
    b.build().unwrap_or_else(|e| panic!("build: {e}"))
}

const SHARED: &str = "default = \"4/minute\"\nheaders_on_success = true\nlegacy_headers = true\n";

/// What a client sees of one response: status, Retry-After, RateLimit, RateLimit-Policy,
/// X-RateLimit-Limit/Remaining.
type Seen = (
    u16,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn script(client: &TestClient) -> Vec<Seen> {
    let from = peer("203.0.113.20:1000");
    let mut steps: Vec<(&str, &str)> = Vec::new();
    steps.extend(std::iter::repeat_n(("GET", "/login"), 7));
    steps.extend(std::iter::repeat_n(("GET", "/cost"), 5));
    steps.extend(std::iter::repeat_n(("GET", "/pm"), 3));
    steps.extend(std::iter::repeat_n(("PUT", "/pm"), 3));
    steps.extend([("GET", "/a"), ("GET", "/b"), ("GET", "/a"), ("GET", "/b")]);
    steps.extend(std::iter::repeat_n(("GET", "/plain"), 6));
    steps.extend(std::iter::repeat_n(("POST", "/deduct"), 4));
    steps.extend(std::iter::repeat_n(("GET", "/multi"), 4));
    let mut seen = Vec::new();
    for (method, path) in steps {
        let req = match method {
            "GET" => client.get(path),
            "PUT" => client.put(path),
            _ => client.post(path),
        };
        let res = req.peer(from).send().await;
        let h = |n: &str| res.header(n).map(str::to_owned);
        seen.push((
            res.status().as_u16(),
            h("retry-after"),
            h("ratelimit"),
            h("ratelimit-policy"),
            h("x-ratelimit-limit"),
            h("x-ratelimit-remaining"),
        ));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_decides_and_answers_as_in_process_storage_does() {
    if !common::redis_up("redis_decides_and_answers_as_in_process_storage_does") {
        return;
    }
    let prefix = common::unique_prefix("same");
    let memory = app(&format!("[limiter]\n{SHARED}"));
    let redis = app(&common::redis_toml(&prefix, SHARED));
    assert!(redis.state::<LimiterState>().unwrap().is_redis());
    let a = script(&TestClient::new(&memory)).await;
    let b = script(&TestClient::new(&redis)).await;
    for (i, (m, r)) in a.iter().zip(&b).enumerate() {
        assert_eq!(m, r, "step {i}: in-process {m:?}, Redis {r:?}");
    }
    assert_eq!(a.len(), b.len());
    let statuses: Vec<u16> = b.iter().map(|s| s.0).collect();
    assert_eq!(
        statuses,
        [
            200, 200, 200, 200, 200, 429, 429, // login 5/minute
            200, 200, 200, 429, 429, // cost 3 of 10/minute
            200, 200, 429, // GET /pm, 2/minute per method
            200, 200, 429, // PUT /pm: counted apart from GET
            200, 200, 200, 429, // shared ab 3/minute over /a and /b
            200, 200, 200, 200, 429, 429, // default 4/minute
            401, 401, 429, 429, // deduct_when 401, 2/minute
            200, 200, 429, 429, // 2/second inside 4/minute
        ],
        "{b:?}"
    );
    // /login's sixth: 5/minute is one request every 12 s.
    assert_eq!(b[5].1.as_deref(), Some("12"), "{:?}", b[5]);
    assert_eq!(b[5].2.as_deref(), Some("\"5/minute\";r=0;t=60"));
    assert_eq!(b[5].4.as_deref(), Some("5"));
    // Admitted with headers_on_success: 3 left after the second.
    assert_eq!(b[1].2.as_deref(), Some("\"5/minute\";r=3;t=24"));
    // Cost 3 of 10/minute: 10 − 9 = 1 left is too few for the fourth; 6 s per cell.
    assert_eq!(b[10].1.as_deref(), Some("12"), "{:?}", b[10]);
    // The 2/second limit refuses /multi's third, with a 1 s wait.
    assert_eq!(b[b.len() - 2].1.as_deref(), Some("1"));
    assert!(
        b[b.len() - 2]
            .2
            .as_deref()
            .unwrap()
            .starts_with("\"2/second\""),
        "{:?}",
        b[b.len() - 2]
    );

    // Every key has a TTL, never longer than its period.
    let keys = common::keys_under(&prefix);
    assert!(keys.len() >= 8, "{keys:?}");
    let mut con = common::raw_redis();
    for k in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(k).query(&mut con).unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{k}: PTTL {ttl}");
    }
}

/// G7: a TAT far ahead (a failover to a server whose clock is behind, or a foreign value)
/// never blocks longer than the period; a non-number or a key of another type is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_and_foreign_values_never_block_or_fail() {
    if !common::redis_up("skewed_and_foreign_values_never_block_or_fail") {
        return;
    }
    let prefix = common::unique_prefix("skew");
    let app = app(&common::redis_toml(&prefix, ""));
    let client = TestClient::new(&app);
    assert_eq!(
        common::status(&client, "/login", "198.51.100.3:1").await,
        200
    );
    let keys = common::keys_under(&prefix);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert!(key.ends_with(":198.51.100.3:d:login:*:5/minute"), "{key}");
    let mut con = common::raw_redis();
    // The stored TAT is Redis's own time plus one interval (12 s): decisions are on the
    // server's clock, so instances whose clocks disagree decide alike.
    let stored: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    let server_now = secs * 1_000_000 + micros;
    let tat: u64 = stored.parse().unwrap();
    let ahead = tat as i64 - server_now as i64;
    assert!(
        (10_000_000..=12_000_000).contains(&ahead),
        "TAT {tat} is {ahead} µs ahead of Redis TIME"
    );

    // A TAT one day ahead: clamped to a full bucket's, so the wait is 12 s, not a day.
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    let ahead = (secs + 86_400) * 1_000_000 + micros;
    redis::cmd("SET")
        .arg(key)
        .arg(ahead.to_string())
        .query::<()>(&mut con)
        .unwrap();
    let res = client
        .get("/login")
        .peer(peer("198.51.100.3:1"))
        .send()
        .await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.header("retry-after"), Some("12"));

    // Not a number: a fresh bucket.
    redis::cmd("SET")
        .arg(key)
        .arg("garbage")
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(
        common::status(&client, "/login", "198.51.100.3:1").await,
        200
    );
    // Another type: replaced by the limiter's string, with a TTL.
    redis::cmd("DEL").arg(key).query::<()>(&mut con).unwrap();
    redis::cmd("HSET")
        .arg(key)
        .arg("f")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    assert_eq!(
        common::status(&client, "/login", "198.51.100.3:1").await,
        200
    );
    let kind: String = redis::cmd("TYPE").arg(key).query(&mut con).unwrap();
    assert_eq!(kind, "string");
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
    assert!(ttl > 0 && ttl <= 12_000, "PTTL {ttl}");
    assert_eq!(app.state::<LimiterState>().unwrap().failed_over(), 0);
}

/// Requests go to `served`; the commands run on `app` (the same app in process; with Redis,
/// another instance, as a separate `app limiter …` process would be).
async fn status_and_reset(served: &App, app: &App, place: &str) {
    let client = TestClient::new(served);
    for _ in 0..3 {
        assert_eq!(common::status(&client, "/login", "192.0.2.8:1").await, 200);
    }
    assert_eq!(common::status(&client, "/plain", "192.0.2.8:1").await, 200);
    assert_eq!(common::status(&client, "/login", "192.0.2.9:1").await, 200);

    let out = run_cli(app, ["limiter", "status", "192.0.2.8", "192.0.2.77"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout;
    assert!(
        text.contains(&format!("192.0.2.8: 2 counters in {place}")),
        "{text}"
    );
    assert!(
        text.contains("  5/minute  decorator login  method *  remaining 2  full in 36s"),
        "{text}"
    );
    assert!(
        text.contains("  4/minute  route plain  method *  remaining 3  full in 15s"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "192.0.2.77: no counters in {place} (every bucket is full)"
        )),
        "{text}"
    );

    let out = run_cli(app, ["limiter", "reset", "192.0.2.8"]).await;
    assert_ne!(out.code, 0, "reset without --yes refuses");
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    let out = run_cli(app, ["limiter", "reset", "192.0.2.8", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "reset the counters of `192.0.2.8`: 2 counters removed in {place}"
        )),
        "{}",
        out.stdout
    );
    let left = app
        .state::<LimiterState>()
        .unwrap()
        .status("192.0.2.8")
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let other = app
        .state::<LimiterState>()
        .unwrap()
        .status("192.0.2.9")
        .await
        .unwrap();
    assert_eq!(other.len(), 1, "another key is untouched: {other:?}");
    assert_eq!(other[0].remaining, 4);
    // Full again: five more admitted.
    assert_eq!(
        common::admitted(&client, "/login", "192.0.2.8:1", 6).await,
        5
    );

    let out = run_cli(app, ["limiter", "reset", "--all", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("reset every counter: 2 counters removed"),
        "{}",
        out.stdout
    );
    assert!(
        app.state::<LimiterState>()
            .unwrap()
            .status("192.0.2.9")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn status_and_reset_in_process() {
    let app = app("[limiter]\ndefault = \"4/minute\"\n");
    status_and_reset(&app, &app, "this process").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_reset_on_redis() {
    if !common::redis_up("status_and_reset_on_redis") {
        return;
    }
    let prefix = common::unique_prefix("status");
    let toml = common::redis_toml(&prefix, "default = \"4/minute\"");
    let (served, cli) = (app(&toml), app(&toml));
    status_and_reset(&served, &cli, "Redis").await;
    assert!(common::keys_under(&prefix).is_empty());
}

#[test]
fn storage_settings_are_checked() {
    let err = common::build_error("[limiter]\nstorage = \"mongodb://x\"\n", vec![]);
    assert!(err.contains("limiter.storage"), "{err}");
    let err = common::build_error(
        "[limiter]\nstorage = \"redis://127.0.0.1:6379\"\n[limiter.redis]\nkey_prefix = \"\"\n",
        vec![],
    );
    assert!(err.contains("limiter.redis.key_prefix"), "{err}");
    let err = common::build_error(
        "[limiter]\nstorage = \"redis://127.0.0.1:6379\"\n[limiter.redis]\ncommand_timeout = \"0s\"\n",
        vec![],
    );
    assert!(err.contains("limiter.redis.command_timeout"), "{err}");
    let err = common::build_error("[limiter]\ninstances = 0\n", vec![]);
    assert!(err.contains("limiter.instances"), "{err}");
    let err = common::build_error("[limiter]\nfail_mode = \"maybe\"\n", vec![]);
    assert!(err.contains("fail_mode"), "{err}");
}

/// GCRA on Redis over time (G5): a burst, then one request per interval; hammered for a
/// second, never more than `burst + elapsed / interval` admitted. The key's TTL ends when
/// the bucket is full again (here 1 s after the last admitted request), never earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_admits_a_burst_then_the_steady_rate() {
    if !common::redis_up("redis_admits_a_burst_then_the_steady_rate") {
        return;
    }
    let prefix = common::unique_prefix("steady");
    let app = common::builder(&common::redis_toml(&prefix, ""))
        .register(Limiter::new())
        .route(Route::get("/s", ok).name("s").with(limit("10/second")))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let start = std::time::Instant::now();
    assert_eq!(
        common::admitted(&client, "/s", "192.0.2.30:1", 10).await,
        10
    );
    let res = client.get("/s").peer(peer("192.0.2.30:1")).send().await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.header("retry-after"),
        Some("1"),
        "a 100 ms wait, rounded up"
    );

    let mut admitted = 10;
    while start.elapsed() < std::time::Duration::from_secs(1) {
        admitted += common::admitted(&client, "/s", "192.0.2.30:1", 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let most = 10 + (elapsed / 0.1).floor() as usize;
    assert!(
        admitted <= most,
        "{admitted} admitted in {elapsed:.3} s (at most {most})"
    );
    assert!(
        admitted >= 14,
        "{admitted} admitted in {elapsed:.3} s: the steady rate is one per 100 ms"
    );
    let keys = common::keys_under(&prefix);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query(&mut common::raw_redis())
        .unwrap();
    assert!(
        (500..=1_000).contains(&ttl),
        "PTTL {ttl}: the bucket is full again ~1 s after the last admitted request"
    );
}

/// The storage URL is a secret: `config` never prints its password. Redis need not be up:
/// it is reached on first use.
#[tokio::test]
async fn the_storage_url_is_redacted() {
    let app = common::builder(
        "[limiter]\nstorage = \"redis://:hunter2@127.0.0.1:1/0\"\nfail_mode = \"open\"\n",
    )
    .register(Limiter::new())
    .build()
    .unwrap();
    let out = run_cli(&app, ["config"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("storage"), "{}", out.stdout);
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
}

#[test]
fn a_tls_url_fails_the_build_until_tls_is_built_in() {
    let err = common::build_error("[limiter]\nstorage = \"rediss://127.0.0.1:6380\"\n", vec![]);
    assert!(err.contains("limiter.storage"), "{err}");
}
