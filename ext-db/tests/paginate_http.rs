//! The pagination extractors in a Flagon app, over HTTP: `page`/`per_page`, `sort` and the
//! keyset cursor parameters give 400s with a message for bad input (the H5 sort injection
//! strings among them: the table is still there afterwards), 404 for a page past the end,
//! and page links built with `url_for`.

mod paginate_common;

use flagon::extract::Json;
use flagon::testing::TestClient;
use flagon::{AppHandle, Ext, Extension, HttpError, Route, Setup, SetupError};
use flagon_db::sqlx::{AnyPool, FromRow};
use flagon_db::{
    CursorKey, IterPages, Keyset, KeysetPage, KeysetRequest, OrderBy, PageRequest, Paginate,
    Pagination, Select, Sort, SortColumn, paginate,
};
use paginate_common::TestDb;
use serde::Serialize;

#[derive(FromRow, Serialize)]
struct Post {
    id: i64,
    title: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PostSort {
    Id,
    Title,
}

impl SortColumn for PostSort {
    const ALL: &'static [Self] = &[PostSort::Id, PostSort::Title];
    fn name(self) -> &'static str {
        match self {
            PostSort::Id => "id",
            PostSort::Title => "title",
        }
    }
    fn sql(self) -> &'static str {
        match self {
            PostSort::Id => "id",
            PostSort::Title => "title",
        }
    }
}

struct Pool(AnyPool);

struct Listing(AnyPool);

impl Extension for Listing {
    fn name(&self) -> &'static str {
        "listing"
    }
    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.provide(Pool(self.0.clone()));
        app.route(Route::get("/posts", posts));
        app.route(Route::get("/feed", feed));
        Ok(())
    }
}

#[derive(Serialize)]
struct PostsPage {
    page: Pagination<Post>,
    links: flagon_db::PageLinks,
}

async fn posts(
    pool: Ext<Pool>,
    app: AppHandle,
    page: PageRequest,
    order: OrderBy<PostSort>,
) -> Result<Json<PostsPage>, HttpError> {
    let sql = format!(
        "SELECT id, title FROM post {}",
        order.clause_with_tiebreak(Sort::asc(PostSort::Id))
    );
    let page = paginate::<Post, _>(&pool.0, &Select::new(sql), page, &Paginate::default()).await?;
    let sort = order.to_param();
    let links = page
        .links(IterPages::default(), |n| {
            app.url_for("posts", [("page", n.to_string()), ("sort", sort.clone())])
        })
        .map_err(HttpError::internal)?;
    Ok(Json(PostsPage { page, links }))
}

async fn feed(
    pool: Ext<Pool>,
    app: AppHandle,
    req: KeysetRequest,
) -> Result<Json<KeysetPage<Post>>, HttpError> {
    let key = CursorKey::from(&app.derive_key("flagon-db.cursor"));
    let listing = Keyset::new("feed").desc("id");
    let page = listing
        .page::<Post, _>(
            &pool.0,
            &Select::new("SELECT id, title FROM post"),
            &req,
            &key,
        )
        .await?;
    Ok(Json(page))
}

