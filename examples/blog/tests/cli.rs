//! `create-admin EMAIL --password-stdin`, run through the app's CLI as `cargo run -p
//! example-blog -- create-admin …` runs it, on a database file that outlives each command.

mod accounts;
mod common;

use flagon::testing::{CliOutput, TestClient, run_cli_with_input, testing_config_toml};

fn app_on(dir: &std::path::Path) -> flagon::App {
    let url = format!("sqlite://{}", dir.join("blog.db").display());
    let config = testing_config_toml(&format!(
        "secret_key = \"a-test-secret-key-that-is-long-enough-0123\"\n\
         [db]\nurl = \"{url}\"\n[mail]\ndefault_sender = \"Blog <blog@example.com>\"\n\
         [login]\nlogin_view = \"auth.login\"\napi_blueprints = [\"api\"]\n"
    ));
    example_blog::build(config).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one command as its own process would: a fresh app on the database file (a command
/// closes the app's pool when it ends).
async fn cli(dir: &std::path::Path, args: &[&str], input: &str) -> CliOutput {
    let app = app_on(dir);
    run_cli_with_input(&app, args.iter().copied(), input).await
}

#[tokio::test]
async fn create_admin_makes_a_verified_admin_who_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let run = cli(dir.path(), &["db", "upgrade"], "").await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = cli(
        dir.path(),
        &["create-admin", "Root@Example.com", "--password-stdin"],
        &format!("{}\n", accounts::PASSWORD),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("created admin root (root@example.com)"),
        "{}",
        run.stdout
    );

    let app = app_on(dir.path());
    let client = TestClient::new(&app);
    client.start().await.unwrap();
    let root = accounts::account(&app, "root@example.com").await.unwrap();
    assert_eq!(root.role, "admin");
    assert!(root.verified_at.is_some());
    let res = accounts::login(&client, "root@example.com", accounts::PASSWORD).await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(client.get("/admin/").send().await.status(), 200);
}

#[tokio::test]
async fn create_admin_refuses_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(cli(dir.path(), &["db", "upgrade"], "").await.code, 0);
    let pw = format!("{}\n", accounts::PASSWORD);
    let ok = cli(
        dir.path(),
        &["create-admin", "root@example.com", "--password-stdin"],
        &pw,
    )
    .await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);

    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["create-admin", "root@example.com", "--password-stdin"],
            pw.as_str(),
            "an account with root@example.com already exists",
        ),
        (
            &["create-admin", "new@example.com", "--password-stdin"],
            "short\n",
            "the password is too short: at least 8 characters",
        ),
        (
            &["create-admin", "new@example.com", "--password-stdin"],
            "password123\n",
            "the password is too common",
        ),
        (
            &["create-admin", "new@example.com", "--password-stdin"],
            "",
            "no password on standard input",
        ),
        (
            &["create-admin", "new@example.com"],
            pw.as_str(),
            "--password-stdin",
        ),
        (
            &["create-admin", "not-an-address", "--password-stdin"],
            pw.as_str(),
            "`not-an-address` is not a valid email address",
        ),
    ];
    for (args, input, message) in cases {
        let run = cli(dir.path(), args, input).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    let usage = cli(dir.path(), &["create-admin"], "").await;
    assert_eq!(usage.code, 2, "EMAIL is required: {}", usage.stderr);
    let taken = cli(
        dir.path(),
        &["create-admin", "root@other.example", "--password-stdin"],
        &pw,
    )
    .await;
    assert_eq!(taken.code, 1);
    assert!(
        taken.stderr.contains("the username root is taken"),
        "{}",
        taken.stderr
    );
    let named = cli(
        dir.path(),
        &[
            "create-admin",
            "root@other.example",
            "--password-stdin",
            "--username",
            "root2",
        ],
        &pw,
    )
    .await;
    assert_eq!(named.code, 0, "{}", named.stderr);
}
