//! Sessions driven through whole apps: lazy loading, rotation, logout, timeouts, bad
//! cookies, headers, capacity and store failures.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flagon::session::{
    Changes, Id, ManualClock, MemoryStore, Record, Session, SessionStore, StoreError, StoreFuture,
    Updated,
};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, HttpError, Route};

/// Wraps a memory store, counting calls and failing or hanging on demand.
struct TestStore {
    inner: MemoryStore,
    calls: AtomicUsize,
    /// 0 = work, 1 = fail, 2 = hang.
    mode: AtomicU8,
}

impl TestStore {
    fn new(capacity: usize, clock: ManualClock) -> Arc<Self> {
        Arc::new(TestStore {
            inner: MemoryStore::with_clock(capacity, Arc::new(clock)),
            calls: AtomicUsize::new(0),
            mode: AtomicU8::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn set_mode(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn has(&self, id: &Id) -> bool {
        poll_once(self.inner.load(id)).ok().flatten().is_some()
    }

    fn wrap<'a, T: Send + 'a>(&'a self, fut: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            0 => fut,
            1 => Box::pin(async { Err(StoreError::Backend("backend down".into())) }),
            _ => Box::pin(std::future::pending()),
        }
    }
}

/// Polls a memory-store future, which never waits, to completion.
fn poll_once<T>(fut: StoreFuture<'_, T>) -> Result<T, StoreError> {
    let mut fut = fut;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => panic!("memory store futures complete at once"),
    }
}

impl SessionStore for TestStore {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        self.wrap(self.inner.create(record))
    }
    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        self.wrap(self.inner.update(id, changes))
    }
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        self.wrap(self.inner.load(id))
    }
    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        self.wrap(self.inner.delete(id))
    }
}

async fn hello() -> &'static str {
    "hello"
}

async fn get(session: Session) -> String {
    match session.get::<u64>("visits") {
        Some(n) => format!("visits: {n}"),
        None => "visits: none".into(),
    }
}

async fn set(session: Session) -> Result<String, HttpError> {
    let n = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.insert("visits", n)?;
    Ok(format!("visits: {n}"))
}

async fn login(session: Session) -> Result<&'static str, HttpError> {
    session.insert("user", "ada")?;
    session.rotate_id();
    Ok("logged in")
}

async fn set_then_panic(session: Session) -> &'static str {
    let _ = session.insert("visits", 100u64);
    panic!("handler bug after writing the session")
}

async fn logout(session: Session) -> &'static str {
    session.delete();
    "logged out"
}

const COOKIE: &str = "__Host-session";

struct Fixture {
    app: App,
    store: Arc<TestStore>,
    clock: ManualClock,
}

