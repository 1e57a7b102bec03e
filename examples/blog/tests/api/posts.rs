//! Posts: CRUD with permissions, drafts, 400 vs 422, problems in the request language,
//! pagination links, and the cached pages after a change.

use super::*;

#[tokio::test]
async fn authors_change_only_their_own_posts_and_editors_any() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let (_, bob) = user_token(&app, &client, "bob", Role::Author).await;
    let (_, eve) = user_token(&app, &client, "eve", Role::Editor).await;
    let id = create_published(&client, &ada, "Ada's post").await;
    let path = format!("/api/v1/posts/{id}");
    let change = json!({ "title": "Changed", "body": "New body", "published": true });

    let res = client
        .put(&path)
        .header("authorization", &bearer(&bob))
        .json(&change)
        .send()
        .await;
    assert_eq!(problem(&res, 403)["code"], "not-owner");
    let res = client
        .delete(&path)
        .header("authorization", &bearer(&bob))
        .send()
        .await;
    problem(&res, 403);

    let res = client
        .put(&path)
        .header("authorization", &bearer(&eve))
        .json(&change)
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let v: Value = res.json();
    assert_eq!(v["title"], "Changed");
    assert_eq!(v["slug"], "ada-s-post", "the slug stays");

    let res = client
        .put(&path)
        .header("authorization", &bearer(&ada))
        .json(&json!({ "title": "Mine again", "body": "Back" }))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(res.json::<Value>()["status"], "draft");

    let res = client
        .delete(&path)
        .header("authorization", &bearer(&ada))
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().is_empty());
    problem(&client.get(&path).send().await, 404);
    let res = client
        .delete(&path)
        .header("authorization", &bearer(&eve))
        .send()
        .await;
    problem(&res, 404);

    // Editors delete anyone's.
    let id = create_published(&client, &bob, "Bob's post").await;
    let res = client
        .delete(&format!("/api/v1/posts/{id}"))
        .header("authorization", &bearer(&eve))
        .send()
        .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn writing_needs_a_token_and_the_create_permission() {
    let app = app();
    let client = common::client(&app).await;
    let gus = common::account(&app, "gus@example.com", "gus", PASSWORD, Role::Author).await;
    let db = common::db(&app);
    db.query("UPDATE users SET role = 'guest' WHERE id = ?")
        .bind(gus)
        .execute(&*db)
        .await
        .unwrap();
    let guest = tokens(&client, "gus@example.com").await.0;
    let res = client
        .post("/api/v1/posts")
        .json(&json!({ "title": "t", "body": "b" }))
        .send()
        .await;
    assert_eq!(problem(&res, 401)["code"], "login-required");
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    let res = create_post(&client, &guest, json!({ "title": "t", "body": "b" })).await;
    problem(&res, 403);
    let list: Value = client.get("/api/v1/posts").send().await.json();
    assert_eq!(list["meta"]["total"], 0);
}

