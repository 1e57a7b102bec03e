//! Session storage through whole apps: store calls per request, record size bounds,
//! eviction under a flood of one-shot sessions, caching headers and foreign cookies.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::sync::{Arc, Mutex};

use flagon::session::{
    Changes, Id, MemoryStore, Record, Session, SessionStore, StoreFuture, Updated,
};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, HttpError, Route};

const COOKIE: &str = "__Host-session";

/// A memory store that logs the name of every call.
struct Logged {
    inner: MemoryStore,
    calls: Mutex<Vec<&'static str>>,
}

impl Logged {
    fn new() -> Arc<Self> {
        Arc::new(Logged {
            inner: MemoryStore::new(1000),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn log(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }

    /// The calls since the last `take`.
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl SessionStore for Logged {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        self.log("create");
        self.inner.create(record)
    }
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        self.log("load");
        self.inner.load(id)
    }
    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        self.log(if changes.is_touch() {
            "touch"
        } else {
            "update"
        });
        self.inner.update(id, changes)
    }
    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        self.log("delete");
        self.inner.delete(id)
    }
}

async fn get(session: Session) -> String {
    format!("visits: {:?}", session.get::<u64>("visits"))
}

async fn set(session: Session) -> Result<String, HttpError> {
    let n = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.insert("visits", n)?;
    Ok(format!("visits: {n}"))
}

async fn big(session: Session) -> Result<&'static str, HttpError> {
    session.insert("note", "x".repeat(4000))?;
    Ok("stored?")
}

async fn login(session: Session) -> Result<&'static str, HttpError> {
    session.insert("user", "ada")?;
    session.rotate_id();
    Ok("in")
}

async fn public_page(session: Session) -> impl axum::response::IntoResponse {
    let _ = session.get::<u64>("visits");
    (
        [("cache-control", "public, max-age=60, s-maxage=600")],
        "page",
    )
}

async fn no_store_page(session: Session) -> impl axum::response::IntoResponse {
    let _ = session.get::<u64>("visits");
    ([("cache-control", "no-store")], "page")
}

