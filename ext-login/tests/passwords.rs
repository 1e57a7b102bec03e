//! Passwords: oversized input refused before hashing, the hashing cap under 200 concurrent
//! logins, hostile and malformed stored hashes, rehash (B9), and equal answers for unknown
//! users and wrong passwords with their latency measured (B7).

mod common;

use std::time::{Duration, Instant};

use common::*;
use flagon::testing::TestClient;
use flagon_login::Login;
use flagon_login::testing::TestUser;

fn pw(t: &TestApp) -> std::sync::Arc<flagon_login::Passwords> {
    Login::<TestUser>::passwords(t.app.handle()).unwrap()
}

#[tokio::test]
async fn b9_oversized_passwords_are_refused_before_hashing() {
    let t = app_with("", "").await;
    let client = TestClient::new(&t.app);
    client.start().await.unwrap(); // makes the dummy hash
    let before = pw(&t).stats().total;
    let big = "x".repeat(100 * 1024);
    let res = post_login(&client, "alice", &big, false, None).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().contains("too long"), "{}", res.text());
    let huge = "x".repeat(1024 * 1024);
    assert_eq!(
        post_login(&client, "nobody", &huge, false, None)
            .await
            .status(),
        400
    );
    let over_limit = "x".repeat(3 * 1024 * 1024);
    assert_eq!(
        post_login(&client, "alice", &over_limit, false, None)
            .await
            .status(),
        413
    );
    assert_eq!(pw(&t).stats().total, before, "nothing was hashed");
    let at_limit = "x".repeat(4096);
    assert_eq!(
        post_login(&client, "alice", &at_limit, false, None)
            .await
            .status(),
        200,
        "4096 bytes is allowed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b9_the_hashing_cap_holds_under_200_concurrent_logins() {
    let t = app_with(
        "hash_concurrency = 2\nhash_queue_timeout = \"60s\"\nmax_failures_per_hour = 0\n",
        "",
    )
    .await;
    let client = std::sync::Arc::new(TestClient::new(&t.app));
    client.start().await.unwrap();
    let token = csrf(&client).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, token) = (client.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let user = if i % 2 == 0 { "alice" } else { "nobody" };
            client
                .post("/login")
                .form(&[
                    ("username", user),
                    ("password", "wrong"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .status()
                .as_u16()
        }));
    }
    // The app answers other requests meanwhile.
    let mut health = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        assert_eq!(client.get("/healthz").send().await.status(), 200);
        health.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let stats = pw(&t).stats();
    assert!(stats.peak <= 2, "peak {} over the cap", stats.peak);
    assert!(stats.total >= 200);
    health.sort();
    println!(
        "/healthz during 200 logins: max {:?}",
        health.last().unwrap()
    );
    assert!(*health.last().unwrap() < Duration::from_millis(500));
}

#[tokio::test]
async fn b9_a_full_queue_is_a_503_after_the_bounded_wait() {
    let t = app_with("hash_concurrency = 1\nhash_queue_timeout = \"1ms\"\n", "").await;
    let p = pw(&t);
    let hash = t.alice.password_hash.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (p, hash) = (p.clone(), hash.clone());
        tasks.push(tokio::spawn(
            async move { p.verify("wrong", Some(&hash)).await },
        ));
    }
    let mut busy = 0;
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            assert!(matches!(e, flagon_login::PasswordError::Busy));
            let http = flagon::HttpError::from(e);
            assert_eq!(http.status(), 503);
            assert_eq!(http.headers().get("retry-after").unwrap(), "1");
            busy += 1;
        }
    }
    assert!(busy > 0, "some waited past the 1ms bound");
}

#[tokio::test]
async fn b9_hostile_and_malformed_stored_hashes_are_refused_without_hashing() {
    let t = app_with("", "").await;
    let p = pw(&t);
    let before = p.stats().total;
    let hostile = "$argon2id$v=19$m=4194304,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE";
    let start = Instant::now();
    assert!(!p.verify("x", Some(hostile)).await.unwrap().ok);
    assert!(start.elapsed() < Duration::from_millis(100));
    for bad in [
        "not a hash",
        "$argon2id$v=19$m=abc$$",
        "$2b$12$bcryptbcryptbcryptbcry",
        &"$".repeat(600),
    ] {
        assert!(!p.verify("x", Some(bad)).await.unwrap().ok, "{bad}");
    }
    assert_eq!(p.stats().total, before, "no Argon2 run for refused hashes");
}