fn fixture(session_toml: &str) -> Fixture {
    let clock = ManualClock::new();
    let store = TestStore::new(1000, clock.clone());
    let toml = format!("[session]\nstore = \"test\"\n{session_toml}\n");
    let (s, c) = (store.clone(), clock.clone());
    let app = App::builder()
        .settings(testing_config_toml(&toml))
        .configure(move |setup| {
            let s = s.clone();
            setup.session_store("test", move |_| Ok(s.clone() as Arc<dyn SessionStore>));
            setup.session_clock(c);
            setup.route(Route::get("/hello", hello));
            setup.route(Route::get("/get", get));
            setup.route(Route::get("/set", set));
            setup.route(Route::get("/login", login));
            setup.route(Route::get("/logout", logout));
            setup.route(Route::get("/set-then-panic", set_then_panic));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Fixture { app, store, clock }
}

fn id_of(cookie: &str) -> Id {
    Id::from_hex(&cookie[..32]).expect("cookie starts with the id")
}

#[tokio::test]
async fn a_request_that_ignores_the_session_does_no_store_io_and_sets_no_cookie() {
    let f = fixture("");
    let client = TestClient::new(&f.app);
    client.get("/set").send().await;
    assert!(client.cookie(COOKIE).is_some());
    let before = f.store.calls();
    let res = client.get("/hello").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        f.store.calls(),
        before,
        "no store call for a session-free route"
    );
    assert!(res.header("set-cookie").is_none());
    assert!(res.header("vary").is_none());

    let fresh = TestClient::new(&f.app);
    let res = fresh.get("/get").send().await;
    assert_eq!(res.text(), "visits: none");
    assert!(
        res.header("set-cookie").is_none(),
        "an unwritten session sets no cookie"
    );
    assert_eq!(f.store.calls(), before, "no cookie, no store call");
}

#[tokio::test]
async fn data_survives_between_requests() {
    let f = fixture("");
    let client = TestClient::new(&f.app);
    assert_eq!(client.get("/set").send().await.text(), "visits: 1");
    assert_eq!(client.get("/set").send().await.text(), "visits: 2");
    assert_eq!(client.get("/get").send().await.text(), "visits: 2");
}

#[tokio::test]
async fn rotating_the_id_deletes_the_old_record() {
    let f = fixture("");
    let client = TestClient::new(&f.app);
    client.get("/set").send().await;
    let old = client.cookie(COOKIE).unwrap();
    assert!(f.store.has(&id_of(&old)));
    client.get("/login").send().await;
    let new = client.cookie(COOKIE).unwrap();
    assert_ne!(old, new);
    assert!(!f.store.has(&id_of(&old)), "old record deleted");
    assert!(f.store.has(&id_of(&new)));
    assert_eq!(
        client.get("/get").send().await.text(),
        "visits: 1",
        "data kept"
    );

    // The old cookie no longer opens anything.
    let thief = TestClient::new(&f.app);
    thief.set_cookie(COOKIE, &old);
    assert_eq!(thief.get("/get").send().await.text(), "visits: none");
}

#[tokio::test]
async fn logout_deletes_the_record_and_the_cookie() {
    let f = fixture("");
    let client = TestClient::new(&f.app);
    client.get("/set").send().await;
    let cookie = client.cookie(COOKIE).unwrap();
    let res = client.get("/logout").send().await;
    assert!(res.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert!(!f.store.has(&id_of(&cookie)));
    assert!(client.cookie(COOKIE).is_none());
    let replay = TestClient::new(&f.app);
    replay.set_cookie(COOKIE, &cookie);
    assert_eq!(replay.get("/get").send().await.text(), "visits: none");
}

#[tokio::test]
async fn idle_timeout_expires_an_unused_session_and_use_refreshes_it() {
    let f = fixture("idle_timeout = \"30m\"\nabsolute_timeout = \"1d\"");
    let client = TestClient::new(&f.app);
    client.get("/set").send().await;
    f.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(client.get("/get").send().await.text(), "visits: 1");
    f.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(
        client.get("/get").send().await.text(),
        "visits: 1",
        "40 minutes old but used 20 minutes ago"
    );
    f.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(client.get("/get").send().await.text(), "visits: none");
}

#[tokio::test]
async fn absolute_timeout_is_never_passed_by_refreshes() {
    let f = fixture("idle_timeout = \"30m\"\nabsolute_timeout = \"1h\"");
    let client = TestClient::new(&f.app);
    client.get("/set").send().await;
    for _ in 0..2 {
        f.clock.advance(Duration::from_secs(20 * 60));
        assert_ne!(
            client.get("/set").send().await.text(),
            "visits: 1",
            "still alive"
        );
    }
    f.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(client.get("/get").send().await.text(), "visits: none");
}

#[tokio::test]
async fn bad_cookies_give_an_empty_session_and_are_never_adopted() {
    let f = fixture("");
    let owner = TestClient::new(&f.app);
    owner.get("/set").send().await;
    let good = owner.cookie(COOKIE).unwrap();
    let mut tampered = good.clone().into_bytes();
    tampered[3] = if tampered[3] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();

    // An unknown id: properly signed, but its record is gone.
    let gone = TestClient::new(&f.app);
    gone.get("/set").send().await;
    let unknown = gone.cookie(COOKIE).unwrap();
    gone.get("/logout").send().await;

    let cases: Vec<(&str, String)> = vec![
        ("tampered", format!("{COOKIE}={tampered}")),
        ("truncated", format!("{COOKIE}={}", &good[..40])),
        ("oversized", format!("{COOKIE}={}", "a".repeat(5000))),
        ("duplicated", format!("{COOKIE}={good}; {COOKIE}={good}")),
        ("unknown", format!("{COOKIE}={unknown}")),
        ("garbage", format!("{COOKIE}=%%%;;==")),
    ];
    for (what, header) in cases {
        let client = TestClient::new(&f.app);
        let res = client.get("/get").header("cookie", &header).send().await;
        assert_eq!(res.status(), 200, "{what}");
        assert_eq!(res.text(), "visits: none", "{what}");
        let res = client.get("/set").header("cookie", &header).send().await;
        assert_eq!(res.status(), 200, "{what}");
        assert_eq!(res.text(), "visits: 1", "{what}: starts empty");
        let issued = client.cookie(COOKIE).expect("a fresh id is issued");
        assert_ne!(issued, good, "{what}: never adopted");
        assert_ne!(issued, unknown, "{what}: never adopted");
    }
}

#[tokio::test]
async fn responses_that_read_the_session_vary_on_cookie() {
    let f = fixture("");
    let client = TestClient::new(&f.app);
    let res = client.get("/get").send().await;
    assert_eq!(res.header("vary"), Some("Cookie"));
    let res = client.get("/set").send().await;
    assert_eq!(res.header("vary"), Some("Cookie"));
    let res = client.get("/hello").send().await;
    assert_eq!(res.header("vary"), None);
}

#[tokio::test]
async fn cookie_attributes_are_safe_by_default() {
    let f = fixture("");
    let client = TestClient::new(&f.app);
    let res = client.get("/set").send().await;
    let c = res.header("set-cookie").unwrap();
    assert!(c.starts_with("__Host-session="), "{c}");
    for attr in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
        assert!(c.contains(attr), "{attr} missing in {c}");
    }
    assert!(!c.contains("Domain="), "{c}");
    let value = &c["__Host-session=".len()..c.find(';').unwrap()];
    assert_eq!(value.len(), 65, "32 hex id, dot, 32 hex signature");
}

#[tokio::test]
async fn plain_http_switch_works_in_development_only() {
    let dev = flagon::config::Config::builder()
        .profile(flagon::config::Profile::Development)
        .toml("[session]\ninsecure_plain_http = true\n[templates]\nauto_reload = false\n")
        .build()
        .unwrap();
    let app = App::builder()
        .settings(dev)
        .route(Route::get("/set", set))
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/set").send().await;
    let c = res.header("set-cookie").unwrap();
    assert!(c.starts_with("session="), "{c}");
    assert!(!c.contains("Secure"), "{c}");

    let err = App::builder()
        .settings(testing_config_toml(
            "[session]\ninsecure_plain_http = true\n",
        ))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("session.insecure_plain_http"), "{err}");
    assert!(err.contains("development"), "{err}");
}

