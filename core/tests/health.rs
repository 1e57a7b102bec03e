//! `/healthz` and `/readyz` with passing, failing and hanging checks.

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flagon::App;
use flagon::health::CheckOutcome;
use flagon::testing::{TestClient, testing_config_toml};

fn app(checks: &'static [&'static str]) -> App {
    App::builder()
        // Every probe runs the checks: these tests are about what one run reports.
        .settings(testing_config_toml("[health]\ncache_for = \"0s\"\n"))
        .configure(move |s| {
            for &c in checks {
                match c {
                    "db" => s.health_check("db", Duration::from_secs(1), |_| async { Ok(()) }),
                    "redis" => s.health_check("redis", Duration::from_secs(1), |_| async {
                        // Any error `?` works with.
                        Err(std::io::Error::other("connection refused (127.0.0.1:6390)"))?;
                        Ok(())
                    }),
                    "broken" => s.health_check("broken", Duration::from_secs(1), |_| async {
                        if true {
                            panic!("check bug");
                        }
                        Ok(())
                    }),
                    "smtp" => s.health_check("smtp", Duration::from_millis(200), |_| async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok(())
                    }),
                    "pool" => s.health_check("pool", Duration::from_secs(1), |_| async {
                        CheckOutcome::healthy()
                            .detail("in_use", 3)
                            .detail("idle", 7)
                    }),
                    "breaker" => s.health_check("breaker", Duration::from_secs(1), |_| async {
                        CheckOutcome::unhealthy(format!("circuit open{}", "!".repeat(1000)))
                            .detail("breaker", "open")
                    }),
                    _ => unreachable!(),
                };
            }
            Ok(())
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn healthz_answers_while_the_process_lives() {
    let res = TestClient::new(&app(&["redis"]))
        .get("/healthz")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>()["status"], "ok");
}

#[tokio::test]
async fn readyz_is_200_when_every_check_passes() {
    let res = TestClient::new(&app(&["db"])).get("/readyz").send().await;
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["checks"]["db"]["status"], "ok");
}

#[tokio::test]
async fn readyz_is_503_naming_the_failing_check() {
    let res = TestClient::new(&app(&["db", "redis"]))
        .get("/readyz")
        .send()
        .await;
    assert_eq!(res.status(), 503);
    let v: serde_json::Value = res.json();
    assert_eq!(v["status"], "fail");
    assert_eq!(v["checks"]["db"]["status"], "ok");
    assert_eq!(v["checks"]["redis"]["status"], "fail");
    assert_eq!(
        v["checks"]["redis"]["error"],
        "connection refused (127.0.0.1:6390)"
    );
}

#[tokio::test]
async fn a_hanging_check_times_out_without_hanging_readyz() {
    let started = Instant::now();
    let res = TestClient::new(&app(&["db", "smtp"]))
        .get("/readyz")
        .send()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "readyz must answer within the check timeout"
    );
    assert_eq!(res.status(), 503);
    let v: serde_json::Value = res.json();
    assert_eq!(v["checks"]["smtp"]["status"], "timeout");
    assert_eq!(v["checks"]["db"]["status"], "ok");
}

#[tokio::test]
async fn a_panicking_check_is_reported_not_a_500() {
    let res = TestClient::new(&app(&["db", "broken"]))
        .get("/readyz")
        .send()
        .await;
    assert_eq!(res.status(), 503);
    let v: serde_json::Value = res.json();
    assert_eq!(v["checks"]["broken"]["error"], "the check panicked");
    assert_eq!(v["checks"]["db"]["status"], "ok");
}

#[tokio::test]
async fn a_check_detail_is_shown() {
    let res = TestClient::new(&app(&["pool"])).get("/readyz").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let v: serde_json::Value = res.json();
    assert_eq!(v["checks"]["pool"]["status"], "ok");
    assert_eq!(v["checks"]["pool"]["detail"]["in_use"], 3);
    assert_eq!(v["checks"]["pool"]["detail"]["idle"], 7);
}

#[tokio::test]
async fn a_failing_check_shows_its_detail_and_a_bounded_error() {
    let res = TestClient::new(&app(&["pool", "breaker"]))
        .get("/readyz")
        .send()
        .await;
    assert_eq!(res.status(), 503);
    let v: serde_json::Value = res.json();
    let breaker = &v["checks"]["breaker"];
    assert_eq!(breaker["status"], "fail");
    assert_eq!(breaker["detail"]["breaker"], "open");
    let error = breaker["error"].as_str().unwrap();
    assert!(error.starts_with("circuit open!!!"), "{error}");
    assert_eq!(
        error.chars().count(),
        flagon::health::MAX_ERROR_LEN + 1,
        "cut with an ellipsis"
    );
}

/// An app whose one check counts its runs and takes `takes` to answer.
fn counting(cache_for: &str, takes: Duration) -> (App, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let app = App::builder()
        .settings(testing_config_toml(&format!(
            "[health]\ncache_for = \"{cache_for}\"\n"
        )))
        .configure(move |s| {
            s.health_check("counted", Duration::from_secs(10), move |_| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(takes).await;
                    Ok(())
                }
            });
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    (app, runs)
}

#[tokio::test]
async fn probes_within_cache_for_share_one_run_and_a_later_probe_runs_again() {
    let (app, runs) = counting("1s", Duration::ZERO);
    let client = TestClient::new(&app);
    for _ in 0..5 {
        assert_eq!(client.get("/readyz").send().await.status(), 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "cached within the interval");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(client.get("/readyz").send().await.status(), 200);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "run again after the interval"
    );
}

#[tokio::test]
async fn concurrent_probes_wait_for_the_run_in_progress() {
    // The first probe runs the check; the others arrive while it runs and share its result.
    let (app, runs) = counting("5s", Duration::from_millis(300));
    let client = TestClient::new(&app);
    let probes = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get("/readyz").send().await.status() })
    });
    for p in futures_join(probes).await {
        assert_eq!(p, 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one run for eight probes");
}

#[tokio::test]
async fn a_run_finishes_and_is_kept_when_its_probe_gives_up() {
    let (app, runs) = counting("30s", Duration::from_millis(300));
    let client = TestClient::new(&app);
    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), client.get("/readyz").send()).await;
    assert!(gave_up.is_err(), "the prober timed out");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(client.get("/readyz").send().await.status(), 200);
    // A cancelled run would have been started again by this probe.
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_caching_every_probe_runs_the_checks() {
    let (app, runs) = counting("0s", Duration::ZERO);
    let client = TestClient::new(&app);
    for _ in 0..3 {
        client.get("/readyz").send().await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[test]
fn a_bad_cache_for_is_a_build_error_naming_the_key() {
    let err = App::builder()
        .settings(testing_config_toml("[health]\ncache_for = \"soon\"\n"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("health.cache_for"), "{err}");
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
