//! The app's own CLI: `routes`, `extensions`, `config` and extension commands.

use std::io::Write;
use std::sync::Arc;

use flagon::clap::{Arg, Command};
use flagon::testing::{run_cli, testing_config_toml};
use flagon::{App, Blueprint, Decorator, Extension, Next, Route, Setup, SetupError};
use serde::{Deserialize, Serialize};

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct MailConfig {
    host: String,
    password: flagon::config::Secret,
    url: String,
}

struct Mail;

struct Outbox(Vec<String>);

async fn send_test() -> &'static str {
    "sent"
}

async fn outbox() -> &'static str {
    "outbox"
}

impl Extension for Mail {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let _: MailConfig = app.config("mail")?;
        app.provide(Outbox(vec!["a@example.com".into()]));
        app.route(Route::post("/mail/send-test", send_test));
        app.blueprint(
            Blueprint::new("mail_admin")
                .url_prefix("/admin/mail")
                .with(Decorator::new(
                    "login",
                    "login required",
                    |req, next: Next| next.run(req),
                ))
                .route(Route::get("/outbox", outbox)),
        );
        app.after_request(|_, r| async { r });
        app.health_check("smtp", std::time::Duration::from_secs(1), |_| async {
            Ok(())
        });
        app.command(
            Command::new("send-test")
                .about("Send a test message")
                .arg(Arg::new("to").required(true)),
            |ctx| async move {
                let to: &String = ctx.matches().get_one("to").expect("required");
                let outbox = ctx.app().state::<Outbox>().expect("provided");
                writeln!(
                    ctx.out(),
                    "would send to {to}; outbox has {}",
                    outbox.0.len()
                )?;
                Ok(())
            },
        );
        app.worker("outbox", |ctx| async move {
            ctx.stopping().await;
            Ok(())
        });
        app.command(Command::new("fail"), |_| async {
            Err("the SMTP server refused the login".into())
        });
        Ok(())
    }
}

struct Login;

impl Extension for Login {
    fn name(&self) -> &'static str {
        "login"
    }

    fn requires(&self) -> &'static [&'static str] {
        &["mail"]
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.route(Route::get("/login", || async { "login" }).name("login"));
        app.subscribe(|_: &flagon::signals::RequestFinished| {});
        Ok(())
    }
}

async fn index() -> &'static str {
    "index"
}

