//! The remember-token store conformance suite on every store: memory, SQL (SQLite,
//! PostgreSQL, MariaDB, through `flagon-db` and the store's own migration) and Redis; and a
//! login through the SQL store end to end.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use flagon::testing::TestClient;
use flagon_db::sqlx::{self, Connection};
use flagon_login::store::{MemoryRememberStore, RedisRememberStore, SqlRememberStore, conformance};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const MY_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";
const REDIS: &str = "127.0.0.1:6379";

fn require_services() -> bool {
    std::env::var("FLAGON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn skip(what: &str, why: &str) {
    if require_services() {
        panic!("{what} is required (FLAGON_TEST_REQUIRE_SERVICES=1) but unreachable: {why}");
    }
    eprintln!("skipped: {what} unreachable ({why})");
}

/// A database of its own on a server, dropped at the end.
struct ServerDb {
    admin: &'static str,
    name: String,
    url: String,
}

impl ServerDb {
    async fn create(admin: &'static str, what: &str) -> Option<ServerDb> {
        sqlx::any::install_default_drivers();
        let conn =
            tokio::time::timeout(Duration::from_secs(3), sqlx::AnyConnection::connect(admin)).await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                skip(what, &e.to_string());
                return None;
            }
            Err(_) => {
                skip(what, "no answer within 3s");
                return None;
            }
        };
        let name = format!("flagon_login_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Some(ServerDb { admin, name, url })
    }
}

impl Drop for ServerDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin, self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await {
                    let sql = if admin.starts_with("postgres") {
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                    } else {
                        format!("DROP DATABASE IF EXISTS {name}")
                    };
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// An app on `url` with `remember_store = "db"`, migrated; the SQL store on its database.
async fn sql_app(url: &str) -> (TestApp, SqlRememberStore) {
    // A generous pool wait: on a loaded machine the first SQLite connection can take seconds.
    let extra = format!("[db]\nurl = \"{url}\"\nauto_upgrade = true\nacquire_timeout = \"30s\"\n");
    let t = app_built("remember_store = \"db\"\n", &extra, |b| {
        b.register(flagon_db::Db::extension())
    })
    .await;
    TestClient::new(&t.app)
        .start()
        .await
        .expect("startup and migrations");
    let db = t.app.handle().state::<flagon_db::Db>().expect("db");
    let store = SqlRememberStore::on(&db);
    (t, store)
}

async fn remembered_login_works(t: &TestApp) {
    let device = TestClient::new(&t.app);
    log_in(&device, "alice", true).await;
    let token = device.cookie(REMEMBER).unwrap();
    let other = TestClient::new(&t.app);
    other.set_cookie(REMEMBER, &token);
    assert_eq!(other.get("/whoami").send().await.text(), "alice 1");
    assert_ne!(
        other.cookie(REMEMBER).unwrap(),
        token,
        "rotated in the database"
    );
    assert_eq!(log_out(&other).await.status(), 200);
    let replay = TestClient::new(&t.app);
    replay.set_cookie(REMEMBER, &other.cookie(REMEMBER).unwrap_or(token));
    assert_eq!(replay.get("/whoami").send().await.text(), "anonymous -");
    let ready = TestClient::new(&t.app).get("/readyz").send().await;
    let body: serde_json::Value = ready.json();
    assert_eq!(
        body["checks"]["login.remember_store"]["status"], "ok",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_store_conforms() {
    conformance::run(MemoryRememberStore::new(100)).await;
}

#[tokio::test]
async fn the_memory_store_is_bounded() {
    use flagon_login::store::{RememberStore, TokenRecord};
    let store = MemoryRememberStore::new(3);
    for i in 0..10u64 {
        let r = TokenRecord {
            selector: format!("{i:032x}"),
            user_id: "u".into(),
            validator_hash: "h".into(),
            previous_hash: None,
            rotated_at: 0,
            expires_at: u64::MAX - 10 + i,
            auth_digest: "d".into(),
        };
        store.insert(&r).await.unwrap();
    }
    assert_eq!(store.len(), 3);
    assert!(
        store.get(&format!("{:032x}", 9)).await.unwrap().is_some(),
        "the latest stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_store_conforms_and_serves_logins() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let (t, store) = sql_app(&url).await;
    conformance::run(store).await;
    remembered_login_works(&t).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_store_conforms_and_serves_logins() {
    let Some(db) = ServerDb::create(PG_ADMIN, "PostgreSQL").await else {
        return;
    };
    let (t, store) = sql_app(&db.url).await;
    conformance::run(store).await;
    remembered_login_works(&t).await;
    drop(t);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_store_conforms_and_serves_logins() {
    let Some(db) = ServerDb::create(MY_ADMIN, "MariaDB").await else {
        return;
    };
    let (t, store) = sql_app(&db.url).await;
    conformance::run(store).await;
    remembered_login_works(&t).await;
    drop(t);
}

fn redis_up() -> bool {
    let addr: SocketAddr = REDIS.parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
        return true;
    }
    skip("Redis", "no connection");
    false
}

fn prefix() -> String {
    format!(
        "flagon-test:login:{}:{:x}:",
        std::process::id(),
        rand::random::<u64>()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_store_conforms_and_serves_logins() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let store =
        RedisRememberStore::new(&format!("redis://{REDIS}"), &p, Duration::from_millis(500))
            .unwrap();
    conformance::run(store).await;
    let cfg = format!(
        "remember_store = \"redis\"\nredis_url = \"redis://{REDIS}\"\nredis_key_prefix = \"{}\"\n",
        prefix()
    );
    let t = app_with(&cfg, "").await;
    remembered_login_works(&t).await;
}

#[tokio::test]
async fn a_redis_store_that_is_down_fails_fast_and_the_request_is_anonymous() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let cfg = format!(
        "remember_store = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\nredis_timeout = \"200ms\"\n"
    );
    let t = app_with(&cfg, "").await;
    let client = TestClient::new(&t.app);
    client.set_cookie(REMEMBER, &format!("{}.{}", "a".repeat(32), "b".repeat(43)));
    let start = std::time::Instant::now();
    assert_eq!(client.get("/whoami").send().await.text(), "anonymous -");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "bounded by redis_timeout"
    );
    let ready = client.get("/readyz").send().await;
    assert_eq!(ready.status(), 503);
}
