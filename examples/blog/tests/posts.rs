//! Posts: the index and its pages, post pages and drafts, writing and editing with
//! permissions, Markdown sanitising, the shared page cache and the `seed` command.

mod common;

use example_blog::content::{self, PostInput};
use example_blog::models::Account;
use flagon::App;
use flagon::testing::TestClient;
use flagon_login::Role;
use flagon_login::testing::login_as;

/// A logged-in client for a new account with `role`.
async fn user(app: &App, name: &str, role: Role) -> (TestClient, Account) {
    let client = common::client(app).await;
    let email = format!("{name}@example.com");
    let id = common::account(app, &email, name, "correct horse battery", role).await;
    let db = common::db(app);
    let account = Account::by_id(&db, id).await.unwrap().expect("the account");
    login_as(&client, &account).await;
    (client, account)
}

/// Writes a post directly; returns its slug.
async fn post(app: &App, author: i64, title: &str, body: &str, published: bool) -> String {
    let db = common::db(app);
    let mut tx = db.begin().await.unwrap();
    let input = PostInput {
        title: title.into(),
        body: body.into(),
        published,
        category: Some("Notes".into()),
        tags: vec!["rust".into(), "web".into()],
    }
    .check()
    .unwrap();
    let (_, slug) = content::insert_post(&mut tx, author, &input, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    content::changed(app.handle()).await;
    slug
}

#[tokio::test]
async fn the_index_lists_published_posts_newest_first_in_pages() {
    let app = common::app_with("[blog]\nper_page = 2\n");
    let client = common::client(&app).await;
    let ada = common::account(&app, "ada@example.com", "ada", "pw-pw-pw-pw", Role::Author).await;
    for title in ["First post", "Second post", "Third post"] {
        post(&app, ada, title, "Some text.", true).await;
    }
    post(&app, ada, "Secret draft", "Not yet.", false).await;

    let page1 = client.get("/").send().await;
    assert_eq!(page1.status(), 200);
    let html = page1.text();
    assert!(html.contains("Latest posts"), "{html}");
    let (third, second) = (html.find("Third post"), html.find("Second post"));
    assert!(
        third.is_some() && second.is_some() && third < second,
        "{html}"
    );
    assert!(
        !html.contains("First post") && !html.contains("Secret draft"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/?page=2\""),
        "a link to the next page: {html}"
    );

    let html = client.get("/?page=2").send().await.text();
    assert!(
        html.contains("First post") && !html.contains("Third post"),
        "{html}"
    );

    let past = client.get("/?page=3").send().await;
    assert_eq!(past.status(), 404);
    assert!(past.text().contains("no page 3"));
    for bad in ["/?page=0", "/?page=two", "/?page=-1", "/?page=1&page=2"] {
        let res = client.get(bad).send().await;
        assert_eq!(res.status(), 400, "{bad}");
        assert!(
            res.text().contains("page"),
            "{bad}: a message naming the parameter"
        );
    }
}

#[tokio::test]
async fn pages_are_in_english_and_chinese_with_dates_per_locale() {
    let app = common::app();
    let client = common::client(&app).await;
    let ada = common::account(&app, "ada@example.com", "ada", "pw-pw-pw-pw", Role::Author).await;
    let slug = post(&app, ada, "Bilingual", "Text.", true).await;
    let (y, m, d) = example_blog::posts::ymd(example_blog::models::now());
    let months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let en = client.get(&format!("/posts/{slug}")).send().await.text();
    assert!(
        en.contains(&format!("{} {d}, {y}", months[m as usize - 1])),
        "{en}"
    );
    assert!(en.contains("by ada") && en.contains("in Notes"), "{en}");
    let zh = client
        .get(&format!("/posts/{slug}"))
        .header("accept-language", "zh-CN")
        .send()
        .await
        .text();
    assert!(zh.contains(&format!("{y}年{m}月{d}日")), "{zh}");
    assert!(
        zh.contains("作者：ada") && zh.contains("分类：Notes"),
        "{zh}"
    );
    let index = client
        .get("/")
        .header("accept-language", "zh")
        .send()
        .await
        .text();
    assert!(
        index.contains("最新文章") && index.contains(&format!("{y}年")),
        "{index}"
    );
    // The English page is still English: the cache keeps one entry per locale.
    assert!(client.get("/").send().await.text().contains("Latest posts"));
}

#[tokio::test]
async fn a_post_shows_its_category_tags_author_and_image_and_drafts_stay_private() {
    let app = common::app();
    let guest = common::client(&app).await;
    let (ada_client, ada) = user(&app, "ada", Role::Author).await;
    let (bob_client, _) = user(&app, "bob", Role::Author).await;
    let (editor_client, _) = user(&app, "eve", Role::Editor).await;
    let published = post(&app, ada.id, "Out now", "Hello **world**.", true).await;
    let draft = post(&app, ada.id, "Work in progress", "Later.", false).await;

    let html = guest
        .get(&format!("/posts/{published}"))
        .send()
        .await
        .text();
    assert!(html.contains("<h1>Out now</h1>"), "{html}");
    assert!(html.contains("<strong>world</strong>"), "{html}");
    assert!(
        html.contains("<li>rust</li>") && html.contains("<li>web</li>"),
        "{html}"
    );
    assert!(html.contains("by ada"), "{html}");
    assert!(html.contains("<time datetime=\""), "{html}");

    let missing = guest.get("/posts/no-such-post").send().await;
    assert_eq!(missing.status(), 404);
    assert!(missing.text().contains("There is no such post."));
    let path = format!("/posts/{draft}");
    assert_eq!(guest.get(&path).send().await.status(), 404);
    assert_eq!(bob_client.get(&path).send().await.status(), 404);
    let own = ada_client.get(&path).send().await;
    assert_eq!(own.status(), 200);
    assert!(own.text().contains("This is a draft"));
    assert_eq!(editor_client.get(&path).send().await.status(), 200);
}

#[tokio::test]
async fn writing_needs_a_login_and_saves_markdown_tags_and_category() {
    let app = common::app();
    let guest = common::client(&app).await;
    let res = guest.get("/posts/new").send().await;
    assert_eq!(res.status(), 303, "anonymous: to the login page");
    assert!(
        res.location().unwrap_or("").contains("next="),
        "{:?}",
        res.location()
    );

    let (client, _) = user(&app, "ada", Role::Author).await;
    let token = common::token_from(&client, "/posts/new").await;
    let res = client
        .post("/posts/new")
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Hello, Flagon!"),
            ("body", "Some *Markdown*."),
            ("category", "Engineering"),
            ("tags", "Rust, web ,,rust"),
            ("published", "on"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/posts/hello-flagon"));
    let html = client.get("/posts/hello-flagon").send().await.text();
    assert!(html.contains("<em>Markdown</em>"), "{html}");
    assert!(html.contains("in Engineering"), "{html}");
    assert!(
        html.contains("<li>rust</li>") && html.contains("<li>web</li>"),
        "{html}"
    );
    assert!(html.contains("The post is saved."), "flashed: {html}");
    assert!(
        guest
            .get("/")
            .send()
            .await
            .text()
            .contains("Hello, Flagon!")
    );
}

#[tokio::test]
async fn scripts_javascript_links_and_handlers_never_reach_the_page() {
    let app = common::app();
    let (client, _) = user(&app, "ada", Role::Author).await;
    let token = common::token_from(&client, "/posts/new").await;
    let body = "Hi <script>alert('x')</script> [click](javascript:alert(1)) \
                <img src=x onerror=alert(2)> <a href=\"#\" onclick=\"alert(3)\">a</a> \
                <p onmouseover=\"alert(4)\">p</p>";
    let res = client
        .post("/posts/new")
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Hostile"),
            ("body", body),
            ("published", "on"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    let html = client.get("/posts/hostile").send().await.text();
    let article = &html[html.find("<article").unwrap()..html.find("</article>").unwrap()];
    for bad in [
        "<script",
        "javascript:",
        "onerror",
        "onclick",
        "onmouseover",
        "alert(1)",
    ] {
        assert!(!article.contains(bad), "{bad} in {article}");
    }
    assert!(article.contains("click"), "the link text stays: {article}");
}

#[tokio::test]
async fn a_refused_form_comes_back_with_what_was_typed() {
    let app = common::app();
    let (client, _) = user(&app, "ada", Role::Author).await;
    let token = common::token_from(&client, "/posts/new").await;
    let res = client
        .post("/posts/new")
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "   "),
            ("body", "Keep <this> text"),
            ("tags", "a, b"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text();
    assert!(html.contains("A title is 1 to 200 characters"), "{html}");
    assert!(html.contains("Keep &lt;this&gt; text"), "{html}");
    assert!(html.contains("value=\"a, b\""), "{html}");
    let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let res = client
        .post("/posts/new")
        .header("accept-language", "zh")
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Tagged"),
            ("body", "x"),
            ("tags", many.join(",").as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().contains("最多 10 个标签"));
    let posts: i64 = common::db(&app)
        .query_scalar("SELECT COUNT(*) FROM posts")
        .fetch_one(&*common::db(&app))
        .await
        .unwrap();
    assert_eq!(posts, 0);
}

#[tokio::test]
async fn authors_edit_and_delete_their_own_posts_editors_any() {
    let app = common::app();
    let (ada_client, ada) = user(&app, "ada", Role::Author).await;
    let (bob_client, _) = user(&app, "bob", Role::Author).await;
    let (eve_client, _) = user(&app, "eve", Role::Editor).await;
    let slug = post(&app, ada.id, "Ada's post", "Original.", true).await;
    let edit = format!("/posts/{slug}/edit");

    assert_eq!(bob_client.get(&edit).send().await.status(), 403);
    let token = common::token_from(&bob_client, "/posts/new").await;
    let res = bob_client
        .post(&edit)
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Bob was here"),
            ("body", "x"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 403);
    let res = bob_client
        .post(&format!("/posts/{slug}/delete"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 403);

    // The author: the form shows the post's values; saving keeps the slug.
    let form = ada_client.get(&edit).send().await.text();
    assert!(
        form.contains("value=\"Ada&#x27;s post\"") || form.contains("value=\"Ada's post\""),
        "{form}"
    );
    assert!(form.contains("value=\"rust, web\""), "{form}");
    let token = common::csrf_token(&form);
    let res = ada_client
        .post(&edit)
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Ada's post, revised"),
            ("body", "Revised."),
            ("published", "on"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some(format!("/posts/{slug}").as_str()));
    let html = ada_client
        .get(&format!("/posts/{slug}"))
        .send()
        .await
        .text();
    assert!(html.contains("Revised."), "{html}");

    // An editor edits anyone's post; a draft leaves the index.
    let token = common::token_from(&eve_client, &edit).await;
    let res = eve_client
        .post(&edit)
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Unpublished"),
            ("body", "Back to draft."),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    let guest = common::client(&app).await;
    assert_eq!(
        guest.get(&format!("/posts/{slug}")).send().await.status(),
        404
    );
    assert!(!guest.get("/").send().await.text().contains("Unpublished"));

    // The author deletes it.
    let token = common::token_from(&ada_client, &edit).await;
    let res = ada_client
        .post(&format!("/posts/{slug}/delete"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/"));
    assert_eq!(
        ada_client
            .get(&format!("/posts/{slug}"))
            .send()
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn cached_pages_are_served_from_the_cache_and_an_edit_shows_at_once() {
    let app = common::app();
    let guest = common::client(&app).await;
    let (ada_client, ada) = user(&app, "ada", Role::Author).await;
    let slug = post(&app, ada.id, "Cached title", "Cached body.", true).await;
    let show = format!("/posts/{slug}");
    assert!(guest.get("/").send().await.text().contains("Cached title"));
    assert!(
        guest
            .get(&show)
            .send()
            .await
            .text()
            .contains("Cached body.")
    );

    // Changed behind the app's back: the cached parts are still served.
    let db = common::db(&app);
    db.query("UPDATE posts SET title = 'Sneaky', body_html = '<p>Sneaky</p>'")
        .execute(&*db)
        .await
        .unwrap();
    assert!(guest.get("/").send().await.text().contains("Cached title"));
    assert!(
        guest
            .get(&show)
            .send()
            .await
            .text()
            .contains("Cached body.")
    );

    // An edit through the app is seen at once, by everyone.
    let token = common::token_from(&ada_client, &format!("{show}/edit")).await;
    let res = ada_client
        .post(&format!("{show}/edit"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Fresh title"),
            ("body", "Fresh body."),
            ("published", "on"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert!(guest.get("/").send().await.text().contains("Fresh title"));
    assert!(guest.get(&show).send().await.text().contains("Fresh body."));
}

#[tokio::test]
async fn no_user_s_nav_flash_or_token_lands_in_what_others_are_served() {
    let app = common::app();
    let (ada_client, ada) = user(&app, "ada", Role::Author).await;
    let slug = post(&app, ada.id, "Shared page", "Body.", true).await;
    let token = common::token_from(&ada_client, "/posts/new").await;
    let res = ada_client
        .post(&format!("/posts/{slug}/edit"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Shared page"),
            ("body", "Body!"),
            ("published", "on"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    // Ada renders (and so fills the cache for) the page, with her flash, name and tokens.
    let hers = ada_client
        .get(&format!("/posts/{slug}"))
        .send()
        .await
        .text();
    assert!(
        hers.contains("The post is saved.") && hers.contains("csrf_token"),
        "{hers}"
    );
    assert!(hers.contains(">Edit<"), "{hers}");
    let guest = common::client(&app).await;
    for path in [format!("/posts/{slug}"), "/".to_owned()] {
        let theirs = guest.get(&path).send().await.text();
        assert!(theirs.contains("Shared page"), "{theirs}");
        assert!(!theirs.contains("The post is saved."), "{theirs}");
        assert!(!theirs.contains("csrf_token"), "{theirs}");
        assert!(
            !theirs.contains(">Edit<") && !theirs.contains("class=\"who\""),
            "{theirs}"
        );
    }
}

#[tokio::test]
async fn seed_writes_demo_accounts_posts_and_comments() {
    let app = common::app();
    let client = common::client(&app).await;
    let written = example_blog::seed::seed(app.handle(), 5, false)
        .await
        .unwrap();
    assert_eq!(written, 5);
    let db = common::db(&app);
    let count = |sql: &'static str| {
        let db = db.clone();
        async move { db.query_scalar::<i64>(sql).fetch_one(&*db).await.unwrap() }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM posts WHERE status = 'published'").await,
        5
    );
    assert_eq!(count("SELECT COUNT(*) FROM users").await, 3);
    assert_eq!(count("SELECT COUNT(*) FROM comments").await, 15);
    assert_eq!(
        count("SELECT COUNT(*) FROM comments WHERE parent_id IS NOT NULL").await,
        5
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM posts WHERE category_id IS NOT NULL").await,
        5
    );
    assert!(count("SELECT COUNT(*) FROM post_tags").await >= 5);
    assert!(
        client
            .get("/")
            .send()
            .await
            .text()
            .contains("notes, part 5")
    );
    let found = client.get("/search?q=rust").send().await.text();
    assert!(found.contains("found."), "{found}");
    // Again: the accounts are reused, the posts added.
    example_blog::seed::seed(app.handle(), 1, false)
        .await
        .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM users").await, 3);
    assert_eq!(count("SELECT COUNT(*) FROM posts").await, 6);

    // The command itself (it shuts the app down when it ends).
    let bad = flagon::testing::run_cli(&app, ["seed", "--posts", "zero"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    let out = flagon::testing::run_cli(&app, ["seed", "--posts", "5"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Seeded 5 posts"), "{out:?}");
}

/// Whether Redis answers on 127.0.0.1:6379; a failure under `FLAGON_TEST_REQUIRE_SERVICES=1`.
fn redis_up() -> bool {
    let addr = "127.0.0.1:6379".parse().unwrap();
    match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("FLAGON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
                panic!("Redis is required (FLAGON_TEST_REQUIRE_SERVICES=1) but unreachable: {e}");
            }
            eprintln!("skipped: Redis on 127.0.0.1:6379 unreachable ({e})");
            false
        }
    }
}

/// An instance of the blog on the SQLite file `db` with its cache on Redis under `prefix`.
fn instance(db: &std::path::Path, prefix: &str) -> App {
    let config = flagon::testing::testing_config_toml(&format!(
        "[db]\nurl = \"sqlite://{}\"\nauto_upgrade = true\n\
         [mail]\ndefault_sender = \"Blog <blog@example.com>\"\n\
         [login]\napi_blueprints = [\"api\"]\n\
         [cache]\nbackend = \"redis\"\n\
         [cache.redis]\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\n",
        db.display()
    ));
    example_blog::build(config).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn two_instances_on_redis_share_the_cache_and_see_an_edit_at_once() {
    if !redis_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blog.db");
    let prefix = format!("blog-test-{:016x}:", rand::random::<u64>());
    let a = instance(&file, &prefix);
    let (ada_client, ada) = user(&a, "ada", Role::Author).await;
    let b = instance(&file, &prefix);
    let guest_b = common::client(&b).await;
    let guest_a = common::client(&a).await;
    let slug = post(&a, ada.id, "Shared title", "Original body.", true).await;
    let show = format!("/posts/{slug}");

    // B renders and caches the page in Redis; A is served B's entry.
    assert!(
        guest_b
            .get(&show)
            .send()
            .await
            .text()
            .contains("Original body.")
    );
    assert!(
        guest_b
            .get("/")
            .send()
            .await
            .text()
            .contains("Shared title")
    );
    let db = common::db(&a);
    db.query("UPDATE posts SET body_html = '<p>Changed behind the cache</p>', title = 'Sneaky'")
        .execute(&*db)
        .await
        .unwrap();
    assert!(
        guest_a
            .get(&show)
            .send()
            .await
            .text()
            .contains("Original body.")
    );
    assert!(
        guest_a
            .get("/")
            .send()
            .await
            .text()
            .contains("Shared title")
    );

    // An edit on A is seen on B at once, with no wait.
    let token = common::token_from(&ada_client, &format!("{show}/edit")).await;
    let res = ada_client
        .post(&format!("{show}/edit"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("title", "Edited title"),
            ("body", "Edited body."),
            ("published", "on"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        guest_b
            .get(&show)
            .send()
            .await
            .text()
            .contains("Edited body.")
    );
    assert!(
        guest_b
            .get("/")
            .send()
            .await
            .text()
            .contains("Edited title")
    );

    // So is a comment.
    let token = common::token_from(&ada_client, &show).await;
    let res = ada_client
        .post(&format!("{show}/comments"))
        .form(&[("csrf_token", token.as_str()), ("body", "Seen everywhere")])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        guest_b
            .get(&show)
            .send()
            .await
            .text()
            .contains("Seen everywhere")
    );
    let cache = flagon_cache::Caches::of(a.handle())
        .unwrap()
        .default()
        .clone();
    cache.clear().await.unwrap();
}
