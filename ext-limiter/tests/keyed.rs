//! Keyed limits a handler checks for a key of its choosing (`LimiterState::keyed`): GCRA
//! per key, listed and reset like the decorators' counters, and on Redis exact across
//! instances.

mod common;

use std::sync::Arc;

use flagon::App;
use flagon::testing::run_cli;
use flagon_limiter::{KeyLimit, Limiter, LimiterError, LimiterState, ManualClock};

fn app(toml: &str, clock: Option<ManualClock>) -> App {
    let limiter = match clock {
        Some(c) => Limiter::new().clock(c),
        None => Limiter::new(),
    };
    common::builder(toml)
        .register(limiter)
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"))
}

fn keyed(app: &App, limits: &str) -> KeyLimit {
    let state: Arc<LimiterState> = app.handle().state().expect("the limiter is registered");
    state.keyed("login.account", limits).expect("a valid limit")
}

#[tokio::test]
async fn a_keyed_limit_counts_per_key_with_the_decorators_semantics() {
    let clock = ManualClock::new();
    let app = app("", Some(clock.clone()));
    let limit = keyed(&app, "3/minute");
    for left in [2, 1, 0] {
        assert_eq!(limit.check("ann@example.com").await.unwrap(), left);
    }
    match limit.check("ann@example.com").await {
        Err(LimiterError::Exceeded {
            limit,
            retry_after_secs,
        }) => {
            assert_eq!(limit, "3/minute");
            assert_eq!(retry_after_secs, 20, "GCRA: one more every 20 s");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        limit.check("bob@example.com").await.unwrap(),
        2,
        "another key"
    );
    clock.advance(std::time::Duration::from_secs(20));
    assert_eq!(limit.check("ann@example.com").await.unwrap(), 0);

    // Listed and forgotten like any counter.
    let state = app.handle().state::<LimiterState>().unwrap();
    let counters = state.status("ann@example.com").await.unwrap();
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert_eq!(counters[0].scope, "keyed login.account");
    assert_eq!(counters[0].limit, "3/minute");
    assert_eq!(counters[0].remaining, 0);
    assert_eq!(state.reset(Some("ann@example.com")).await.unwrap(), 1);
    assert_eq!(limit.check("ann@example.com").await.unwrap(), 2);

    assert!(
        app.handle()
            .state::<LimiterState>()
            .unwrap()
            .keyed("bad", "3 per fortnight")
            .is_err(),
        "a malformed limit is an error, not a panic"
    );
}

#[tokio::test]
async fn the_status_command_lists_keyed_counters() {
    let app = app("", None);
    let limit = keyed(&app, "5/hour");
    limit.check("carol@example.com").await.unwrap();
    let state = app.handle().state::<LimiterState>().unwrap();
    assert_eq!(
        state.status("carol@example.com").await.unwrap()[0].remaining,
        4
    );
    // The command runs in this process (in-process storage is per process).
    let out = run_cli(&app, ["limiter", "status", "carol@example.com"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("keyed login.account"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_keyed_limit_is_exact_across_instances() {
    if !common::redis_up("on_redis_a_keyed_limit_is_exact_across_instances") {
        return;
    }
    let prefix = common::unique_prefix("keyed");
    let toml = common::redis_toml(&prefix, "");
    let (a, b, c) = (app(&toml, None), app(&toml, None), app(&toml, None));
    let limits = [
        keyed(&a, "10/minute"),
        keyed(&b, "10/minute"),
        keyed(&c, "10/minute"),
    ];
    let mut tasks = Vec::new();
    for i in 0..30 {
        let l = limits[i % 3].clone();
        tasks.push(tokio::spawn(
            async move { l.check("dave@example.com").await },
        ));
    }
    let mut admitted = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(LimiterError::Exceeded { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        (admitted, refused),
        (10, 20),
        "the three instances share one bucket"
    );
    let keys = common::keys_under(&prefix);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].contains(":k:login.account:"), "{keys:?}");
    let counters = a
        .handle()
        .state::<LimiterState>()
        .unwrap()
        .status("dave@example.com")
        .await
        .unwrap();
    assert_eq!(counters[0].scope, "keyed login.account");
    let mut con = common::raw_redis();
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
}
