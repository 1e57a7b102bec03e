//! Full-text search: SQLite's FTS5 in process, PostgreSQL's tsvector against the server on
//! 127.0.0.1:5432 (a database of its own per test; skipped with a line saying why when the
//! server is unreachable, a failure under `FLAGON_TEST_REQUIRE_SERVICES=1`), pagination,
//! hostile queries and sort injection.

mod common;

use std::time::Duration;

use example_blog::content::{self, PostInput};
use flagon::App;
use flagon::testing::{TestClient, testing_config_toml};
use flagon_db::sqlx::{self, Connection};
use flagon_login::Role;

async fn post(app: &App, author: i64, title: &str, body: &str, published: bool) {
    let db = common::db(app);
    let mut tx = db.begin().await.unwrap();
    let input = PostInput {
        title: title.into(),
        body: body.into(),
        published,
        ..PostInput::default()
    };
    content::insert_post(&mut tx, author, &input.check().unwrap(), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Posts about rust (three published, one draft) and one about something else.
async fn corpus(app: &App) {
    let ada = common::account(
        app,
        "ada@example.com",
        "ada",
        "correct horse battery",
        Role::Author,
    )
    .await;
    post(
        app,
        ada,
        "Alpha rust",
        "Ownership and borrowing in Rust.",
        true,
    )
    .await;
    post(app, ada, "Beta notes", "Why rust traits matter.", true).await;
    post(app, ada, "Gamma", "More RUST, async this time.", true).await;
    post(app, ada, "Hidden draft", "rust secrets", false).await;
    post(app, ada, "Cooking", "Bread and butter.", true).await;
}

/// What the search page lists, in order.
fn titles(html: &str) -> Vec<String> {
    html.split("<h2><a href=\"/posts/")
        .skip(1)
        .filter_map(|s| {
            let start = s.find("\">")? + 2;
            let end = s.find("</a>")?;
            Some(s[start..end].to_owned())
        })
        .collect()
}

async fn search_suite(client: &TestClient) {
    let html = client.get("/search?q=rust").send().await.text();
    let mut found = titles(&html);
    assert!(html.contains("3 posts found."), "{html}");
    found.sort();
    assert_eq!(
        found,
        ["Alpha rust", "Beta notes", "Gamma"],
        "published only: {html}"
    );

    let html = client.get("/search?q=rust&sort=title").send().await.text();
    assert_eq!(titles(&html), ["Alpha rust", "Beta notes", "Gamma"]);
    let html = client.get("/search?q=rust&sort=-title").send().await.text();
    assert_eq!(titles(&html), ["Gamma", "Beta notes", "Alpha rust"]);

    // Pages of two: the second has the last one, the third does not exist.
    let html = client
        .get("/search?q=rust&sort=title&per_page=2")
        .send()
        .await
        .text();
    assert_eq!(titles(&html), ["Alpha rust", "Beta notes"]);
    assert!(html.contains("page=2"), "a link to the next page: {html}");
    let html = client
        .get("/search?q=rust&sort=title&per_page=2&page=2")
        .send()
        .await
        .text();
    assert_eq!(titles(&html), ["Gamma"]);
    let res = client.get("/search?q=rust&per_page=2&page=3").send().await;
    assert_eq!(res.status(), 404);

    let html = client.get("/search?q=bread").send().await.text();
    assert_eq!(titles(&html), ["Cooking"]);
    let html = client
        .get("/search?q=nothing-like-this")
        .send()
        .await
        .text();
    assert!(html.contains("No posts found."), "{html}");
    let html = client.get("/search").send().await.text();
    assert!(
        html.contains("name=\"q\"") && !html.contains("found."),
        "{html}"
    );

    // Query syntax is text, never an error.
    for q in [
        "%22",
        "rust%22",
        "title%3Arust",
        "rust%20AND",
        "OR",
        "NOT%20rust",
        "*",
        "rust*",
        "NEAR(rust",
        "-rust",
        "%5Erust",
        "(((",
        "%27%3B%20DROP%20TABLE%20posts%3B--",
        "%00",
        "!%40%23%24%25",
        "%E4%BD%A0%E5%A5%BD",
    ] {
        let res = client.get(&format!("/search?q={q}")).send().await;
        assert_eq!(res.status(), 200, "q={q}: {}", res.text());
    }

    // The sort comes from an allowlist.
    for sort in [
        "title;DROP%20TABLE%20posts",
        "p.id",
        "published%20DESC",
        "title,title",
        "bogus",
    ] {
        let res = client
            .get(&format!("/search?q=rust&sort={sort}"))
            .send()
            .await;
        assert_eq!(res.status(), 400, "sort={sort}");
        assert!(
            res.text().contains("sort"),
            "a message naming the parameter"
        );
    }
    let long = "a".repeat(201);
    let res = client.get(&format!("/search?q={long}")).send().await;
    assert_eq!(res.status(), 400);
    assert!(res.text().contains("at most 200 characters"));
    // Still there after all of that.
    assert!(
        client
            .get("/search?q=rust")
            .send()
            .await
            .text()
            .contains("3 posts found.")
    );
}

#[tokio::test]
async fn sqlite_fts5_finds_published_posts() {
    let app = common::app();
    let client = common::client(&app).await;
    corpus(&app).await;
    search_suite(&client).await;
    let zh = client
        .get("/search?q=rust")
        .header("accept-language", "zh")
        .send()
        .await
        .text();
    assert!(zh.contains("找到 3 篇文章"), "{zh}");
}

#[tokio::test]
async fn an_edited_post_is_found_by_its_new_words() {
    let app = common::app();
    let client = common::client(&app).await;
    corpus(&app).await;
    let db = common::db(&app);
    let id: i64 = db
        .query_scalar("SELECT id FROM posts WHERE title = 'Cooking'")
        .fetch_one(&*db)
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    let input = PostInput {
        title: "Cooking".into(),
        body: "Sourdough starters.".into(),
        published: true,
        ..PostInput::default()
    };
    content::update_post(&mut tx, id, &input.check().unwrap(), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        titles(&client.get("/search?q=sourdough").send().await.text()),
        ["Cooking"]
    );
    assert!(titles(&client.get("/search?q=bread").send().await.text()).is_empty());
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const MY_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";

/// A database of its own on a server (PostgreSQL or MariaDB), dropped at the end.
struct ServerDb {
    admin: &'static str,
    name: String,
    url: String,
}

impl ServerDb {
    async fn create(admin: &'static str) -> Option<ServerDb> {
        sqlx::any::install_default_drivers();
        let connect = sqlx::AnyConnection::connect(admin);
        let conn = tokio::time::timeout(Duration::from_secs(3), connect).await;
        let mut conn = match conn {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return skip(admin, &e.to_string()),
            Err(_) => return skip(admin, "no answer within 3s"),
        };
        let name = format!("blog_search_{:016x}", rand::random::<u64>());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("creates the test database");
        let _ = conn.close().await;
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Some(ServerDb { admin, name, url })
    }
}

fn skip(admin: &str, why: &str) -> Option<ServerDb> {
    if std::env::var("FLAGON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{admin} is required (FLAGON_TEST_REQUIRE_SERVICES=1) but unreachable: {why}");
    }
    eprintln!("skipped: {admin} unreachable ({why})");
    None
}

impl Drop for ServerDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin, self.name.clone());
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await else {
                    return;
                };
                let sql = if admin.starts_with("postgres") {
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                } else {
                    format!("DROP DATABASE IF EXISTS {name}")
                };
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                {
                    eprintln!("could not drop test database {name}: {e}");
                }
            });
        });
        let _ = done.join();
    }
}