#[tokio::test]
async fn an_unknown_store_name_is_a_config_error_naming_the_key() {
    let err = App::builder()
        .settings(testing_config_toml("[session]\nstore = \"rediss\"\n"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("session.store"), "{err}");
    assert!(err.contains("rediss"), "{err}");
    assert!(err.contains("memory"), "{err}");
}

#[tokio::test]
async fn the_memory_store_stays_within_its_capacity() {
    let clock = ManualClock::new();
    let store = Arc::new(MemoryStore::with_clock(10, Arc::new(clock.clone())));
    let s = store.clone();
    let app = App::builder()
        .settings(testing_config_toml("[session]\nstore = \"bounded\"\n"))
        .configure(move |setup| {
            let s = s.clone();
            setup.session_store("bounded", move |_| Ok(s.clone() as Arc<dyn SessionStore>));
            setup.route(Route::get("/set", set));
            Ok(())
        })
        .build()
        .unwrap();
    let mut last = None;
    for _ in 0..200 {
        let client = TestClient::new(&app);
        assert_eq!(client.get("/set").send().await.status(), 200);
        assert!(store.len() <= 10);
        last = Some(client);
    }
    assert_eq!(store.len(), 10);
    // The most recent session is still there.
    assert_eq!(last.unwrap().get("/set").send().await.text(), "visits: 2");
}

async fn store_failure(mode: u8, on_error: &str) -> (flagon::testing::TestResponse, Duration) {
    let f = fixture(&format!(
        "store_timeout = \"100ms\"\nretry_after = \"7s\"\non_store_error = \"{on_error}\""
    ));
    let client = TestClient::new(&f.app);
    client.get("/set").send().await;
    f.store.set_mode(mode);
    let started = Instant::now();
    let res = client.get("/get").send().await;
    (res, started.elapsed())
}

#[tokio::test]
async fn a_failing_store_gives_an_empty_session_in_empty_mode() {
    for mode in [1, 2] {
        let (res, took) = store_failure(mode, "empty").await;
        assert_eq!(res.status(), 200, "mode {mode}");
        assert_eq!(res.text(), "visits: none");
        assert!(took < Duration::from_secs(2), "bounded: took {took:?}");
    }
}

#[tokio::test]
async fn a_failing_store_gives_503_with_retry_after_in_unavailable_mode() {
    for mode in [1, 2] {
        let (res, took) = store_failure(mode, "unavailable").await;
        assert_eq!(res.status(), 503, "mode {mode}");
        assert_eq!(res.header("retry-after"), Some("7"));
        assert!(took < Duration::from_secs(2), "bounded: took {took:?}");
    }
}

#[tokio::test]
async fn a_hanging_store_is_cut_off_at_the_store_timeout() {
    let (_, took) = store_failure(2, "empty").await;
    assert!(
        took >= Duration::from_millis(100),
        "waited for the timeout: {took:?}"
    );
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn before_request_hooks_read_the_session() {
    async fn whoami(g: flagon::G) -> String {
        g.get::<String>().unwrap_or_else(|| "nobody".into())
    }
    let app = App::builder()
        .settings(testing_config_toml(""))
        .route(Route::get("/login", login))
        .route(Route::get("/whoami", whoami).name("whoami"))
        .configure(|s| {
            s.before_request(|mut req| async move {
                let session = match Session::from_request(&req).await {
                    Ok(s) => s,
                    Err(res) => return std::ops::ControlFlow::Break(res),
                };
                if let Some(user) = session.get::<String>("user") {
                    flagon::RequestExt::g(&mut req).insert(user);
                }
                std::ops::ControlFlow::Continue(req)
            });
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(client.get("/whoami").send().await.text(), "nobody");
    client.get("/login").send().await;
    assert_eq!(client.get("/whoami").send().await.text(), "ada");
}

#[test]
fn two_stores_with_one_name_fail_the_build_naming_both() {
    struct RedisA;
    struct RedisB;
    fn store() -> Result<Arc<dyn SessionStore>, flagon::BoxError> {
        Ok(Arc::new(MemoryStore::new(1)))
    }
    impl flagon::Extension for RedisA {
        fn name(&self) -> &'static str {
            "cache"
        }
        fn init_app(&self, app: &mut flagon::Setup<'_>) -> Result<(), flagon::SetupError> {
            app.session_store("redis", |_| store());
            Ok(())
        }
    }
    impl flagon::Extension for RedisB {
        fn name(&self) -> &'static str {
            "other-cache"
        }
        fn init_app(&self, app: &mut flagon::Setup<'_>) -> Result<(), flagon::SetupError> {
            app.session_store("redis", |_| store());
            Ok(())
        }
    }
    let err = App::builder()
        .settings(testing_config_toml(""))
        .register(RedisA)
        .register(RedisB)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("session store `redis`"), "{err}");
    assert!(
        err.contains("extension `cache`") && err.contains("extension `other-cache`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_store_blip_during_load_does_not_replace_the_users_session() {
    let f = fixture("on_store_error = \"empty\"");
    let client = TestClient::new(&f.app);
    assert_eq!(client.get("/set").send().await.text(), "visits: 1");
    let cookie = client.cookie(COOKIE).expect("session cookie");
    f.store.set_mode(1);
    let res = client.get("/set").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text(),
        "visits: 1",
        "the failed load gives an empty session"
    );
    assert!(
        res.header("set-cookie").is_none(),
        "no new session replaces the user's"
    );
    f.store.set_mode(0);
    assert_eq!(client.cookie(COOKIE).as_deref(), Some(cookie.as_str()));
    assert_eq!(client.get("/get").send().await.text(), "visits: 1");
}

#[tokio::test]
async fn a_request_that_panics_keeps_no_session_changes() {
    let f = fixture("");
    let client = TestClient::new(&f.app);
    assert_eq!(client.get("/set").send().await.text(), "visits: 1");
    assert_eq!(client.get("/set-then-panic").send().await.status(), 500);
    assert_eq!(client.get("/get").send().await.text(), "visits: 1");
}

#[tokio::test]
async fn a_response_setting_the_cookie_is_private() {
    let f = fixture("");
    let res = TestClient::new(&f.app).get("/set").send().await;
    assert!(res.header("set-cookie").is_some());
    assert_eq!(res.header("cache-control"), Some("private"));
}

#[tokio::test]
async fn concurrent_requests_changing_different_keys_keep_both_changes() {
    use tokio::sync::Barrier;

    /// A memory store whose loads, once armed, return only when two have read the record:
    /// two requests then both read it before either writes it.
    struct Lockstep {
        inner: MemoryStore,
        armed: std::sync::atomic::AtomicBool,
        loads: Barrier,
    }
    impl SessionStore for Lockstep {
        fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
            self.inner.create(record)
        }
        fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
            self.inner.update(id, changes)
        }
        fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
            Box::pin(async move {
                let read = self.inner.load(id).await;
                if self.armed.load(Ordering::SeqCst) {
                    let paired = tokio::time::timeout(Duration::from_secs(10), self.loads.wait());
                    paired.await.expect("two loads run at once");
                }
                read
            })
        }
        fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
            self.inner.delete(id)
        }
    }

    async fn set_a(session: Session) -> Result<&'static str, HttpError> {
        session.insert("a", 1u64)?;
        Ok("a")
    }
    async fn set_b(session: Session) -> Result<&'static str, HttpError> {
        session.insert("b", 2u64)?;
        Ok("b")
    }
    async fn both(session: Session) -> String {
        format!(
            "{:?} {:?} {:?}",
            session.get::<u64>("visits"),
            session.get::<u64>("a"),
            session.get::<u64>("b")
        )
    }

    let store = Arc::new(Lockstep {
        inner: MemoryStore::new(100),
        armed: false.into(),
        loads: Barrier::new(2),
    });
    let s = store.clone();
    let app = App::builder()
        .settings(testing_config_toml("[session]\nstore = \"lockstep\"\n"))
        .configure(move |setup| {
            let s = s.clone();
            setup.session_store("lockstep", move |_| Ok(s.clone() as Arc<dyn SessionStore>));
            setup.route(Route::get("/a", set_a));
            setup.route(Route::get("/b", set_b));
            setup.route(Route::get("/both", both));
            setup.route(Route::get("/start", set));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    client.get("/start").send().await;
    store.armed.store(true, Ordering::SeqCst);
    let (a, b) = tokio::join!(
        tokio::spawn({
            let client = client.clone();
            async move { client.get("/a").send().await.text() }
        }),
        tokio::spawn({
            let client = client.clone();
            async move { client.get("/b").send().await.text() }
        }),
    );
    assert_eq!((a.unwrap().as_str(), b.unwrap().as_str()), ("a", "b"));
    store.armed.store(false, Ordering::SeqCst);
    assert_eq!(
        client.get("/both").send().await.text(),
        "Some(1) Some(1) Some(2)",
        "both requests' changes are kept, and the key neither touched"
    );
}
