//! The JSON API under `/api/v1`: tokens (issue, refresh rotation and reuse), posts CRUD with
//! permissions, 400 vs 422, pagination links, rate limits with headers, CSRF for cookie
//! requests only, and bad bearer tokens refused.

mod common;

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

#[tokio::test]
async fn a_token_pair_is_issued_for_the_right_password_and_authenticates_writes() {
    let app = app();
    let client = common::client(&app).await;
    common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    // The email is compared lower-cased and trimmed, as the web login does.
    let res = token_response(&client, " Ada@Example.com ", PASSWORD).await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let v: Value = res.json();
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["token_type"], "Bearer");
    let access = v["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "a JWT: {access}");
    assert!(v["refresh_token"].as_str().unwrap().starts_with("r."));

    let res = create_post(
        &client,
        access,
        json!({ "title": "Hello API", "body": "From **curl**.", "published": true, "tags": ["Rust", "api"], "category": "News" }),
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text());
    let post: Value = res.json();
    let id = post["id"].as_i64().unwrap();
    assert_eq!(res.location(), Some(format!("/api/v1/posts/{id}").as_str()));
    assert_eq!(post["author"], "ada");
    assert_eq!(post["slug"], "hello-api");
    assert_eq!(post["status"], "published");
    assert_eq!(post["category"], "News");
    assert_eq!(post["tags"], json!(["api", "rust"]));
    assert!(
        post["body_html"]
            .as_str()
            .unwrap()
            .contains("<strong>curl</strong>")
    );
    let shown: Value = client
        .get(&format!("/api/v1/posts/{id}"))
        .send()
        .await
        .json();
    assert_eq!(shown["title"], "Hello API");
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_same_answer() {
    let app = app();
    let client = common::client(&app).await;
    common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    let wrong = token_response(&client, "ada@example.com", "not the password").await;
    let unknown = token_response(&client, "nobody@example.com", PASSWORD).await;
    let a = problem(&wrong, 401);
    let b = problem(&unknown, 401);
    assert_eq!(a, b);
    assert_eq!(a["code"], "invalid-credentials");
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    assert_eq!(unknown.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn unverified_and_deactivated_accounts_get_no_token() {
    let app = app();
    let client = common::client(&app).await;
    let db = common::db(&app);
    let unverified = common::account(&app, "new@example.com", "new", PASSWORD, Role::Author).await;
    let gone = common::account(&app, "gone@example.com", "gone", PASSWORD, Role::Author).await;
    db.query("UPDATE users SET verified_at = NULL WHERE id = ?")
        .bind(unverified)
        .execute(&*db)
        .await
        .unwrap();
    db.query("UPDATE users SET active = 0 WHERE id = ?")
        .bind(gone)
        .execute(&*db)
        .await
        .unwrap();
    for email in ["new@example.com", "gone@example.com"] {
        let v = problem(&token_response(&client, email, PASSWORD).await, 403);
        assert_eq!(v["code"], "account-inactive");
        // Without the password nothing is revealed: the answer of an unknown account.
        let v = problem(&token_response(&client, email, "wrong password").await, 401);
        assert_eq!(v["code"], "invalid-credentials");
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_series() {
    let app = app();
    let client = common::client(&app).await;
    common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    let (_, first) = tokens(&client, "ada@example.com").await;
    let refresh = |token: String| {
        let client = &client;
        async move {
            client
                .post("/api/v1/auth/refresh")
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
        }
    };
    let res = refresh(first.clone()).await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let v: Value = res.json();
    let second = v["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let access = v["access_token"].as_str().unwrap();
    let me = create_post(&client, access, json!({ "title": "t", "body": "b" })).await;
    assert_eq!(me.status(), 201, "the refreshed access token works");

    // The first one was used: presenting it again is a theft signal.
    let v = problem(&refresh(first).await, 401);
    assert_eq!(v["code"], "invalid-refresh-token");
    // ...and the whole series is revoked, the newest token with it.
    problem(&refresh(second).await, 401);
    // Garbage is refused the same way, never a 500.
    problem(&refresh("r.nonsense".into()).await, 401);
    problem(&refresh(String::new()).await, 401);
}

#[tokio::test]
async fn authors_change_only_their_own_posts_and_editors_any() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let (_, bob) = user_token(&app, &client, "bob", Role::Author).await;
    let (_, eve) = user_token(&app, &client, "eve", Role::Editor).await;
    let id = create_published(&client, &ada, "Ada's post").await;
    let path = format!("/api/v1/posts/{id}");
    let change = json!({ "title": "Changed", "body": "New body", "published": true });

    let res = client
        .put(&path)
        .header("authorization", &bearer(&bob))
        .json(&change)
        .send()
        .await;
    assert_eq!(problem(&res, 403)["code"], "not-owner");
    let res = client
        .delete(&path)
        .header("authorization", &bearer(&bob))
        .send()
        .await;
    problem(&res, 403);

    let res = client
        .put(&path)
        .header("authorization", &bearer(&eve))
        .json(&change)
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let v: Value = res.json();
    assert_eq!(v["title"], "Changed");
    assert_eq!(v["slug"], "ada-s-post", "the slug stays");

    let res = client
        .put(&path)
        .header("authorization", &bearer(&ada))
        .json(&json!({ "title": "Mine again", "body": "Back" }))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(res.json::<Value>()["status"], "draft");

    let res = client
        .delete(&path)
        .header("authorization", &bearer(&ada))
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().is_empty());
    problem(&client.get(&path).send().await, 404);
    let res = client
        .delete(&path)
        .header("authorization", &bearer(&eve))
        .send()
        .await;
    problem(&res, 404);

    // Editors delete anyone's.
    let id = create_published(&client, &bob, "Bob's post").await;
    let res = client
        .delete(&format!("/api/v1/posts/{id}"))
        .header("authorization", &bearer(&eve))
        .send()
        .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn writing_needs_a_token_and_the_create_permission() {
    let app = app();
    let client = common::client(&app).await;
    let gus = common::account(&app, "gus@example.com", "gus", PASSWORD, Role::Author).await;
    let db = common::db(&app);
    db.query("UPDATE users SET role = 'guest' WHERE id = ?")
        .bind(gus)
        .execute(&*db)
        .await
        .unwrap();
    let guest = tokens(&client, "gus@example.com").await.0;
    let res = client
        .post("/api/v1/posts")
        .json(&json!({ "title": "t", "body": "b" }))
        .send()
        .await;
    assert_eq!(problem(&res, 401)["code"], "login-required");
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    let res = create_post(&client, &guest, json!({ "title": "t", "body": "b" })).await;
    problem(&res, 403);
    let list: Value = client.get("/api/v1/posts").send().await.json();
    assert_eq!(list["meta"]["total"], 0);
}

#[tokio::test]
async fn drafts_are_shown_only_to_their_author_and_editors() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let (_, bob) = user_token(&app, &client, "bob", Role::Author).await;
    let (_, eve) = user_token(&app, &client, "eve", Role::Editor).await;
    let res = create_post(&client, &ada, json!({ "title": "Secret", "body": "Draft" })).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>()["id"].as_i64().unwrap();
    let path = format!("/api/v1/posts/{id}");

    let anonymous = problem(&client.get(&path).send().await, 404);
    let other = client
        .get(&path)
        .header("authorization", &bearer(&bob))
        .send()
        .await;
    // Someone else's draft is not there: the same answer as a missing post.
    assert_eq!(problem(&other, 404), anonymous);
    let missing = problem(&client.get("/api/v1/posts/999999").send().await, 404);
    assert_eq!(missing, anonymous);
    problem(&client.get("/api/v1/posts/not-a-number").send().await, 404);
    let res = client
        .put(&path)
        .header("authorization", &bearer(&bob))
        .json(&json!({ "title": "x", "body": "y" }))
        .send()
        .await;
    problem(&res, 404);

    for token in [&ada, &eve] {
        let res = client
            .get(&path)
            .header("authorization", &bearer(token))
            .send()
            .await;
        assert_eq!(res.status(), 200, "{}", res.text());
        assert_eq!(res.json::<Value>()["status"], "draft");
        assert_eq!(res.header("cache-control"), Some("private"));
    }
    let list: Value = client
        .get("/api/v1/posts")
        .header("authorization", &bearer(&ada))
        .send()
        .await
        .json();
    assert_eq!(list["meta"]["total"], 0, "drafts are never listed: {list}");
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_a_400_and_a_bad_field_a_422() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let send = |ct: &'static str, body: &'static str| {
        let client = &client;
        let auth = bearer(&ada);
        async move {
            client
                .post("/api/v1/posts")
                .header("authorization", &auth)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
        }
    };
    let json_ct = "application/json";
    let cases_400 = [
        (
            "text/plain",
            r#"{"title":"t","body":"b"}"#,
            "unsupported-content-type",
        ),
        (
            "application/x-www-form-urlencoded",
            "title=t&body=b",
            "unsupported-content-type",
        ),
        (json_ct, r#"{"title": "t", "body": "#, "malformed-json"),
        (json_ct, "", "malformed-json"),
        (json_ct, r#"["title", "body"]"#, "not-an-object"),
        (json_ct, "null", "not-an-object"),
    ];
    for (ct, body, code) in cases_400 {
        let v = problem(&send(ct, body).await, 400);
        assert_eq!(v["code"], code, "{ct} {body}: {v}");
    }
    let v = problem(&send(json_ct, "{\"title\": ").await, 400);
    assert!(
        v["detail"].as_str().unwrap().contains("line 1"),
        "names where: {v}"
    );

    let cases_422 = [
        (r#"{"title":"t","body":"b","colour":"red"}"#, "colour"),
        (r#"{"title":5,"body":"b"}"#, "title"),
        (r#"{"title":"t"}"#, "body"),
        (r#"{"title":"t","body":"b","published":"yes"}"#, "published"),
        (r#"{"title":"t","body":"b","tags":"a,b"}"#, "tags"),
        (r#"{"title":"t","body":"b","tags":[1]}"#, "tags"),
        (r#"{"title":"   ","body":"b"}"#, "title"),
        (r#"{"title":"t","body":"  "}"#, "body"),
        (
            r#"{"title":"t","body":"b","tags":["a","b","c","d","e","f","g","h","i","j","k"]}"#,
            "tags",
        ),
    ];
    for (body, field) in cases_422 {
        let v = problem(&send(json_ct, body).await, 422);
        assert_eq!(v["code"], "invalid-field", "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let long = json!({ "title": "x".repeat(201), "body": "b" });
    let res = create_post(&client, &ada, long).await;
    assert_eq!(problem(&res, 422)["field"], "title");
    // A charset parameter and a +json type are JSON too.
    let ok = send(
        "application/json; charset=utf-8",
        r#"{"title":"t","body":"b"}"#,
    )
    .await;
    assert_eq!(ok.status(), 201, "{}", ok.text());
    let ok = send("application/vnd.blog+json", r#"{"title":"t2","body":"b"}"#).await;
    assert_eq!(ok.status(), 201, "{}", ok.text());

    // A body far over the limit: 413, as a problem.
    let huge = format!(r#"{{"title":"t","body":"{}"}}"#, "x".repeat(600 * 1024));
    let res = client
        .post("/api/v1/posts")
        .header("authorization", &bearer(&ada))
        .header("content-type", json_ct)
        .body(huge)
        .send()
        .await;
    problem(&res, 413);

    // The token route reads its body the same way.
    let res = client
        .post("/api/v1/auth/token")
        .header("content-type", json_ct)
        .body("{nope")
        .send()
        .await;
    assert_eq!(problem(&res, 400)["code"], "malformed-json");
    let res = client
        .post("/api/v1/auth/token")
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD, "admin": true }))
        .send()
        .await;
    assert_eq!(problem(&res, 422)["field"], "admin");
    let res = client
        .post("/api/v1/auth/token")
        .json(&json!({ "email": "ada@example.com" }))
        .send()
        .await;
    assert_eq!(problem(&res, 422)["field"], "password");
}

#[tokio::test]
async fn problems_are_in_the_request_language() {
    let app = app();
    let client = common::client(&app).await;
    let res = client
        .post("/api/v1/auth/token")
        .header("accept-language", "zh-CN")
        .json(&json!({ "email": "x@example.com", "password": "wrong password" }))
        .send()
        .await;
    assert_eq!(problem(&res, 401)["detail"], "邮箱或密码错误。");
    let res = client
        .post("/api/v1/auth/token")
        .header("accept-language", "en")
        .json(&json!({ "email": "x@example.com", "password": "wrong password" }))
        .send()
        .await;
    assert_eq!(problem(&res, 401)["detail"], "Wrong email or password.");
}

#[tokio::test]
async fn the_list_pages_with_links_in_the_body_and_the_link_header() {
    let app = app_with("[blog]\nper_page = 2\n");
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    for n in 1..=5 {
        create_published(&client, &ada, &format!("Post {n}")).await;
    }
    let res = create_post(&client, &ada, json!({ "title": "Draft", "body": "b" })).await;
    assert_eq!(res.status(), 201);

    let res = client.get("/api/v1/posts").send().await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json();
    assert_eq!(
        v["meta"],
        json!({ "page": 1, "per_page": 2, "total": 5, "pages": 3 })
    );
    let titles: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Post 5", "Post 4"], "newest first");
    assert_eq!(v["links"]["self"], "/api/v1/posts?page=1&per_page=2");
    assert_eq!(v["links"]["first"], "/api/v1/posts?page=1&per_page=2");
    assert_eq!(v["links"]["last"], "/api/v1/posts?page=3&per_page=2");
    assert_eq!(v["links"]["next"], "/api/v1/posts?page=2&per_page=2");
    assert_eq!(v["links"]["prev"], Value::Null);
    assert_eq!(
        res.header("link"),
        Some(
            "</api/v1/posts?page=1&per_page=2>; rel=\"first\", </api/v1/posts?page=3&per_page=2>; rel=\"last\", \
             </api/v1/posts?page=2&per_page=2>; rel=\"next\""
        )
    );

    // Following `next` to the end.
    let res = client.get("/api/v1/posts?page=3&per_page=2").send().await;
    let v: Value = res.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["title"], "Post 1");
    assert_eq!(v["links"]["next"], Value::Null);
    assert_eq!(v["links"]["prev"], "/api/v1/posts?page=2&per_page=2");
    assert!(res.header("link").unwrap().contains("rel=\"prev\""));
    assert!(!res.header("link").unwrap().contains("rel=\"next\""));

    let v: Value = client.get("/api/v1/posts?per_page=500").send().await.json();
    assert_eq!(v["meta"]["per_page"], 100, "capped");

    for bad in ["page=0", "page=abc", "per_page=-1", "page=1&page=2"] {
        let v = problem(
            &client.get(&format!("/api/v1/posts?{bad}")).send().await,
            400,
        );
        assert!(v["detail"].as_str().unwrap().contains("page"), "{bad}: {v}");
    }
    problem(&client.get("/api/v1/posts?page=9").send().await, 404);
}

#[tokio::test]
async fn token_requests_are_limited_per_address_and_per_account_with_headers() {
    let app = app_with(
        "[limiter]\nheaders_on_success = true\n\
         [api]\ntoken_limit = \"3/minute\"\naccount_limit = \"4/minute\"\n",
    );
    let client = common::client(&app).await;
    common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    let attempt = |n: u8, email: &'static str| {
        let client = &client;
        async move {
            client
                .post("/api/v1/auth/token")
                .peer(peer(n))
                .json(&json!({ "email": email, "password": PASSWORD }))
                .send()
                .await
        }
    };
    // Per address: three from one client, then 429.
    for left in (0..3).rev() {
        let res = attempt(1, "nobody@example.com").await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.header("ratelimit-policy"),
            Some("\"3/minute\";q=3;w=60")
        );
        let rl = res.header("ratelimit").unwrap();
        assert!(rl.starts_with(&format!("\"3/minute\";r={left};t=")), "{rl}");
    }
    let refused = attempt(1, "ada@example.com").await;
    problem(&refused, 429);
    assert_eq!(refused.header("retry-after"), Some("20"));
    assert!(refused.header("ratelimit").unwrap().contains(";r=0;"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"3/minute\";q=3;w=60")
    );
    // Another address is not held back.
    assert_eq!(attempt(2, "ada@example.com").await.status(), 200);

    // Per account, from anywhere: ada's fourth and fifth requests come from new addresses.
    for n in 3..=5 {
        assert_eq!(attempt(n, "ada@example.com").await.status(), 200);
    }
    let refused = attempt(6, "ada@example.com").await;
    let v = problem(&refused, 429);
    assert_eq!(v["code"], "too-many-requests");
    assert_eq!(refused.header("retry-after"), Some("15"));
    // The email's case and spaces do not make it another account.
    problem(&attempt(7, " ADA@example.com").await, 429);
    // Someone else's account from a fresh address still works.
    assert_eq!(attempt(8, "nobody@example.com").await.status(), 401);
}

#[tokio::test]
async fn api_reads_and_writes_carry_rate_limit_headers_and_answer_429_as_problems() {
    let app = app_with("[limiter]\nheaders_on_success = true\n[api]\nread_limit = \"2/minute\"\n");
    let client = common::client(&app).await;
    let res = client.get("/api/v1/posts").peer(peer(1)).send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.header("ratelimit-policy"),
        Some("\"2/minute\";q=2;w=60")
    );
    assert!(
        res.header("ratelimit")
            .unwrap()
            .starts_with("\"2/minute\";r=1;")
    );
    client.get("/api/v1/posts").peer(peer(1)).send().await;
    // No Accept header (not a JSON-preferring client): still a problem+json body.
    let res = client.get("/api/v1/posts").peer(peer(1)).send().await;
    assert_eq!(problem(&res, 429)["code"], "too-many-requests");
    assert_eq!(res.header("retry-after"), Some("30"));
    // The post route has its own bucket.
    let res = client.get("/api/v1/posts/1").peer(peer(1)).send().await;
    problem(&res, 404);
    assert!(
        res.header("ratelimit")
            .unwrap()
            .starts_with("\"2/minute\";r=1;")
    );
}

#[tokio::test]
async fn csrf_spares_bearer_requests_without_cookies_and_checks_cookie_requests() {
    let app = app();
    let client = common::client(&app).await;
    let id = common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    let access = tokens(&client, "ada@example.com").await.0;
    let body = json!({ "title": "Via bearer", "body": "b" });
    // A bearer request carrying no cookie: no CSRF token needed.
    assert_eq!(
        create_post(&client, &access, body.clone()).await.status(),
        201
    );

    // The same client logged in by cookie (a browser's script) without a token: refused.
    let account = example_blog::models::Account::by_id(&common::db(&app), id)
        .await
        .unwrap()
        .unwrap();
    flagon_login::testing::login_as(&client, &account).await;
    let res = client
        .post("/api/v1/posts")
        .json(&json!({ "title": "Via cookie", "body": "b" }))
        .send()
        .await;
    assert_eq!(problem(&res, 403)["code"], "csrf");
    // A bearer token does not excuse a request that also carries cookies.
    let res = create_post(&client, &access, json!({ "title": "Both", "body": "b" })).await;
    problem(&res, 403);
    let res = client
        .delete("/api/v1/posts/1")
        .header("authorization", &bearer(&access))
        .send()
        .await;
    problem(&res, 403);
    let list: Value = TestClient::new(&app)
        .get("/api/v1/posts")
        .send()
        .await
        .json();
    assert_eq!(list["meta"]["total"], 0, "nothing published");
    let n: i64 = common::db(&app)
        .query_scalar("SELECT COUNT(*) FROM posts")
        .fetch_one(&*common::db(&app))
        .await
        .unwrap();
    assert_eq!(n, 1, "only the bearer request wrote");
}

#[tokio::test]
async fn expired_forged_and_unsigned_tokens_are_refused_with_401() {
    let app = app();
    let client = common::client(&app).await;
    let id = common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    let hs256 = json!({ "alg": "HS256", "typ": "JWT" });
    let t = now();
    let claims =
        |exp: i64| json!({ "sub": id.to_string(), "exp": exp, "nbf": t - 10, "iat": t - 10 });
    let good = sign(&hs256, &claims(t + 600), SECRET.as_bytes());
    // The tests' own signing is right: the same token with a valid expiry works.
    let res = create_post(&client, &good, json!({ "title": "ok", "body": "b" })).await;
    assert_eq!(res.status(), 201, "{}", res.text());

    let expired = sign(&hs256, &claims(t - 3600), SECRET.as_bytes());
    let forged = sign(
        &hs256,
        &claims(t + 600),
        b"another-key-that-is-long-enough-0123456789",
    );
    let none_header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT" }).to_string());
    let none_claims = URL_SAFE_NO_PAD.encode(claims(t + 600).to_string());
    let unsigned = format!("{none_header}.{none_claims}.");
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let other_user = sign(
        &hs256,
        &json!({ "sub": "999999", "exp": t + 600, "nbf": t - 10 }),
        SECRET.as_bytes(),
    );
    for token in [
        &expired,
        &forged,
        &unsigned,
        &tampered,
        &other_user,
        &"garbage".to_owned(),
    ] {
        let res = client
            .get("/api/v1/posts")
            .header("authorization", &bearer(token))
            .send()
            .await;
        assert_eq!(problem(&res, 401)["code"], "invalid-token", "{token}");
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        let res = create_post(&client, token, json!({ "title": "no", "body": "b" })).await;
        problem(&res, 401);
    }
    let n: i64 = common::db(&app)
        .query_scalar("SELECT COUNT(*) FROM posts")
        .fetch_one(&*common::db(&app))
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_bad_api_setting_fails_the_build_naming_its_key() {
    let config = flagon::testing::testing_config_toml(
        "[db]\nurl = \"sqlite::memory:\"\n\
         [mail]\ndefault_sender = \"Blog <blog@example.com>\"\n\
         [api]\naccount_limit = \"lots\"\n",
    );
    let Err(err) = example_blog::build(config) else {
        panic!("a malformed api.account_limit was accepted");
    };
    let err = err.to_string();
    assert!(err.contains("api.account_limit"), "{err}");
}

/// Needs the posts blueprint's cached pages (`GET /`, `GET /posts/{slug}`), which live on
/// their own branch: run with `--ignored` once both are merged and [`example_blog::api::invalidate`]
/// forgets the pages the way the posts blueprint caches them.
#[tokio::test]
#[ignore = "needs the posts blueprint's cached pages; un-ignore when merged with it"]
async fn api_changes_are_seen_at_once_on_the_cached_pages() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let id = create_published(&client, &ada, "Before the change").await;
    let page = |path: &str| {
        let (client, path) = (&client, path.to_owned());
        async move { client.get(&path).send().await }
    };
    let show = "/posts/before-the-change";
    // Both pages are rendered (and cached) with the old title.
    assert!(page(show).await.text().contains("Before the change"));
    assert!(page("/").await.text().contains("Before the change"));
    let res = client
        .put(&format!("/api/v1/posts/{id}"))
        .header("authorization", &bearer(&ada))
        .json(&json!({ "title": "After the change", "body": "New", "published": true }))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let shown = page(show).await.text();
    assert!(shown.contains("After the change") && !shown.contains("Before the change"));
    let index = page("/").await.text();
    assert!(index.contains("After the change") && !index.contains("Before the change"));
    let res = client
        .delete(&format!("/api/v1/posts/{id}"))
        .header("authorization", &bearer(&ada))
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(page(show).await.status(), 404);
    assert!(!page("/").await.text().contains("After the change"));
}