/// The blog on `db`.
fn server_app(db: &ServerDb) -> App {
    let config = testing_config_toml(&format!(
        "[db]\nurl = \"{}\"\nauto_upgrade = true\nmax_connections = 2\n\
         [mail]\ndefault_sender = \"Blog <blog@example.com>\"\n\
         [login]\nlogin_view = \"auth.login\"\napi_blueprints = [\"api\"]\n",
        db.url
    ));
    example_blog::build(config).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn postgres_tsvector_finds_published_posts() {
    let Some(pg) = ServerDb::create(PG_ADMIN).await else {
        return;
    };
    let app = server_app(&pg);
    let client = common::client(&app).await;
    assert_eq!(common::db(&app).backend(), flagon_db::Backend::Postgres);
    corpus(&app).await;
    search_suite(&client).await;
    // websearch syntax works on PostgreSQL: a quoted phrase and an exclusion.
    let html = client
        .get("/search?q=%22rust+traits%22")
        .send()
        .await
        .text();
    assert_eq!(titles(&html), ["Beta notes"]);
    let html = client
        .get("/search?q=rust+-async+-ownership")
        .send()
        .await
        .text();
    assert_eq!(titles(&html), ["Beta notes"]);
    client.shutdown().await;
    drop(app);
}

#[tokio::test]
async fn mariadb_fulltext_finds_published_posts() {
    let Some(my) = ServerDb::create(MY_ADMIN).await else {
        return;
    };
    let app = server_app(&my);
    let client = common::client(&app).await;
    assert_eq!(common::db(&app).backend(), flagon_db::Backend::MySql);
    corpus(&app).await;
    search_suite(&client).await;
    client.shutdown().await;
    drop(app);
}
