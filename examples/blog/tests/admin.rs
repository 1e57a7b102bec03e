//! The admin pages: who may see them, users (role, deactivation), posts, comment
//! moderation by editors, the mail outbox with failed messages retried.

mod accounts;
mod common;

use accounts::{PASSWORD, logged_in, login};
use flagon_login::Role;
use flagon_mail::{Mail, Message, Status};

async fn exec(app: &flagon::App, sql: &str) {
    common::db(app)
        .query(sql)
        .execute(&*common::db(app))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A post by `author` with one comment; returns the comment's id.
async fn post_with_comment(app: &flagon::App, author: i64) -> i64 {
    let now = example_blog::models::now();
    exec(
        app,
        &format!(
            "INSERT INTO posts (id, author_id, title, slug, body_md, body_html, status, published_at, created_at, updated_at) \
             VALUES (1, {author}, 'Hello world', 'hello-world', 'hi', '<p>hi</p>', 'published', {now}, {now}, {now})"
        ),
    )
    .await;
    exec(
        app,
        &format!(
            "INSERT INTO comments (id, post_id, author_id, body, status, created_at) \
             VALUES (7, 1, {author}, 'Buy cheap pills', 'visible', {now})"
        ),
    )
    .await;
    7
}

#[tokio::test]
async fn the_admin_pages_are_for_admins() {
    let app = common::app();
    common::client(&app).await; // migrated
    let admin = common::account(&app, "root@example.com", "root", PASSWORD, Role::Admin).await;
    let author = common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let editor = common::account(&app, "ed@example.com", "ed", PASSWORD, Role::Editor).await;
    let guest = common::client(&app).await;
    let res = guest.get("/admin/").send().await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/auth/login?next=%2Fadmin%2F"));
    let ann = logged_in(&app, author).await;
    let ed = logged_in(&app, editor).await;
    let root = logged_in(&app, admin).await;
    for path in ["/admin/", "/admin/users", "/admin/posts", "/admin/outbox"] {
        assert_eq!(ann.get(path).send().await.status(), 403, "{path}");
        assert_eq!(ed.get(path).send().await.status(), 403, "{path}");
        let res = root.get(path).send().await;
        assert_eq!(res.status(), 200, "{path}: {}", res.text());
    }
    assert_eq!(ann.get("/admin/comments").send().await.status(), 403);
    assert_eq!(ed.get("/admin/comments").send().await.status(), 200);
    let index = root.get("/admin/").send().await.text();
    assert!(index.contains("Administration"), "{index}");
    let zh = root
        .get("/admin/users")
        .header("accept-language", "zh")
        .send()
        .await
        .text();
    assert!(zh.contains("<h1>用户</h1>"), "{zh}");
    assert!(zh.contains("ann@example.com"), "{zh}");
    // The nav shows the admin link to admins only.
    assert!(
        root.get("/auth/settings")
            .send()
            .await
            .text()
            .contains("href=\"/admin/\"")
    );
    assert!(
        !ann.get("/auth/settings")
            .send()
            .await
            .text()
            .contains("href=\"/admin/\"")
    );
}

#[tokio::test]
async fn an_admin_changes_roles_and_deactivates_accounts_but_not_their_own() {
    let app = common::app();
    common::client(&app).await; // migrated
    let admin = common::account(&app, "root@example.com", "root", PASSWORD, Role::Admin).await;
    let author = common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let root = logged_in(&app, admin).await;
    let page = root.get("/admin/users").send().await.text();
    assert!(page.contains("ann@example.com"), "{page}");
    let token = common::csrf_token(&page);
    let post = |id: i64, form: Vec<(&'static str, &'static str)>| {
        let mut form: Vec<(String, String)> = form
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        form.push(("csrf_token".into(), token.clone()));
        let root = &root;
        async move {
            root.post(&format!("/admin/users/{id}"))
                .form(&form)
                .send()
                .await
        }
    };
    let res = post(author, vec![("role", "editor"), ("active", "1")]).await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/admin/users"));
    let ann = accounts::account(&app, "ann@example.com").await.unwrap();
    assert_eq!(ann.role, "editor");
    assert_eq!(ann.active, 1);

    // Ann is logged in somewhere; deactivating her ends that.
    let ann_client = logged_in(&app, author).await;
    assert_eq!(ann_client.get("/auth/settings").send().await.status(), 200);
    let res = post(author, vec![("role", "author")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        accounts::account(&app, "ann@example.com")
            .await
            .unwrap()
            .active,
        0
    );
    assert_ne!(ann_client.get("/auth/settings").send().await.status(), 200);
    let other = common::client(&app).await;
    assert_eq!(
        login(&other, "ann@example.com", PASSWORD).await.status(),
        403
    );

    let res = post(author, vec![("role", "emperor"), ("active", "1")]).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().contains("Choose a role"), "{}", res.text());
    let res = post(admin, vec![("role", "author"), ("active", "1")]).await;
    assert_eq!(res.status(), 400, "no self-demotion");
    assert!(res.text().contains("your own account"), "{}", res.text());
    let res = post(admin, vec![("role", "admin")]).await;
    assert_eq!(res.status(), 400, "no self-deactivation");
    assert_eq!(post(999, vec![("role", "author")]).await.status(), 404);
    assert_eq!(
        accounts::account(&app, "root@example.com")
            .await
            .unwrap()
            .role,
        "admin"
    );
    let res = root.get("/admin/users?page=0").send().await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn the_posts_list_links_every_post() {
    let app = common::app();
    common::client(&app).await; // migrated
    let admin = common::account(&app, "root@example.com", "root", PASSWORD, Role::Admin).await;
    post_with_comment(&app, admin).await;
    let root = logged_in(&app, admin).await;
    let page = root.get("/admin/posts").send().await.text();
    assert!(page.contains("href=\"/posts/hello-world\""), "{page}");
    assert!(page.contains("href=\"/posts/hello-world/edit\""), "{page}");
    assert!(page.contains("Published"), "{page}");
}

#[tokio::test]
async fn editors_hide_and_show_comments() {
    let app = common::app();
    common::client(&app).await; // migrated
    let author = common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let editor = common::account(&app, "ed@example.com", "ed", PASSWORD, Role::Editor).await;
    let comment = post_with_comment(&app, author).await;
    let ed = logged_in(&app, editor).await;
    let page = ed.get("/admin/comments").send().await.text();
    assert!(page.contains("Buy cheap pills"), "{page}");
    let token = common::csrf_token(&page);
    let res = ed
        .post(&format!("/admin/comments/{comment}/hide"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let status = |app: &flagon::App| {
        let db = common::db(app);
        async move {
            db.query_scalar::<String>("SELECT status FROM comments WHERE id = 7")
                .fetch_one(&*db)
                .await
                .unwrap()
        }
    };
    assert_eq!(status(&app).await, "hidden");
    let hidden = ed.get("/admin/comments?status=hidden").send().await.text();
    assert!(
        hidden.contains("Buy cheap pills") && hidden.contains("The comment is hidden."),
        "{hidden}"
    );
    let visible = ed.get("/admin/comments?status=visible").send().await.text();
    assert!(!visible.contains("Buy cheap pills"), "{visible}");
    let res = ed
        .post(&format!("/admin/comments/{comment}/show"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(status(&app).await, "visible");
    let res = ed
        .post("/admin/comments/999/hide")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        ed.get("/admin/comments?status=evil").send().await.status(),
        400
    );
    // Without the CSRF token nothing changes.
    let res = ed
        .post(&format!("/admin/comments/{comment}/hide"))
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(status(&app).await, "visible");
    // Authors may not moderate.
    let ann = logged_in(&app, author).await;
    let res = ann
        .post(&format!("/admin/comments/{comment}/hide"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert!(res.status() == 403, "{}", res.status());
}

#[tokio::test]
async fn the_outbox_lists_messages_and_retries_failed_ones() {
    let app = common::app();
    common::client(&app).await; // migrated
    let admin = common::account(&app, "root@example.com", "root", PASSWORD, Role::Admin).await;
    let root = logged_in(&app, admin).await;
    let mail = Mail::of(app.handle()).unwrap();
    let msg = |to: &str| {
        Message::builder()
            .to(to)
            .subject("hi")
            .text("hello")
            .build()
            .unwrap()
    };
    let ok = mail.enqueue(&msg("ok@example.com")).await.unwrap();
    let bad = mail.enqueue(&msg("bounced@example.com")).await.unwrap();
    // The server refused this one for good.
    common::db(&app)
        .query("UPDATE flagon_mail_outbox SET status = 'failed', attempts = 1, last_error = '550 no such user' WHERE id = ?")
        .bind(bad)
        .execute(&*common::db(&app))
        .await
        .unwrap();
    let page = root.get("/admin/outbox").send().await;
    assert_eq!(page.status(), 200);
    let page = page.text();
    assert!(
        page.contains("bounced@example.com") && page.contains("550 no such user"),
        "{page}"
    );
    assert!(
        page.contains(&format!("/admin/outbox/{bad}/retry")),
        "{page}"
    );
    assert!(
        !page.contains(&format!("/admin/outbox/{ok}/retry")),
        "pending: no retry"
    );
    let failed = root.get("/admin/outbox?status=failed").send().await.text();
    assert!(
        failed.contains("bounced@example.com") && !failed.contains("ok@example.com"),
        "{failed}"
    );
    assert_eq!(
        root.get("/admin/outbox?status=lost").send().await.status(),
        400
    );

    let token = common::csrf_token(&page);
    let res = root
        .post(&format!("/admin/outbox/{bad}/retry"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let after = root.get("/admin/outbox").send().await.text();
    assert!(after.contains("One message will be sent again."), "{after}");
    let entries = mail.queue().list(None, 10).await.unwrap();
    let entry = entries.iter().find(|e| e.id == bad).unwrap();
    assert_eq!(entry.status, Status::Pending);
    assert_eq!(entry.attempts, 0);
    let res = root
        .post(&format!("/admin/outbox/{ok}/retry"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 400, "a pending message is not retried");
    // Retry every failed one.
    common::db(&app)
        .query("UPDATE flagon_mail_outbox SET status = 'dead' WHERE id = ?")
        .bind(ok)
        .execute(&*common::db(&app))
        .await
        .unwrap();
    let res = root
        .post("/admin/outbox/retry")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(mail.queue().count(Status::Pending).await.unwrap(), 2);
    // Both go out.
    let sent = accounts::delivered(&app, 2).await;
    assert_eq!(sent.len(), 2);
}
