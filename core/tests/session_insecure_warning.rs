//! The warning for session cookies sent without `Secure` (development's
//! `insecure_plain_http`): logged once, not once per request.
//!
//! Alone in its own test binary: it installs a thread-local subscriber, and tracing caches
//! per-callsite interest process-wide, so requests served concurrently by other tests on
//! threads without a subscriber could hide the line.

use flagon::config::{Config, Profile};
use flagon::session::Session;
use flagon::testing::TestClient;
use flagon::{App, HttpError, Route};

async fn set(session: Session) -> Result<&'static str, HttpError> {
    session.insert("n", 1)?;
    Ok("set")
}

#[tokio::test(flavor = "current_thread")]
async fn a_cookie_without_secure_is_warned_about_once() {
    let logs = flagon::testing::LogCapture::start(tracing::Level::WARN);
    let dev = Config::builder()
        .profile(Profile::Development)
        .toml("[session]\ninsecure_plain_http = true\n[templates]\nauto_reload = false\n")
        .build()
        .unwrap();
    let app = App::builder()
        .settings(dev)
        .route(Route::get("/set", set))
        .build()
        .unwrap();
    for _ in 0..50 {
        // A fresh client each time: every response sets a new cookie.
        let res = TestClient::new(&app).get("/set").send().await;
        assert!(
            res.header("set-cookie")
                .is_some_and(|c| !c.contains("Secure"))
        );
    }
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("without `Secure`"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("insecure_plain_http"),
        "{}",
        warnings[0]
    );
}
