//! Migrations against real databases: SQLite always (a file in a temporary directory per
//! test); PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) with a database of their
//! own per test, created and dropped here. An unreachable server skips its tests with one
//! printed line, or fails them when FLAGON_TEST_REQUIRE_SERVICES=1.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flagon_db::migrate::{self, MigrationState, Progress};
use flagon_db::{Backend, MigrateError, MigrationSet, Migrator, Target, migrations};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection, Row};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";

/// A database of its own for one test; dropped with the value.
struct TestDb {
    pool: AnyPool,
    backend: Backend,
    url: String,
    server: Option<(&'static str, String)>,
    _dir: Option<tempfile::TempDir>,
}

fn unique_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "flagon_test_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn unreachable(what: &str, e: impl std::fmt::Display) -> Option<TestDb> {
    if std::env::var("FLAGON_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{what} is required (FLAGON_TEST_REQUIRE_SERVICES=1) but unreachable: {e}");
    }
    println!("skipped: {what} unreachable: {e}");
    None
}

async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

async fn open(backend: Backend) -> Option<TestDb> {
    sqlx::any::install_default_drivers();
    let (admin, what, base) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
            let pool = connect(&url).await.unwrap();
            return Some(TestDb {
                pool,
                backend,
                url,
                server: None,
                _dir: Some(dir),
            });
        }
        Backend::Postgres => (
            PG_ADMIN,
            "PostgreSQL at 127.0.0.1:5432",
            "postgres://postgres@127.0.0.1:5432",
        ),
        Backend::MySql => (
            MYSQL_ADMIN,
            "MariaDB at 127.0.0.1:3306",
            "mysql://root@127.0.0.1:3306",
        ),
    };
    // One direct connection: a refused connection says so at once (a pool would wait out
    // its acquire timeout and report only that).
    let connected = tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(admin));
    let mut admin_conn = match connected.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return unreachable(what, e),
        Err(_) => return unreachable(what, "no answer within 5 s"),
    };
    let name = unique_name();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin_conn)
        .await
        .unwrap();
    let _ = admin_conn.close().await;
    let url = format!("{base}/{name}");
    let pool = connect(&url).await.unwrap();
    Some(TestDb {
        pool,
        backend,
        url,
        server: Some((admin, name)),
        _dir: None,
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.server.take() else {
            return;
        };
        let force = if admin.starts_with("postgres") {
            " WITH (FORCE)"
        } else {
            ""
        };
        // The test's runtime may be gone or busy: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = connect(admin).await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}{force}"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

impl TestDb {
    async fn table_exists(&self, table: &str) -> bool {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?".to_owned()
            }
            Backend::Postgres => "SELECT COUNT(*) FROM information_schema.tables \
                                  WHERE table_schema = current_schema() AND table_name = $1"
                .to_owned(),
            Backend::MySql => "SELECT COUNT(*) FROM information_schema.tables \
                               WHERE table_schema = DATABASE() AND table_name = ?"
                .to_owned(),
        };
        let n: i64 = sqlx::query(AssertSqlSafe(sql))
            .bind(table)
            .fetch_one(&self.pool)
            .await
            .unwrap()
            .get(0);
        n > 0
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
            .get(0)
    }

    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// Runs `db ARGS…` through the CLI entry, returning (output, result).
    async fn cli(
        &self,
        migrator: &Migrator,
        dir: &Path,
        args: &[&str],
    ) -> (String, Result<(), MigrateError>) {
        let matches = migrate::commands()
            .try_get_matches_from(std::iter::once("db").chain(args.iter().copied()))
            .unwrap();
        let mut out = Vec::new();
        let result = migrate::run_cli(&matches, &self.pool, migrator, dir, &mut out, false).await;
        (String::from_utf8(out).unwrap(), result)
    }
}

fn states(status: &migrate::Status, owner: &str) -> Vec<&'static str> {
    status
        .owners
        .iter()
        .find(|o| o.owner == owner)
        .unwrap()
        .migrations
        .iter()
        .map(|m| match m.state {
            MigrationState::Pending => "pending",
            MigrationState::Applied(_) => "applied",
            MigrationState::Changed(_) => "changed",
        })
        .collect()
}

fn basic(backend: Backend) -> Migrator {
    let set = migrations!("tests/fixtures/migrate/basic");
    Migrator::new([("app", &set)], backend).unwrap()
}

