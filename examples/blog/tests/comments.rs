//! Comments: login required, nested replies within one post, validation, the rate limit,
//! moderation, and the cached post page showing a new comment at once.

mod common;

use example_blog::content::{self, PostInput};
use example_blog::models::Account;
use example_blog::posts::pages::{CommentRow, MAX_DEPTH, comment_tree};
use flagon::App;
use flagon::testing::TestClient;
use flagon_login::Role;
use flagon_login::testing::login_as;

async fn user(app: &App, name: &str, role: Role) -> (TestClient, Account) {
    let client = common::client(app).await;
    let email = format!("{name}@example.com");
    let id = common::account(app, &email, name, "correct horse battery", role).await;
    let account = Account::by_id(&common::db(app), id).await.unwrap().unwrap();
    login_as(&client, &account).await;
    (client, account)
}

async fn post(app: &App, author: i64, title: &str, published: bool) -> (i64, String) {
    let db = common::db(app);
    let mut tx = db.begin().await.unwrap();
    let input = PostInput {
        title: title.into(),
        body: "Body.".into(),
        published,
        ..PostInput::default()
    };
    let out = content::insert_post(&mut tx, author, &input.check().unwrap(), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    content::changed(app.handle()).await;
    out
}

async fn comment(
    client: &TestClient,
    slug: &str,
    body: &str,
    parent: Option<i64>,
) -> flagon::testing::TestResponse {
    let token = common::token_from(client, &format!("/posts/{slug}")).await;
    let parent = parent.map(|p| p.to_string()).unwrap_or_default();
    client
        .post(&format!("/posts/{slug}/comments"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("body", body),
            ("parent_id", parent.as_str()),
        ])
        .send()
        .await
}

/// The id in a `…#comment-ID` redirect.
fn comment_id(res: &flagon::testing::TestResponse) -> i64 {
    let at = res.location().expect("a redirect");
    at.rsplit_once("#comment-")
        .expect("an anchor")
        .1
        .parse()
        .unwrap()
}

#[tokio::test]
async fn commenting_needs_a_login() {
    let app = common::app();
    let (client, ada) = user(&app, "ada", Role::Author).await;
    let (_, slug) = post(&app, ada.id, "Open", true).await;
    // A guest with a valid CSRF token (the browser's secret kept from a form page).
    let token = common::token_from(&client, &format!("/posts/{slug}")).await;
    let secret = client.cookie("__Host-csrf").expect("the CSRF cookie");
    client.clear_cookies();
    client.set_cookie("__Host-csrf", &secret);
    let res = client
        .post(&format!("/posts/{slug}/comments"))
        .form(&[("csrf_token", token.as_str()), ("body", "hi")])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        res.location().unwrap_or("").contains("next="),
        "{:?}",
        res.location()
    );
    let n: i64 = common::db(&app)
        .query_scalar("SELECT COUNT(*) FROM comments")
        .fetch_one(&*common::db(&app))
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn comments_and_replies_show_nested_and_at_once() {
    let app = common::app();
    let (ada_client, ada) = user(&app, "ada", Role::Author).await;
    let (bob_client, _) = user(&app, "bob", Role::Author).await;
    let (_, slug) = post(&app, ada.id, "Discuss", true).await;
    let guest = common::client(&app).await;
    let page = guest.get(&format!("/posts/{slug}")).send().await.text();
    assert!(
        page.contains("No comments") && page.contains("Log in to comment."),
        "{page}"
    );

    let res = comment(&bob_client, &slug, "First <b>thought</b>", None).await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let first = comment_id(&res);
    // The reply form answers a comment given by `?reply=`.
    let form = ada_client
        .get(&format!("/posts/{slug}?reply={first}"))
        .send()
        .await
        .text();
    assert!(
        form.contains(&format!("name=\"parent_id\" value=\"{first}\"")),
        "{form}"
    );
    assert!(form.contains("Reply to bob"), "{form}");
    let res = comment(&ada_client, &slug, "A reply", Some(first)).await;
    assert_eq!(res.status(), 303);
    let reply = comment_id(&res);

    // The guest sees both at once (the cached page was forgotten), the reply inside the first.
    let page = guest.get(&format!("/posts/{slug}")).send().await.text();
    assert!(page.contains("2 comments"), "{page}");
    assert!(
        page.contains("First &lt;b&gt;thought&lt;/b&gt;"),
        "escaped: {page}"
    );
    let outer = page.find(&format!("id=\"comment-{first}\"")).unwrap();
    let inner = page.find(&format!("id=\"comment-{reply}\"")).unwrap();
    let between = &page[outer..inner];
    assert!(
        between.contains("<ol>") && !between.contains("</li>"),
        "nested: {between}"
    );
    let zh = guest
        .get(&format!("/posts/{slug}"))
        .header("accept-language", "zh")
        .send()
        .await
        .text();
    assert!(zh.contains("2 条评论") && zh.contains("登录后评论"), "{zh}");
}

#[tokio::test]
async fn a_reply_must_answer_a_comment_of_the_same_post() {
    let app = common::app();
    let (client, ada) = user(&app, "ada", Role::Author).await;
    let (_, one) = post(&app, ada.id, "One", true).await;
    let (_, two) = post(&app, ada.id, "Two", true).await;
    let on_one = comment_id(&comment(&client, &one, "on one", None).await);
    let res = comment(&client, &two, "misplaced reply", Some(on_one)).await;
    assert_eq!(res.status(), 422);
    let html = res.text();
    assert!(
        html.contains("You can only reply to a comment of this post."),
        "{html}"
    );
    assert!(
        html.contains("misplaced reply"),
        "what was typed stays: {html}"
    );
    let res = comment(&client, &two, "reply to nothing", Some(999_999)).await;
    assert_eq!(res.status(), 422);
    let token = common::token_from(&client, &format!("/posts/{two}")).await;
    let res = client
        .post(&format!("/posts/{two}/comments"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("body", "x"),
            ("parent_id", "1 OR 1=1"),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 400);
    let n: i64 = common::db(&app)
        .query_scalar("SELECT COUNT(*) FROM comments")
        .fetch_one(&*common::db(&app))
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn empty_long_and_draft_comments_are_refused() {
    let app = common::app();
    let (client, ada) = user(&app, "ada", Role::Author).await;
    let (_, slug) = post(&app, ada.id, "Open", true).await;
    let res = comment(&client, &slug, "   ", None).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().contains("A comment is 1 to 5000 characters"));
    let long = "x".repeat(5001);
    let res = comment(&client, &slug, &long, None).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().contains(&long), "what was typed stays");
    let (_, draft) = post(&app, ada.id, "Draft", false).await;
    let res = comment(&client, &draft, "early", None).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .contains("Comments open when the post is published.")
    );
    let missing = comment(&client, &slug, "fine", None).await;
    assert_eq!(missing.status(), 303);
    let token = common::token_from(&client, &format!("/posts/{slug}")).await;
    let res = client
        .post("/posts/nope/comments")
        .form(&[("csrf_token", token.as_str()), ("body", "x")])
        .send()
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn posting_is_limited_to_five_a_minute() {
    let app = common::app();
    let (client, ada) = user(&app, "ada", Role::Author).await;
    let (_, slug) = post(&app, ada.id, "Busy", true).await;
    for i in 0..5 {
        let res = comment(&client, &slug, &format!("comment {i}"), None).await;
        assert_eq!(res.status(), 303, "comment {i}");
    }
    let res = comment(&client, &slug, "one too many", None).await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

#[tokio::test]
async fn hidden_comments_are_shown_to_moderators_only() {
    let app = common::app();
    let (ada_client, ada) = user(&app, "ada", Role::Author).await;
    let (eve_client, _) = user(&app, "eve", Role::Editor).await;
    let (_, slug) = post(&app, ada.id, "Moderated", true).await;
    let rude = comment_id(&comment(&ada_client, &slug, "rude words", None).await);
    let lone = comment_id(&comment(&ada_client, &slug, "lone rude words", None).await);
    comment(&ada_client, &slug, "a fair answer", Some(rude)).await;
    let db = common::db(&app);
    db.query("UPDATE comments SET status = 'hidden' WHERE id IN (?, ?)")
        .bind(rude)
        .bind(lone)
        .execute(&*db)
        .await
        .unwrap();
    content::comments_changed(app.handle()).await;
    let guest = common::client(&app).await;
    let page = guest.get(&format!("/posts/{slug}")).send().await.text();
    assert!(!page.contains("rude words"), "{page}");
    assert!(!page.contains(&format!("comment-{lone}")), "{page}");
    assert!(
        page.contains("hidden by a moderator") && page.contains("a fair answer"),
        "{page}"
    );
    assert!(
        page.contains("1 comment") || page.contains("One comment"),
        "{page}"
    );
    // A reply to a hidden comment is refused to non-moderators.
    let res = comment(&ada_client, &slug, "still arguing", Some(rude)).await;
    assert_eq!(res.status(), 422);
    let theirs = eve_client
        .get(&format!("/posts/{slug}"))
        .send()
        .await
        .text();
    assert!(
        theirs.contains("rude words") && theirs.contains("lone rude words"),
        "{theirs}"
    );
    assert!(
        theirs.contains("comment hidden"),
        "marked for moderators: {theirs}"
    );
    // The guest's page still has none of it (moderators' pages are cached apart).
    assert!(
        !guest
            .get(&format!("/posts/{slug}"))
            .send()
            .await
            .text()
            .contains("rude words")
    );
}

#[test]
fn deep_reply_chains_stop_nesting_at_the_maximum_depth() {
    let rows: Vec<CommentRow> = (1..=20)
        .map(|id| CommentRow {
            id,
            parent_id: (id > 1).then_some(id - 1),
            author: "a".into(),
            body: format!("c{id}"),
            status: "visible".into(),
            created_at: 0,
        })
        .collect();
    let tree = comment_tree(&rows, false);
    assert_eq!(tree.len(), 1);
    let mut depth = 0;
    let mut level = &tree;
    while let Some(node) = level.iter().find(|n| !n.children.is_empty()) {
        depth += 1;
        level = &node.children;
    }
    assert_eq!(depth, MAX_DEPTH - 1, "levels below the top");
    let deepest: usize = level.len();
    assert_eq!(
        deepest,
        20 - (MAX_DEPTH - 1),
        "the rest share the deepest level"
    );
}
