//! CSRF protection driven through whole apps: each refusal reason, exemptions, header
//! tokens, rotation, and form bodies reaching the handler intact.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Form;
use flagon::csrf::CsrfToken;
use flagon::session::{
    Changes, Id, MemoryStore, Record, Session, SessionStore, StoreFuture, Updated,
};
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
async fn safe_methods_are_not_checked_on_a_route_that_also_takes_post() {
    let app = App::builder()
        .settings(testing_config_toml(""))
        .route(
            Route::get("/form", || async { "the form" })
                .and_post(submit)
                .name("form"),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    let res = client.get("/form").send().await;
    assert_eq!(
        (res.status().as_u16(), res.text()),
        (200, "the form".to_owned())
    );
    // The same route checks its POST: the guard is there, and lets the GET through.
    let res = client.post("/form").form(&[("text", "x")]).send().await;
    assert_refused(&res, "missing");
}

#[tokio::test]
async fn a_blueprint_exemption_goes_by_membership_not_by_name() {
    let api_bp = Blueprint::new("api")
        .url_prefix("/api")
        .route(Route::post("/items", api).name("items"))
        .blueprint(
            Blueprint::new("v2")
                .url_prefix("/v2")
                .route(Route::post("/items", api).name("items")),
        );
    let app = App::builder()
        .settings(testing_config_toml(""))
        .blueprint(api_bp)
        // Not in the blueprint, though its name starts with `api.`.
        .route(Route::post("/transfer", api).name("api.transfer"))
        .route(Route::post("/apix", api).name("apix.items"))
        .configure(|s| {
            s.csrf_exempt_blueprint("api");
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    assert_eq!(client.post("/api/items").send().await.status(), 200);
    assert_eq!(
        client.post("/api/v2/items").send().await.status(),
        200,
        "child blueprints too"
    );
    assert_refused(&client.post("/transfer").send().await, "missing");
    assert_refused(&client.post("/apix").send().await, "missing");
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

/// A memory store that counts calls, to see that anonymous forms cost no store record.
struct CountingStore {
    inner: MemoryStore,
    calls: AtomicUsize,
}

impl CountingStore {
    fn count<'a, T: Send + 'a>(&'a self, fut: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        fut
    }
}

impl SessionStore for CountingStore {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        self.count(self.inner.create(record))
    }
    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        self.count(self.inner.update(id, changes))
    }
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        self.count(self.inner.load(id))
    }
    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        self.count(self.inner.delete(id))
    }
}

async fn fill(session: Session) -> Result<&'static str, flagon::HttpError> {
    session.insert("visits", 1u64)?;
    Ok("filled")
}

#[tokio::test]
async fn an_anonymous_form_costs_no_store_record_and_survives_eviction() {
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(8),
        calls: AtomicUsize::new(0),
    });
    let s = store.clone();
    let app = App::builder()
        .settings(testing_config_toml("[session]\nstore = \"counting\"\n"))
        .route(Route::get("/token", token))
        .route(Route::post("/submit", submit))
        .route(Route::get("/fill", fill))
        .configure(move |setup| {
            let s = s.clone();
            setup.session_store("counting", move |_| Ok(s.clone() as Arc<dyn SessionStore>));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let visitor = TestClient::new(&app);
    let res = visitor.get("/token").send().await;
    let token = res.text();
    let cookies: Vec<&str> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("__Host-csrf="), "{cookies:?}");
    assert!(cookies[0].contains("HttpOnly") && cookies[0].contains("Secure"));
    assert_eq!(res.header("vary"), Some("Cookie"));
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        0,
        "no store call for the form"
    );
    // Other visitors fill the store far past its capacity, evicting what it held.
    for _ in 0..40 {
        TestClient::new(&app).get("/fill").send().await;
    }
    let res = visitor
        .post("/submit")
        .form(&[("text", "still here"), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(res.text(), "saved still here");
}

async fn sign_in(session: Session) -> Result<&'static str, flagon::HttpError> {
    session.insert("user", "ada")?;
    session.rotate_id();
    Ok("signed in")
}

async fn sign_out(session: Session) -> &'static str {
    session.delete();
    "signed out"
}

#[tokio::test]
async fn tokens_of_a_signed_in_session_are_refused_after_rotation_and_logout() {
    let app = App::builder()
        .settings(testing_config_toml(""))
        .route(Route::get("/token", token))
        .route(Route::post("/submit", submit))
        .route(Route::get("/sign-in", sign_in))
        .route(Route::get("/sign-out", sign_out))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    client.get("/sign-in").send().await;
    let signed_in = client.get("/token").send().await.text();
    assert_eq!(post_form(&client, Some(&signed_in)).await.status(), 200);
    // Signing in again (another user, say) rotates the id.
    assert_eq!(client.get("/sign-in").send().await.text(), "signed in");
    assert_refused(
        &post_form(&client, Some(&signed_in)).await,
        "does not belong",
    );
    let fresh = client.get("/token").send().await.text();
    assert_eq!(post_form(&client, Some(&fresh)).await.status(), 200);
    client.get("/sign-out").send().await;
    assert_refused(&post_form(&client, Some(&fresh)).await, "does not belong");
}

