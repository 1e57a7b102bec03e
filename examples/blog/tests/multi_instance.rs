//! Three blog processes behind nothing but their own ports, as behind a load balancer: the
//! production profile, configured by environment variables alone, on one PostgreSQL
//! database (created for the run and dropped after it), one Redis (a key prefix of the
//! run's own for sessions, cache, limits and remember-me tokens) and a mail directory they
//! share. What one instance does, the others see:
//!
//! - a session created on one is valid on the others;
//! - the login rate limits, per client address and per account, are exact across the three;
//! - a post edited on one is seen fresh on the others (the shared page cache is invalidated);
//! - a registration mail is delivered once by the three outbox relays.
//!
//! Skipped with a one-line reason when PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379)
//! is unreachable; failing instead when `FLAGON_TEST_REQUIRE_SERVICES=1`.

mod e2e;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::http::{Agent, Resp, csrf_token};
use e2e::process::{Blog, run_ok};
use flagon_db::sqlx::{self, AssertSqlSafe, Connection, postgres::PgConnection};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const REDIS: &str = "redis://127.0.0.1:6379";
const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "a long admin passphrase";

/// A database of the run's own, dropped (connections and all) when the test ends.
struct Database {
    name: String,
}

impl Database {
    async fn create() -> Option<Database> {
        let mut admin =
            match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(PG_ADMIN))
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    e2e::skip(&format!("PostgreSQL at 127.0.0.1:5432 is unreachable: {e}"));
                    return None;
                }
                Err(_) => {
                    e2e::skip("PostgreSQL at 127.0.0.1:5432 did not answer within 5 s");
                    return None;
                }
            };
        let name = e2e::unique("blog_multi");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let _ = admin.close().await;
        Some(Database { name })
    }

    fn url(&self) -> String {
        format!("{PG_SERVER}/{}", self.name)
    }

    async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime's reach: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect(PG_ADMIN).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut c).await {
                        eprintln!("dropping database {name}: {e}");
                    }
                }
            });
        })
        .join();
    }
}

/// Whether Redis answers `PING`.
async fn redis_reachable() -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ping = async {
        let mut s = tokio::net::TcpStream::connect("127.0.0.1:6379")
            .await
            .ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), ping).await,
        Ok(Some(true))
    )
}

/// The three instances, their settings and the directory they share.
struct Cluster {
    db: Database,
    prefix: String,
    dir: tempfile::TempDir,
    blogs: Vec<Blog>,
}

impl Cluster {
    /// The database, Redis prefix and directory of this run; the schema migrated once
    /// (`db upgrade`, as a deployment does before starting instances), an admin created, and
    /// three instances started. `None` when a service is missing (the test is skipped).
    async fn start() -> Option<Cluster> {
        if !redis_reachable().await {
            e2e::skip("Redis at 127.0.0.1:6379 is unreachable");
            return None;
        }
        let db = Database::create().await?;
        let dir = tempfile::tempdir().expect("a shared directory");
        let prefix = e2e::unique("blog_multi");
        let secret: String = (0..4)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        let env = production_env(&db.url(), &prefix, &secret, dir.path());
        run_ok(dir.path(), &env, &["db", "upgrade"], "");
        run_ok(
            dir.path(),
            &env,
            &["create-admin", ADMIN_EMAIL, "--password-stdin"],
            &format!("{ADMIN_PASSWORD}\n"),
        );
        let blogs = ["a", "b", "c"]
            .iter()
            .map(|name| Blog::start(name, dir.path(), &env))
            .collect();
        Some(Cluster {
            db,
            prefix,
            dir,
            blogs,
        })
    }

    fn mail_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("mail")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.blogs.clear(); // stopped before the database goes
        delete_redis_keys(&format!("{}:*", self.prefix));
    }
}

