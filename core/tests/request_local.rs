//! Request-scoped lazy values driven through whole apps: made once per request, after-
//! response steps only for requests that made the value, headers set by a step, panics and
//! failed handlers, async inits, and the rules on who may add a step.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flagon::http::request::Parts;
use flagon::testing::{TestClient, testing_config};
use flagon::{App, Extension, RequestLocal, Route, Setup, SetupError};

/// Counts inits and after-response steps.
#[derive(Default)]
struct Counts {
    inits: AtomicUsize,
    steps: AtomicUsize,
}

/// The value: the request path it was made for, and how often the request asked.
struct Visit {
    path: String,
    asked: AtomicUsize,
}

fn app(counts: Arc<Counts>) -> App {
    App::builder()
        .settings(testing_config())
        .configure(move |s| {
            let c = counts.clone();
            let key: RequestLocal<Visit> = s.request_local(move |head| {
                c.inits.fetch_add(1, Ordering::SeqCst);
                Visit {
                    path: head.uri().map(|u| u.path().to_owned()).unwrap_or_default(),
                    asked: AtomicUsize::new(0),
                }
            });
            let c = counts.clone();
            s.after_response(key, move |visit: Arc<Visit>, mut res, outcome| {
                c.steps.fetch_add(1, Ordering::SeqCst);
                async move {
                    let n = visit.asked.load(Ordering::SeqCst);
                    res.headers_mut().insert("x-asked", n.into());
                    res.headers_mut().append(
                        "set-cookie",
                        format!("visited={}; Path=/", visit.path).parse().unwrap(),
                    );
                    if !outcome.completed {
                        res.headers_mut()
                            .insert("x-incomplete", "1".parse().unwrap());
                    }
                    res
                }
            });
            s.route(
                Route::get("/twice", move |parts: Parts| async move {
                    for _ in 0..2 {
                        let v = key.get(&parts).expect("made");
                        v.asked.fetch_add(1, Ordering::SeqCst);
                    }
                    let same = Arc::ptr_eq(&key.get(&parts).unwrap(), &key.get(&parts).unwrap());
                    format!("same={same}")
                })
                .name("twice"),
            );
            s.route(
                Route::get("/peek", move |parts: Parts| async move {
                    format!("made={}", key.get_if_made(&parts).is_some())
                })
                .name("peek"),
            );
            s.route(
                Route::get("/use-then-panic", move |parts: Parts| async move {
                    key.get(&parts);
                    if parts.uri.path().starts_with('/') {
                        panic!("handler bug after using the value");
                    }
                    "unreachable"
                })
                .name("use_then_panic"),
            );
            s.route(Route::get("/hello", || async { "hello" }).name("hello"));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_value_is_made_once_per_request_and_its_step_runs_once() {
    let counts = Arc::new(Counts::default());
    let app = app(counts.clone());
    let client = TestClient::new(&app);
    let res = client.get("/twice").send().await;
    assert_eq!(res.text(), "same=true");
    assert_eq!(res.header("x-asked"), Some("2"));
    assert_eq!(
        client.cookie("visited").as_deref(),
        Some("/twice"),
        "a step sets cookies"
    );
    assert_eq!(counts.inits.load(Ordering::SeqCst), 1);
    assert_eq!(counts.steps.load(Ordering::SeqCst), 1);
    client.get("/twice").send().await;
    assert_eq!(
        counts.inits.load(Ordering::SeqCst),
        2,
        "a new request, a new value"
    );
    assert_eq!(counts.steps.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_route_that_does_not_use_the_value_pays_nothing() {
    let counts = Arc::new(Counts::default());
    let app = app(counts.clone());
    let client = TestClient::new(&app);
    let res = client.get("/hello").send().await;
    assert_eq!(res.text(), "hello");
    assert_eq!(res.header("x-asked"), None);
    assert!(res.headers().get("set-cookie").is_none());
    // Looking without making does not make it either.
    let res = client.get("/peek").send().await;
    assert_eq!(res.text(), "made=false");
    assert_eq!(res.header("x-asked"), None);
    assert_eq!(counts.inits.load(Ordering::SeqCst), 0);
    assert_eq!(counts.steps.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn after_a_handler_panic_the_step_runs_and_is_told_the_request_did_not_complete() {
    let counts = Arc::new(Counts::default());
    let app = app(counts.clone());
    let res = TestClient::new(&app).get("/use-then-panic").send().await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.header("x-incomplete"), Some("1"));
    assert_eq!(counts.steps.load(Ordering::SeqCst), 1);
}

/// An extension whose after-response step panics or hangs.
struct Faulty {
    hang: bool,
}

impl Extension for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn init_app(&self, s: &mut Setup<'_>) -> Result<(), SetupError> {
        let key: RequestLocal<u8> = s.request_local(|_| 7);
        let hang = self.hang;
        s.after_response(key, move |_, res, _| async move {
            if hang {
                std::future::pending::<()>().await;
            }
            if res.status().is_success() {
                panic!("bug in an after-response step");
            }
            res
        });
        s.route(
            Route::get("/use", move |parts: Parts| async move {
                format!("{}", key.get(&parts).map_or(0, |v| *v))
            })
            .name("use"),
        );
        s.route(Route::get("/hello", || async { "hello" }).name("hello"));
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_step_is_a_500_for_that_request_only() {
    let app = flagon::testing::app_with(Faulty { hang: false });
    let client = TestClient::new(&app);
    let res = client.get("/use").send().await;
    assert_eq!(res.status(), 500, "{}", res.text());
    assert!(
        res.header("x-request-id").is_some(),
        "still passes the core layer"
    );
    let res = client.get("/hello").send().await;
    assert_eq!(
        (res.status().as_u16(), res.text()),
        (200, "hello".to_owned())
    );
}

#[tokio::test]
async fn a_hanging_step_is_cut_off_by_the_request_timeout() {
    let app = flagon::testing::app_with_config(
        Faulty { hang: true },
        "[server]\nrequest_timeout = \"200ms\"\n",
    );
    let started = std::time::Instant::now();
    let res = TestClient::new(&app).get("/use").send().await;
    assert_eq!(res.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Counts async inits; the value is ready only after a real wait.
struct Slow {
    inits: Arc<AtomicUsize>,
    loads: Arc<AtomicUsize>,
}

impl Extension for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn init_app(&self, s: &mut Setup<'_>) -> Result<(), SetupError> {
        let (inits, loads) = (self.inits.clone(), self.loads.clone());
        let key: RequestLocal<String> = s.request_local_async(move |head| {
            inits.fetch_add(1, Ordering::SeqCst);
            let id = head.id().to_string();
            let loads = loads.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                loads.fetch_add(1, Ordering::SeqCst);
                format!("loaded for {id}")
            }
        });
        s.route(
            Route::get("/load", move |parts: Parts| async move {
                let before = key.get(&parts).is_some();
                let (a, b) = tokio::join!(key.load(&parts), key.load(&parts));
                let (a, b) = (a.unwrap(), b.unwrap());
                let after = key.get(&parts).is_some();
                format!("{before} {after} {}", Arc::ptr_eq(&a, &b))
            })
            .name("load"),
        );
        Ok(())
    }
}

#[tokio::test]
async fn an_async_init_is_awaited_once_even_when_two_loads_race() {
    let (inits, loads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let app = flagon::testing::app_with(Slow {
        inits: inits.clone(),
        loads: loads.clone(),
    });
    let res = TestClient::new(&app).get("/load").send().await;
    // `get` does not run an async init; after the load it returns the value.
    assert_eq!(res.text(), "false true true");
    assert_eq!(loads.load(Ordering::SeqCst), 1, "the async part runs once");
    assert!(
        inits.load(Ordering::SeqCst) <= 2,
        "the synchronous part may run per caller"
    );
    TestClient::new(&app).get("/load").send().await;
    assert_eq!(loads.load(Ordering::SeqCst), 2, "once per request");
}

/// Declares a value and shares its key as state.
struct Owner;

struct OwnerKey(RequestLocal<u8>);

impl Extension for Owner {
    fn name(&self) -> &'static str {
        "owner"
    }

    fn init_app(&self, s: &mut Setup<'_>) -> Result<(), SetupError> {
        let key: RequestLocal<u8> = s.request_local(|_| 1);
        s.provide(OwnerKey(key));
        Ok(())
    }
}

/// Tries to add a step to another extension's value.
struct Meddler;

impl Extension for Meddler {
    fn name(&self) -> &'static str {
        "meddler"
    }

    fn requires(&self) -> &'static [&'static str] {
        &["owner"]
    }

    fn init_app(&self, s: &mut Setup<'_>) -> Result<(), SetupError> {
        let key = s.state::<OwnerKey>().expect("owner is initialised first").0;
        s.after_response(key, |_, res, _| async move { res });
        Ok(())
    }
}

#[test]
fn only_the_declaring_extension_may_add_one_step() {
    let err = App::builder()
        .settings(testing_config())
        .configure(|s| {
            let key: RequestLocal<u8> = s.request_local(|_| 1);
            s.after_response(key, |_, res, _| async move { res });
            s.after_response(key, |_, res, _| async move { res });
            Ok(())
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("already has an after-response step"), "{err}");
    let err = App::builder()
        .settings(testing_config())
        .register(Owner)
        .register(Meddler)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("declared by extension `owner`"), "{err}");
    assert!(err.contains("extension `meddler`"), "{err}");
}

#[tokio::test]
async fn after_hooks_reach_the_values_the_request_made() {
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            let key: RequestLocal<String> =
                s.request_local(|head| head.uri().map(|u| u.path().to_owned()).unwrap_or_default());
            s.route(
                Route::get("/made", move |parts: Parts| async move {
                    key.get(&parts).map(|v| v.len()).unwrap_or(0).to_string()
                })
                .name("made"),
            );
            s.route(Route::get("/not-made", || async { "no" }).name("not_made"));
            s.after_request(move |ctx, mut res| async move {
                let seen = key.get_if_made(&ctx).map(|v| v.to_string());
                res.headers_mut().insert(
                    "x-seen",
                    seen.unwrap_or_else(|| "-".into()).parse().unwrap(),
                );
                res
            });
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app);
    assert_eq!(
        client.get("/made").send().await.header("x-seen"),
        Some("/made")
    );
    assert_eq!(
        client.get("/not-made").send().await.header("x-seen"),
        Some("-")
    );
}

/// Remembers the request's session and writes to it after the response, as login's
/// remember-me would.
struct Remember;

impl Extension for Remember {
    fn name(&self) -> &'static str {
        "remember"
    }

    fn init_app(&self, s: &mut Setup<'_>) -> Result<(), SetupError> {
        let key: RequestLocal<std::sync::Mutex<Option<flagon::session::Session>>> =
            s.request_local(|_| std::sync::Mutex::new(None));
        // Declared after core's sessions, so it runs before the session is saved.
        s.after_response(key, |cell, res, outcome| {
            if let (true, Some(session)) = (outcome.completed, cell.lock().unwrap().take()) {
                let _ = session.insert("remembered", true);
            }
            std::future::ready(res)
        });
        s.route(
            Route::get("/remember", move |parts: Parts| async move {
                let session = flagon::session::Session::load(&parts).await.unwrap();
                session.insert("user", "ada").unwrap();
                *key.get(&parts).unwrap().lock().unwrap() = Some(session);
                "ok"
            })
            .name("remember"),
        );
        s.route(
            Route::get("/check", |session: flagon::session::Session| async move {
                format!("{:?}", session.get::<bool>("remembered"))
            })
            .name("check"),
        );
        Ok(())
    }
}

#[tokio::test]
async fn a_later_declared_step_runs_before_the_session_saves() {
    let app = flagon::testing::app_with(Remember);
    let client = TestClient::new(&app);
    assert_eq!(client.get("/remember").send().await.text(), "ok");
    assert_eq!(client.get("/check").send().await.text(), "Some(true)");
}

/// An async value's init loads the session from its head (`Session::load_in`) and another
/// value (`RequestLocal::load_in`): what a login extension's "current user" does.
#[tokio::test]
async fn an_init_loads_the_session_and_another_value_from_its_head() {
    use flagon::session::Session;
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            let base: RequestLocal<String> = s.request_local(|_| "base".to_owned());
            let user: RequestLocal<String> = s.request_local_async(move |head| {
                let session = Session::load_in(head);
                let other = base.load_in(Some(flagon::RequestScope::request_head(head).unwrap()));
                async move {
                    let name = match session.await {
                        Ok(s) => s.get::<String>("name").unwrap_or_else(|| "nobody".into()),
                        Err(_) => "no session".into(),
                    };
                    format!(
                        "{name}+{}",
                        other.await.map(|b| (*b).clone()).unwrap_or_default()
                    )
                }
            });
            s.route(
                Route::get("/set", |session: Session| async move {
                    session.insert("name", "ada").unwrap();
                    "set"
                })
                .name("set"),
            );
            s.route(
                Route::get("/user", move |parts: Parts| async move {
                    user.load(&parts)
                        .await
                        .map(|u| (*u).clone())
                        .unwrap_or_default()
                })
                .name("user"),
            );
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(client.get("/user").send().await.text(), "nobody+base");
    client.get("/set").send().await;
    assert_eq!(client.get("/user").send().await.text(), "ada+base");
    // The kit reaches the app it sends to.
    assert!(client.app().routes().get("user").is_some());
}

/// A value whose init is ready at once for some requests and waits for others, with steps
/// that are ready at once or wait, declared by two extensions: every step runs, in reverse
/// declaration order, whichever kind it is.
#[tokio::test]
async fn inits_and_steps_that_are_ready_at_once_or_later_all_run_in_order() {
    use flagon::Eventually;
    use flagon::http::HeaderValue;

    struct Who(&'static str);
    let inits = Arc::new(AtomicUsize::new(0));
    let i = inits.clone();
    let app = App::builder()
        .settings(testing_config())
        .configure(move |s| {
            let i = i.clone();
            let first: RequestLocal<Who> = s.request_local_maybe_async(move |head| {
                i.fetch_add(1, Ordering::SeqCst);
                if head.uri().is_some_and(|u| u.path() == "/now") {
                    Eventually::Now(Who("now"))
                } else {
                    Eventually::later(async {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Who("later")
                    })
                }
            });
            // Declared first, so it runs last: it sees the header the second step wrote.
            s.after_response_maybe_async(first, |who: Arc<Who>, mut res, _| {
                let seen = res.headers().get("x-second").is_some();
                res.headers_mut().insert(
                    "x-first",
                    format!("{} after={seen}", who.0).parse().unwrap(),
                );
                Eventually::Now(res)
            });
            let second: RequestLocal<Who> = s.request_local(|_| Who("sync"));
            s.after_response_maybe_async(second, |_: Arc<Who>, mut res, _| {
                Eventually::later(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    res.headers_mut()
                        .insert("x-second", HeaderValue::from_static("waited"));
                    res
                })
            });
            for path in ["/now", "/later"] {
                s.route(
                    Route::get(path, move |parts: Parts| async move {
                        let a = first.load(&parts).await.expect("made");
                        let b = first.load_eventually(&parts);
                        let again = match b {
                            Eventually::Now(v) => v.expect("made"),
                            Eventually::Later(_) => panic!("a made value is ready at once"),
                        };
                        second.get(&parts);
                        format!("{} same={}", a.0, Arc::ptr_eq(&a, &again))
                    })
                    .name(path.trim_start_matches('/')),
                );
            }
            Ok(())
        })
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    for (path, who) in [("/now", "now"), ("/later", "later")] {
        let res = client.get(path).send().await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text(), format!("{who} same=true"));
        assert_eq!(res.header("x-second"), Some("waited"), "{path}");
        assert_eq!(
            res.header("x-first"),
            Some(format!("{who} after=true").as_str()),
            "{path}"
        );
    }
    assert_eq!(inits.load(Ordering::SeqCst), 2, "one init per request");
}

/// A step that panics before handing anything back, whether the steps around it are
/// ready at once or not, is a 500 for that request, and the other steps still run.
#[tokio::test]
async fn a_step_that_panics_at_once_is_a_500_and_the_next_step_still_runs() {
    use flagon::Eventually;

    struct Flag;
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            let early: RequestLocal<Flag> = s.request_local(|_| Flag);
            s.after_response_maybe_async(early, |_: Arc<Flag>, mut res, outcome| {
                res.headers_mut().insert(
                    "x-early-completed",
                    outcome.completed.to_string().parse().unwrap(),
                );
                Eventually::Now(res)
            });
            let late: RequestLocal<Flag> = s.request_local(|_| Flag);
            s.after_response_maybe_async(late, |_: Arc<Flag>, res, _| -> Eventually<_> {
                if res.status().is_success() {
                    panic!("a step bug");
                }
                Eventually::Now(res)
            });
            s.route(
                Route::get("/", move |parts: Parts| async move {
                    early.get(&parts);
                    late.get(&parts);
                    "ok"
                })
                .name("index"),
            );
            Ok(())
        })
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/").send().await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.header("x-early-completed"), Some("false"));
}
