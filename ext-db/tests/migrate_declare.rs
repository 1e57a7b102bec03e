//! Declaring migrations: the macro embeds a directory, the layout picks each backend's files,
//! bad files and bad `requires` are errors naming them, and sets go through the app's
//! registry. No database is needed here.

use flagon::{App, Extension, Setup, SetupError};
use flagon_db::{Backend, MigrateError, MigrationSet, Migrations, Migrator, migrations};

fn files(set: &MigrationSet, backend: Backend) -> Vec<String> {
    Migrator::new([("app", set)], backend)
        .unwrap()
        .plan()
        .into_iter()
        .map(|s| s.file)
        .collect()
}

#[test]
fn the_macro_embeds_the_directory_and_each_backend_gets_its_files() {
    let set = migrations!("tests/fixtures/migrate/layout");
    assert_eq!(set.label(), "tests/fixtures/migrate/layout");
    assert_eq!(set.versions(), [1, 2]);
    assert!(
        set.source_dir()
            .unwrap()
            .ends_with("tests/fixtures/migrate/layout")
    );
    assert!(
        set.declared_in()
            .unwrap()
            .ends_with("tests/migrate_declare.rs")
    );
    let dir = "tests/fixtures/migrate/layout";
    assert_eq!(
        files(&set, Backend::Postgres),
        [
            format!("{dir}/0001_first.up.sql"),
            format!("{dir}/postgres/0002_second.up.sql")
        ]
    );
    for backend in [Backend::Sqlite, Backend::MySql] {
        assert_eq!(
            files(&set, backend),
            [
                format!("{dir}/0001_first.up.sql"),
                format!("{dir}/0002_second.up.sql")
            ]
        );
    }
}

#[test]
fn bad_files_from_the_macro_are_errors_naming_each_file() {
    let set = migrations!("tests/fixtures/migrate/bad");
    let err = set.check("app").unwrap_err();
    let MigrateError::Declaration { owner, problems } = &err else {
        panic!("{err}");
    };
    assert_eq!(owner, "app");
    let files: Vec<&str> = problems.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "tests/fixtures/migrate/bad/02-bad.up.sql",
            "tests/fixtures/migrate/bad/postgresql/0003_typo.up.sql",
            "tests/fixtures/migrate/bad/0004_orphan.down.sql",
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("unknown directory `postgresql/`"), "{text}");
    assert!(text.contains("a down file without its up file"), "{text}");
    // The migrator refuses the set the same way.
    let refused = Migrator::new([("app", &set)], Backend::Sqlite).unwrap_err();
    assert_eq!(refused.to_string(), text);
}

#[test]
fn duplicate_versions_name_both_files() {
    let set = MigrationSet::from_files(
        "migrations",
        [
            ("0001_users.up.sql", "CREATE TABLE users (id INT)"),
            ("001_people.up.sql", "CREATE TABLE people (id INT)"),
            ("postgres/0002_a.up.sql", "SELECT 1"),
            ("0002_b.up.sql", "SELECT 1"),
        ],
    );
    let text = set.check("app").unwrap_err().to_string();
    assert!(
        text.contains("migrations/001_people.up.sql: version 1 is also `0001_users`")
            || text.contains("migrations/0001_users.up.sql: version 1 is also `001_people`"),
        "{text}"
    );
    assert!(
        text.contains("migrations/postgres/0002_a.up.sql: version 2 is also `0002_b`"),
        "{text}"
    );
}

#[test]
fn a_version_without_a_file_for_the_backend_in_use_is_named() {
    let set = MigrationSet::from_files(
        "migrations",
        [
            ("postgres/0001_search.up.sql", "CREATE EXTENSION pg_trgm"),
            ("postgres/0001_search.down.sql", "DROP EXTENSION pg_trgm"),
        ],
    );
    assert!(set.check("app").is_ok());
    assert!(Migrator::new([("app", &set)], Backend::Postgres).is_ok());
    let text = Migrator::new([("app", &set)], Backend::Sqlite)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("migrations/0001_search.up.sql: no file for sqlite"),
        "{text}"
    );
    assert!(
        text.contains("migrations/sqlite/0001_search.up.sql"),
        "{text}"
    );
}

