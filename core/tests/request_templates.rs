//! Request-aware template functions and globals, and the session loaded by a render only
//! when the template (or a context processor) uses it, counted at the store.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use axum::response::Html;
use flagon::session::{
    Changes, Id, MemoryStore, Record, Session, SessionStore, StoreFuture, Updated,
};
use flagon::templates::{Templates, Value, from_args};
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, Extension, HttpError, RequestLocal, Route, Setup, SetupError};

/// A memory store that counts calls; `mode` 1 makes calls wait a little (like a network
/// store), 2 makes `save` panic.
struct CountingStore {
    inner: MemoryStore,
    calls: AtomicUsize,
    mode: AtomicU8,
}

impl CountingStore {
    fn new() -> Arc<Self> {
        Arc::new(CountingStore {
            inner: MemoryStore::new(100),
            calls: AtomicUsize::new(0),
            mode: AtomicU8::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn wrap<'a, T: Send + 'a>(&'a self, fut: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            1 => Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                fut.await
            }),
            _ => fut,
        }
    }
}

impl SessionStore for CountingStore {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        self.wrap(self.inner.create(record))
    }
    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        if self.mode.load(Ordering::SeqCst) == 2 {
            panic!("store bug while saving");
        }
        self.wrap(self.inner.update(id, changes))
    }
    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        self.wrap(self.inner.load(id))
    }
    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        self.wrap(self.inner.delete(id))
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

async fn render(
    tpl: Templates,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Html<String>, HttpError> {
    tpl.render(&name, ()).await
}

async fn login(session: Session) -> Result<&'static str, HttpError> {
    session.insert("user", "ada")?;
    session.flash("Welcome.", "info")?;
    Ok("ok")
}

async fn touch(session: Session) -> Result<&'static str, HttpError> {
    session.insert("touched", true)?;
    Ok("touched")
}

/// Counts renders of the processor, to see when a render ran twice.
struct Rounds(AtomicUsize);

