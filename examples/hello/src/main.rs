//! The smallest complete Flagon app: an extension with a route, hooks, a CLI command and a
//! config section, plus a blueprint. Run `cargo run -p example-hello` and open
//! http://127.0.0.1:5000/, or `cargo run -p example-hello -- routes`.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Instant;

use flagon::clap::{Arg, Command};
use flagon::{App, Blueprint, Ext, Extension, G, Route, Setup, SetupError};
use serde::{Deserialize, Serialize};

/// `[greeter]` in flagon.toml.
#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct GreeterConfig {
    greeting: Option<String>,
}

struct Greeting(String);

/// A small extension, as Flask-Greeter would be.
struct Greeter;

impl Extension for Greeter {
    fn name(&self) -> &'static str {
        "greeter"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let cfg: GreeterConfig = app.config("greeter")?;
        app.provide(Greeting(cfg.greeting.unwrap_or_else(|| "Hello".into())));
        app.route(Route::get("/hello/{name}", hello));
        app.before_request(|mut req| async move {
            flagon::RequestExt::g(&mut req).insert(Instant::now());
            ControlFlow::Continue(req)
        });
        app.after_request(|ctx, mut res| async move {
            if let Some(t) = ctx.g().get::<Instant>() {
                let us = t.elapsed().as_micros().to_string();
                res.headers_mut()
                    .insert("x-elapsed-us", us.parse().unwrap());
            }
            res
        });
        app.command(
            Command::new("greet")
                .about("Print a greeting")
                .arg(Arg::new("name").required(true)),
            |ctx| async move {
                let greeting = ctx.app().state::<Greeting>().expect("provided above");
                let name: &String = ctx.matches().get_one("name").expect("required");
                writeln!(ctx.out(), "{}, {name}!", greeting.0)?;
                Ok(())
            },
        );
        Ok(())
    }
}

async fn hello(
    axum::extract::Path(name): axum::extract::Path<String>,
    greeting: Ext<Greeting>,
) -> String {
    format!("{}, {name}!", greeting.0)
}

async fn index(g: G) -> String {
    let started = g
        .get::<Instant>()
        .map(|t| format!("{:?}", t.elapsed()))
        .unwrap_or_default();
    format!("Welcome to Flagon (hooks ran {started} ago). Try /hello/world or /admin/.\n")
}

async fn admin_index() -> &'static str {
    "admin area\n"
}

#[tokio::main]
async fn main() -> ExitCode {
    let admin = Blueprint::new("admin")
        .url_prefix("/admin")
        .route(Route::get("/", admin_index).name("index"));
    flagon_secure_headers::link(); // keeps the discovered crate in the binary
    let app = App::builder()
        .discover()
        .register(Greeter)
        .route(Route::get("/", index))
        .blueprint(admin)
        .build();
    match app {
        Ok(app) => app.run().await,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
