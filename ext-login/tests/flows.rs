//! Logging in and out through whole apps: the unauthorized answers, the current user in
//! handlers, hooks and templates, fixation (B2), replay after logout (B3), CSRF (C1), `next`
//! through the form (B1), and the testing kit.

mod common;

use common::*;
use flagon::testing::TestClient;

#[tokio::test]
async fn unauthorized_browsers_are_redirected_with_next_and_a_flash() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    let res = client.get("/private?tab=2").send().await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/login?next=%2Fprivate%3Ftab%3D2"));
    assert_eq!(
        client.get("/flashes").send().await.text(),
        "message: Please log in to access this page."
    );
}

#[tokio::test]
async fn api_clients_get_a_401_problem_and_options_pass() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    let res = client
        .get("/private")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let body: serde_json::Value = res.json();
    assert_eq!(body["status"], 401);
    assert_eq!(body["detail"], "Please log in to access this page.");
    assert_eq!(
        client.get("/flashes").send().await.text(),
        "",
        "no flash for API clients"
    );
    let res = client
        .request(flagon::http::Method::OPTIONS, "/private")
        .send()
        .await;
    assert_ne!(res.status(), 401);
    assert_ne!(res.status(), 303);
}

#[tokio::test]
async fn without_a_login_view_the_answer_is_401() {
    let t = app_built("", "", |b| b).await;
    // The same app shape, but login_view removed through settings is a different build;
    // check the html 401 of a CurrentUser route through `Accept: text/html` with an app
    // that has no view.
    drop(t);
    let users = flagon_login::testing::Users::default();
    let app = flagon::App::builder()
        .settings(flagon::testing::testing_config_toml(&format!(
            "[login]\n{FAST_ARGON2}"
        )))
        .register(flagon_login::Login::new(users.loader()))
        .route(
            flagon::Route::get("/p", || async { "p" })
                .name("p")
                .with(flagon_login::login_required()),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app)
        .get("/p")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status(), 401);
    assert!(res.text().contains("Please log in"));
}

#[tokio::test]
async fn logging_in_shows_the_user_to_handlers_templates_and_sets_identity() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    assert_eq!(client.get("/page").send().await.text(), "anonymous");
    assert_eq!(client.get("/whoami").send().await.text(), "anonymous -");
    let wrong = post_login(&client, "alice", "nope", false, None).await;
    assert_eq!(
        (wrong.status().as_u16(), wrong.text()),
        (200, "Invalid username or password.".into())
    );
    let res = post_login(&client, "alice", PASSWORD, false, Some("/private")).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/private"));
    let res = client.get("/private").send().await;
    assert_eq!(res.text(), "hello alice");
    assert_eq!(res.header("cache-control"), Some("private"));
    assert_eq!(client.get("/page").send().await.text(), "user alice (1)");
    assert_eq!(client.get("/whoami").send().await.text(), "alice 1");
    assert_eq!(
        client.get("/whoami-identified").send().await.text(),
        "alice 1"
    );
    assert_eq!(
        client.get("/members/page").send().await.text(),
        "members only"
    );
}

#[tokio::test]
async fn b1_a_hostile_next_through_the_form_goes_home() {
    let t = app_with("", "").await;
    for next in [
        "//evil.com",
        "%2F%2Fevil",
        "/%09/evil",
        "\u{ff0f}\u{ff0f}evil.com",
        "https:evil.com",
        "http://good.com.evil.com",
        "http://evil.com#@good.com",
        "/\\evil.com",
        "javascript:alert(1)",
    ] {
        let client = TestClient::new(&t.app);
        let res = post_login(&client, "alice", PASSWORD, false, Some(next)).await;
        assert_eq!(res.status(), 303, "{next}");
        assert_eq!(res.location(), Some("/"), "{next:?} must not be followed");
    }
    let client = TestClient::new(&t.app);
    let res = post_login(&client, "alice", PASSWORD, false, Some("/posts/7?tab=1")).await;
    assert_eq!(res.location(), Some("/posts/7?tab=1"));
}

#[tokio::test]
async fn b2_login_rotates_the_session_id_and_the_old_id_is_anonymous() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    // A session before logging in (flash writes one).
    client.get("/private").send().await;
    let before = client.cookie(SESSION).expect("a pre-login session");
    log_in(&client, "alice", false).await;
    let after = client.cookie(SESSION).expect("a session");
    assert_ne!(before, after, "the id changes on login");
    let attacker = TestClient::new(&t.app);
    attacker.set_cookie(SESSION, &before);
    assert_eq!(attacker.get("/whoami").send().await.text(), "anonymous -");
    // Re-login and switching users rotate too.
    log_in(&client, "alice", false).await;
    let again = client.cookie(SESSION).unwrap();
    assert_ne!(again, after);
    log_in(&client, "bob", false).await;
    let switched = client.cookie(SESSION).unwrap();
    assert_ne!(switched, again);
    assert_eq!(client.get("/whoami").send().await.text(), "bob 2");
    let old = TestClient::new(&t.app);
    old.set_cookie(SESSION, &again);
    assert_eq!(
        old.get("/whoami").send().await.text(),
        "anonymous -",
        "the old record is deleted"
    );
}

