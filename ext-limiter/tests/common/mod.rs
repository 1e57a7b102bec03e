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
