//! The core layer's one structured log line per request.
//!
//! Alone in its own test binary: it installs a thread-local subscriber, and tracing caches
//! per-callsite interest process-wide, so requests served concurrently by other tests on
//! threads without a subscriber can cache "nobody listens" and hide the line.

use flagon::testing::{TestClient, testing_config};
use flagon::{App, RequestId, Route};

async fn echo_id(id: RequestId) -> String {
    id.to_string()
}

fn app() -> App {
    App::builder()
        .settings(testing_config())
        .route(Route::get("/id", echo_id))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn one_structured_log_line_per_request() {
    let logs = flagon::testing::LogCapture::start(tracing::Level::INFO);
    let res = TestClient::new(&app())
        .get("/id")
        .header("x-request-id", "abc-1")
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("flagon::request"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    for field in [
        "method=GET",
        "path=/id",
        "status=200",
        "latency_us=",
        "request_id=abc-1",
    ] {
        assert!(lines[0].contains(field), "{field} missing: {}", lines[0]);
    }
}