fn names(report: &migrate::Report) -> Vec<String> {
    report
        .steps
        .iter()
        .map(|(s, _)| format!("{} {}", s.owner, s.name))
        .collect()
}

async fn up_status_and_down(db: TestDb) {
    let m = basic(db.backend);
    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["pending"; 3]);
    assert!(
        !db.table_exists("flagon_migrations").await,
        "status must create nothing"
    );

    let report = m.upgrade(&db.pool, &Target::Default).await.unwrap();
    assert_eq!(
        names(&report),
        [
            "app 0001_create_users",
            "app 0002_add_posts",
            "app 0003_index_posts"
        ]
    );
    assert!(!report.waited);
    db.exec("INSERT INTO users (id, email) VALUES (1, 'a@example.com')")
        .await;
    db.exec("INSERT INTO posts (id, user_id, title) VALUES (1, 1, 'hello')")
        .await;
    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["applied"; 3]);
    assert!(status.is_up_to_date());
    assert_eq!(db.count("flagon_migrations").await, 3);

    // Nothing left to do.
    assert!(
        m.upgrade(&db.pool, &Target::Default)
            .await
            .unwrap()
            .steps
            .is_empty()
    );

    let history = m.history(&db.pool).await.unwrap();
    let order: Vec<&str> = history.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        order,
        ["0001_create_users", "0002_add_posts", "0003_index_posts"]
    );
    assert!(
        history
            .iter()
            .all(|r| r.checksum.len() == 64 && r.applied_at_ms > 0)
    );

    // Default downgrade: one step.
    let report = m.downgrade(&db.pool, &Target::Default).await.unwrap();
    assert_eq!(names(&report), ["app 0003_index_posts"]);
    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["applied", "applied", "pending"]);

    // Down to nothing, newest first.
    let report = m
        .downgrade(&db.pool, &"app:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        names(&report),
        ["app 0002_add_posts", "app 0001_create_users"]
    );
    assert!(!db.table_exists("users").await && !db.table_exists("posts").await);
    assert_eq!(db.count("flagon_migrations").await, 0);

    // Up to a version (bare numbers are the app's).
    let report = m.upgrade(&db.pool, &"2".parse().unwrap()).await.unwrap();
    assert_eq!(
        names(&report),
        ["app 0001_create_users", "app 0002_add_posts"]
    );
    assert!(db.table_exists("posts").await);
    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["applied", "applied", "pending"]);
    assert_eq!(status.pending(), 1);

    let err = m
        .upgrade(&db.pool, &"app:9".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`app` has no migration 9 (its versions: 1, 2, 3)"
    );
}

async fn check_and_checksum_mismatch(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let original = MigrationSet::from_files(
        "migrations",
        [
            ("0001_a.up.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);"),
            ("0002_b.up.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY);"),
        ],
    );
    let m = Migrator::new([("app", &original)], db.backend).unwrap();
    let (out, result) = db.cli(&m, dir.path(), &["check"]).await;
    assert!(
        matches!(
            result,
            Err(MigrateError::CheckFailed {
                pending: 2,
                mismatched: 0
            })
        ),
        "{result:?}\n{out}"
    );
    assert!(out.contains("  pending  0001_a"), "{out}");

    m.upgrade(&db.pool, &"1".parse().unwrap()).await.unwrap();
    let (out, result) = db.cli(&m, dir.path(), &["check"]).await;
    assert!(
        matches!(
            result,
            Err(MigrateError::CheckFailed {
                pending: 1,
                mismatched: 0
            })
        ),
        "{out}"
    );
    m.upgrade(&db.pool, &Target::Default).await.unwrap();
    let (out, result) = db.cli(&m, dir.path(), &["check"]).await;
    assert!(result.is_ok(), "{result:?}\n{out}");
    assert!(out.ends_with("up to date\n"), "{out}");

    // Someone edits an applied file.
    let edited = MigrationSet::from_files(
        "migrations",
        [
            (
                "0001_a.up.sql",
                "CREATE TABLE a (id INTEGER PRIMARY KEY, x INTEGER);",
            ),
            (
                "0002_b.up.sql",
                "CREATE TABLE b (id INTEGER PRIMARY KEY);\r\n",
            ),
        ],
    );
    let m2 = Migrator::new([("app", &edited)], db.backend).unwrap();
    let status = m2.status(&db.pool).await.unwrap();
    // A different line end is not a change; different SQL is.
    assert_eq!(states(&status, "app"), ["changed", "changed"]);
    let (out, result) = db.cli(&m2, dir.path(), &["check"]).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::CheckFailed {
                pending: 0,
                mismatched: 2
            }
        ),
        "{err}"
    );
    assert!(out.contains("CHANGED  0001_a"), "{out}");
    let (out, _) = db.cli(&m2, dir.path(), &["status"]).await;
    assert!(
        out.contains("migrations/0001_a.up.sql differs from the file applied"),
        "{out}"
    );

    // Upgrade warns and does not run the changed file again.
    let report = m2.upgrade(&db.pool, &Target::Default).await.unwrap();
    assert!(report.steps.is_empty());
    assert_eq!(report.changed, ["app 0001_a", "app 0002_b"]);
}