fn app_on(store: Option<Arc<Logged>>, session_toml: &str) -> App {
    let toml = match store {
        Some(_) => format!("[session]\nstore = \"logged\"\n{session_toml}\n"),
        None => format!("[session]\n{session_toml}\n"),
    };
    App::builder()
        .settings(testing_config_toml(&toml))
        .configure(move |setup| {
            if let Some(s) = store.clone() {
                setup.session_store("logged", move |_| Ok(s.clone() as Arc<dyn SessionStore>));
            }
            setup.route(Route::get("/get", get));
            setup.route(Route::get("/set", set));
            setup.route(Route::get("/big", big));
            setup.route(Route::get("/login", login));
            setup.route(Route::get("/public", public_page));
            setup.route(Route::get("/no-store", no_store_page));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn each_session_path_costs_the_fewest_store_calls() {
    let store = Logged::new();
    let app = app_on(Some(store.clone()), "idle_timeout = \"1h\"");
    let client = TestClient::new(&app);

    client.get("/set").send().await;
    assert_eq!(store.take(), ["create"], "a new session: one call");
    client.get("/get").send().await;
    assert_eq!(
        store.take(),
        ["load"],
        "reading an unchanged, fresh session: one call"
    );
    client.get("/set").send().await;
    assert_eq!(
        store.take(),
        ["load", "update"],
        "changing it: a load and one atomic update, no re-load"
    );
    client.get("/login").send().await;
    assert_eq!(
        store.take(),
        ["load", "delete", "create"],
        "rotating the id"
    );
}

#[tokio::test]
async fn a_stale_session_is_refreshed_with_a_single_touch() {
    let clock = flagon::session::ManualClock::new();
    let store = Arc::new(Logged {
        inner: MemoryStore::with_clock(100, Arc::new(clock.clone())),
        calls: Mutex::new(Vec::new()),
    });
    let s = store.clone();
    let c = clock.clone();
    let app = App::builder()
        .settings(testing_config_toml(
            "[session]\nstore = \"logged\"\nidle_timeout = \"100s\"\n",
        ))
        .configure(move |setup| {
            let s = s.clone();
            setup.session_store("logged", move |_| Ok(s.clone() as Arc<dyn SessionStore>));
            setup.session_clock(c.clone());
            setup.route(Route::get("/get", get));
            setup.route(Route::get("/set", set));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    client.get("/set").send().await;
    store.take();
    clock.advance(std::time::Duration::from_secs(30));
    assert_eq!(client.get("/get").send().await.text(), "visits: Some(1)");
    assert_eq!(store.take(), ["load", "touch"], "a refresh is one touch");
    clock.advance(std::time::Duration::from_secs(90));
    assert_eq!(
        client.get("/get").send().await.text(),
        "visits: Some(1)",
        "the touch moved the idle deadline"
    );
}

#[tokio::test]
async fn an_oversized_session_is_not_saved_and_keeps_its_previous_state() {
    for mode in ["empty", "unavailable"] {
        let store = Logged::new();
        let app = app_on(
            Some(store.clone()),
            &format!("max_record_bytes = 1024\non_store_error = \"{mode}\""),
        );
        let client = TestClient::new(&app);
        assert_eq!(client.get("/set").send().await.text(), "visits: 1");
        let cookie = client.cookie(COOKIE).expect("a session");
        store.take();
        let res = client.get("/big").send().await;
        assert_eq!(
            res.status(),
            200,
            "the handler's response goes out ({mode})"
        );
        assert_eq!(res.text(), "stored?");
        assert_eq!(store.take(), ["load"], "nothing is written ({mode})");
        assert_eq!(client.cookie(COOKIE), Some(cookie), "the same session");
        assert_eq!(
            client.get("/get").send().await.text(),
            "visits: Some(1)",
            "the previous state is kept ({mode})"
        );

        // A first visit with an oversized session gets no record and no cookie.
        let fresh = TestClient::new(&app);
        let res = fresh.get("/big").send().await;
        assert_eq!(res.status(), 200);
        assert!(res.header("set-cookie").is_none(), "no record, no cookie");
    }
}

#[test]
fn size_bounds_are_checked_at_startup_naming_the_key() {
    for (toml, key) in [
        ("max_record_bytes = 10", "session.max_record_bytes"),
        (
            "max_record_bytes = 4096\nmemory_max_bytes = 8192",
            "session.memory_max_bytes",
        ),
    ] {
        let built = App::builder()
            .settings(testing_config_toml(&format!("[session]\n{toml}\n")))
            .build();
        let Err(err) = built else {
            panic!("a bad bound fails the build: {toml}");
        };
        let err = err.to_string();
        assert!(err.contains(key), "{err}");
    }
}

#[tokio::test]
async fn a_flood_of_one_shot_sessions_does_not_evict_a_returning_visitor() {
    // 16 shards of ten records each.
    let app = app_on(None, "capacity = 160");
    let regular = TestClient::new(&app);
    for n in 1..=3 {
        assert_eq!(
            regular.get("/set").send().await.text(),
            format!("visits: {n}")
        );
    }
    // Each of these stores a value, as an app's own page would, and never comes back.
    for _ in 0..3000 {
        let once = TestClient::new(&app);
        assert_eq!(once.get("/set").send().await.text(), "visits: 1");
    }
    assert_eq!(
        regular.get("/set").send().await.text(),
        "visits: 4",
        "the returning visitor's session survived"
    );
}

#[tokio::test]
async fn responses_that_read_the_session_are_private() {
    let app = app_on(None, "");
    let client = TestClient::new(&app);
    client.get("/set").send().await;

    let res = client.get("/get").send().await;
    assert!(res.header("set-cookie").is_none(), "only read");
    assert_eq!(res.header("cache-control"), Some("private"));
    assert_eq!(res.header("vary"), Some("Cookie"));

    let res = client.get("/public").send().await;
    assert_eq!(
        res.header("cache-control"),
        Some("private, max-age=60"),
        "a handler's `public` and `s-maxage` give way, its max-age stays"
    );
    let res = client.get("/no-store").send().await;
    assert_eq!(
        res.header("cache-control"),
        Some("no-store"),
        "a stricter policy stays"
    );

    // A first visit that only reads the session is private too.
    let res = TestClient::new(&app).get("/get").send().await;
    assert_eq!(res.header("cache-control"), Some("private"));
}

#[tokio::test]
async fn a_foreign_non_ascii_cookie_does_not_replace_the_session() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let app = app_on(None, "");
    let client = TestClient::new(&app);
    client.get("/set").send().await;
    let value = client.cookie(COOKIE).expect("a session");
    // What a browser sends when a parent domain planted `lang=français` (UTF-8 bytes).
    let header = format!("lang=fran\u{e7}ais; {COOKIE}={value}");
    let req = http::Request::get("/set")
        .header(http::header::HOST, "localhost")
        .header(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(header.as_bytes()).unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app
        .service()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get(http::header::SET_COOKIE).is_none(),
        "the browser's session is not replaced"
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"visits: 2", "the session was recognised");
}