fn one(sql_dir: &str) -> MigrationSet {
    MigrationSet::from_files(sql_dir, [("0001_x.up.sql", "SELECT 1")])
}

#[test]
fn sets_are_ordered_by_requires_then_as_given() {
    let app = one("app");
    let login = one("login").requires(["app"]);
    let mail = one("mail").requires(["login"]);
    let cache = one("cache");
    let m = Migrator::new(
        [
            ("mail", &mail),
            ("cache", &cache),
            ("login", &login),
            ("app", &app),
        ],
        Backend::Sqlite,
    )
    .unwrap();
    assert_eq!(
        m.owners().collect::<Vec<_>>(),
        ["app", "login", "mail", "cache"]
    );
    let plan: Vec<String> = m
        .plan()
        .into_iter()
        .map(|s| format!("{} {}", s.owner, s.name))
        .collect();
    assert_eq!(
        plan,
        ["app 0001_x", "login 0001_x", "mail 0001_x", "cache 0001_x"]
    );
}

#[test]
fn a_missing_requirement_and_a_cycle_are_named() {
    let login = one("login").requires(["sessions"]);
    let err = Migrator::new([("login", &login)], Backend::Sqlite).unwrap_err();
    assert!(
        matches!(&err, MigrateError::MissingRequirement { owner, missing } if owner == "login" && missing == "sessions"),
        "{err}"
    );
    assert!(err.to_string().contains("`sessions`, which declared none"));

    let a = one("a").requires(["b"]);
    let b = one("b").requires(["c"]);
    let c = one("c").requires(["a"]);
    let err = Migrator::new([("a", &a), ("b", &b), ("c", &c)], Backend::Sqlite).unwrap_err();
    assert_eq!(
        err.to_string(),
        "migration sets require each other in a cycle: a -> b -> c -> a"
    );
}

#[test]
fn owner_names_are_checked() {
    let set = one("migrations");
    let err = Migrator::new([("Bad Owner", &set)], Backend::Sqlite).unwrap_err();
    assert!(
        err.to_string().contains("`Bad Owner` is not an owner name"),
        "{err}"
    );
}

struct Login;

impl Extension for Login {
    fn name(&self) -> &'static str {
        "login"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let set = migrations!("tests/fixtures/migrate/login").requires(["app"]);
        app.add_to::<Migrations>("login", set);
        Ok(())
    }
}

struct Impostor;

impl Extension for Impostor {
    fn name(&self) -> &'static str {
        "impostor"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.add_to::<Migrations>("login", migrations!("tests/fixtures/migrate/mail"));
        Ok(())
    }
}

#[test]
fn extensions_and_the_app_declare_sets_through_the_registry() {
    let app = App::builder()
        .register(Login)
        .configure(|app| {
            app.add_to::<Migrations>("app", migrations!("tests/fixtures/migrate/basic"));
            Ok(())
        })
        .build()
        .unwrap();
    let m = Migrator::from_registry(app.handle().registry::<Migrations>(), Backend::MySql).unwrap();
    assert_eq!(m.owners().collect::<Vec<_>>(), ["app", "login"]);
    let last_app = m.plan().into_iter().find(|s| s.version == 3).unwrap();
    assert_eq!(
        last_app.file,
        "tests/fixtures/migrate/basic/mysql/0003_index_posts.up.sql"
    );
}

#[test]
fn two_sets_under_one_owner_fail_the_build_naming_both() {
    let err = match App::builder().register(Login).register(Impostor).build() {
        Ok(_) => panic!("two `login` migration sets were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("migration set"), "{err}");
    assert!(err.contains("login") && err.contains("impostor"), "{err}");
}
