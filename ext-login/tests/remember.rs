//! Remember-me tokens: rotation, theft detection, expiry (B4) and revocation by a password
//! change (B5).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use flagon::testing::{LogCapture, TestClient};
use flagon_login::signals::RememberTokenTheft;

fn with_cookie(t: &TestApp, value: &str) -> TestClient {
    let c = TestClient::new(&t.app);
    c.set_cookie(REMEMBER, value);
    c
}

#[tokio::test]
async fn b4_a_token_rotates_on_use_and_a_replayed_old_validator_revokes_the_series() {
    let thefts = Arc::new(AtomicUsize::new(0));
    let seen = thefts.clone();
    let t = app_built("", "", move |b| {
        b.configure(move |s| {
            let seen = seen.clone();
            s.subscribe(move |_: &RememberTokenTheft| {
                seen.fetch_add(1, Ordering::SeqCst);
            });
            Ok(())
        })
    })
    .await;
    let device = TestClient::new(&t.app);
    log_in(&device, "alice", true).await;
    let r0 = device.cookie(REMEMBER).expect("remember cookie");
    assert!(r0.len() > 70, "selector.validator");

    // A new browser with the cookie is logged in, and its token is replaced.
    let b = with_cookie(&t, &r0);
    let res = b.get("/whoami").send().await;
    assert_eq!(res.text(), "alice 1");
    let r1 = b.cookie(REMEMBER).unwrap();
    assert_ne!(r0, r1, "rotated on use");
    assert_eq!(r0.split('.').next(), r1.split('.').next(), "same series");
    assert_eq!(
        b.get("/whoami").send().await.text(),
        "alice 1",
        "now by session"
    );
    // A restored login is not fresh.
    assert_eq!(b.get("/fresh").send().await.status(), 303);

    // Within the grace period the old validator still works (parallel requests)...
    assert_eq!(
        with_cookie(&t, &r0).get("/whoami").send().await.text(),
        "alice 1"
    );
    assert_eq!(thefts.load(Ordering::SeqCst), 0);
    // ...after it, a replay is theft: refused, logged at WARN, the series revoked.
    t.clock.advance(Duration::from_secs(11));
    let logs = LogCapture::start(flagon::tracing::Level::WARN);
    let thief = with_cookie(&t, &r0);
    let res = thief.get("/whoami").send().await;
    assert_eq!(res.text(), "anonymous -");
    assert!(logs.text().contains("series is revoked"), "{}", logs.text());
    assert_eq!(thefts.load(Ordering::SeqCst), 1);
    assert_eq!(
        with_cookie(&t, &r1).get("/whoami").send().await.text(),
        "anonymous -",
        "the current validator of a revoked series is dead too"
    );
}

#[tokio::test]
async fn b4_an_expired_token_is_refused_and_its_cookie_cleared() {
    let t = app_with("remember_duration = \"1d\"\n", "").await;
    let device = TestClient::new(&t.app);
    log_in(&device, "alice", true).await;
    let r0 = device.cookie(REMEMBER).unwrap();
    t.clock.advance(Duration::from_secs(86_400 + 1));
    let c = with_cookie(&t, &r0);
    let res = c.get("/whoami").send().await;
    assert_eq!(res.text(), "anonymous -");
    let cleared = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with(REMEMBER) && c.contains("Max-Age=0"));
    assert!(cleared);
    // Garbage and unknown tokens are refused the same way.
    for junk in [
        "x",
        "0123456789abcdef0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &"z".repeat(300),
    ] {
        assert_eq!(
            with_cookie(&t, junk).get("/whoami").send().await.text(),
            "anonymous -"
        );
    }
}

#[tokio::test]
async fn b5_a_password_change_logs_out_other_sessions_and_tokens() {
    let t = app_with("", "").await;
    let one = TestClient::new(&t.app);
    let two = TestClient::new(&t.app);
    log_in(&one, "alice", false).await;
    log_in(&two, "alice", true).await;
    let two_token = two.cookie(REMEMBER).unwrap();
    assert_eq!(two.get("/whoami").send().await.text(), "alice 1");
    let token = csrf(&one).await;
    let res = one
        .post("/password")
        .form(&[
            ("password", "a new password"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.text(), "changed");
    assert_eq!(
        one.get("/whoami").send().await.text(),
        "alice 1",
        "the device that changed it stays"
    );
    assert_eq!(
        two.get("/whoami").send().await.text(),
        "anonymous -",
        "the other session ends"
    );
    assert_eq!(
        with_cookie(&t, &two_token)
            .get("/whoami")
            .send()
            .await
            .text(),
        "anonymous -"
    );
}

#[tokio::test]
async fn b5_a_changed_auth_hash_alone_invalidates_sessions_and_tokens() {
    // Without calling revoke: the auth-hash digest kept with the token is enough.
    let t = app_with("", "").await;
    let two = TestClient::new(&t.app);
    log_in(&two, "alice", true).await;
    let token = two.cookie(REMEMBER).unwrap();
    t.users
        .update("1", |u| u.password_hash = "changed elsewhere".into());
    assert_eq!(
        with_cookie(&t, &token).get("/whoami").send().await.text(),
        "anonymous -"
    );
    assert_eq!(two.get("/whoami").send().await.text(), "anonymous -");
    // A deleted user loses every session.
    let three = TestClient::new(&t.app);
    log_in(&three, "bob", false).await;
    t.users.remove("2");
    assert_eq!(three.get("/whoami").send().await.text(), "anonymous -");
}

#[tokio::test]
async fn the_cli_revokes_a_users_tokens() {
    let t = app_with("", "").await;
    let device = TestClient::new(&t.app);
    log_in(&device, "alice", true).await;
    let token = device.cookie(REMEMBER).unwrap();
    let out =
        flagon::testing::run_cli(&t.app, ["login", "remember", "revoke", "--user", "1"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "revoked 1 token(s) of user 1");
    assert_eq!(
        with_cookie(&t, &token).get("/whoami").send().await.text(),
        "anonymous -"
    );
}

#[tokio::test]
async fn the_remember_cookie_has_the_session_cookies_attributes() {
    let t = app_with("", "").await;
    let device = TestClient::new(&t.app);
    let res = post_login(&device, "alice", PASSWORD, true, None).await;
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(REMEMBER))
        .expect("remember cookie set")
        .to_owned();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=2592000",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"));
}
