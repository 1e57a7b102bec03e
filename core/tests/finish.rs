//! The finish phase: it runs after every registration, sees the final route table and
//! everything registered, provides state and guards, and fails the build naming the parties.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use flagon::testing::{TestClient, testing_config, testing_config_toml};
use flagon::{App, Blueprint, Decorator, Ext, Extension, Next, Route, Setup, SetupError};
use http::StatusCode;

/// Checks at build that its `login_view` names a real endpoint, as a login extension does.
struct Login {
    login_view: &'static str,
}

impl Extension for Login {
    fn name(&self) -> &'static str {
        "login"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let view = self.login_view;
        app.on_finish(move |late| match late.routes().get(view) {
            Some(_) => Ok(()),
            None => Err(late.config_error(
                "login.login_view",
                format!("`{view}` is not an endpoint; `routes` lists them"),
            )),
        });
        Ok(())
    }
}

#[test]
fn a_finish_step_sees_routes_registered_after_its_extension() {
    // The app registers `auth.login` after the extension's init_app ran.
    let app = App::builder()
        .settings(testing_config())
        .register(Login {
            login_view: "auth.login",
        })
        .blueprint(
            Blueprint::new("auth").route(Route::get("/login", || async { "" }).name("login")),
        )
        .build();
    assert!(app.is_ok(), "{:?}", app.err().map(|e| e.to_string()));
    let app = app.unwrap();
    assert!(
        app.registrations("login")
            .unwrap()
            .contains(&"finish steps: 1".to_owned())
    );
}

#[test]
fn finish_errors_name_the_key_and_every_one_is_reported() {
    struct Limiter;
    impl Extension for Limiter {
        fn name(&self) -> &'static str {
            "limiter"
        }
        fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
            app.on_finish(|late| {
                for key in ["index", "nope", "gone"] {
                    if late.routes().get(key).is_none() {
                        let e = late.config_error(
                            &format!("limiter.routes.{key}"),
                            "no route has this endpoint",
                        );
                        late.report(e);
                    }
                }
                Ok(())
            });
            Ok(())
        }
    }
    let err = App::builder()
        .settings(testing_config())
        .register(Login {
            login_view: "auth.login",
        })
        .register(Limiter)
        .route(Route::get("/", || async { "" }).name("index"))
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("login.login_view") && text.contains("`auth.login` is not an endpoint"),
        "{text}"
    );
    assert!(text.contains("limiter.routes.nope"), "{text}");
    assert!(text.contains("limiter.routes.gone"), "{text}");
    assert!(!text.contains("limiter.routes.index"), "{text}");
    assert_eq!(err.errors().len(), 3, "{text}");
}

#[test]
fn finish_steps_see_blueprints_decorators_names_and_extensions() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = seen.clone();
    let app = App::builder()
        .settings(testing_config())
        .configure(move |s| {
            s.claim_name("widget", "w1");
            s.csrf_exempt("admin.index");
            s.on_finish(move |late| {
                let mut seen = out.lock().unwrap();
                for b in late.blueprints() {
                    seen.push(format!(
                        "blueprint {} at {} by {}",
                        b.name, b.prefix, b.origin
                    ));
                }
                let admin = late.routes().get("admin.index").unwrap();
                seen.push(format!(
                    "admin.index in {:?} decorated by {}",
                    admin.blueprint.as_deref(),
                    admin.decorators[0].provider()
                ));
                for kind in ["widget", "CSRF-exempt endpoint"] {
                    for (name, origin) in late.names(kind) {
                        seen.push(format!("{kind} {name} by {origin}"));
                    }
                }
                seen.push(format!("has core: {}", late.has_extension("missing")));
                Ok(())
            });
            Ok(())
        })
        .blueprint(
            Blueprint::new("admin").url_prefix("/admin").route(
                Route::get("/", || async { "" })
                    .name("index")
                    .with(Decorator::new("app", "audit", |req, next: Next| {
                        next.run(req)
                    })),
            ),
        )
        .build();
    assert!(app.is_ok(), "{:?}", app.err().map(|e| e.to_string()));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "blueprint admin at /admin by the app (blueprint `admin`)",
            "admin.index in Some(\"admin\") decorated by app",
            "widget w1 by the app",
            "CSRF-exempt endpoint admin.index by the app",
            "has core: false",
        ]
    );
}

