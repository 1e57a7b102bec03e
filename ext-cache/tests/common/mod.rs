//! Shared by the integration tests: apps built from TOML, Redis reachability, prefixes.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flagon::App;
use flagon_cache::{Cache, CacheHandle, Caches};

pub const REDIS: &str = "127.0.0.1:6379";

pub fn app(toml: &str) -> App {
    App::builder()
        .settings(flagon::testing::testing_config_toml(toml))
        .register(Cache::new())
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"))
}

pub fn build_error(toml: &str) -> String {
    match App::builder()
        .settings(flagon::testing::testing_config_toml(toml))
        .register(Cache::new())
        .build()
    {
        Ok(_) => panic!("expected a build error for:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

pub fn default_cache(app: &App) -> CacheHandle {
    Caches::of(app.handle())
        .expect("cache registered")
        .default()
        .clone()
}

/// Whether the shared Redis answers; prints one line and returns `false` when it does not,
/// and panics instead when `FLAGON_TEST_REQUIRE_SERVICES=1`.
pub fn redis_up(test: &str) -> bool {
    let addr: SocketAddr = REDIS.parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
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
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("flagon-test:{test}:{}:{nanos}:", std::process::id())
}

pub fn redis_toml(prefix: &str, extra: &str) -> String {
    format!(
        "[cache]\nbackend = \"redis\"\n{extra}\n[cache.redis]\nurl = \"redis://{REDIS}\"\nkey_prefix = \"{prefix}\"\n"
    )
}

/// A plain connection to the shared Redis, to look at or plant raw entries.
pub fn raw_redis() -> redis::Connection {
    redis::Client::open(format!("redis://{REDIS}"))
        .unwrap()
        .get_connection()
        .unwrap()
}
