//! Benchmark server: the same routes served by bare axum and by a Flagon app with several
//! extensions registered, so `examples/bench/run` can drive both with wrk in one run.
//!
//! ```text
//! example-bench axum   --port 8001
//! example-bench flagon --port 8002
//! ```
//!
//! The Flagon app registers four extensions that add state, config sections, CLI commands
//! and hooks on their own blueprints, but leave `/hello` alone: the `/hello` ratio measures
//! what the core costs a route that uses none of them.

use std::ops::ControlFlow;
use std::process::ExitCode;

use axum::routing::get;
use flagon::clap::Command;
use flagon::{App, Blueprint, Extension, Route, Setup, SetupError};
use serde::{Deserialize, Serialize};

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

fn flagon_app() -> Result<App, flagon::BuildError> {
    let mut builder = App::builder();
    for name in ["counter", "audit", "greeter", "metrics"] {
        builder = builder.register(Busy { name });
    }
    builder.route(Route::get("/hello", hello)).build()
}

fn axum_router() -> axum::Router {
    axum::Router::new().route("/hello", get(hello))
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
        Some("flagon") => match flagon_app() {
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
            .config(flagon::testing::testing_config())
            .register(super::Busy { name: "counter" })
            .route(flagon::Route::get("/hello", super::hello))
            .build()
            .unwrap();
        let res = TestClient::new(&app).get("/hello").send().await;
        assert_eq!(res.text(), "Hello, World!");
        let res = TestClient::new(&app).get("/counter/").send().await;
        assert_eq!(res.text(), "ext");
    }
}
