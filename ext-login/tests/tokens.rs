//! API authentication: bearer JWTs (expiry, not-before, audience, issuer, `alg=none`,
//! algorithm confusion, tampering), API keys, refresh-token rotation, and CSRF exemption by
//! construction for bearer requests.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use flagon::axum::Json;
use flagon::testing::TestClient;
use flagon::{HttpError, Route};
use flagon_login::testing::TestUser;
use flagon_login::{Auth, CurrentUser, StoredApiKey, generate_api_key};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
const RSA_PRIVATE: &str = include_str!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/rsa_public.pem");
const ED_PRIVATE: &str = include_str!("fixtures/ed25519_private.pem");
const ED_PUBLIC: &str = include_str!("fixtures/ed25519_public.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn issue(
    auth: Auth<TestUser>,
    user: CurrentUser<TestUser>,
) -> Result<Json<Value>, HttpError> {
    let access = auth.issue_token(&user, Duration::from_secs(300))?;
    let refresh = auth.issue_refresh_token(&user).await?;
    Ok(Json(json!({ "access": access, "refresh": refresh })))
}

async fn refresh(auth: Auth<TestUser>, Json(body): Json<Value>) -> Result<Json<Value>, HttpError> {
    let token = body["refresh"].as_str().unwrap_or("");
    let (access, refresh) = auth.refresh(token, Duration::from_secs(300)).await?;
    Ok(Json(json!({ "access": access, "refresh": refresh })))
}

async fn token_app(login_toml: &str) -> TestApp {
    app_built(login_toml, "", |b| {
        b.route(Route::post("/issue", issue))
            .route(Route::post("/refresh", refresh))
            .configure(|s| {
                s.csrf_exempt("refresh");
                Ok(())
            })
    })
    .await
}

async fn status_with(client: &TestClient, token: &str) -> (u16, String) {
    let res = client
        .get("/private")
        .header("authorization", &format!("Bearer {token}"))
        .header("accept", "application/json")
        .send()
        .await;
    (res.status().as_u16(), res.text())
}