fn app(dir: &Path, store: Arc<CountingStore>, rounds: Arc<Rounds>) -> App {
    let toml = format!(
        "[templates]\ndir = {:?}\n[session]\nstore = \"counting\"\n",
        dir.display().to_string()
    );
    App::builder()
        .settings(testing_config_toml(&toml))
        .configure(move |s| {
            let store = store.clone();
            s.session_store("counting", move |_| {
                Ok(store.clone() as Arc<dyn SessionStore>)
            });
            let rounds = rounds.clone();
            s.context_processor(move |_| {
                rounds.0.fetch_add(1, Ordering::SeqCst);
                flagon::templates::context! {}
            });
            s.route(Route::get("/login", login).name("login"));
            s.route(Route::get("/touch", touch).name("touch"));
            s.route(Route::get("/render/{name}", render).name("render"));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: App,
    store: Arc<CountingStore>,
    rounds: Arc<Rounds>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plain.html", "plain {{ request.path }}");
    write(dir.path(), "user.html", "user={{ session.user }}");
    write(
        dir.path(),
        "flashes.html",
        "{% for m in get_flashed_messages() %}[{{ m }}]{% endfor %}",
    );
    write(
        dir.path(),
        "base.html",
        "<b>{{ session.user }}</b>{% block body %}{% endblock %}",
    );
    write(
        dir.path(),
        "child.html",
        "{% extends \"base.html\" %}{% block body %}child{% endblock %}",
    );
    write(
        dir.path(),
        "form.html",
        "<input value=\"{{ csrf_token() }}\">",
    );
    let store = CountingStore::new();
    let rounds = Arc::new(Rounds(AtomicUsize::new(0)));
    let app = app(dir.path(), store.clone(), rounds.clone());
    Fixture {
        _dir: dir,
        app,
        store,
        rounds,
    }
}

#[tokio::test]
async fn a_template_that_does_not_use_the_session_does_not_load_it() {
    let f = fixture();
    let client = TestClient::new(&f.app);
    client.get("/login").send().await;
    let after_login = f.store.calls();
    let res = client.get("/render/plain.html").send().await;
    assert_eq!(res.text(), "plain /render/plain.html");
    assert_eq!(
        f.store.calls(),
        after_login,
        "no store call for a page without session"
    );
    assert!(res.header("vary").is_none(), "and no Vary: Cookie");
    // The CSRF token needs no session either.
    let res = client.get("/render/form.html").send().await;
    assert!(res.text().len() > 96);
    assert_eq!(f.store.calls(), after_login);
}

#[tokio::test]
async fn a_template_that_uses_the_session_loads_it_once() {
    let f = fixture();
    let client = TestClient::new(&f.app);
    client.get("/login").send().await;
    let before = f.store.calls();
    let res = client.get("/render/user.html").send().await;
    assert_eq!(res.text(), "user=ada");
    assert_eq!(res.header("vary"), Some("Cookie"));
    assert_eq!(f.store.calls(), before + 1, "one load, nothing to save");
    // Through a parent template the child does not mention.
    let res = client.get("/render/child.html").send().await;
    assert_eq!(res.text(), "<b>ada</b>child");
    // Flashed messages are shown once.
    let res = client.get("/render/flashes.html").send().await;
    assert_eq!(res.text(), "[Welcome.]");
    let res = client.get("/render/flashes.html").send().await;
    assert_eq!(res.text(), "");
}

#[tokio::test]
async fn a_waiting_store_load_renders_again_once_loaded() {
    let f = fixture();
    let client = TestClient::new(&f.app);
    client.get("/login").send().await;
    f.store.mode.store(1, Ordering::SeqCst);
    let rounds_before = f.rounds.0.load(Ordering::SeqCst);
    let res = client.get("/render/user.html").send().await;
    assert_eq!(res.text(), "user=ada");
    assert_eq!(
        f.rounds.0.load(Ordering::SeqCst) - rounds_before,
        2,
        "the first render stopped for the load; the second rendered"
    );
    // A template without the session renders once, whatever the store.
    let rounds_before = f.rounds.0.load(Ordering::SeqCst);
    client.get("/render/plain.html").send().await;
    assert_eq!(f.rounds.0.load(Ordering::SeqCst) - rounds_before, 1);
}

#[tokio::test]
async fn a_store_panic_while_saving_is_a_500_not_a_dropped_connection() {
    let f = fixture();
    let client = TestClient::new(&f.app);
    client.get("/login").send().await;
    f.store.mode.store(2, Ordering::SeqCst);
    let res = client.get("/touch").send().await;
    assert_eq!(res.status(), 500, "{}", res.text());
    f.store.mode.store(0, Ordering::SeqCst);
    assert_eq!(client.get("/touch").send().await.status(), 200);
}

/// An extension with a request-aware function and global reading its own request value.
struct Greeter {
    function: &'static str,
}

struct Visitor(String);

impl Extension for Greeter {
    fn name(&self) -> &'static str {
        "greeter"
    }

    fn init_app(&self, s: &mut Setup<'_>) -> Result<(), SetupError> {
        let key: RequestLocal<Visitor> = s.request_local(|head| {
            let who = head
                .headers()
                .and_then(|h| h.get("x-visitor"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("stranger");
            Visitor(who.to_owned())
        });
        s.template_request_function(self.function, move |req, args| {
            let (greeting,): (Option<String>,) = from_args(args)?;
            let who = req.load(key)?.map(|v| v.0.clone()).unwrap_or_default();
            Ok(format!(
                "{} {who} at {}",
                greeting.unwrap_or_else(|| "hello".into()),
                req.path()
            ))
        });
        s.template_request_global("visitor", move |req| {
            Ok(Value::from(req.load(key)?.map(|v| v.0.clone())))
        });
        Ok(())
    }
}

#[tokio::test]
async fn a_request_aware_function_sees_the_request_and_its_values() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hi.html", "{{ greet('hi') }} / {{ visitor }}");
    let toml = format!(
        "[templates]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let app = App::builder()
        .settings(testing_config_toml(&toml))
        .register(Greeter { function: "greet" })
        .route(Route::get("/render/{name}", render))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let res = TestClient::new(&app)
        .get("/render/hi.html")
        .header("x-visitor", "ada")
        .send()
        .await;
    assert_eq!(res.text(), "hi ada at /render/hi.html / ada");
    // Outside a request the function sees `GET /` and no request values.
    let tpl = Templates::for_app(app.handle()).unwrap();
    let text = tpl.render_string("hi.html", ()).await.unwrap();
    assert_eq!(text, "hi  at / / None");
}

#[test]
fn a_request_aware_function_clashing_with_a_core_name_fails_the_build_naming_both() {
    let err = App::builder()
        .settings(testing_config_toml(""))
        .register(Greeter {
            function: "csrf_token",
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("csrf_token"), "{err}");
    assert!(err.contains("flagon core"), "{err}");
    assert!(err.contains("extension `greeter`"), "{err}");
}