#[tokio::test]
async fn drafts_are_shown_only_to_their_author_and_editors() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let (_, bob) = user_token(&app, &client, "bob", Role::Author).await;
    let (_, eve) = user_token(&app, &client, "eve", Role::Editor).await;
    let res = create_post(&client, &ada, json!({ "title": "Secret", "body": "Draft" })).await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>()["id"].as_i64().unwrap();
    let path = format!("/api/v1/posts/{id}");

    let anonymous = problem(&client.get(&path).send().await, 404);
    let other = client
        .get(&path)
        .header("authorization", &bearer(&bob))
        .send()
        .await;
    // Someone else's draft is not there: the same answer as a missing post.
    assert_eq!(problem(&other, 404), anonymous);
    let missing = problem(&client.get("/api/v1/posts/999999").send().await, 404);
    assert_eq!(missing, anonymous);
    problem(&client.get("/api/v1/posts/not-a-number").send().await, 404);
    let res = client
        .put(&path)
        .header("authorization", &bearer(&bob))
        .json(&json!({ "title": "x", "body": "y" }))
        .send()
        .await;
    problem(&res, 404);

    for token in [&ada, &eve] {
        let res = client
            .get(&path)
            .header("authorization", &bearer(token))
            .send()
            .await;
        assert_eq!(res.status(), 200, "{}", res.text());
        assert_eq!(res.json::<Value>()["status"], "draft");
        assert_eq!(res.header("cache-control"), Some("private"));
    }
    let list: Value = client
        .get("/api/v1/posts")
        .header("authorization", &bearer(&ada))
        .send()
        .await
        .json();
    assert_eq!(list["meta"]["total"], 0, "drafts are never listed: {list}");
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_a_400_and_a_bad_field_a_422() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let send = |ct: &'static str, body: &'static str| {
        let client = &client;
        let auth = bearer(&ada);
        async move {
            client
                .post("/api/v1/posts")
                .header("authorization", &auth)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
        }
    };
    let json_ct = "application/json";
    let cases_400 = [
        (
            "text/plain",
            r#"{"title":"t","body":"b"}"#,
            "unsupported-content-type",
        ),
        (
            "application/x-www-form-urlencoded",
            "title=t&body=b",
            "unsupported-content-type",
        ),
        (json_ct, r#"{"title": "t", "body": "#, "malformed-json"),
        (json_ct, "", "malformed-json"),
        (json_ct, r#"["title", "body"]"#, "not-an-object"),
        (json_ct, "null", "not-an-object"),
    ];
    for (ct, body, code) in cases_400 {
        let v = problem(&send(ct, body).await, 400);
        assert_eq!(v["code"], code, "{ct} {body}: {v}");
    }
    let v = problem(&send(json_ct, "{\"title\": ").await, 400);
    assert!(
        v["detail"].as_str().unwrap().contains("line 1"),
        "names where: {v}"
    );

    let cases_422 = [
        (r#"{"title":"t","body":"b","colour":"red"}"#, "colour"),
        (r#"{"title":5,"body":"b"}"#, "title"),
        (r#"{"title":"t"}"#, "body"),
        (r#"{"title":"t","body":"b","published":"yes"}"#, "published"),
        (r#"{"title":"t","body":"b","tags":"a,b"}"#, "tags"),
        (r#"{"title":"t","body":"b","tags":[1]}"#, "tags"),
        (r#"{"title":"   ","body":"b"}"#, "title"),
        (r#"{"title":"t","body":"  "}"#, "body"),
        (
            r#"{"title":"t","body":"b","tags":["a","b","c","d","e","f","g","h","i","j","k"]}"#,
            "tags",
        ),
    ];
    for (body, field) in cases_422 {
        let v = problem(&send(json_ct, body).await, 422);
        assert_eq!(v["code"], "invalid-field", "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let long = json!({ "title": "x".repeat(201), "body": "b" });
    let res = create_post(&client, &ada, long).await;
    assert_eq!(problem(&res, 422)["field"], "title");
    // A charset parameter and a +json type are JSON too.
    let ok = send(
        "application/json; charset=utf-8",
        r#"{"title":"t","body":"b"}"#,
    )
    .await;
    assert_eq!(ok.status(), 201, "{}", ok.text());
    let ok = send("application/vnd.blog+json", r#"{"title":"t2","body":"b"}"#).await;
    assert_eq!(ok.status(), 201, "{}", ok.text());

    // A body far over the limit: 413, as a problem.
    let huge = format!(r#"{{"title":"t","body":"{}"}}"#, "x".repeat(600 * 1024));
    let res = client
        .post("/api/v1/posts")
        .header("authorization", &bearer(&ada))
        .header("content-type", json_ct)
        .body(huge)
        .send()
        .await;
    problem(&res, 413);

    // The token route reads its body the same way.
    let res = client
        .post("/api/v1/auth/token")
        .header("content-type", json_ct)
        .body("{nope")
        .send()
        .await;
    assert_eq!(problem(&res, 400)["code"], "malformed-json");
    let res = client
        .post("/api/v1/auth/token")
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD, "admin": true }))
        .send()
        .await;
    assert_eq!(problem(&res, 422)["field"], "admin");
    let res = client
        .post("/api/v1/auth/token")
        .json(&json!({ "email": "ada@example.com" }))
        .send()
        .await;
    assert_eq!(problem(&res, 422)["field"], "password");
}

#[tokio::test]
async fn problems_are_in_the_request_language() {
    let app = app();
    let client = common::client(&app).await;
    let res = client
        .post("/api/v1/auth/token")
        .header("accept-language", "zh-CN")
        .json(&json!({ "email": "x@example.com", "password": "wrong password" }))
        .send()
        .await;
    assert_eq!(problem(&res, 401)["detail"], "邮箱或密码错误。");
    let res = client
        .post("/api/v1/auth/token")
        .header("accept-language", "en")
        .json(&json!({ "email": "x@example.com", "password": "wrong password" }))
        .send()
        .await;
    assert_eq!(problem(&res, 401)["detail"], "Wrong email or password.");
}

#[tokio::test]
async fn the_list_pages_with_links_in_the_body_and_the_link_header() {
    let app = app_with("[blog]\nper_page = 2\n");
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    for n in 1..=5 {
        create_published(&client, &ada, &format!("Post {n}")).await;
    }
    let res = create_post(&client, &ada, json!({ "title": "Draft", "body": "b" })).await;
    assert_eq!(res.status(), 201);

    let res = client.get("/api/v1/posts").send().await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json();
    assert_eq!(
        v["meta"],
        json!({ "page": 1, "per_page": 2, "total": 5, "pages": 3 })
    );
    let titles: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Post 5", "Post 4"], "newest first");
    assert_eq!(v["links"]["self"], "/api/v1/posts?page=1&per_page=2");
    assert_eq!(v["links"]["first"], "/api/v1/posts?page=1&per_page=2");
    assert_eq!(v["links"]["last"], "/api/v1/posts?page=3&per_page=2");
    assert_eq!(v["links"]["next"], "/api/v1/posts?page=2&per_page=2");
    assert_eq!(v["links"]["prev"], Value::Null);
    assert_eq!(
        res.header("link"),
        Some(
            "</api/v1/posts?page=1&per_page=2>; rel=\"first\", </api/v1/posts?page=3&per_page=2>; rel=\"last\", \
             </api/v1/posts?page=2&per_page=2>; rel=\"next\""
        )
    );

    // Following `next` to the end.
    let res = client.get("/api/v1/posts?page=3&per_page=2").send().await;
    let v: Value = res.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["title"], "Post 1");
    assert_eq!(v["links"]["next"], Value::Null);
    assert_eq!(v["links"]["prev"], "/api/v1/posts?page=2&per_page=2");
    assert!(res.header("link").unwrap().contains("rel=\"prev\""));
    assert!(!res.header("link").unwrap().contains("rel=\"next\""));

    let v: Value = client.get("/api/v1/posts?per_page=500").send().await.json();
    assert_eq!(v["meta"]["per_page"], 100, "capped");

    for bad in ["page=0", "page=abc", "per_page=-1", "page=1&page=2"] {
        let v = problem(
            &client.get(&format!("/api/v1/posts?{bad}")).send().await,
            400,
        );
        assert!(v["detail"].as_str().unwrap().contains("page"), "{bad}: {v}");
    }
    problem(&client.get("/api/v1/posts?page=9").send().await, 404);
}

/// A post written, changed or deleted through the API shows at once on the cached index
/// and post pages.
#[tokio::test]
async fn api_changes_are_seen_at_once_on_the_cached_pages() {
    let app = app();
    let client = common::client(&app).await;
    let (_, ada) = user_token(&app, &client, "ada", Role::Author).await;
    let id = create_published(&client, &ada, "Before the change").await;
    let page = |path: &str| {
        let (client, path) = (&client, path.to_owned());
        async move { client.get(&path).send().await }
    };
    let show = "/posts/before-the-change";
    // Both pages are rendered (and cached) with the old title.
    assert!(page(show).await.text().contains("Before the change"));
    assert!(page("/").await.text().contains("Before the change"));
    let res = client
        .put(&format!("/api/v1/posts/{id}"))
        .header("authorization", &bearer(&ada))
        .json(&json!({ "title": "After the change", "body": "New", "published": true }))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let shown = page(show).await.text();
    assert!(shown.contains("After the change") && !shown.contains("Before the change"));
    let index = page("/").await.text();
    assert!(index.contains("After the change") && !index.contains("Before the change"));
    let res = client
        .delete(&format!("/api/v1/posts/{id}"))
        .header("authorization", &bearer(&ada))
        .send()
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(page(show).await.status(), 404);
    assert!(!page("/").await.text().contains("After the change"));
}