#[tokio::test]
async fn the_origin_check_compares_the_scheme_too() {
    let toml = "[server]\ntrusted_proxies = [\"10.0.0.1\"]\n";
    let app = App::builder()
        .settings(testing_config_toml(toml))
        .route(Route::get("/token", token))
        .route(Route::post("/submit", submit))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (client, token) = client_with_token(&app).await;
    let post = |origin: &'static str, proto: Option<&'static str>, peer: &'static str| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let mut req = client
                .post("/submit")
                .peer(peer.parse().unwrap())
                .header("host", "app.example")
                .header("origin", origin);
            if let Some(p) = proto {
                req = req.header("x-forwarded-proto", p);
            }
            req.form(&[("text", "x"), ("csrf_token", token.as_str())])
                .send()
                .await
        }
    };
    // The server speaks plain http: an https page posting to it is another origin...
    assert_refused(
        &post("https://app.example", None, "10.0.0.9:1").await,
        "another origin",
    );
    assert_eq!(
        post("http://app.example", None, "10.0.0.9:1")
            .await
            .status(),
        200
    );
    assert_eq!(
        post("http://app.example:80", None, "10.0.0.9:1")
            .await
            .status(),
        200
    );
    // ...unless a trusted proxy says the request came over https.
    assert_eq!(
        post("https://app.example", Some("https"), "10.0.0.1:1")
            .await
            .status(),
        200
    );
    assert_refused(
        &post("https://app.example", Some("https"), "10.0.0.9:1").await,
        "another origin",
    );
    assert_refused(
        &post("http://app.example", Some("https"), "10.0.0.1:1").await,
        "another origin",
    );
}

#[tokio::test]
async fn a_configured_public_origin_is_the_apps_own() {
    let toml = "[csrf]\npublic_origin = \"https://app.example\"\n";
    let app = App::builder()
        .settings(testing_config_toml(toml))
        .route(Route::get("/token", token))
        .route(Route::post("/submit", submit))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (client, token) = client_with_token(&app).await;
    for (origin, status) in [("https://app.example", 200), ("http://app.example", 403)] {
        let res = client
            .post("/submit")
            .header("host", "10.1.2.3:5000")
            .header("origin", origin)
            .form(&[("text", "x"), ("csrf_token", token.as_str())])
            .send()
            .await;
        assert_eq!(res.status(), status, "{origin}: {}", res.text());
    }
}

#[tokio::test]
async fn a_foreign_non_ascii_cookie_does_not_hide_the_csrf_cookie() {
    use http_body_util::BodyExt;

    let app = app();
    let (client, token) = client_with_token(&app).await;
    let secret = client
        .cookie("__Host-csrf")
        .expect("the browser's CSRF cookie");
    // What a browser sends once a parent domain planted `lang=français` (UTF-8 bytes).
    let header = format!("lang=fran\u{e7}ais; __Host-csrf={secret}");
    let body = format!("text=hello&csrf_token={token}");
    let req = http::Request::post("/submit")
        .header(http::header::HOST, "localhost")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(header.as_bytes()).unwrap(),
        )
        .body(axum::body::Body::from(body))
        .unwrap();
    let res = tower::ServiceExt::oneshot(app.service(), req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], b"saved hello");
}

#[tokio::test]
async fn a_bearer_request_without_cookies_needs_no_token_but_one_with_cookies_does() {
    let app = app();
    let client = TestClient::new(&app);
    let res = client
        .post("/submit")
        .header("authorization", "Bearer abc.def.ghi")
        .form(&[("text", "api")])
        .send()
        .await;
    assert_eq!(
        (res.status().as_u16(), res.text()),
        (200, "saved api".into())
    );
    // Basic auth is resent by browsers on their own: not exempt.
    let res = client
        .post("/submit")
        .header("authorization", "Basic YTpi")
        .form(&[("text", "x")])
        .send()
        .await;
    assert_eq!(res.status(), 403);
    // With a cookie (ambient credentials) the token is required again.
    let res = client
        .post("/submit")
        .header("authorization", "Bearer abc.def.ghi")
        .header("cookie", "__Host-session=anything")
        .form(&[("text", "x")])
        .send()
        .await;
    assert_eq!(res.status(), 403);
    // Still origin-checked.
    let res = client
        .post("/submit")
        .header("authorization", "Bearer abc.def.ghi")
        .header("sec-fetch-site", "cross-site")
        .form(&[("text", "x")])
        .send()
        .await;
    assert_eq!(res.status(), 403);
}
