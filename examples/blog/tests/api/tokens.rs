//! Tokens: issuing a pair, the same answer for an unknown account and a wrong password,
//! inactive accounts, refresh rotation and reuse, throttling, and the `[api]` settings.

use super::*;

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

#[tokio::test]
async fn a_password_change_or_a_deactivation_ends_the_refresh_tokens() {
    let app = app();
    let client = common::client(&app).await;
    let db = common::db(&app);
    let ada = common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    let bob = common::account(&app, "bob@example.com", "bob", PASSWORD, Role::Author).await;
    let (_, ada_refresh) = tokens(&client, "ada@example.com").await;
    let (bob_access, bob_refresh) = tokens(&client, "bob@example.com").await;
    let passwords =
        flagon_login::Login::<example_blog::models::Account>::passwords(app.handle()).unwrap();
    let new_hash = passwords.hash("a brand new password").await.unwrap();
    db.query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(new_hash)
        .bind(ada)
        .execute(&*db)
        .await
        .unwrap();
    db.query("UPDATE users SET active = 0 WHERE id = ?")
        .bind(bob)
        .execute(&*db)
        .await
        .unwrap();
    for token in [ada_refresh, bob_refresh] {
        let res = client
            .post("/api/v1/auth/refresh")
            .json(&json!({ "refresh_token": token }))
            .send()
            .await;
        assert_eq!(problem(&res, 401)["code"], "invalid-refresh-token");
    }
    // A deactivated account's access token stops working at once.
    let res = create_post(&client, &bob_access, json!({ "title": "t", "body": "b" })).await;
    assert_eq!(problem(&res, 401)["code"], "invalid-token");
}

#[tokio::test]
async fn failed_token_requests_are_throttled_per_account_by_login() {
    let app = app_with("max_failures_per_hour = 2\n");
    let client = common::client(&app).await;
    common::account(&app, "ada@example.com", "ada", PASSWORD, Role::Author).await;
    for n in 1..=2 {
        let res = client
            .post("/api/v1/auth/token")
            .peer(peer(n))
            .json(&json!({ "email": "ada@example.com", "password": "guess" }))
            .send()
            .await;
        problem(&res, 401);
    }
    // The next attempt is refused before any hashing, even with the right password.
    let res = client
        .post("/api/v1/auth/token")
        .peer(peer(3))
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD }))
        .send()
        .await;
    problem(&res, 429);
    assert!(res.header("retry-after").is_some());
}
