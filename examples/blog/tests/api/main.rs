//! The JSON API under `/api/v1`: tokens (issue, refresh rotation and reuse), posts CRUD with
//! permissions, 400 vs 422, pagination links, rate limits with headers, CSRF for cookie
//! requests only, and bad bearer tokens refused.

#[path = "../common/mod.rs"]
mod common;
mod posts;
mod protection;
mod tokens;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagon::App;
use flagon::testing::{TestClient, TestResponse};
use flagon_login::Role;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "the-api-tests-jwt-secret-0123456789abcdef";
const PASSWORD: &str = "correct horse battery";

/// The blog with a known JWT key (so tests can sign their own tokens) and `extra` settings
/// after `[login]`.
fn app_with(extra: &str) -> App {
    common::app_with(&format!("jwt_secret = \"{SECRET}\"\n{extra}"))
}

fn app() -> App {
    app_with("")
}

fn peer(n: u8) -> std::net::SocketAddr {
    format!("203.0.113.{n}:4000").parse().unwrap()
}

async fn token_response(client: &TestClient, email: &str, password: &str) -> TestResponse {
    client
        .post("/api/v1/auth/token")
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
}

/// An access and a refresh token for `email`.
async fn tokens(client: &TestClient, email: &str) -> (String, String) {
    let res = token_response(client, email, PASSWORD).await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let v: Value = res.json();
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn user_token(app: &App, client: &TestClient, name: &str, role: Role) -> (i64, String) {
    let email = format!("{name}@example.com");
    let id = common::account(app, &email, name, PASSWORD, role).await;
    (id, tokens(client, &email).await.0)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn create_post(client: &TestClient, token: &str, body: Value) -> TestResponse {
    client
        .post("/api/v1/posts")
        .header("authorization", &bearer(token))
        .json(&body)
        .send()
        .await
}

async fn create_published(client: &TestClient, token: &str, title: &str) -> i64 {
    let res = create_post(
        client,
        token,
        json!({ "title": title, "body": "Some *Markdown*.", "published": true }),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text());
    res.json::<Value>()["id"].as_i64().unwrap()
}

/// The problem+json body of `res`, checked to be one with `status`.
fn problem(res: &TestResponse, status: u16) -> Value {
    assert_eq!(res.status(), status, "{}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("application/problem+json"),
        "{}",
        res.text()
    );
    let v: Value = res.json();
    assert_eq!(v["status"], status);
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    v
}

/// An HS256 JWT of `claims` signed with `key`.
fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(format!("{h}.{c}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{c}.{sig}")
}

fn now() -> i64 {
    example_blog::models::now()
}