fn app() -> App {
    App::builder()
        .settings(testing_config_toml(
            "secret_key = \"s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t\"\n[mail]\nhost = \"smtp.example.com\"\npassword = \"hunter2\"\nurl = \"smtp://user:pw@smtp.example.com:587\"\n[server]\nport = 8080\n",
        ))
        .register(Login)
        .register(Mail)
        .route(Route::get("/", index).with(Decorator::new(
            "app",
            "cached 60s",
            |req, next: Next| next.run(req),
        )))
        .configure(|s| {
            s.mount("/static", "static files", flagon::axum::Router::new());
            Ok(())
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn routes_lists_every_route_with_its_owner() {
    let out = run_cli(&app(), ["routes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("routes", out.stdout);
    let by_endpoint = run_cli(&app(), ["routes", "--sort", "endpoint"]).await;
    insta::assert_snapshot!("routes_by_endpoint", by_endpoint.stdout);
}

#[tokio::test]
async fn extensions_lists_each_contribution() {
    let out = run_cli(&app(), ["extensions"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("extensions", out.stdout);
}

#[tokio::test]
async fn config_shows_sources_and_redacts_secrets() {
    let out = run_cli(&app(), ["config"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    assert!(!out.stdout.contains(":pw@"), "{}", out.stdout);
    assert!(!out.stdout.contains("s3cr3t"), "{}", out.stdout);
    insta::assert_snapshot!("config", out.stdout);
}

#[tokio::test]
async fn extension_commands_run_with_the_app_initialised() {
    let out = run_cli(&app(), ["send-test", "bob@example.com"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "would send to bob@example.com; outbox has 1\n");
}

#[tokio::test]
async fn command_failures_exit_1_with_the_message() {
    let out = run_cli(&app(), ["fail"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "error: the SMTP server refused the login\n");
}

#[tokio::test]
async fn usage_errors_exit_2_and_help_lists_extension_commands() {
    let out = run_cli(&app(), ["send-test"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("<to>"), "{}", out.stderr);
    let help = run_cli(&app(), ["--help"]).await;
    assert_eq!(help.code, 0);
    for c in ["serve", "routes", "extensions", "config", "send-test"] {
        assert!(
            help.stdout.contains(c),
            "{c} missing from help: {}",
            help.stdout
        );
    }
}

#[tokio::test]
async fn startup_failure_aborts_commands_with_its_message() {
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(|s| {
            s.on_startup(|_| async { Err("database unreachable at 127.0.0.1:1".into()) });
            s.command(Command::new("work"), |_| async { Ok(()) });
            Ok(())
        })
        .build()
        .unwrap();
    let out = run_cli(&app, ["work"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: startup hook of the app failed: database unreachable at 127.0.0.1:1\n"
    );
}

#[tokio::test]
async fn commands_run_after_the_startup_hooks_but_not_the_before_serving_ones() {
    let ran = Arc::new(std::sync::Mutex::new(Vec::<&'static str>::new()));
    let (a, b, c) = (ran.clone(), ran.clone(), ran.clone());
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(move |s| {
            s.on_startup(move |_| {
                a.lock().unwrap().push("startup");
                async { Ok(()) }
            });
            s.before_serving(move |_| {
                b.lock().unwrap().push("before_serving");
                async { Ok(()) }
            });
            s.command(Command::new("work"), move |_| {
                c.lock().unwrap().push("work");
                async { Ok(()) }
            });
            Ok(())
        })
        .build()
        .unwrap();
    let out = run_cli(&app, ["work"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(*ran.lock().unwrap(), ["startup", "work"]);
}

#[tokio::test]
async fn secret_key_prints_a_fresh_random_key() {
    let a = run_cli(&app(), ["secret-key"]).await;
    let b = run_cli(&app(), ["secret-key"]).await;
    assert_eq!(a.code, 0, "{}", a.stderr);
    let key = a.stdout.trim_end();
    assert_eq!(key.len(), 64, "{key}");
    assert!(key.bytes().all(|c| c.is_ascii_hexdigit()), "{key}");
    assert_ne!(a.stdout, b.stdout);
    // The key it prints is accepted in production.
    let config = flagon::config::Config::builder()
        .profile(flagon::config::Profile::Production)
        .env([("FLAGON_SECRET_KEY", key)])
        .build()
        .unwrap();
    assert!(App::builder().settings(config).build().is_ok());
}

#[tokio::test]
async fn commands_read_their_standard_input_which_tests_give() {
    let app = App::builder()
        .settings(testing_config_toml(""))
        .configure(|app| {
            app.command(Command::new("lines"), |ctx| async move {
                let mut input = ctx.input();
                let mut n = 0;
                while let Some(line) = input.read_line()? {
                    n += 1;
                    writeln!(ctx.out(), "{n}: {line}")?;
                }
                writeln!(ctx.out(), "terminal: {}", input.is_terminal())?;
                Ok(())
            });
            Ok(())
        })
        .build()
        .unwrap();
    let run = flagon::testing::run_cli_with_input(&app, ["lines"], "first\r\nsecond\nlast").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout, "1: first\n2: second\n3: last\nterminal: false\n",
        "CRLF and LF endings are stripped, a last line without one is read"
    );
    // `run_cli` gives an empty input: a command reading it sees the end at once.
    let run = run_cli(&app, ["lines"]).await;
    assert_eq!(run.stdout, "terminal: false\n");
}
