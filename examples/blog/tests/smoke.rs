//! The app builds, migrates and serves its stylesheet.

mod common;

#[tokio::test]
async fn the_app_builds_migrates_and_serves_its_stylesheet() {
    let app = common::app();
    let client = common::client(&app).await;
    let res = client.get("/static/style.css").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.header("content-type"), Some("text/css; charset=utf-8"));
    let users: i64 = common::db(&app)
        .query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&*common::db(&app))
        .await
        .expect("the users table exists");
    assert_eq!(users, 0);
}
