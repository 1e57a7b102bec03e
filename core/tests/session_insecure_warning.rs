//! The warning for session cookies sent without `Secure` (development's
//! `insecure_plain_http`): logged once, not once per request.
//!
//! Alone in its own test binary: it installs a thread-local subscriber, and tracing caches
//! per-callsite interest process-wide, so requests served concurrently by other tests on
//! threads without a subscriber could hide the line.

use std::sync::{Arc, Mutex};

use flagon::config::{Config, Profile};
use flagon::session::Session;
use flagon::testing::TestClient;
use flagon::{App, HttpError, Route};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn set(session: Session) -> Result<&'static str, HttpError> {
    session.insert("n", 1)?;
    Ok("set")
}

#[tokio::test(flavor = "current_thread")]
async fn a_cookie_without_secure_is_warned_about_once() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
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
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
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