async fn client() -> (TestClient, TestDb) {
    let db = TestDb::sqlite().await;
    db.run_sql("CREATE TABLE post (id BIGINT PRIMARY KEY, title TEXT NOT NULL)")
        .await;
    let values: Vec<String> = (1..=45).map(|i| format!("({i}, 'post {i:02}')")).collect();
    db.run_sql(&format!(
        "INSERT INTO post (id, title) VALUES {}",
        values.join(",")
    ))
    .await;
    let app = flagon::testing::app_with(Listing(db.pool.clone()));
    (TestClient::new(&app), db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_links_and_404_past_the_end() {
    let (client, _db) = client().await;
    let res = client
        .get("/posts?page=2&per_page=20&sort=-title")
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let body: serde_json::Value = res.json();
    assert_eq!(body["page"]["items"][0]["title"], "post 25");
    assert_eq!(body["page"]["total"], 45);
    assert_eq!(body["page"]["page_numbers"], serde_json::json!([1, 2, 3]));
    assert_eq!(body["links"]["prev"], "/posts?page=1&sort=-title");
    assert_eq!(body["links"]["next"], "/posts?page=3&sort=-title");
    assert_eq!(body["links"]["pages"][1]["current"], true);

    let res = client.get("/posts").send().await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json();
    assert_eq!(body["page"]["per_page"], 20, "the default page size");
    assert_eq!(body["page"]["items"][0]["id"], 1, "the default order");

    let res = client.get("/posts?per_page=1000").send().await;
    let body: serde_json::Value = res.json();
    assert_eq!(body["page"]["per_page"], 100, "max_per_page");

    let res = client.get("/posts?page=4").send().await;
    assert_eq!(res.status(), 404, "past the end under error_out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_page_parameters_are_400s_with_a_message() {
    let (client, _db) = client().await;
    for (query, param) in [
        ("page=0", "page"),
        ("page=-2", "page"),
        ("page=abc", "page"),
        ("page=", "page"),
        ("per_page=0", "per_page"),
        ("per_page=1e3", "per_page"),
        ("page=1&page=2", "page"),
    ] {
        let res = client
            .get(&format!("/posts?{query}"))
            .header("accept", "application/json")
            .send()
            .await;
        assert_eq!(res.status(), 400, "{query}");
        assert!(
            res.text().contains(&format!("`{param}`")),
            "{query}: {}",
            res.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_injection_strings_are_400s_and_never_reach_the_sql() {
    let (client, db) = client().await;
    for attack in [
        "name;DROP TABLE post--",
        "id;DROP TABLE post--",
        "(SELECT 1)",
        "(SELECT title FROM post)",
        "ASC,(SELECT 1)",
        "id ASC,(SELECT CASE WHEN 1=1 THEN id END)",
        "id DESC",
        "id,1",
        "1",
        "title--",
        "-(title)",
        "created",
        "ID",
        "id/**/",
        "id\u{0}",
    ] {
        let q: String = form_urlencoded::byte_serialize(attack.as_bytes()).collect();
        let res = client
            .get(&format!("/posts?sort={q}"))
            .header("accept", "application/json")
            .send()
            .await;
        assert_eq!(res.status(), 400, "{attack}");
        let text = res.text();
        assert!(text.contains("`sort` must be"), "{attack}: {text}");
        assert!(
            text.contains("id, title"),
            "the message lists the columns: {text}"
        );
        assert!(
            !text.contains("SELECT") && !text.contains("DROP"),
            "not echoed: {text}"
        );
    }
    let res = client.get("/posts?sort=id&sort=title").send().await;
    assert_eq!(res.status(), 400);
    // The table is intact.
    let n: i64 = flagon_db::sqlx::query_scalar("SELECT COUNT(*) FROM post")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_cursors_over_http() {
    let (client, _db) = client().await;
    let first: serde_json::Value = client.get("/feed?per_page=20").send().await.json();
    assert_eq!(first["items"][0]["id"], 45);
    let next = first["next"].as_str().unwrap().to_owned();
    let res = client
        .get(&format!("/feed?per_page=20&after={next}"))
        .send()
        .await;
    assert_eq!(res.status(), 200);
    let second: serde_json::Value = res.json();
    assert_eq!(second["items"][0]["id"], 25);

    let mut forged = next.clone();
    forged.insert(3, 'x');
    for query in [
        format!("after={forged}"),
        "after=garbage".to_owned(),
        format!("after={next}&before={next}"),
        "per_page=zero".to_owned(),
    ] {
        let res = client
            .get(&format!("/feed?{query}"))
            .header("accept", "application/json")
            .send()
            .await;
        assert_eq!(res.status(), 400, "{query}: {}", res.text());
    }
}