async fn line_end_changes_are_not_mismatches(db: TestDb) {
    let lf = MigrationSet::from_files("m", [("0001_a.up.sql", "CREATE TABLE a (id INTEGER);\n")]);
    let crlf =
        MigrationSet::from_files("m", [("0001_a.up.sql", "CREATE TABLE a (id INTEGER);\r\n")]);
    Migrator::new([("app", &lf)], db.backend)
        .unwrap()
        .upgrade(&db.pool, &Target::Default)
        .await
        .unwrap();
    let status = Migrator::new([("app", &crlf)], db.backend)
        .unwrap()
        .status(&db.pool)
        .await
        .unwrap();
    assert_eq!(states(&status, "app"), ["applied"]);
}

async fn a_failing_migration_is_reported_and_left_unapplied(db: TestDb) {
    let set = migrations!("tests/fixtures/migrate/failing");
    let m = Migrator::new([("app", &set)], db.backend).unwrap();
    let err = m.upgrade(&db.pool, &Target::Default).await.unwrap_err();
    let text = err.to_string();
    let MigrateError::Failed {
        owner, name, file, ..
    } = &err
    else {
        panic!("{text}");
    };
    assert_eq!((owner.as_str(), name.as_str()), ("app", "0002_broken"));
    assert_eq!(file, "tests/fixtures/migrate/failing/0002_broken.up.sql");
    // The file and the database's own message.
    assert!(
        text.contains("tests/fixtures/migrate/failing/0002_broken.up.sql"),
        "{text}"
    );
    assert!(text.contains("no_such_table"), "{text}");

    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["applied", "pending"]);
    assert!(db.table_exists("survivors").await);
    match db.backend {
        // Transactional DDL: the statement before the failing one is rolled back too.
        Backend::Sqlite | Backend::Postgres => assert!(!db.table_exists("half_done").await),
        // MySQL/MariaDB commit DDL at once (documented): it stays, unrecorded.
        Backend::MySql => assert!(db.table_exists("half_done").await),
    }
    // Still pending: a second upgrade tries it again and fails the same way.
    let again = m.upgrade(&db.pool, &Target::Default).await.unwrap_err();
    assert!(matches!(again, MigrateError::Failed { .. }), "{again}");
    assert_eq!(db.count("flagon_migrations").await, 1);
}

async fn downgrade_refuses_to_pass_a_missing_down_file(db: TestDb) {
    let set = migrations!("tests/fixtures/migrate/irreversible");
    let m = Migrator::new([("app", &set)], db.backend).unwrap();
    m.upgrade(&db.pool, &Target::Default).await.unwrap();
    let err = m
        .downgrade(&db.pool, &"app:0".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot downgrade app 0002_seed_kept: it has no down file (add \
         tests/fixtures/migrate/irreversible/0002_seed_kept.down.sql to make it reversible)"
    );
    // Checked before anything ran: both still applied.
    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["applied", "applied"]);
    assert_eq!(db.count("kept").await, 1);
}

fn three_owners(backend: Backend) -> Migrator {
    let app = migrations!("tests/fixtures/migrate/basic");
    let login = migrations!("tests/fixtures/migrate/login").requires(["app"]);
    let mail = migrations!("tests/fixtures/migrate/mail").requires(["login"]);
    // Registered in the "wrong" order: requires decides.
    Migrator::new([("mail", &mail), ("login", &login), ("app", &app)], backend).unwrap()
}

