//! Protection: rate limits with headers, CSRF for cookie requests only, and bad bearer
//! tokens refused.

use super::*;

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

    // With the token the API hands a cookie caller, the same write goes through.
    let res = client.get("/api/v1/posts").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let token = res
        .header("x-csrf-token")
        .expect("a token for the cookie caller")
        .to_owned();
    let res = client
        .post("/api/v1/posts")
        .header("x-csrf-token", &token)
        .json(&json!({ "title": "Via cookie", "body": "b" }))
        .send()
        .await;
    assert_eq!(res.status(), 201, "{}", res.text());
    assert_eq!(res.json::<Value>()["author"], "ada");
    // A bearer caller is handed none: it needs none.
    let res = TestClient::new(&app)
        .get("/api/v1/posts")
        .header("authorization", &bearer(&access))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("x-csrf-token"), None);
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