fn hs(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn issued_tokens_authenticate_api_requests_without_csrf() {
    let t = token_app(&format!("jwt_secret = \"{SECRET}\"\n")).await;
    let browser = TestClient::new(&t.app);
    log_in(&browser, "alice", false).await;
    let token = csrf(&browser).await;
    let res = browser
        .post("/issue")
        .header("x-csrf-token", &token)
        .send()
        .await;
    let pair: Value = res.json();
    let access = pair["access"].as_str().unwrap().to_owned();
    let api = TestClient::new(&t.app);
    assert_eq!(
        status_with(&api, &access).await,
        (200, "hello alice".into())
    );
    let res = api
        .post("/api/items")
        .header("authorization", &format!("Bearer {access}"))
        .send()
        .await;
    assert_eq!(
        (res.status().as_u16(), res.text()),
        (200, "created by alice".into()),
        "no CSRF token needed"
    );
    assert!(res.header("vary").unwrap_or("").contains("authorization"));
    // The token-only route refuses a session login.
    let token = csrf(&browser).await;
    let res = browser
        .post("/api/items")
        .header("x-csrf-token", &token)
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn bad_jwts_are_refused() {
    let t = token_app(&format!("jwt_secret = \"{SECRET}\"\njwt_audience = \"blog\"\njwt_issuer = \"flagon\"\njwt_leeway = \"5s\"\n")).await;
    let api = TestClient::new(&t.app);
    let n = now();
    let good =
        json!({"sub": "1", "exp": n + 300, "nbf": n, "iat": n, "aud": "blog", "iss": "flagon"});
    assert_eq!(status_with(&api, &hs(&good)).await.0, 200);
    let cases = [
        (
            "expired",
            json!({"sub": "1", "exp": n - 60, "nbf": n - 120, "aud": "blog", "iss": "flagon"}),
        ),
        (
            "not yet valid",
            json!({"sub": "1", "exp": n + 600, "nbf": n + 300, "aud": "blog", "iss": "flagon"}),
        ),
        (
            "wrong audience",
            json!({"sub": "1", "exp": n + 300, "nbf": n, "aud": "other", "iss": "flagon"}),
        ),
        (
            "wrong issuer",
            json!({"sub": "1", "exp": n + 300, "nbf": n, "aud": "blog", "iss": "evil"}),
        ),
        (
            "no exp",
            json!({"sub": "1", "nbf": n, "aud": "blog", "iss": "flagon"}),
        ),
        (
            "string exp",
            json!({"sub": "1", "exp": "9999999999", "nbf": n, "aud": "blog", "iss": "flagon"}),
        ),
        (
            "unknown user",
            json!({"sub": "99", "exp": n + 300, "nbf": n, "aud": "blog", "iss": "flagon"}),
        ),
    ];
    for (what, claims) in cases {
        assert_eq!(status_with(&api, &hs(&claims)).await.0, 401, "{what}");
    }
    // alg=none.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(good.to_string());
    assert_eq!(
        status_with(&api, &format!("{header}.{body}.")).await.0,
        401,
        "alg=none"
    );
    // A tampered payload under the original signature.
    let real = hs(&good);
    let sig = real.rsplit('.').next().unwrap();
    let header = real.split('.').next().unwrap();
    let evil = URL_SAFE_NO_PAD.encode(
        json!({"sub": "2", "exp": n + 300, "nbf": n, "aud": "blog", "iss": "flagon"}).to_string(),
    );
    assert_eq!(
        status_with(&api, &format!("{header}.{evil}.{sig}")).await.0,
        401,
        "tampered"
    );
    assert_eq!(status_with(&api, "not.a.jwt").await.0, 401);
}

#[tokio::test]
async fn rs256_accepts_its_keys_and_refuses_hs256_signed_with_the_public_key() {
    let cfg = format!(
        "jwt_algorithm = \"RS256\"\njwt_public_key_pem = '''{RSA_PUBLIC}'''\njwt_private_key_pem = '''{RSA_PRIVATE}'''\n"
    );
    let t = token_app(&cfg).await;
    let api = TestClient::new(&t.app);
    let n = now();
    let claims = json!({"sub": "1", "exp": n + 300, "nbf": n});
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(status_with(&api, &rs).await, (200, "hello alice".into()));
    // Algorithm confusion: HS256 keyed with the RSA public key's PEM bytes.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(status_with(&api, &confused).await.0, 401, "HS/RS confusion");
    // The app issues RS256 tokens with its private key.
    let browser = TestClient::new(&t.app);
    log_in(&browser, "alice", false).await;
    let token = csrf(&browser).await;
    let pair: Value = browser
        .post("/issue")
        .header("x-csrf-token", &token)
        .send()
        .await
        .json();
    assert_eq!(
        status_with(&api, pair["access"].as_str().unwrap()).await.0,
        200
    );
}

#[tokio::test]
async fn eddsa_tokens_verify_with_the_public_key() {
    let cfg = format!("jwt_algorithm = \"EdDSA\"\njwt_public_key_pem = '''{ED_PUBLIC}'''\n");
    let t = token_app(&cfg).await;
    let api = TestClient::new(&t.app);
    let n = now();
    let claims = json!({"sub": "1", "exp": n + 300, "nbf": n});
    let ed = encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(status_with(&api, &ed).await.0, 200);
    assert_eq!(
        status_with(&api, &hs(&claims)).await.0,
        401,
        "another algorithm"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_series() {
    let t = token_app("").await; // HS256 with the derived key
    let browser = TestClient::new(&t.app);
    log_in(&browser, "alice", false).await;
    let token = csrf(&browser).await;
    let pair: Value = browser
        .post("/issue")
        .header("x-csrf-token", &token)
        .send()
        .await
        .json();
    let api = TestClient::new(&t.app);
    let r0 = pair["refresh"].as_str().unwrap().to_owned();
    let res = api
        .post("/refresh")
        .json(&json!({"refresh": r0}))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let next: Value = res.json();
    let r1 = next["refresh"].as_str().unwrap().to_owned();
    assert_ne!(r0, r1);
    assert_eq!(
        status_with(&api, next["access"].as_str().unwrap()).await.0,
        200
    );
    // Replaying r0 is theft: refused, and r1 dies with the series.
    assert_eq!(
        api.post("/refresh")
            .json(&json!({"refresh": r0}))
            .send()
            .await
            .status(),
        401
    );
    assert_eq!(
        api.post("/refresh")
            .json(&json!({"refresh": r1}))
            .send()
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn api_keys_are_found_by_prefix_and_checked_by_hash() {
    let keys: Arc<Mutex<HashMap<String, StoredApiKey>>> = Arc::default();
    let lookup = keys.clone();
    let users = flagon_login::testing::Users::default();
    users.add(TestUser::new("1", "alice", "h"));
    let app = flagon::App::builder()
        .settings(flagon::testing::testing_config_toml(&format!(
            "[login]\n{FAST_ARGON2}"
        )))
        .register(
            flagon_login::Login::new(users.loader()).api_keys(move |prefix: String| {
                let found = lookup.lock().unwrap().get(&prefix).cloned();
                async move { Ok::<_, std::convert::Infallible>(found) }
            }),
        )
        .route(
            Route::post("/api/items", |u: CurrentUser<TestUser>| async move {
                format!("created by {}", u.name)
            })
            .name("items")
            .with(flagon_login::token_required()),
        )
        .build()
        .unwrap();
    let key = generate_api_key("flg");
    keys.lock().unwrap().insert(
        key.prefix.clone(),
        StoredApiKey {
            user_id: "1".into(),
            hash: key.hash.clone(),
        },
    );
    let client = TestClient::new(&app);
    let post = |k: String| {
        let c = &client;
        async move {
            c.post("/api/items")
                .header("authorization", &format!("Bearer {k}"))
                .header("accept", "application/json")
                .send()
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(key.key.clone()).await, 200);
    let mut wrong = key.key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(post(wrong).await, 401, "same prefix, wrong secret");
    assert_eq!(
        post(generate_api_key("flg").key).await,
        401,
        "unknown prefix"
    );
    assert_eq!(post("flg_nothex".into()).await, 401);
}