#[tokio::test]
async fn b3_session_and_remember_cookies_replayed_after_logout_are_refused() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    log_in(&client, "alice", true).await;
    let session = client.cookie(SESSION).unwrap();
    let remember = client.cookie(REMEMBER).expect("a remember cookie");
    let res = log_out(&client).await;
    assert_eq!(res.text(), "bye");
    let set_cookies: Vec<&str> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with(REMEMBER) && c.contains("Max-Age=0")),
        "{set_cookies:?}"
    );
    assert_eq!(client.get("/whoami").send().await.text(), "anonymous -");
    for (name, value) in [(SESSION, &session), (REMEMBER, &remember)] {
        let thief = TestClient::new(&t.app);
        thief.set_cookie(name, value);
        assert_eq!(
            thief.get("/whoami").send().await.text(),
            "anonymous -",
            "{name} replayed"
        );
    }
    let thief = TestClient::new(&t.app);
    thief.set_cookie(SESSION, &session);
    thief.set_cookie(REMEMBER, &remember);
    assert_eq!(thief.get("/private").send().await.status(), 303);
}

#[tokio::test]
async fn c1_logout_needs_a_csrf_token_and_pre_login_tokens_die_at_login() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    let pre_login = csrf(&client).await;
    log_in(&client, "alice", false).await;
    let res = client.post("/logout").send().await;
    assert_eq!(res.status(), 403, "no token");
    let res = client
        .post("/logout")
        .form(&[("csrf_token", pre_login.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 403, "a pre-login token");
    let other = TestClient::new(&t.app);
    let foreign = csrf(&other).await;
    let res = client
        .post("/logout")
        .form(&[("csrf_token", foreign.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 403, "another browser's token");
    assert_eq!(
        client.get("/whoami").send().await.text(),
        "alice 1",
        "still logged in"
    );
    assert_eq!(
        client.get("/logout").send().await.status(),
        405,
        "GET never logs out"
    );
    assert_eq!(log_out(&client).await.status(), 200);
}

#[tokio::test]
async fn inactive_users_are_refused_and_deactivation_ends_sessions() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    log_in(&client, "alice", true).await;
    t.users.update("1", |u| u.active = false);
    assert_eq!(client.get("/whoami").send().await.text(), "anonymous -");
    let res = post_login(&TestClient::new(&t.app), "alice", PASSWORD, false, None).await;
    assert_eq!(res.text(), "account disabled");
}

#[tokio::test]
async fn login_as_logs_a_test_client_in() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    flagon_login::testing::login_as(&client, &t.bob).await;
    assert_eq!(client.get("/private").send().await.text(), "hello bob");
    assert_eq!(client.get("/admin").send().await.text(), "admin page");
}

#[tokio::test]
async fn permissions_are_checked_after_authentication() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    assert_eq!(
        client.get("/admin").send().await.status(),
        303,
        "anonymous: login first"
    );
    log_in(&client, "alice", false).await;
    assert_eq!(client.get("/admin").send().await.status(), 403);
    let res = client
        .get("/admin")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn the_unauthorized_handler_can_be_replaced() {
    let users = flagon_login::testing::Users::default();
    let app = flagon::App::builder()
        .settings(flagon::testing::testing_config_toml(&format!(
            "[login]\n{FAST_ARGON2}"
        )))
        .register(
            flagon_login::Login::new(users.loader()).unauthorized_handler(
                |r: flagon_login::Refusal| async move {
                    (
                        flagon::http::StatusCode::IM_A_TEAPOT,
                        format!("no: {}", r.next),
                    )
                },
            ),
        )
        .route(
            flagon::Route::get("/p", || async { "p" })
                .name("p")
                .with(flagon_login::login_required()),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/p?x=1").send().await;
    assert_eq!(
        (res.status().as_u16(), res.text()),
        (418, "no: /p?x=1".into())
    );
}

#[tokio::test]
async fn hooks_see_the_same_user_as_handlers() {
    let t = app_built("", "", |b| {
        b.configure(|s| {
            s.before_request(|req| async move {
                if req.uri().path() != "/hooked" {
                    return flagon::proceed(req);
                }
                let user =
                    flagon_login::current_user::<flagon_login::testing::TestUser>(&req).await;
                let name = user
                    .map(|u| u.name.clone())
                    .unwrap_or_else(|| "nobody".into());
                flagon::respond(format!("hook sees {name}"))
            });
            Ok(())
        })
    })
    .await;
    let client = TestClient::new(&t.app);
    assert_eq!(
        client.get("/hooked").send().await.text(),
        "hook sees nobody"
    );
    log_in(&client, "alice", false).await;
    assert_eq!(client.get("/hooked").send().await.text(), "hook sees alice");
}

#[tokio::test]
async fn a_route_that_does_not_touch_login_pays_nothing() {
    let t = app_built("", "", |b| {
        b.route(flagon::Route::get("/plain", || async { "plain" }).name("plain"))
    })
    .await;
    let client = TestClient::new(&t.app);
    log_in(&client, "alice", true).await;
    let res = client.get("/plain").send().await;
    assert_eq!(res.text(), "plain");
    assert!(
        res.header("set-cookie").is_none(),
        "no session or remember cookie work"
    );
    assert!(res.header("vary").is_none(), "the session was not read");
}