#[tokio::test]
async fn hashes_below_the_current_parameters_need_a_rehash() {
    let weak = app_with("", "").await; // m=8 MiB, t=1
    let phc = pw(&weak).hash("secret").await.unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{phc}");
    let strong = app_with("argon2_memory_kib = 19456\nargon2_iterations = 2\n", "").await;
    let v = pw(&strong).verify("secret", Some(&phc)).await.unwrap();
    assert!(v.ok && v.needs_rehash);
    let fresh = pw(&strong).hash("secret").await.unwrap();
    assert!(
        fresh.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "OWASP parameters: {fresh}"
    );
    let v = pw(&strong).verify("secret", Some(&fresh)).await.unwrap();
    assert!(v.ok && !v.needs_rehash);
    assert!(!pw(&strong).verify("wrong", Some(&fresh)).await.unwrap().ok);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// B7, benchmark-style: the same answer for an unknown user, a wrong password and an
/// account without a password, with OWASP parameters; the medians are printed, not
/// asserted (a shared machine). `FLAGON_B7_ROUNDS` sets the logins per case (default 30).
#[tokio::test]
async fn b7_unknown_users_and_wrong_passwords_get_equal_answers() {
    let rounds: usize = std::env::var("FLAGON_B7_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let t = app_with(
        "argon2_memory_kib = 19456\nargon2_iterations = 2\nmax_failures_per_hour = 0\n",
        "",
    )
    .await;
    let hash = pw(&t).hash(PASSWORD).await.unwrap();
    t.users.update("1", |u| u.password_hash = hash);
    t.users.add(TestUser::new("3", "oauth-only", ""));
    let client = TestClient::new(&t.app);
    client.start().await.unwrap();
    let mut answers = Vec::new();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let cases = [
        ("alice", "wrong password"),
        ("nobody", "wrong password"),
        ("oauth-only", "wrong password"),
        ("alice", PASSWORD),
    ];
    // Warm up.
    for (user, password) in &cases[..3] {
        post_login(&client, user, password, false, None).await;
    }
    for round in 0..rounds {
        // The order turns each round, so drift on a shared machine hits every case alike.
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let (user, password) = &cases[i];
            let c = TestClient::new(&t.app);
            let token = csrf(&c).await;
            let start = Instant::now();
            let res = c
                .post("/login")
                .form(&[
                    ("username", *user),
                    ("password", *password),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await;
            times[i].push(start.elapsed());
            if i < 3 {
                answers.push((res.status().as_u16(), res.text()));
            } else {
                assert_eq!(res.status(), 303);
            }
        }
    }
    let first = answers[0].clone();
    assert_eq!(first, (200, "Invalid username or password.".to_owned()));
    assert!(
        answers.iter().all(|a| *a == first),
        "every failure answers the same"
    );
    let [wrong, unknown, oauth, ok] = [0, 1, 2, 3].map(|i| median(times[i].clone()));
    println!(
        "B7 login latency, median of {rounds} (m=19456 KiB, t=2, p=1): known user + wrong password {wrong:?}, unknown user {unknown:?}, account without password {oauth:?}, correct password {ok:?}; unknown/known = {:.3}",
        unknown.as_secs_f64() / wrong.as_secs_f64()
    );
}

/// B8: 150 wrong passwords on one account from 150 addresses are slowed after 100; the
/// owner gets in again once the bucket refills (no lasting lockout); other accounts are
/// unaffected.
#[tokio::test]
async fn b8_distributed_guessing_of_one_account_is_throttled_not_locked_out() {
    let t = app_with("max_failures_per_hour = 100\n", "").await;
    let mut statuses = Vec::new();
    for i in 0..150u32 {
        let client = TestClient::new(&t.app);
        let peer: std::net::SocketAddr = format!("203.0.{}.{}:4000", i / 200, i % 200 + 1)
            .parse()
            .unwrap();
        let token = client.get("/token").peer(peer).send().await.text();
        let res = client
            .post("/login")
            .peer(peer)
            .form(&[
                ("username", "alice"),
                ("password", "guess"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await;
        statuses.push(res.status().as_u16());
    }
    assert!(
        statuses[..100].iter().all(|s| *s == 200),
        "the first 100 are checked"
    );
    assert!(
        statuses[100..].iter().all(|s| *s == 429),
        "then throttled: {:?}",
        &statuses[100..]
    );
    let owner = TestClient::new(&t.app);
    let res = post_login(&owner, "alice", PASSWORD, false, None).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=36).contains(&retry), "{retry}");
    assert_eq!(
        post_login(&owner, "bob", PASSWORD, false, None)
            .await
            .status(),
        303,
        "another account"
    );
    t.clock.advance(Duration::from_secs(40));
    assert_eq!(
        post_login(&owner, "alice", PASSWORD, false, None)
            .await
            .status(),
        303,
        "slowed, not locked out"
    );
}
