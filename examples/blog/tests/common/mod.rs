//! What every in-process test of the blog shares: an app on a fresh in-memory SQLite
//! database with its migrations applied, accounts made directly in the database, and the
//! CSRF token of a rendered form.
#![allow(dead_code)] // each test file uses its own part

use flagon::App;
use flagon::testing::{TestClient, testing_config_toml};
use flagon_db::Db;
use flagon_login::Role;

/// The blog on a database of its own, migrated when the test client starts it; `extra` is
/// more TOML for the testing profile.
pub fn app_with(extra: &str) -> App {
    let config = testing_config_toml(&format!(
        "[db]\nurl = \"sqlite::memory:\"\nauto_upgrade = true\nmax_connections = 1\n\
         [mail]\ndefault_sender = \"Blog <blog@example.com>\"\n\
         [login]\napi_blueprints = [\"api\"]\n{extra}"
    ));
    example_blog::build(config).unwrap_or_else(|e| panic!("{e}"))
}

/// The blog with the default test settings.
pub fn app() -> App {
    app_with("")
}

/// Starts the app (migrations run) and returns a client.
pub async fn client(app: &App) -> TestClient {
    let client = TestClient::new(app);
    client.start().await.unwrap_or_else(|e| panic!("{e}"));
    client
}

/// The database pool.
pub fn db(app: &App) -> std::sync::Arc<Db> {
    app.handle().state::<Db>().expect("db is registered")
}

/// A verified, active account with `role`, written straight into the database; returns its
/// id. The password is hashed with the app's own hasher.
pub async fn account(app: &App, email: &str, username: &str, password: &str, role: Role) -> i64 {
    let passwords = flagon_login::Login::<example_blog::models::Account>::passwords(app.handle())
        .expect("login is registered");
    let hash = passwords.hash(password).await.expect("hashes");
    let role = match role {
        Role::Admin => "admin",
        Role::Editor => "editor",
        _ => "author",
    };
    let db = db(app);
    let now = example_blog::models::now();
    let row = db
        .query(
            "INSERT INTO users (email, username, password_hash, role, verified_at, active, created_at) \
             VALUES (?, ?, ?, ?, ?, 1, ?) RETURNING id",
        )
        .bind(email.to_owned())
        .bind(username.to_owned())
        .bind(hash)
        .bind(role)
        .bind(now)
        .bind(now)
        .fetch_one(&*db)
        .await
        .expect("inserts the account");
    flagon_db::sqlx::Row::get(&row, 0)
}

/// The CSRF token in the first form of `page`.
pub fn csrf_token(page: &str) -> String {
    let needle = "name=\"csrf_token\" value=\"";
    let start = page
        .find(needle)
        .unwrap_or_else(|| panic!("no csrf_token field in: {page}"))
        + needle.len();
    let end = page[start..].find('"').expect("the value ends") + start;
    page[start..end].to_owned()
}

/// GETs `path` and returns the CSRF token of its form.
pub async fn token_from(client: &TestClient, path: &str) -> String {
    let res = client.get(path).send().await;
    assert_eq!(res.status(), 200, "GET {path}");
    csrf_token(&res.text())
}
