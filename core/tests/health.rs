//! `/healthz` and `/readyz` with passing, failing and hanging checks.

use std::time::{Duration, Instant};

use flagon::App;
use flagon::testing::{TestClient, testing_config};

fn app(checks: &'static [&'static str]) -> App {
    App::builder()
        .settings(testing_config())
        .configure(move |s| {
            for &c in checks {
                match c {
                    "db" => s.health_check("db", Duration::from_secs(1), |_| async { Ok(()) }),
                    "redis" => s.health_check("redis", Duration::from_secs(1), |_| async {
                        Err("connection refused (127.0.0.1:6390)".to_owned())
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
