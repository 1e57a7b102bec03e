//! Benchmark server: the same routes served by bare axum and by a Flagon app with several
//! extensions registered, so `examples/bench/run` can drive both with wrk in one run.
//!
//! ```text
//! example-bench axum   --port 8001
//! example-bench flagon --port 8002
//! ```
//!
//! The Flagon app registers the six extensions (db, cache, limiter, i18n, login, mail) and
//! four stand-ins that add state, config sections, CLI commands and hooks on their own
//! blueprints; `/hello` uses none of them, so its ratio measures what core and the
//! registered-but-unused extensions cost a route that asks for nothing.
//!
//! `/full` uses them together: the session, the current user (flagon-login), a rate-limit
//! check (flagon-limiter), the locale (flagon-i18n) and a template render; the run script
//! compares it with axum's `/hello`, as the design's target does.
//!
//! `/page` renders `templates/page.html` with two context processors and a value read from
//! the session; bare axum renders the same template with minijinja, the processors' values
//! computed in the handler. `/bench/login` writes the session so the benchmark has a cookie.
//!
//! `/cached` is a view-cache hit (`flagon_cache::cached`, memory backend): the same template
//! rendered without the session on the first request, then served from the cache without
//! calling the handler. Bare axum has no counterpart; the run script compares it with axum's
//! `/hello`.

use std::ops::ControlFlow;
use std::process::ExitCode;

use std::path::Path;
use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use flagon::clap::Command;
use flagon::session::Session;
use flagon::templates::{Templates, context};
use flagon::{App, Blueprint, Extension, HttpError, Route, Setup, SetupError};
use serde::{Deserialize, Serialize};

const ITEMS: [&str; 3] = ["typed extensions", "async hooks", "build-time clashes"];

/// Long enough that no entry expires during a benchmark run.
const CACHED_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

fn locales_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("locales")
}

fn templates_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

async fn page(session: Session, tpl: Templates) -> Result<Html<String>, HttpError> {
    let user: String = session.get("user").unwrap_or_else(|| "guest".into());
    let visits: u64 = session.get("visits").unwrap_or(0);
    tpl.render(
        "page.html",
        context! { title => "Dashboard", user, visits, items => ITEMS },
    )
    .await
}

/// How many times `/cached` rendered its page (cache misses): the test checks that hits do not.
static CACHED_RENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The page behind the view cache: reads no session (a page that did would carry
/// `Vary: Cookie` and never be stored), so every visitor shares the one entry.
async fn cached_page(tpl: Templates) -> Result<Html<String>, HttpError> {
    CACHED_RENDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tpl.render(
        "page.html",
        context! { title => "Cached", user => "guest", visits => 0, items => ITEMS },
    )
    .await
}

/// The bench's one account, logged in by `/bench/login` (flagon-login).
#[derive(Clone, Debug)]
struct BenchUser {
    id: String,
    name: String,
}

impl flagon_login::User for BenchUser {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn auth_hash(&self) -> Vec<u8> {
        b"bench-password-hash".to_vec()
    }
    fn display_name(&self) -> String {
        self.name.clone()
    }
}

fn bench_user() -> BenchUser {
    BenchUser {
        id: "1".into(),
        name: "ada".into(),
    }
}

/// Loads the bench's user by id (an in-memory lookup: `/full` measures the extension's cost
/// of loading and checking a user once per request, not a database query).
fn bench_login() -> flagon_login::Login<BenchUser> {
    flagon_login::Login::new(|id: String| async move {
        Ok::<_, std::convert::Infallible>((id == "1").then(bench_user))
    })
}

async fn login(
    session: Session,
    auth: flagon_login::Auth<BenchUser>,
) -> Result<&'static str, HttpError> {
    auth.login_user(bench_user(), flagon_login::LoginOptions::default())
        .await?;
    session.insert("user", "ada")?;
    session.insert("visits", 42u64)?;
    Ok("logged in")
}

/// `/full`: the session, the current user (flagon-login), a rate-limit check (flagon-limiter,
/// a decorator), the request's locale (flagon-i18n) and a template render.
async fn full(
    session: Session,
    user: flagon_login::CurrentUser<BenchUser>,
    lang: flagon_i18n::Lang,
    tpl: Templates,
) -> Result<Html<String>, HttpError> {
    let visits: u64 = session.get("visits").unwrap_or(0);
    tpl.render(
        "page.html",
        context! {
            title => lang.t("dashboard", ()),
            user => user.name.clone(),
            visits,
            items => ITEMS,
        },
    )
    .await
}

