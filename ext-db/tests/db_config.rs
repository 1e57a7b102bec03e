//! `[db]`: errors that stop the build naming the key, binds, and the features tests run with.

mod db_support;

use db_support::TestDb;
use flagon::App;
use flagon::testing::testing_config_toml;
use flagon_db::{Backend, Db};

fn build_error(toml: &str) -> String {
    App::builder()
        .settings(testing_config_toml(toml))
        .register(Db::extension())
        .build()
        .map(|_| ())
        .expect_err("the build must fail")
        .to_string()
}

#[test]
fn this_crates_tests_run_with_every_backend_compiled_in() {
    // The self dev-dependency in Cargo.toml turns `postgres` and `mysql` on for the tests.
    assert!(Backend::Sqlite.is_compiled_in());
    assert!(Backend::Postgres.is_compiled_in());
    assert!(Backend::MySql.is_compiled_in());
}

#[test]
fn an_unknown_key_names_itself() {
    let e = build_error("[db]\nurl = \"sqlite::memory:\"\npool_size = 3\n");
    assert!(e.contains("db.pool_size"), "{e}");
}

#[test]
fn a_bad_value_names_its_key() {
    let e = build_error("[db]\nmax_connections = \"ten\"\n");
    assert!(e.contains("db.max_connections"), "{e}");
    let e = build_error("[db]\nacquire_timeout = \"soon\"\n");
    assert!(e.contains("db.acquire_timeout"), "{e}");
    let e = build_error("[db]\nmax_connections = 0\n");
    assert!(
        e.contains("db.max_connections") && e.contains("at least 1"),
        "{e}"
    );
    let e = build_error("[db]\nmin_connections = 5\nmax_connections = 2\n");
    assert!(e.contains("db.min_connections"), "{e}");
}

#[test]
fn a_bad_url_names_the_key_and_never_the_password() {
    for url in [
        "oracle://app:hunter2@db.example/app",
        "postgres://app:hunter2@db.example:notaport/app",
        "mysql://app:hunter2@/",
    ] {
        let e = build_error(&format!("[db]\nurl = \"{url}\"\n"));
        assert!(e.contains("db.url"), "{url}: {e}");
        assert!(!e.contains("hunter2"), "{url}: the password is shown: {e}");
    }
    let e = build_error("[db.binds.analytics]\nurl = \"oracle://u:hunter2@h/d\"\n");
    assert!(
        e.contains("db.binds.analytics.url") && !e.contains("hunter2"),
        "{e}"
    );
}

#[test]
fn a_bind_needs_a_url_and_a_plain_name() {
    let e = build_error("[db.binds.stats]\nmax_connections = 2\n");
    assert!(e.contains("db.binds.stats.url"), "{e}");
    let e = build_error("[db.binds.stats]\nurl = \"sqlite::memory:\"\nechoo = true\n");
    assert!(e.contains("db.binds.stats.echoo"), "{e}");
}

#[tokio::test]
async fn binds_are_separate_databases_reached_by_name() {
    let (main, other) = (TestDb::sqlite(), TestDb::sqlite());
    let app = App::builder()
        .settings(testing_config_toml(&format!(
            "[db]\nurl = \"{}\"\n[db.binds.analytics]\nurl = \"{}\"\nmax_connections = 3\n",
            main.url, other.url
        )))
        .register(Db::extension())
        .build()
        .unwrap();
    let db = app.state::<Db>().unwrap();
    let analytics = db.bind("analytics").unwrap();
    assert_eq!(analytics.bind_name(), Some("analytics"));
    assert_eq!(db.bind_names().collect::<Vec<_>>(), ["analytics"]);
    analytics
        .query("CREATE TABLE hit (n INTEGER)")
        .execute(&analytics)
        .await
        .unwrap();
    assert_eq!(analytics.stats().max, 3);
    // The table is in the bind's file, not the main one.
    let in_main = db.query("SELECT COUNT(*) FROM hit").execute(&*db).await;
    assert!(in_main.is_err());
    assert!(matches!(db.bind("nope"), Err(flagon_db::Error::UnknownBind(n)) if n == "nope"));
}

#[test]
fn the_app_builds_outside_a_runtime_and_the_pool_opens_inside_one() {
    // `routes`, `config` and sync tests build the app with no runtime running: the pool (whose
    // maintenance task needs one) is made on first use.
    let t = TestDb::sqlite();
    let app = App::builder()
        .settings(testing_config_toml(&format!(
            "[db]\nurl = \"{}\"\nmin_connections = 2\n",
            t.url
        )))
        .register(Db::extension())
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n: i64 = rt.block_on(async {
        let db = app.state::<Db>().unwrap();
        db.query_scalar("SELECT 7").fetch_one(&*db).await.unwrap()
    });
    assert_eq!(n, 7);
}
