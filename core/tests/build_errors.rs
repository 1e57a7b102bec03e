//! Every build error names the parties involved or the missing piece.

use flagon::clap::Command;
use flagon::testing::testing_config;
use flagon::{App, AppBuilder, Blueprint, BuildError, Extension, Route, Setup, SetupError};
use serde::{Deserialize, Serialize};

/// A configurable test extension.
#[derive(Default)]
struct Ext {
    name: &'static str,
    requires: &'static [&'static str],
    route: Option<(&'static str, &'static str)>,
    command: Option<&'static str>,
    section: Option<&'static str>,
    state: bool,
}

#[derive(Default, Deserialize, Serialize)]
#[serde(default)]
struct Section {}

struct Shared;

impl Extension for Ext {
    fn name(&self) -> &'static str {
        self.name
    }

    fn requires(&self) -> &'static [&'static str] {
        self.requires
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        if let Some((path, endpoint)) = self.route {
            app.route(Route::get(path, || async { "x" }).name(endpoint));
        }
        if let Some(c) = self.command {
            app.command(Command::new(c), |_| async { Ok(()) });
        }
        if let Some(s) = self.section {
            let _: Section = app.config(s)?;
        }
        if self.state {
            app.provide(Shared);
        }
        Ok(())
    }
}

fn ext(name: &'static str) -> Ext {
    Ext {
        name,
        ..Ext::default()
    }
}

fn build(b: AppBuilder) -> String {
    let err: BuildError = b.build().expect_err("build must fail");
    err.to_string()
}

fn base() -> AppBuilder {
    App::builder().settings(testing_config())
}

#[test]
fn same_method_and_path_twice_names_both() {
    let msg = build(
        base()
            .register(Ext {
                route: Some(("/x", "a")),
                ..ext("alpha")
            })
            .register(Ext {
                route: Some(("/x", "b")),
                ..ext("beta")
            }),
    );
    assert!(msg.contains("route GET /x is registered twice"), "{msg}");
    assert!(
        msg.contains("extension `alpha`") && msg.contains("extension `beta`"),
        "{msg}"
    );
}

#[test]
fn same_endpoint_twice_names_both() {
    let msg = build(
        base()
            .register(Ext {
                route: Some(("/a", "same")),
                ..ext("alpha")
            })
            .register(Ext {
                route: Some(("/b", "same")),
                ..ext("beta")
            }),
    );
    assert!(msg.contains("endpoint `same` is registered twice"), "{msg}");
    assert!(
        msg.contains("/a by extension `alpha`") && msg.contains("/b by extension `beta`"),
        "{msg}"
    );
}

#[test]
fn same_command_twice_names_both() {
    let msg = build(
        base()
            .register(Ext {
                command: Some("sync"),
                ..ext("alpha")
            })
            .register(Ext {
                command: Some("sync"),
                ..ext("beta")
            }),
    );
    assert!(
        msg.contains("CLI command `sync` is registered twice"),
        "{msg}"
    );
    assert!(
        msg.contains("extension `alpha`") && msg.contains("extension `beta`"),
        "{msg}"
    );
}

#[test]
fn a_command_clashing_with_a_builtin_names_core() {
    let msg = build(base().register(Ext {
        command: Some("routes"),
        ..ext("alpha")
    }));
    assert!(msg.contains("CLI command `routes`"), "{msg}");
    assert!(
        msg.contains("flagon core") && msg.contains("extension `alpha`"),
        "{msg}"
    );
}

#[test]
fn same_config_section_twice_names_both() {
    let msg = build(
        base()
            .register(Ext {
                section: Some("shared"),
                ..ext("alpha")
            })
            .register(Ext {
                section: Some("shared"),
                ..ext("beta")
            }),
    );
    assert!(
        msg.contains("config section `[shared]` is claimed twice"),
        "{msg}"
    );
    assert!(
        msg.contains("extension `alpha`") && msg.contains("extension `beta`"),
        "{msg}"
    );
}

#[test]
fn claiming_cores_section_names_core() {
    let msg = build(base().register(Ext {
        section: Some("server"),
        ..ext("alpha")
    }));
    assert!(
        msg.contains("`[server]`") && msg.contains("flagon core"),
        "{msg}"
    );
}

#[test]
fn same_state_type_twice_names_both() {
    let msg = build(
        base()
            .register(Ext {
                state: true,
                ..ext("alpha")
            })
            .register(Ext {
                state: true,
                ..ext("beta")
            }),
    );
    assert!(msg.contains("is provided twice"), "{msg}");
    assert!(
        msg.contains("extension `alpha`") && msg.contains("extension `beta`"),
        "{msg}"
    );
}

#[test]
fn same_extension_twice() {
    let msg = build(base().register(ext("alpha")).register(ext("alpha")));
    assert!(
        msg.contains("extension `alpha` is registered twice"),
        "{msg}"
    );
}

#[test]
fn missing_requirement_names_it_and_says_how_to_fix() {
    let msg = build(base().register(Ext {
        requires: &["sessions"],
        ..ext("login")
    }));
    assert!(
        msg.contains("extension `login` requires extension `sessions`, which is not registered"),
        "{msg}"
    );
    assert!(msg.contains("register it"), "{msg}");
}