struct Greeting(String);

#[tokio::test]
async fn a_finish_step_provides_state_and_adds_guards_from_the_final_table() {
    let app = App::builder()
        .settings(testing_config())
        .configure(|s| {
            s.on_finish(|late| {
                let count = late.routes().len();
                late.provide(Greeting(format!("{count} routes")));
                // Guard every route of the `private` blueprint, whoever registered it.
                late.guard(
                    |r| r.blueprint.as_deref() == Some("private"),
                    |_req| async { flagon::respond(StatusCode::FORBIDDEN) },
                );
                Ok(())
            });
            Ok(())
        })
        .route(Route::get("/greet", |g: Ext<Greeting>| async move { g.0.clone() }).name("greet"))
        .blueprint(
            Blueprint::new("private")
                .url_prefix("/private")
                .route(Route::get("/", || async { "hidden" }).name("index")),
        )
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    // healthz, readyz, greet, private.index
    assert_eq!(client.get("/greet").send().await.text(), "4 routes");
    assert_eq!(
        client.get("/private/").send().await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(app.state::<Greeting>().is_some());
}

#[test]
fn csrf_exemptions_are_checked_in_the_finish_phase_naming_who_asked() {
    struct Api;
    impl Extension for Api {
        fn name(&self) -> &'static str {
            "api"
        }
        fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
            app.csrf_exempt("api.create").csrf_exempt_blueprint("hooks");
            Ok(())
        }
    }
    let err = App::builder()
        .settings(testing_config())
        .register(Api)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CSRF exemption for endpoint `api.create` registered by extension `api`"),
        "{err}"
    );
    assert!(
        err.contains("CSRF exemption for blueprint `hooks` registered by extension `api`"),
        "{err}"
    );
    // Registered later by the app, the routes satisfy the exemptions.
    let ok = App::builder()
        .settings(testing_config())
        .register(Api)
        .blueprint(Blueprint::new("api").route(Route::post("/c", || async { "" }).name("create")))
        .blueprint(Blueprint::new("hooks").route(Route::post("/h", || async { "" }).name("h")))
        .build();
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
}

#[test]
fn a_failing_init_still_reports_finish_errors_of_the_others() {
    struct Broken;
    impl Extension for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn init_app(&self, _app: &mut Setup<'_>) -> Result<(), SetupError> {
            Err(SetupError::init("broken", "no luck"))
        }
    }
    let err = App::builder()
        .settings(testing_config_toml("[session]\nstore = \"redis\"\n"))
        .register(Broken)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no luck"), "{err}");
    assert!(err.contains("unknown session store `redis`"), "{err}");
}

#[tokio::test]
async fn guards_from_finish_run_before_before_hooks() {
    let log: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let app = App::builder()
        .settings(testing_config())
        .configure(move |s| {
            s.before_request(move |req| {
                let l = l1.clone();
                async move {
                    l.lock().unwrap().push("hook");
                    ControlFlow::Continue(req)
                }
            });
            s.on_finish(move |late| {
                late.guard(
                    |r| r.endpoint == "x",
                    move |req| {
                        let l = l2.clone();
                        async move {
                            l.lock().unwrap().push("guard");
                            ControlFlow::Continue(req)
                        }
                    },
                );
                Ok(())
            });
            Ok(())
        })
        .route(Route::get("/x", || async { "" }).name("x"))
        .build()
        .unwrap();
    TestClient::new(&app).get("/x").send().await;
    assert_eq!(*log.lock().unwrap(), ["guard", "hook"]);
}