async fn extension_sets_run_in_requires_order(db: TestDb) {
    let m = three_owners(db.backend);
    // `login` alone brings what it requires (the app's) but not `mail`.
    let report = m
        .upgrade(&db.pool, &Target::Owner("login".into()))
        .await
        .unwrap();
    assert_eq!(
        names(&report),
        [
            "app 0001_create_users",
            "app 0002_add_posts",
            "app 0003_index_posts",
            "login 0001_create_tokens"
        ]
    );
    assert!(!db.table_exists("mail_outbox").await);
    // The foreign keys only resolve in this order (PostgreSQL and MariaDB check at CREATE).
    let report = m.upgrade(&db.pool, &Target::Default).await.unwrap();
    assert_eq!(names(&report), ["mail 0001_create_outbox"]);
    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(
        status
            .owners
            .iter()
            .map(|o| o.owner.as_str())
            .collect::<Vec<_>>(),
        ["app", "login", "mail"]
    );

    // Removing every migration of a set others still need is refused.
    let err = m
        .downgrade(&db.pool, &"login:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MigrateError::Required { owner, dependent } if owner == "login" && dependent == "mail"),
        "{err}"
    );
    // One step back is mail's, the most recent.
    let report = m.downgrade(&db.pool, &Target::Default).await.unwrap();
    assert_eq!(names(&report), ["mail 0001_create_outbox"]);
    let report = m
        .downgrade(&db.pool, &"login:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(names(&report), ["login 0001_create_tokens"]);
}

async fn the_cli_reports_without_the_password(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let m = three_owners(db.backend);
    let (out, result) = db.cli(&m, dir.path(), &["upgrade"]).await;
    result.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(
        lines[0].starts_with("applied app 0001_create_users ("),
        "{out}"
    );
    assert!(
        lines[4].starts_with("applied mail 0001_create_outbox ("),
        "{out}"
    );
    assert_eq!(lines[5], "applied 5 migration(s)");

    let (out, result) = db.cli(&m, dir.path(), &["upgrade"]).await;
    result.unwrap();
    assert_eq!(out, "nothing to upgrade: the database is up to date\n");

    let (out, result) = db.cli(&m, dir.path(), &["status"]).await;
    result.unwrap();
    assert!(
        out.starts_with(&format!(
            "backend: {}\napp\n  applied  0001_create_users",
            db.backend
        )),
        "{out}"
    );
    assert!(
        out.contains("login\n  applied  0001_create_tokens"),
        "{out}"
    );
    assert!(out.ends_with("0 pending, 0 changed\n"), "{out}");

    let (out, result) = db.cli(&m, dir.path(), &["history"]).await;
    result.unwrap();
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .contains("mail         0001_create_outbox"),
        "{out}"
    );

    let (out, result) = db.cli(&m, dir.path(), &["downgrade", "mail"]).await;
    result.unwrap();
    assert!(
        out.starts_with("reverted mail 0001_create_outbox ("),
        "{out}"
    );
    assert!(out.ends_with("reverted 1 migration(s)\n"), "{out}");

    let (_, result) = db.cli(&m, dir.path(), &["downgrade", "nobody:1"]).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "no migration set is named `nobody` (the sets are: app, login, mail)"
    );

    // A failure through the CLI, on a pool whose URL carries a password: neither output nor
    // error shows it. (PostgreSQL's trust authentication accepts any password.)
    if db.backend == Backend::Postgres {
        let with_password = db.url.replace("postgres@", "postgres:hunter2secret@");
        let pool = connect(&with_password).await.unwrap();
        let failing = migrations!("tests/fixtures/migrate/failing");
        let fm = Migrator::new([("broken", &failing)], db.backend).unwrap();
        let matches = migrate::commands()
            .try_get_matches_from(["db", "upgrade"])
            .unwrap();
        let mut out = Vec::new();
        let err = migrate::run_cli(&matches, &pool, &fm, dir.path(), &mut out, false)
            .await
            .unwrap_err();
        let all = format!("{}{err}{err:?}", String::from_utf8_lossy(&out));
        assert!(all.contains("no_such_table"), "{all}");
        assert!(!all.contains("hunter2secret"), "{all}");
        pool.close().await;
    }
}

