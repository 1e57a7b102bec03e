//! Helpers the test files share.
#![allow(dead_code)] // each test file uses some of them

use std::net::SocketAddr;

use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, AppBuilder, Route};
use flagon_limiter::Limiter;

pub async fn ok() -> &'static str {
    "ok"
}

pub fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn builder(toml: &str) -> AppBuilder {
    App::builder().settings(testing_config_toml(toml))
}

pub async fn status(client: &TestClient, path: &str, from: &str) -> u16 {
    client
        .get(path)
        .peer(peer(from))
        .send()
        .await
        .status()
        .as_u16()
}

/// How many of `n` GETs of `path` from `from` were admitted.
pub async fn admitted(client: &TestClient, path: &str, from: &str, n: usize) -> usize {
    let mut count = 0;
    for _ in 0..n {
        let s = status(client, path, from).await;
        assert!(s == 200 || s == 429, "unexpected status {s}");
        count += usize::from(s == 200);
    }
    count
}

/// The build error of an app with the limiter, `toml` and `routes`.
pub fn build_error(toml: &str, routes: Vec<Route>) -> String {
    let mut b = builder(toml).register(Limiter::new());
    for r in routes {
        b = b.route(r);
    }
    b.build().unwrap_err().to_string()
}

pub const REDIS: &str = "127.0.0.1:6379";

/// Whether the shared Redis answers; prints one line and returns `false` when it does not,
/// and panics instead when `FLAGON_TEST_REQUIRE_SERVICES=1`.
pub fn redis_up(test: &str) -> bool {
    let addr: SocketAddr = REDIS.parse().unwrap();
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500)).is_ok() {
        return true;
    }
    if std::env::var("FLAGON_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: Redis at {REDIS} is unreachable and FLAGON_TEST_REQUIRE_SERVICES=1");
    }
    println!("skipping {test}: Redis at {REDIS} is unreachable");
    false
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("flagon-test:limiter:{test}:{}:{nanos}:", std::process::id())
}

/// `[limiter]` on the shared Redis under `prefix` (fail_mode closed, so a check Redis did
/// not decide shows as a 503, never as a silent pass), then `extra` lines in `[limiter]`.
pub fn redis_toml(prefix: &str, extra: &str) -> String {
    format!(
        "[limiter]\nstorage = \"redis://{REDIS}\"\nfail_mode = \"closed\"\n{extra}\n\
         [limiter.redis]\nkey_prefix = \"{prefix}\"\ncommand_timeout = \"5s\"\n"
    )
}

/// A plain connection to the shared Redis, to look at or plant raw entries.
pub fn raw_redis() -> redis::Connection {
    redis::Client::open(format!("redis://{REDIS}"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Every key under `prefix` on the shared Redis.
pub fn keys_under(prefix: &str) -> Vec<String> {
    let mut con = raw_redis();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap()
}
