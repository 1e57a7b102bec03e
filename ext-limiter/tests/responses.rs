//! The 429s and the rate-limit headers (G8), and the `RateLimited` signal.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{builder, ok, peer};
use flagon::Route;
use flagon::http::StatusCode;
use flagon::testing::TestClient;
use flagon_limiter::{Limiter, LimiterError, RateLimited, limit};

// ---- responses (G8) ----

#[tokio::test]
async fn refusals_carry_headers_and_a_body_by_accept() {
    let app = builder("[limiter]\ndefault = \"1/minute; 100/day\"\nlegacy_headers = true\n")
        .register(Limiter::new())
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let from = peer("192.0.2.50:1");
    assert_eq!(c.get("/").peer(from).send().await.status(), 200);

    let res = c
        .get("/")
        .peer(from)
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.header("ratelimit-policy"),
        Some("\"1/minute\";q=1;w=60, \"100/day\";q=100;w=86400")
    );
    let rl = res.header("ratelimit").unwrap().to_owned();
    assert!(rl.starts_with("\"1/minute\";r=0;t="), "{rl}");
    let t: u64 = rl.rsplit("t=").next().unwrap().parse().unwrap();
    assert!(t >= retry, "the reset is never earlier than Retry-After");
    assert_eq!(res.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(res.header("x-ratelimit-remaining"), Some("0"));
    assert!(
        res.header("x-ratelimit-reset")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1_700_000_000
    );
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let body: flagon::serde_json::Value = res.json();
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(body["status"], 429);
    assert_eq!(body["retry_after"], retry);

    let res = c
        .get("/")
        .peer(from)
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status(), 429);
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    assert!(res.text().contains("rate limit exceeded (1/minute)"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(res.header("retry-after").is_some());
}

#[tokio::test]
async fn the_apps_429_handler_renders_browser_refusals() {
    let app = builder("[limiter]\ndefault = \"1/minute\"\n")
        .register(Limiter::new())
        .configure(|app| {
            app.error_handler(StatusCode::TOO_MANY_REQUESTS, |ctx| async move {
                let secs = match ctx.error.find_cause::<LimiterError>() {
                    Some(LimiterError::Exceeded {
                        retry_after_secs, ..
                    }) => *retry_after_secs,
                    _ => 0,
                };
                (StatusCode::TOO_MANY_REQUESTS, format!("slow down, {secs}s"))
            });
            Ok(())
        })
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let from = peer("192.0.2.60:1");
    c.get("/").peer(from).send().await;
    let res = c.get("/").peer(from).send().await;
    assert_eq!(res.status(), 429);
    let text = res.text();
    assert!(
        text == "slow down, 60s" || text == "slow down, 59s",
        "{text}"
    );
    // The app's page keeps the limiter's headers.
    assert!(res.header("retry-after").is_some());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(
        res.header("ratelimit")
            .unwrap()
            .starts_with("\"1/minute\";r=0;t=")
    );
    assert!(res.header("ratelimit-policy").is_some());
}

#[tokio::test]
async fn success_headers_and_the_signal() {
    let refused = Arc::new(AtomicUsize::new(0));
    let seen = refused.clone();
    let app = builder("[limiter]\nheaders_on_success = true\ndefault = \"3/hour\"\n")
        .register(Limiter::new())
        .configure(move |app| {
            let seen = seen.clone();
            app.subscribe(move |e: &RateLimited| {
                assert_eq!(e.endpoint.as_deref(), Some("index"));
                assert_eq!(e.key, "192.0.2.70");
                assert_eq!(e.limit, "2/minute");
                seen.fetch_add(1, Ordering::SeqCst);
            });
            Ok(())
        })
        .route(Route::get("/", ok).name("index").with(limit("2/minute")))
        .route(Route::get("/plain", ok).name("plain"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let from = peer("192.0.2.70:1");
    let res = c.get("/plain").peer(from).send().await;
    assert_eq!(
        res.header("ratelimit-policy"),
        Some("\"3/hour\";q=3;w=3600")
    );
    assert_eq!(res.header("ratelimit"), Some("\"3/hour\";r=2;t=1200"));
    let res = c.get("/").peer(from).send().await;
    assert_eq!(
        res.header("ratelimit-policy"),
        Some("\"2/minute\";q=2;w=60")
    );
    assert_eq!(res.header("ratelimit"), Some("\"2/minute\";r=1;t=30"));
    c.get("/").peer(from).send().await;
    assert_eq!(c.get("/").peer(from).send().await.status(), 429);
    assert_eq!(c.get("/").peer(from).send().await.status(), 429);
    assert_eq!(refused.load(Ordering::SeqCst), 2);
}
