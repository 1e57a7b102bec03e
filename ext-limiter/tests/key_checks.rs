//! `LimiterState::key_check`: limits on keys a handler chooses (an account), counted with the
//! limiter's other counters — in process, or in Redis shared by every instance.

mod common;

use std::time::Duration;

use common::builder;
use flagon::App;
use flagon_limiter::{KeyCheck, KeyDecision, Limiter, LimiterState, ManualClock};

fn app(toml: &str, clock: Option<ManualClock>) -> App {
    let limiter = match clock {
        Some(c) => Limiter::new().clock(c),
        None => Limiter::new(),
    };
    builder(toml).register(limiter).build().unwrap()
}

fn check(app: &App, limits: &str) -> KeyCheck {
    app.state::<LimiterState>()
        .unwrap()
        .key_check("login", limits)
        .unwrap()
}

#[tokio::test]
async fn a_key_check_admits_the_quota_per_key_then_refuses_with_the_wait() {
    let clock = ManualClock::new();
    let app = app("", Some(clock.clone()));
    let login = check(&app, "3/minute");
    assert_eq!(login.scope(), "login");
    for left in [2, 1, 0] {
        assert_eq!(
            login.check("ada").await,
            KeyDecision::Admitted {
                remaining: Some(left)
            }
        );
    }
    let refused = login.check("ada").await;
    assert_eq!(
        refused,
        KeyDecision::Refused {
            limit: "3/minute".into(),
            retry_after: Duration::from_secs(20)
        }
    );
    assert_eq!(refused.retry_after_secs(), Some(20));
    assert!(!refused.admitted());
    // Another key has its own bucket; time refills ada's.
    assert!(login.check("bob").await.admitted());
    clock.advance(Duration::from_secs(20));
    assert!(login.check("ada").await.admitted());
    assert!(!login.check("ada").await.admitted());
}

#[tokio::test]
async fn key_checks_show_in_status_and_are_forgotten_by_reset() {
    let app = app("", None);
    let login = check(&app, "2/minute");
    login.check("ada@example.com").await;
    login.check("ada@example.com").await;
    assert!(!login.check("ada@example.com").await.admitted());
    let state = app.state::<LimiterState>().unwrap();
    let counters = state.status("ada@example.com").await.unwrap();
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert_eq!(counters[0].scope, "key login");
    assert_eq!(counters[0].limit, "2/minute");
    assert_eq!(counters[0].remaining, 0);
    assert_eq!(state.reset(Some("ada@example.com")).await.unwrap(), 1);
    assert!(login.check("ada@example.com").await.admitted());
}

#[tokio::test]
async fn a_bad_limit_string_is_an_error_and_a_disabled_limiter_admits_all() {
    let app = app("[limiter]\nenabled = false\n", None);
    let state = app.state::<LimiterState>().unwrap();
    assert!(state.key_check("login", "often").is_err());
    let login = check(&app, "1/hour");
    for _ in 0..5 {
        assert_eq!(
            login.check("ada").await,
            KeyDecision::Admitted { remaining: None }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_redis_share_a_key_checks_quota() {
    if !common::redis_up("instances_sharing_redis_share_a_key_checks_quota") {
        return;
    }
    let prefix = common::unique_prefix("keycheck");
    let toml = common::redis_toml(&prefix, "");
    let (one, two) = (app(&toml, None), app(&toml, None));
    let (a, b) = (check(&one, "4/minute"), check(&two, "4/minute"));
    let mut admitted = 0;
    for i in 0..10 {
        let on = if i % 2 == 0 { &a } else { &b };
        let d = on.check("ada@example.com").await;
        assert!(
            matches!(
                d,
                KeyDecision::Admitted { .. } | KeyDecision::Refused { .. }
            ),
            "{d:?}"
        );
        admitted += usize::from(d.admitted());
    }
    assert_eq!(admitted, 4, "exactly the quota across both instances");
    let refused = b.check("ada@example.com").await;
    assert_eq!(refused.retry_after_secs(), Some(15));
    assert!(a.check("bob@example.com").await.admitted());
    let state = one.state::<LimiterState>().unwrap();
    let counters = state.status("ada@example.com").await.unwrap();
    assert_eq!(counters[0].scope, "key login");
    state.reset(None).await.unwrap();
    assert!(common::keys_under(&prefix).is_empty());
}