#[test]
fn dependency_cycle_is_spelled_out() {
    let msg = build(
        base()
            .register(Ext {
                requires: &["b"],
                ..ext("a")
            })
            .register(Ext {
                requires: &["c"],
                ..ext("b")
            })
            .register(Ext {
                requires: &["a"],
                ..ext("c")
            }),
    );
    assert!(msg.contains("dependency cycle: a -> b -> c -> a"), "{msg}");
}

#[test]
fn requirements_initialise_first() {
    use std::sync::{Arc, Mutex};
    struct Rec(
        &'static str,
        &'static [&'static str],
        Arc<Mutex<Vec<&'static str>>>,
    );
    impl Extension for Rec {
        fn name(&self) -> &'static str {
            self.0
        }
        fn requires(&self) -> &'static [&'static str] {
            self.1
        }
        fn init_app(&self, _: &mut Setup<'_>) -> Result<(), SetupError> {
            self.2.lock().unwrap().push(self.0);
            Ok(())
        }
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    base()
        .register(Rec("login", &["sessions", "db"], order.clone()))
        .register(Rec("mail", &[], order.clone()))
        .register(Rec("db", &[], order.clone()))
        .register(Rec("sessions", &["db"], order.clone()))
        .build()
        .unwrap();
    assert_eq!(*order.lock().unwrap(), ["db", "sessions", "login", "mail"]);
}

#[test]
fn conflicting_path_parameters_name_both() {
    let msg = build(
        base()
            .register(Ext {
                route: Some(("/users/{id}", "a")),
                ..ext("alpha")
            })
            .register(Ext {
                route: Some(("/users/{name}", "b")),
                ..ext("beta")
            }),
    );
    assert!(
        msg.contains("/users/{name}") && msg.contains("/users/{id}"),
        "{msg}"
    );
    assert!(
        msg.contains("extension `alpha`") && msg.contains("extension `beta`"),
        "{msg}"
    );
}

#[test]
fn closures_need_an_endpoint_name() {
    let msg = build(base().route(Route::get("/", || async { "x" })));
    assert!(msg.contains("has no endpoint name"), "{msg}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = base()
        .register(Ext {
            route: Some(("/x", "a")),
            command: Some("c"),
            ..ext("alpha")
        })
        .register(Ext {
            route: Some(("/x", "b")),
            command: Some("c"),
            ..ext("beta")
        })
        .build()
        .unwrap_err();
    assert_eq!(err.errors().len(), 2, "{err}");
}

#[test]
fn init_failures_name_the_extension() {
    struct Broken;
    impl Extension for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn init_app(&self, _: &mut Setup<'_>) -> Result<(), SetupError> {
            Err(SetupError::init("broken", "cannot reach the mail server"))
        }
    }
    let msg = build(base().register(Broken));
    assert!(
        msg.contains("extension `broken` failed to initialise: cannot reach the mail server"),
        "{msg}"
    );
}

#[test]
fn axum_0_7_path_syntax_is_a_build_error_not_a_panic() {
    let msg = build(base().route(Route::get("/users/:id", || async { "x" }).name("user")));
    assert!(msg.contains("write the parameter `:id` as `{id}`"), "{msg}");
    let msg = build(base().route(Route::get("/files/*rest", || async { "x" }).name("files")));
    assert!(msg.contains("`{*rest}`"), "{msg}");
}

#[test]
fn a_method_given_twice_on_one_route_is_a_build_error() {
    let msg = build(
        base().route(
            Route::get("/x", || async { "a" })
                .and_get(|| async { "b" })
                .name("x"),
        ),
    );
    assert!(msg.contains("the method GET is given twice"), "{msg}");
}

#[test]
fn unroutable_parameters_are_named_not_reported_as_conflicts() {
    for (path, reason) in [
        ("/{}", "the parameter `{}` needs a name"),
        ("/{a}{b}", "has 2 parameters; use one per segment"),
        (
            "/{*x}/y",
            "a catch-all `{*name}` must be the whole last segment",
        ),
    ] {
        let msg = build(base().route(Route::get(path, || async { "x" }).name("p")));
        assert!(msg.contains(reason), "{path}: {msg}");
        assert!(!msg.contains("conflicts with"), "{path}: {msg}");
    }
    let msg = build(
        base().blueprint(
            Blueprint::new("files")
                .url_prefix("/files/{*rest}")
                .route(Route::get("/y", || async { "x" }).name("y")),
        ),
    );
    assert!(msg.contains("must be the whole last segment"), "{msg}");
}

#[test]
fn path_conflicts_are_reported_with_the_other_problems() {
    let err = base()
        .register(Ext {
            route: Some(("/users/{id}", "a")),
            command: Some("c"),
            ..ext("alpha")
        })
        .register(Ext {
            route: Some(("/users/{name}", "b")),
            command: Some("c"),
            ..ext("beta")
        })
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("CLI command `c` is registered twice"), "{msg}");
    assert!(msg.contains("conflicts with /users/{id}"), "{msg}");
    assert_eq!(err.errors().len(), 2, "{msg}");
}
