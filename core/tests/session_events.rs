//! Sessions tell listeners when a session changes identity, without knowing who listens.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::sync::{Arc, Mutex};

use flagon::session::Session;
use flagon::testing::{TestClient, testing_config};
use flagon::{App, RequestLocal, Route};

async fn rotate(session: Session) -> Result<&'static str, flagon::HttpError> {
    session.insert("user", "ada")?;
    session.rotate_id();
    Ok("rotated")
}

async fn delete(session: Session) -> &'static str {
    session.delete();
    "deleted"
}

async fn read(session: Session) -> String {
    format!("{:?}", session.get::<String>("user"))
}

#[tokio::test]
async fn rotation_listeners_run_on_rotate_and_delete_only() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = App::builder()
        .settings(testing_config())
        .configure(move |setup| {
            // A listener reaches its own request-scoped value through the session.
            let marks: RequestLocal<Mutex<u32>> = setup.request_local(|_| Mutex::new(0));
            let s = s.clone();
            setup.on_session_rotate(move |session| {
                let n = marks.get(session).map_or(0, |m| {
                    let mut m = m.lock().unwrap();
                    *m += 1;
                    *m
                });
                s.lock()
                    .unwrap()
                    .push(format!("{:?}#{n}", session.get::<String>("user")));
            });
            setup.route(Route::get("/rotate", rotate));
            setup.route(Route::get("/delete", delete));
            setup.route(Route::get("/read", read));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    client.get("/read").send().await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "reading is no change of identity"
    );
    client.get("/rotate").send().await;
    client.get("/delete").send().await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["Some(\"ada\")#1", "None#1"],
        "one call per change, after the change, with a fresh value per request"
    );
}