async fn axum_page(
    axum::extract::State(env): axum::extract::State<Arc<minijinja::Environment<'static>>>,
) -> Result<Html<String>, (http::StatusCode, String)> {
    let tpl = env
        .get_template("page.html")
        .map_err(|e| (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let ctx = minijinja::context! {
        site_name => "Flagon", year => 2026, title => "Dashboard", user => "ada", visits => 42,
        items => ITEMS,
    };
    tpl.render(ctx)
        .map(Html)
        .map_err(|e| (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn hello() -> &'static str {
    "Hello, World!"
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    enabled: bool,
}

/// A stand-in for a real extension: config, state, a blueprint with hooks, a command, a
/// health check.
struct Busy {
    name: &'static str,
}

struct Counter(std::sync::atomic::AtomicU64);

async fn hits(counter: flagon::Ext<Counter>) -> String {
    let n = counter.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (n + 1).to_string()
}

impl Extension for Busy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let _: Settings = app.config(self.name)?;
        let bp = Blueprint::new(self.name)
            .url_prefix(format!("/{}", self.name))
            .route(Route::get("/", || async { "ext" }).name("index"))
            .before_request(|req| async move { ControlFlow::Continue(req) })
            .after_request(|_, res| async move { res })
            .teardown_request(|_, _| async { Ok(()) });
        app.blueprint(bp);
        app.command(Command::new(format!("{}-stats", self.name)), |_| async {
            Ok(())
        });
        app.health_check(self.name, std::time::Duration::from_secs(1), |_| async {
            Ok(())
        });
        if self.name == "counter" {
            app.provide(Counter(std::sync::atomic::AtomicU64::new(0)));
            app.route(Route::get("/hits", hits));
        }
        Ok(())
    }
}

fn flagon_app(config: flagon::config::Config) -> Result<App, flagon::BuildError> {
    let mut builder = App::builder().settings(config);
    for name in ["counter", "audit", "greeter", "metrics"] {
        builder = builder.register(Busy { name });
    }
    builder
        .register(flagon_db::Db::extension())
        .register(flagon_cache::Cache::new())
        .register(flagon_limiter::Limiter::new())
        .register(flagon_i18n::I18n::new().dir(locales_dir()))
        .register(bench_login())
        .register(flagon_mail::Mail::extension())
        .route(Route::get("/hello", hello))
        .route(Route::get("/full", full).with(flagon_limiter::limit("1000000/second")))
        .route(Route::get("/page", page))
        .route(Route::get("/cached", cached_page).with(flagon_cache::cached(CACHED_TTL)))
        .route(Route::get("/bench/login", login))
        .configure(|s| {
            s.template_dir(templates_dir());
            s.context_processor(|_| context! { site_name => "Flagon" });
            s.context_processor(|_| context! { year => 2026 });
            Ok(())
        })
        .build()
}

fn axum_router() -> axum::Router {
    let mut env = minijinja::Environment::new();
    env.set_loader(minijinja::path_loader(templates_dir()));
    axum::Router::new()
        .route("/hello", get(hello))
        .route("/page", get(axum_page))
        .with_state(Arc::new(env))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let addr = format!("127.0.0.1:{port}");
    match args.get(1).map(String::as_str) {
        Some("axum") => {
            let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
            axum::serve(listener, axum_router()).await.expect("serve");
            ExitCode::SUCCESS
        }
        Some("flagon") => match flagon::config::Config::load()
            .map_err(|e| flagon::BuildError::from(SetupError::from(e)))
            .and_then(flagon_app)
        {
            Ok(app) => match app.serve_on("127.0.0.1", port).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: example-bench (axum|flagon) --port PORT");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use flagon::testing::TestClient;

    #[tokio::test]
    async fn both_servers_answer_the_same() {
        let app = super::App::builder()
            .settings(flagon::testing::testing_config())
            .register(super::Busy { name: "counter" })
            .route(flagon::Route::get("/hello", super::hello))
            .build()
            .unwrap();
        let res = TestClient::new(&app).get("/hello").send().await;
        assert_eq!(res.text(), "Hello, World!");
        let res = TestClient::new(&app).get("/counter/").send().await;
        assert_eq!(res.text(), "ext");
    }

    #[tokio::test]
    async fn page_renders_the_same_template_both_ways() {
        let app = super::flagon_app(flagon::testing::testing_config()).unwrap();
        let client = TestClient::new(&app);
        client.get("/bench/login").send().await;
        let flagon_page = client.get("/page").send().await.text();
        let axum_page = axum_page_text().await;
        assert_eq!(flagon_page, axum_page);
        assert!(flagon_page.contains("Welcome back, ada. You have visited 42 times."));
    }

    #[tokio::test]
    async fn full_loads_the_user_checks_the_limit_and_renders_in_the_locale() {
        let app = super::flagon_app(flagon::testing::testing_config()).unwrap();
        let client = TestClient::new(&app);
        // Nobody logged in: the current user is required.
        let res = client
            .get("/full")
            .header("accept", "application/json")
            .send()
            .await;
        assert_eq!(res.status(), 401);
        client.get("/bench/login").send().await;
        let res = client.get("/full").send().await;
        assert_eq!(res.status(), 200);
        let page = res.text();
        assert!(page.contains("<h1>Dashboard</h1>"), "{page}");
        assert!(page.contains("Welcome back, ada. You have visited 42 times."));
        assert_eq!(res.header("content-language"), Some("en"));
        let res = client
            .get("/full")
            .header("accept-language", "zh")
            .send()
            .await;
        assert!(res.text().contains("<h1>仪表板</h1>"));
        // `/hello` touches none of the six extensions: no session cookie, no locale headers.
        let res = client.get("/hello").send().await;
        assert!(res.header("set-cookie").is_none());
        assert!(res.header("content-language").is_none());
        assert!(res.header("vary").is_none());
    }

    #[tokio::test]
    async fn cached_hits_call_no_handler() {
        use std::sync::atomic::Ordering;
        let app = super::flagon_app(flagon::testing::testing_config()).unwrap();
        let client = TestClient::new(&app);
        let before = super::CACHED_RENDERS.load(Ordering::SeqCst);
        let first = client.get("/cached").send().await;
        assert_eq!(first.status(), 200);
        let body = first.text();
        assert!(body.contains("Welcome back, guest. You have visited 0 times."));
        assert_eq!(super::CACHED_RENDERS.load(Ordering::SeqCst), before + 1);
        // The benchmark sends a session cookie on every request: hits must not depend on it.
        client.get("/bench/login").send().await;
        for _ in 0..5 {
            let hit = client.get("/cached").send().await;
            assert_eq!(hit.status(), 200);
            assert_eq!(hit.text(), body);
        }
        assert_eq!(
            super::CACHED_RENDERS.load(Ordering::SeqCst),
            before + 1,
            "hits rendered the page"
        );
    }

    async fn axum_page_text() -> String {
        use tower::ServiceExt;
        let res = super::axum_router()
            .oneshot(
                http::Request::get("/page")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