async fn the_lock_has_a_deadline(db: TestDb) {
    let set = migrations!("tests/fixtures/migrate/concurrent");
    let slow = Migrator::new([("app", &set)], db.backend).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let pool = db.pool.clone();
    let holder = tokio::spawn(async move {
        let mut tx = Some(tx);
        slow.upgrade_with(&pool, &Target::Default, &mut |p| {
            if matches!(p, Progress::Started(_))
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        })
        .await
    });
    rx.await.unwrap();
    let impatient = Migrator::new([("app", &set)], db.backend)
        .unwrap()
        .lock_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let err = impatient
        .upgrade(&db.pool, &Target::Default)
        .await
        .unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, MigrateError::LockTimeout { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("another process is running migrations on this"),
        "{err}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let report = holder.await.unwrap().unwrap();
    assert_eq!(report.steps.len(), 3);
    // Released: the next one gets it at once and finds nothing to do.
    let report = impatient.upgrade(&db.pool, &Target::Default).await.unwrap();
    assert!(report.steps.is_empty() && !report.waited);
}

/// The child side of `two_upgrade_processes_apply_once`: one `upgrade` in a process of its
/// own, started when the other child is ready too.
#[tokio::test]
#[ignore = "run as a child process by the concurrent upgrade tests"]
async fn child_upgrade() {
    let url = std::env::var("FLAGON_MIGRATE_CHILD_URL").expect("run by the parent test");
    let dir = std::env::var("FLAGON_MIGRATE_CHILD_DIR").unwrap();
    let id = std::env::var("FLAGON_MIGRATE_CHILD_ID").unwrap();
    sqlx::any::install_default_drivers();
    let backend = Backend::from_url(&url).unwrap();
    let pool = connect(&url).await.unwrap();
    let set = migrations!("tests/fixtures/migrate/concurrent");
    let m = Migrator::new([("app", &set)], backend).unwrap();
    let peers: usize =
        std::env::var("FLAGON_MIGRATE_CHILD_PEERS").map_or(2, |p| p.parse().unwrap());
    std::fs::write(Path::new(&dir).join(format!("ready-{id}")), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&dir).unwrap().count() < peers {
        assert!(Instant::now() < deadline, "the other child never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = m
        .upgrade_with(&pool, &Target::Default, &mut |p| {
            if let Progress::Started(step) = p {
                println!("CHILD-STARTED {}", step.name);
            }
        })
        .await
        .unwrap();
    println!(
        "CHILD-RESULT applied={} waited={}",
        report.steps.len(),
        report.waited
    );
}

async fn two_upgrade_processes_apply_once(db: TestDb) {
    let barrier = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|id| {
            std::process::Command::new(&exe)
                .args([
                    "child_upgrade",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("FLAGON_MIGRATE_CHILD_URL", &db.url)
                .env("FLAGON_MIGRATE_CHILD_DIR", barrier.path())
                .env("FLAGON_MIGRATE_CHILD_ID", id.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut results = Vec::new();
    for o in &outputs {
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "child failed: {}\n{stdout}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        // The harness prints `test child_upgrade ... ` before the child's own line.
        let line = stdout
            .lines()
            .find_map(|l| l.find("CHILD-RESULT").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("no result line in:\n{stdout}"));
        results.push(line.to_owned());
    }
    results.sort();
    // Exactly one applied everything; the other waited for the lock and found nothing to do.
    assert_eq!(
        results,
        [
            "CHILD-RESULT applied=0 waited=true",
            "CHILD-RESULT applied=3 waited=false"
        ]
    );
    assert_eq!(db.count("flagon_migrations").await, 3);
    assert_eq!(db.count("concurrency_log").await, 1);
}

async fn comment_only_files_are_recorded_without_running(db: TestDb) {
    // What `db new` writes before anyone fills it in; MySQL rejects an empty query.
    let set = MigrationSet::from_files(
        "migrations",
        [
            (
                "0001_placeholder.up.sql",
                "-- 0001_placeholder: the change\n",
            ),
            ("0001_placeholder.down.sql", "/* nothing */\n"),
        ],
    );
    let m = Migrator::new([("app", &set)], db.backend).unwrap();
    assert_eq!(
        m.upgrade(&db.pool, &Target::Default)
            .await
            .unwrap()
            .steps
            .len(),
        1
    );
    assert_eq!(db.count("flagon_migrations").await, 1);
    assert_eq!(
        m.downgrade(&db.pool, &Target::Default)
            .await
            .unwrap()
            .steps
            .len(),
        1
    );
    assert_eq!(db.count("flagon_migrations").await, 0);
}

async fn migrations_missing_from_the_binary_are_listed(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let old = three_owners(db.backend);
    old.upgrade(&db.pool, &Target::Default).await.unwrap();
    // A later binary without the `mail` extension.
    let app = migrations!("tests/fixtures/migrate/basic");
    let login = migrations!("tests/fixtures/migrate/login").requires(["app"]);
    let m = Migrator::new([("app", &app), ("login", &login)], db.backend).unwrap();
    let status = m.status(&db.pool).await.unwrap();
    assert!(status.is_up_to_date());
    let unknown: Vec<String> = status
        .unknown
        .iter()
        .map(|r| format!("{} {}", r.owner, r.name))
        .collect();
    assert_eq!(unknown, ["mail 0001_create_outbox"]);
    let (out, result) = db.cli(&m, dir.path(), &["status"]).await;
    result.unwrap();
    assert!(
        out.contains("applied, but not in this binary\n  mail 0001_create_outbox\n"),
        "{out}"
    );
    // The last one applied is mail's, which this binary cannot revert.
    let err = m.downgrade(&db.pool, &Target::Default).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot downgrade mail 0001_create_outbox: it is applied but this binary has no \
         migration for it"
    );
}

/// A11: a process killed in the middle of a migration leaves it unrecorded (and, where DDL
/// is transactional, undone), and its lock does not outlive it: the next upgrade applies it.
async fn a_killed_upgrade_is_not_recorded_and_frees_the_lock(db: TestDb) {
    use std::io::BufRead;
    let barrier = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_upgrade",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLAGON_MIGRATE_CHILD_URL", &db.url)
        .env("FLAGON_MIGRATE_CHILD_DIR", barrier.path())
        .env("FLAGON_MIGRATE_CHILD_ID", "0")
        .env("FLAGON_MIGRATE_CHILD_PEERS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = tokio::task::spawn_blocking(move || {
        // Kill it once the slow migration (0002) has begun.
        for line in std::io::BufReader::new(stdout).lines() {
            if line.unwrap().contains("CHILD-STARTED 0002_slow") {
                std::thread::sleep(Duration::from_millis(200));
                child.kill().unwrap();
                return child.wait().unwrap();
            }
        }
        let status = child.wait().unwrap();
        panic!("the child finished ({status}) without starting 0002_slow");
    })
    .await
    .unwrap();
    assert!(!child.success());

    let set = migrations!("tests/fixtures/migrate/concurrent");
    let m = Migrator::new([("app", &set)], db.backend)
        .unwrap()
        .lock_timeout(Duration::from_secs(20));
    let status = m.status(&db.pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["applied", "pending", "pending"]);
    let report = m.upgrade(&db.pool, &Target::Default).await.unwrap();
    assert_eq!(names(&report), ["app 0002_slow", "app 0003_log_once"]);
    assert_eq!(db.count("concurrency_log").await, 1);
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(db) = super::open(flagon_db::Backend::Sqlite).await {
                        super::$test(db).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(db) = super::open(flagon_db::Backend::Postgres).await {
                        super::$test(db).await;
                    }
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(db) = super::open(flagon_db::Backend::MySql).await {
                        super::$test(db).await;
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    up_status_and_down,
    check_and_checksum_mismatch,
    line_end_changes_are_not_mismatches,
    a_failing_migration_is_reported_and_left_unapplied,
    downgrade_refuses_to_pass_a_missing_down_file,
    extension_sets_run_in_requires_order,
    the_cli_reports_without_the_password,
    the_lock_has_a_deadline,
    two_upgrade_processes_apply_once,
    comment_only_files_are_recorded_without_running,
    migrations_missing_from_the_binary_are_listed,
    a_killed_upgrade_is_not_recorded_and_frees_the_lock,
);

#[tokio::test]
async fn postgres_migrations_are_not_cut_by_a_statement_timeout() {
    if let Some(db) = open(Backend::Postgres).await {
        migrations_are_not_cut_by_a_statement_timeout(db).await;
    }
}

#[tokio::test]
async fn mysql_migrations_are_not_cut_by_a_statement_timeout() {
    if let Some(db) = open(Backend::MySql).await {
        migrations_are_not_cut_by_a_statement_timeout(db).await;
    }
}

/// A pool whose connections cut statements short (`[db] statement_timeout`) does not cut a
/// migration short: the slow migration here sleeps 1.5 s against a 300 ms limit. (SQLite
/// has no statement timeout.)
async fn migrations_are_not_cut_by_a_statement_timeout(db: TestDb) {
    let limit = match db.backend {
        Backend::Postgres => "SET statement_timeout = 300",
        _ => "SET SESSION max_statement_time = 0.3",
    };
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::raw_sql(limit).execute(conn).await?;
                Ok(())
            })
        })
        .connect(&db.url)
        .await
        .unwrap();
    // The limit is real on this pool.
    let slow = match db.backend {
        Backend::Postgres => "SELECT pg_sleep(1.5)",
        _ => "SELECT SLEEP(1.5)",
    };
    let start = Instant::now();
    let cut = sqlx::raw_sql(slow).execute(&pool).await;
    assert!(
        cut.is_err() || start.elapsed() < Duration::from_secs(1),
        "{cut:?}"
    );
    let set = migrations!("tests/fixtures/migrate/concurrent");
    let m = Migrator::new([("app", &set)], db.backend).unwrap();
    let report = m.upgrade(&pool, &Target::Default).await.unwrap();
    assert_eq!(report.steps.len(), 3);
    assert!(
        report.steps[1].1 >= Duration::from_millis(1400),
        "{:?}",
        report.steps[1]
    );
    pool.close().await;
}

/// `-- no-transaction` runs a file outside the transaction: PostgreSQL refuses
/// `CREATE INDEX CONCURRENTLY` inside one.
#[tokio::test]
async fn postgres_no_transaction_files_run_outside_a_transaction() {
    let Some(db) = open(Backend::Postgres).await else {
        return;
    };
    let index = |directive: &str| {
        MigrationSet::from_files(
            "migrations",
            [
                ("0001_t.up.sql", "CREATE TABLE t (a INTEGER);".to_owned()),
                (
                    "0002_index.up.sql",
                    format!("{directive}CREATE INDEX CONCURRENTLY t_a ON t (a);"),
                ),
            ],
        )
    };
    let plain = index("");
    let err = Migrator::new([("app", &plain)], db.backend)
        .unwrap()
        .upgrade(&db.pool, &Target::Default)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot run inside a transaction block"),
        "{err}"
    );
    let outside = index("-- no-transaction\n");
    let m = Migrator::new([("app", &outside)], db.backend).unwrap();
    let report = m.upgrade(&db.pool, &Target::Default).await.unwrap();
    assert_eq!(names(&report), ["app 0002_index"]);
    assert!(m.status(&db.pool).await.unwrap().is_up_to_date());
}

/// `db new` numbers after the highest version on disk and embedded, and writes into each
/// backend directory that exists (and the shared one unless all three do).
#[tokio::test]
async fn db_new_writes_the_next_numbered_pair() {
    let db = open(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("migrations");
    std::fs::create_dir_all(root.join("postgres")).unwrap();
    std::fs::write(root.join("0001_a.up.sql"), "SELECT 1;").unwrap();
    std::fs::write(root.join("postgres/0007_b.up.sql"), "SELECT 1;").unwrap();
    let app = MigrationSet::from_files("migrations", [("0001_a.up.sql", "SELECT 1;")]);
    let m = Migrator::new([("app", &app)], Backend::Postgres).unwrap();

    let (out, result) = db.cli(&m, &root, &["new", "Add Posts"]).await;
    result.unwrap();
    let mut created: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("created "))
        .map(|p| {
            Path::new(p)
                .strip_prefix(&root)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    created.sort();
    assert_eq!(
        created,
        [
            "0008_add_posts.down.sql",
            "0008_add_posts.up.sql",
            "postgres/0008_add_posts.down.sql",
            "postgres/0008_add_posts.up.sql"
        ],
        "{out}"
    );
    assert!(out.contains("flagon_db::migrations!"), "{out}");
    let up = std::fs::read_to_string(root.join("0008_add_posts.up.sql")).unwrap();
    assert!(up.starts_with("-- 0008_add_posts"), "{up}");
    // What it wrote is a valid set.
    let files: Vec<(String, String)> = [
        "0001_a.up.sql",
        "0008_add_posts.up.sql",
        "0008_add_posts.down.sql",
    ]
    .iter()
    .map(|f| {
        (
            f.to_string(),
            std::fs::read_to_string(root.join(f)).unwrap(),
        )
    })
    .collect();
    assert_eq!(
        MigrationSet::from_files("migrations", files).versions(),
        [1, 8]
    );

    // An embedded version above what is on disk counts too; with every backend directory
    // present, the shared directory gets nothing.
    std::fs::create_dir_all(root.join("sqlite")).unwrap();
    std::fs::create_dir_all(root.join("mysql")).unwrap();
    let app = MigrationSet::from_files("migrations", [("0012_c.up.sql", "SELECT 1;")]);
    let m = Migrator::new([("app", &app)], Backend::Sqlite).unwrap();
    let (out, result) = db.cli(&m, &root, &["new", "seed"]).await;
    result.unwrap();
    let created: Vec<&str> = out.lines().filter(|l| l.starts_with("created ")).collect();
    assert_eq!(created.len(), 6, "{out}");
    for b in ["sqlite", "postgres", "mysql"] {
        assert!(root.join(b).join("0013_seed.up.sql").is_file());
        assert!(root.join(b).join("0013_seed.down.sql").is_file());
    }
    assert!(!root.join("0013_seed.up.sql").exists());

    let (_, result) = db.cli(&m, &root, &["new", "!!!"]).await;
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("is not a migration name")
    );
}

/// What `[db] auto_upgrade` runs at startup: everything pending, then nothing.
#[tokio::test]
async fn auto_upgrade_applies_what_is_pending() {
    let db = open(Backend::Sqlite).await.unwrap();
    let m = basic(db.backend);
    let report = migrate::auto_upgrade(&db.pool, &m).await.unwrap();
    assert_eq!(report.steps.len(), 3);
    assert!(db.table_exists("posts").await);
    let report = migrate::auto_upgrade(&db.pool, &m).await.unwrap();
    assert!(report.steps.is_empty());
}

/// An in-memory SQLite database lives in its one connection: migrating it must not throw
/// that connection away.
#[tokio::test]
async fn an_in_memory_sqlite_database_keeps_its_migrations() {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let m = basic(Backend::Sqlite);
    assert_eq!(
        m.upgrade(&pool, &Target::Default)
            .await
            .unwrap()
            .steps
            .len(),
        3
    );
    let status = m.status(&pool).await.unwrap();
    assert_eq!(states(&status, "app"), ["applied"; 3]);
    sqlx::query("INSERT INTO users (id, email) VALUES (1, 'a@example.com')")
        .execute(&pool)
        .await
        .unwrap();
}

/// The wiring the `Db` extension does, in miniature: the `db` commands registered on an app,
/// sets read from the registry, and `db check`'s verdict as the process's exit status.
struct DbCommands {
    pool: AnyPool,
}

impl flagon::Extension for DbCommands {
    fn name(&self) -> &'static str {
        "db"
    }

    fn init_app(&self, app: &mut flagon::Setup<'_>) -> Result<(), flagon::SetupError> {
        app.add_to::<flagon_db::Migrations>("app", migrations!("tests/fixtures/migrate/basic"));
        let pool = self.pool.clone();
        app.command(migrate::commands(), move |ctx| {
            let pool = pool.clone();
            async move {
                let sets = ctx.app().registry::<flagon_db::Migrations>();
                let migrator = Migrator::from_registry(sets, Backend::Sqlite)?;
                let mut out = ctx.out();
                let interactive = out.colour();
                migrate::run_cli(
                    ctx.matches(),
                    &pool,
                    &migrator,
                    Path::new("migrations"),
                    &mut out,
                    interactive,
                )
                .await?;
                Ok(())
            }
        });
        Ok(())
    }
}

#[tokio::test]
async fn db_check_sets_the_exit_status_of_the_app() {
    let db = open(Backend::Sqlite).await.unwrap();
    let app = flagon::App::builder()
        .register(DbCommands {
            pool: db.pool.clone(),
        })
        .build()
        .unwrap();
    let run = |args: &'static [&'static str]| {
        let app = &app;
        async move {
            let (out, err) = (flagon::cli::Output::buffer(), flagon::cli::Output::buffer());
            let args = std::iter::once("app").chain(args.iter().copied());
            let code = app.run_with(args, out.clone(), err.clone()).await;
            (code, out.contents(), err.contents())
        }
    };
    let (code, out, err) = run(&["db", "check"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("3 pending, 0 changed"), "{out}");
    assert!(
        err.contains("error: the database is not up to date: 3 pending migration(s)"),
        "{err}"
    );
    let (code, out, _) = run(&["db", "upgrade"]).await;
    assert_eq!(code, 0);
    assert!(out.ends_with("applied 3 migration(s)\n"), "{out}");
    let (code, out, err) = run(&["db", "check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(&["db", "downgrade", "app:x"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("`app:x` is not a target"), "{err}");
}
