//! CSRF protection driven through whole apps: each refusal reason, exemptions, header
//! tokens, rotation, and form bodies reaching the handler intact.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use axum::Form;
use flagon::csrf::CsrfToken;
use flagon::session::Session;
use flagon::testing::{TestClient, TestResponse, testing_config_toml};
use flagon::{App, Blueprint, Route};
use serde::Deserialize;

#[derive(Deserialize)]
struct Note {
    text: String,
}

async fn token(token: CsrfToken) -> String {
    token.to_string()
}

async fn submit(Form(note): Form<Note>) -> String {
    format!("saved {}", note.text)
}

async fn api() -> &'static str {
    "api ok"
}

async fn rotate(session: Session) -> &'static str {
    flagon::csrf::rotate_token(&session);
    "rotated"
}

async fn login(session: Session) -> &'static str {
    session.rotate_id();
    "logged in"
}

fn app() -> App {
    let api_bp = Blueprint::new("api")
        .url_prefix("/api")
        .route(Route::post("/items", api).name("items"));
    App::builder()
        .settings(testing_config_toml(""))
        .route(Route::get("/token", token))
        .route(Route::post("/submit", submit))
        .route(Route::post("/webhook", api).name("webhook"))
        .route(Route::post("/rotate", rotate))
        .route(Route::get("/login", login))
        .blueprint(api_bp)
        .configure(|s| {
            s.csrf_exempt("webhook");
            s.csrf_exempt_blueprint("api");
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn client_with_token(app: &App) -> (TestClient, String) {
    let client = TestClient::new(app);
    let token = client.get("/token").send().await.text();
    assert_eq!(token.len(), 96);
    (client, token)
}

async fn post_form(client: &TestClient, token: Option<&str>) -> TestResponse {
    let mut fields = vec![("text", "hello")];
    if let Some(t) = token {
        fields.push(("csrf_token", t));
    }
    client.post("/submit").form(&fields).send().await
}

fn assert_refused(res: &TestResponse, reason: &str) {
    assert_eq!(res.status(), 403, "{}", res.text());
    assert!(
        res.text().contains(reason),
        "expected `{reason}` in {}",
        res.text()
    );
}

#[tokio::test]
async fn a_valid_form_token_passes_and_the_handler_still_reads_the_form() {
    let app = app();
    let (client, token) = client_with_token(&app).await;
    let res = post_form(&client, Some(&token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "saved hello");
    // Tokens are reusable until rotated.
    assert_eq!(post_form(&client, Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn a_missing_token_is_refused() {
    let app = app();
    let (client, _) = client_with_token(&app).await;
    assert_refused(&post_form(&client, None).await, "missing");
    let res = client
        .post("/submit")
        .json(&serde_json::json!({"text": "x"}))
        .send()
        .await;
    assert_refused(&res, "missing");
    // No session at all.
    assert_refused(&post_form(&TestClient::new(&app), None).await, "missing");
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let app = app();
    let (client, token) = client_with_token(&app).await;
    let mut forged = token.clone().into_bytes();
    forged[70] = if forged[70] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    assert_refused(&post_form(&client, Some(&forged)).await, "does not belong");
    let mut garbage = token.into_bytes();
    garbage[5] = if garbage[5] == b'0' { b'1' } else { b'0' };
    let garbage = String::from_utf8(garbage).unwrap();
    assert_refused(&post_form(&client, Some(&garbage)).await, "invalid");
    assert_refused(&post_form(&client, Some("abc")).await, "invalid");
    assert_refused(&post_form(&client, Some(&"z".repeat(96))).await, "invalid");
}

#[tokio::test]
async fn another_sessions_token_is_refused() {
    let app = app();
    let (alice, _) = client_with_token(&app).await;
    let (_, mallory_token) = client_with_token(&app).await;
    assert_refused(
        &post_form(&alice, Some(&mallory_token)).await,
        "does not belong",
    );
    // A visitor without a session cannot use someone's token either.
    let (_, token) = client_with_token(&app).await;
    assert_refused(
        &post_form(&TestClient::new(&app), Some(&token)).await,
        "does not belong",
    );
}

#[tokio::test]
async fn a_cross_origin_request_is_refused_even_with_a_token() {
    let app = app();
    let (client, token) = client_with_token(&app).await;
    let fields = [("text", "x"), ("csrf_token", token.as_str())];
    let res = client
        .post("/submit")
        .header("host", "app.example")
        .header("origin", "https://evil.example")
        .form(&fields)
        .send()
        .await;
    assert_refused(&res, "another origin");
    let res = client
        .post("/submit")
        .header("sec-fetch-site", "cross-site")
        .form(&fields)
        .send()
        .await;
    assert_refused(&res, "another origin");
    let res = client
        .post("/submit")
        .header("host", "app.example")
        .header("origin", "https://app.example")
        .header("sec-fetch-site", "same-origin")
        .form(&fields)
        .send()
        .await;
    assert_eq!(res.status(), 200, "same origin passes");
}

#[tokio::test]
async fn exempt_routes_and_blueprints_need_no_token() {
    let app = app();
    let client = TestClient::new(&app);
    assert_eq!(client.post("/webhook").send().await.status(), 200);
    let res = client.post("/api/items").send().await;
    assert_eq!((res.status().as_u16(), res.text()), (200, "api ok".into()));
    assert_eq!(
        client.post("/submit").send().await.status(),
        403,
        "others still checked"
    );
}

#[tokio::test]
async fn a_header_token_passes() {
    let app = app();
    let (client, token) = client_with_token(&app).await;
    let res = client
        .post("/submit")
        .header("x-csrf-token", &token)
        .form(&[("text", "via header")])
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "saved via header");
    let res = client
        .post("/submit")
        .header("x-csrf-token", "nope")
        .send()
        .await;
    assert_refused(&res, "invalid");
}

#[tokio::test]
async fn rotating_the_token_retires_old_ones() {
    let app = app();
    let (client, token) = client_with_token(&app).await;
    let res = client
        .post("/rotate")
        .header("x-csrf-token", &token)
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_refused(&post_form(&client, Some(&token)).await, "does not belong");
    let fresh = client.get("/token").send().await.text();
    assert_eq!(post_form(&client, Some(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn safe_methods_are_not_checked() {
    let app = app();
    let client = TestClient::new(&app);
    assert_eq!(client.get("/token").send().await.status(), 200);
}

#[test]
fn an_exemption_that_matches_nothing_fails_the_build() {
    let err = App::builder()
        .settings(testing_config_toml(""))
        .route(Route::post("/webhook", api).name("webhook"))
        .configure(|s| {
            s.csrf_exempt("web_hook");
            s.csrf_exempt_blueprint("apii");
            Ok(())
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("endpoint `web_hook`"), "{err}");
    assert!(err.contains("blueprint `apii`"), "{err}");
}

#[tokio::test]
async fn a_token_from_before_login_is_refused_after_the_id_rotates() {
    let app = app();
    let (client, before) = client_with_token(&app).await;
    assert_eq!(post_form(&client, Some(&before)).await.status(), 200);
    assert_eq!(client.get("/login").send().await.text(), "logged in");
    let res = post_form(&client, Some(&before)).await;
    assert_eq!(res.status(), 403, "{}", res.text());
    let after = client.get("/token").send().await.text();
    assert_eq!(post_form(&client, Some(&after)).await.status(), 200);
}

#[tokio::test]
async fn an_http2_request_without_host_is_checked_against_its_authority() {
    let app = app();
    let (client, token) = client_with_token(&app).await;
    let same = client
        .post("http://example.com/submit")
        .header("origin", "http://example.com")
        .form(&[("text", "hello"), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(same.status(), 200, "{}", same.text());
    let other = client
        .post("http://example.com/submit")
        .header("origin", "http://evil.example")
        .form(&[("text", "hello"), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_refused(&other, "another origin");
}

fn multipart(fields: &[(&str, &str)]) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--XBOUNDARY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str("--XBOUNDARY--\r\n");
    body
}

#[tokio::test]
async fn an_upload_form_carries_its_token_in_a_multipart_field() {
    let app = App::builder()
        .settings(testing_config_toml(""))
        .route(Route::get("/token", token))
        .route(
            Route::post("/upload", |body: bytes::Bytes| async move {
                format!("got {} bytes", body.len())
            })
            .name("upload"),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (client, token) = client_with_token(&app).await;
    let good = multipart(&[("csrf_token", &token), ("file", "hello world")]);
    let res = client
        .post("/upload")
        .header("content-type", "multipart/form-data; boundary=XBOUNDARY")
        .body(good.clone())
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(
        res.text(),
        format!("got {} bytes", good.len()),
        "the body reaches the handler whole"
    );
    let res = client
        .post("/upload")
        .header("content-type", "multipart/form-data; boundary=XBOUNDARY")
        .body(multipart(&[("file", "hello world")]))
        .send()
        .await;
    assert_refused(&res, "missing");
}

#[tokio::test]
async fn null_malformed_and_same_site_origins_are_refused() {
    let app = app();
    let (client, token) = client_with_token(&app).await;
    let send = |name: &'static str, value: &'static str| {
        let client = client.clone();
        let token = token.clone();
        async move {
            client
                .post("/submit")
                .header("host", "example.com")
                .header(name, value)
                .form(&[("text", "hello"), ("csrf_token", token.as_str())])
                .send()
                .await
        }
    };
    assert_refused(&send("origin", "null").await, "another origin");
    assert_refused(&send("origin", "not a url").await, "another origin");
    assert_refused(&send("sec-fetch-site", "same-site").await, "another origin");
    assert_eq!(send("sec-fetch-site", "same-origin").await.status(), 200);
    assert_eq!(send("origin", "http://example.com").await.status(), 200);
}