/// Deletes the run's keys (sessions, cache, limits, remember-me tokens) in one `EVAL`.
fn delete_redis_keys(pattern: &str) {
    use std::io::{Read, Write};
    let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  redis.call('DEL', k) n = n + 1 end return n";
    let mut cmd = String::from("*4\r\n");
    for arg in ["EVAL", script, "0", pattern] {
        cmd.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    let Ok(mut redis) = std::net::TcpStream::connect("127.0.0.1:6379") else {
        return;
    };
    let _ = redis.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reply = [0u8; 64];
    if redis.write_all(cmd.as_bytes()).is_err() || redis.read(&mut reply).is_err() {
        eprintln!("could not delete the Redis keys {pattern}");
    }
}

/// The production profile, everything by environment variables: what the README shows.
fn production_env(db_url: &str, prefix: &str, secret: &str, dir: &Path) -> Vec<(String, String)> {
    let dir = dir.display();
    [
        ("FLAGON_ENV", "production".to_owned()),
        ("FLAGON_SECRET_KEY", secret.to_owned()),
        ("FLAGON_DB__URL", db_url.to_owned()),
        ("FLAGON_SESSION__STORE", "redis".into()),
        ("FLAGON_CACHE__BACKEND", "redis".into()),
        ("FLAGON_CACHE__REDIS__URL", REDIS.into()),
        (
            "FLAGON_CACHE__REDIS__KEY_PREFIX",
            format!("{prefix}:cache:"),
        ),
        (
            "FLAGON_CACHE__SESSION_KEY_PREFIX",
            format!("{prefix}:session:"),
        ),
        ("FLAGON_LIMITER__STORAGE", REDIS.into()),
        (
            "FLAGON_LIMITER__REDIS__KEY_PREFIX",
            format!("{prefix}:limiter:"),
        ),
        // A limit Redis cannot decide is refused (503), never silently decided per process.
        ("FLAGON_LIMITER__FAIL_MODE", "closed".into()),
        ("FLAGON_LOGIN__REMEMBER_STORE", "redis".into()),
        ("FLAGON_LOGIN__REDIS_URL", REDIS.into()),
        ("FLAGON_LOGIN__REDIS_KEY_PREFIX", format!("{prefix}:login:")),
        ("FLAGON_MAIL__TRANSPORT", "file".into()),
        ("FLAGON_MAIL__FILE_DIR", format!("{dir}/mail")),
        ("FLAGON_MAIL__OUTBOX__POLL_INTERVAL", "100ms".into()),
        ("FLAGON_BLOG__UPLOAD_DIR", format!("{dir}/uploads")),
        // The test is the load balancer: it says which client a request comes from.
        ("FLAGON_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1\"]".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Logs `agent` in as the admin on its instance.
async fn log_in(agent: &Agent, email: &str, password: &str) -> Resp {
    let form = agent.get("/auth/login").await;
    assert_eq!(form.status, 200, "GET /auth/login: {form:?}");
    let token = csrf_token(&form.body);
    agent
        .post_form(
            "/auth/login",
            &[
                ("email", email),
                ("password", password),
                ("next", "/"),
                ("csrf_token", &token),
            ],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_sessions_limits_cache_and_the_outbox() {
    let started = Instant::now();
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let [a, b, c] = [0, 1, 2].map(|i| cluster.blogs[i].addr);
    eprintln!(
        "multi-instance test: three instances serving after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A session created on one instance is valid on the others.
    let admin = Agent::new(a).as_client("198.51.100.1");
    let res = log_in(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(res.status, 303, "logging in on a: {res:?}");
    for (name, addr) in [("b", b), ("c", c)] {
        let page = admin.at(addr).get("/posts/new").await;
        assert_eq!(page.status, 200, "the session from a on {name}: {page:?}");
        let admin_page = admin.at(addr).get("/admin/").await;
        assert_eq!(admin_page.status, 200, "/admin/ on {name}: {admin_page:?}");
    }
    let stranger = Agent::new(b).as_client("198.51.100.2");
    let refused = stranger.get("/posts/new").await;
    assert_eq!(refused.status, 303, "without the session: {refused:?}");

    // A post written and edited on one instance is seen fresh on the others.
    let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let first = format!("First title {run}");
    let second = format!("Second title {run}");
    let form = admin.get("/posts/new").await;
    let token = csrf_token(&form.body);
    let res = admin
        .post_form(
            "/posts/new",
            &[
                ("csrf_token", &token),
                ("title", &first),
                ("body", "Written on instance **a**."),
                ("published", "on"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "creating the post on a: {res:?}");
    let post = path_of(res.location().expect("a Location"));
    let reader = Agent::new(b).as_client("198.51.100.3");
    for addr in [b, c] {
        let page = reader.at(addr).get(&post).await;
        assert_eq!(page.status, 200, "{post}: {page:?}");
        assert!(page.body.contains(&first), "{post} shows the post");
    }
    // The page is cached, and shared: a change behind the app's back is not seen…
    let mut conn = cluster.db.connect().await;
    let slug = post.trim_start_matches("/posts/").to_owned();
    sqlx::query("UPDATE posts SET title = $1 WHERE slug = $2")
        .bind(format!("Changed behind the app's back {run}"))
        .bind(&slug)
        .execute(&mut conn)
        .await
        .expect("updates the post");
    for addr in [b, c] {
        let page = reader.at(addr).get(&post).await;
        assert!(
            page.body.contains(&first),
            "{post} on {addr} is served from the shared cache"
        );
    }
    // …but an edit through any instance invalidates it for all of them.
    let edit = admin.get(&format!("{post}/edit")).await;
    assert_eq!(edit.status, 200, "the editor on a: {edit:?}");
    let token = csrf_token(&edit.body);
    let res = admin
        .post_form(
            &format!("{post}/edit"),
            &[
                ("csrf_token", &token),
                ("title", &second),
                ("body", "Edited on instance **a**."),
                ("published", "on"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "editing the post on a: {res:?}");
    for (name, addr) in [("b", b), ("c", c)] {
        let page = reader.at(addr).get(&post).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains(&second) && !page.body.contains(&first),
            "{name} shows the edited post at once: {page:?}"
        );
        let index = reader.at(addr).get("/").await;
        assert!(
            index.body.contains(&second) && !index.body.contains(&first),
            "{name}'s index shows the edited title: {index:?}"
        );
    }

    // A registration mail is delivered once, whichever of the three relays claims it.
    let newcomer = Agent::new(b).as_client("198.51.100.4");
    let email = format!("newcomer{run}@example.com");
    let form = newcomer.get("/auth/register").await;
    let token = csrf_token(&form.body);
    let res = newcomer
        .post_form(
            "/auth/register",
            &[
                ("csrf_token", &token),
                ("email", &email),
                ("username", &format!("newcomer{run}")),
                ("password", "a newcomer's passphrase"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "registering on b: {res:?}");
    let mail_dir = cluster.mail_dir();
    let mail = e2e::mail::wait_for(&mail_dir, &email, Duration::from_secs(15)).await;
    // Long enough for every relay to poll many times (100 ms each).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = e2e::mail::read_all(&mail_dir);
    assert_eq!(
        delivered.len(),
        1,
        "one registration, one delivery: {:?}",
        delivered.iter().map(|m| &m.path).collect::<Vec<_>>()
    );
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, attempts FROM flagon_mail_outbox")
            .fetch_all(&mut conn)
            .await
            .expect("reads the outbox");
    assert_eq!(rows, vec![("sent".to_owned(), 1)], "the outbox row");
    // The link works on another instance than the one that sent it.
    let link = e2e::mail::link_path(&mail.text, "/auth/verify/").expect("a verification link");
    let verified = newcomer.at(c).get(&link).await;
    assert!(verified.status < 400, "verifying on c: {verified:?}");
    let at: Option<i64> = sqlx::query_scalar("SELECT verified_at FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&mut conn)
        .await
        .expect("the account exists");
    assert!(at.is_some(), "the account is verified");

    // The login limit per client address is exact across the three: spread round-robin
    // (each attempt for another account, so only the per-address limit counts), the
    // attempts admitted are the quota the 429 names, plus what GCRA refilled meanwhile (one
    // per `window / quota`); three instances counting apart would admit three quotas.
    let attacker = Agent::new(a).as_client("203.0.113.66");
    let form = attacker.get("/auth/login").await;
    let token = csrf_token(&form.body);
    let mut admitted = 0;
    let mut refusal = None;
    let first = Instant::now();
    for i in 0..100 {
        let at = [a, b, c][i % 3];
        let res = attacker
            .at(at)
            .post_form(
                "/auth/login",
                &[
                    ("csrf_token", &token),
                    ("email", &format!("guess{i}-{run}@example.com")),
                    ("password", "wrong guess"),
                ],
            )
            .await;
        assert!(res.status < 500, "attempt {i}: {res:?}");
        if res.status == 429 {
            refusal = Some(res);
            break;
        }
        admitted += 1;
    }
    let elapsed = first.elapsed();
    let refusal = refusal.expect("the login limit refuses within 100 attempts");
    let (quota, window) = policy_of(&refusal);
    let refilled = (elapsed.as_secs_f64() * quota as f64 / window as f64).floor() as usize;
    eprintln!(
        "multi-instance test: {admitted} login attempts admitted across three instances in {:.1} s for {quota} per {window} s",
        elapsed.as_secs_f64()
    );
    assert!(
        (quota..=quota + refilled).contains(&admitted),
        "the three instances admitted {admitted} between them in {elapsed:?}, for a quota of {quota} per {window} s ({refusal:?})"
    );
    // Another client is not affected.
    let other = log_in(
        &Agent::new(c).as_client("198.51.100.5"),
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
    )
    .await;
    assert_eq!(other.status, 303, "another client logs in: {other:?}");

    let _ = conn.close().await;
    eprintln!(
        "multi-instance test: finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_account_login_limit_is_exact_across_instances() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let addrs: Vec<_> = cluster.blogs.iter().map(|b| b.addr).collect();
    // One account, each attempt from another client address (so only the per-account limit
    // counts), round-robin over the instances.
    let quota: usize = example_blog::auth::limits::LOGIN_PER_ACCOUNT
        .split('/')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a limit string");
    let mut admitted = 0;
    let mut refusal = None;
    let first = Instant::now();
    for i in 0..3 * quota + 3 {
        let agent = Agent::new(addrs[i % 3]).as_client(&format!("203.0.113.{}", 100 + i));
        let form = agent.get("/auth/login").await;
        let token = csrf_token(&form.body);
        let res = agent
            .post_form(
                "/auth/login",
                &[
                    ("csrf_token", &token),
                    ("email", ADMIN_EMAIL),
                    ("password", "wrong guess"),
                ],
            )
            .await;
        assert!(res.status < 500, "attempt {i}: {res:?}");
        if res.status == 429 {
            refusal = Some(res);
            break;
        }
        admitted += 1;
    }
    let refusal = refusal.unwrap_or_else(|| {
        panic!("no refusal in {admitted} attempts for one account over three instances")
    });
    let refilled = (first.elapsed().as_secs_f64() * quota as f64 / 60.0).floor() as usize;
    assert!(
        (quota..=quota + refilled).contains(&admitted),
        "{admitted} admitted for {} per account across the three: {refusal:?}",
        example_blog::auth::limits::LOGIN_PER_ACCOUNT
    );
}

/// The path of a `Location` (absolute or not).
fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_owned()),
        None => location.to_owned(),
    }
}

/// `q` and `w` of the `RateLimit-Policy` header (`"10/minute";q=10;w=60`).
fn policy_of(res: &Resp) -> (usize, usize) {
    let policy = res
        .header("ratelimit-policy")
        .unwrap_or_else(|| panic!("a 429 names its policy: {res:?}"));
    let param = |name: &str| -> usize {
        policy
            .split(';')
            .find_map(|p| p.trim().strip_prefix(name))
            .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {policy:?}"))
    };
    (param("q="), param("w="))
}
