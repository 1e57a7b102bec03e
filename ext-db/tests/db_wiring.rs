//! The `db` extension wires the rest of the crate into an app: `[session] store = "db"` with
//! its table's migrations and sweep, the `db` commands, `auto_upgrade` before serving (never
//! before a command), and every registered migration set checked when the app is built.

mod db_support;

use db_support::TestDb;
use flagon::session::Session;
use flagon::testing::{TestClient, run_cli, testing_config_toml};
use flagon::{App, HttpError, Route};
use flagon_db::{Db, MigrationSet};

async fn count_visits(session: Session) -> Result<String, HttpError> {
    let n: u64 = session.get("n").unwrap_or(0) + 1;
    session.insert("n", n)?;
    Ok(n.to_string())
}

fn app(url: &str, db_extra: &str, sets: Vec<(&'static str, MigrationSet)>) -> App {
    App::builder()
        .settings(testing_config_toml(&format!(
            "[db]\nurl = \"{url}\"\n{db_extra}\n[session]\nstore = \"db\"\n"
        )))
        .register(Db::extension())
        .configure(move |s| {
            for (owner, set) in sets {
                s.add_to::<flagon_db::Migrations>(owner, set);
            }
            s.route(Route::get("/count", count_visits));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn servers() -> Vec<TestDb> {
    let mut all = vec![TestDb::sqlite()];
    all.extend(TestDb::postgres().await);
    all.extend(TestDb::mysql().await);
    all
}

async fn session_rows(db: &Db) -> i64 {
    db.query_scalar("SELECT COUNT(*) FROM flagon_sessions")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_db_with_auto_upgrade_keeps_sessions_in_the_migrated_table() {
    for t in servers().await {
        let app = app(&t.url, "auto_upgrade = true", vec![]);
        let client = TestClient::new(&app);
        for want in ["1", "2", "3"] {
            let res = client.get("/count").send().await;
            assert_eq!(res.status(), 200, "{}: {}", t.backend, res.text());
            assert_eq!(res.text(), want, "{}", t.backend);
        }
        let db = app.state::<Db>().unwrap();
        assert_eq!(session_rows(&db).await, 1, "{}", t.backend);
        let owners: Vec<String> = db
            .query_scalar("SELECT owner FROM flagon_migrations")
            .fetch_all(&*db)
            .await
            .unwrap();
        assert_eq!(owners, ["session"], "{}", t.backend);
        client.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_see_pending_migrations_because_auto_upgrade_waits_for_serving() {
    let t = TestDb::sqlite();
    // Each command is a process of its own: a fresh app, whose shutdown closes its pools.
    let app = || {
        let sets = vec![(
            "app",
            MigrationSet::from_files(
                "migrations",
                [
                    (
                        "0001_create_post.up.sql",
                        "CREATE TABLE post (id INTEGER PRIMARY KEY)",
                    ),
                    ("0001_create_post.down.sql", "DROP TABLE post"),
                ],
            ),
        )];
        app(&t.url, "auto_upgrade = true", sets)
    };
    let status = run_cli(&app(), ["db", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("0001_create_post"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("0001_create_sessions"),
        "{}",
        status.stdout
    );
    let check = run_cli(&app(), ["db", "check"]).await;
    assert_eq!(check.code, 1, "pending before upgrade: {}", check.stdout);
    let upgrade = run_cli(&app(), ["db", "upgrade"]).await;
    assert_eq!(upgrade.code, 0, "{}", upgrade.stderr);
    let check = run_cli(&app(), ["db", "check"]).await;
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let app = app();
    let db = app.state::<Db>().unwrap();
    assert_eq!(session_rows(&db).await, 0, "the session table exists");
    let posts: i64 = db
        .query_scalar("SELECT COUNT(*) FROM post")
        .fetch_one(&*db)
        .await
        .unwrap();
    assert_eq!(posts, 0, "the app's table exists");
}

#[test]
fn a_migration_set_with_a_bad_file_fails_the_build_naming_it() {
    let t = TestDb::sqlite();
    let err = App::builder()
        .settings(testing_config_toml(&format!("[db]\nurl = \"{}\"\n", t.url)))
        .register(Db::extension())
        .configure(|s| {
            s.add_to::<flagon_db::Migrations>(
                "app",
                MigrationSet::from_files(
                    "migrations",
                    [("create_post.sql", "CREATE TABLE p (id INT)")],
                ),
            );
            Ok(())
        })
        .build();
    let Err(err) = err else {
        panic!("the build fails")
    };
    let msg = err.to_string();
    assert!(msg.contains("create_post.sql"), "{msg}");
}

#[test]
fn a_missing_requirement_fails_the_build() {
    let t = TestDb::sqlite();
    let set = MigrationSet::from_files("migrations/login", [("0001_tokens.up.sql", "SELECT 1")])
        .requires(["users"]);
    let err = App::builder()
        .settings(testing_config_toml(&format!("[db]\nurl = \"{}\"\n", t.url)))
        .register(Db::extension())
        .configure(move |s| {
            s.add_to::<flagon_db::Migrations>("login", set);
            Ok(())
        })
        .build();
    let Err(err) = err else {
        panic!("the build fails")
    };
    let msg = err.to_string();
    assert!(msg.contains("users"), "{msg}");
}
