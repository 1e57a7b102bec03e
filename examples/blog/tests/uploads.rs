//! Image uploads: the type checked by content, the size limit, random names, the headers
//! they are served with, and names that cannot leave the upload directory.

mod common;

use example_blog::models::Account;
use flagon::App;
use flagon::testing::{TestClient, TestResponse};
use flagon_login::Role;
use flagon_login::testing::login_as;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

struct Setup {
    app: App,
    client: TestClient,
    dir: tempfile::TempDir,
}

async fn setup(max_bytes: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    let app = common::app_with(&format!(
        "[blog]\nupload_dir = {:?}\nmax_upload_bytes = {max_bytes}\n",
        uploads.display().to_string()
    ));
    let client = common::client(&app).await;
    let id = common::account(
        &app,
        "ada@example.com",
        "ada",
        "correct horse battery",
        Role::Author,
    )
    .await;
    let account = Account::by_id(&common::db(&app), id)
        .await
        .unwrap()
        .unwrap();
    login_as(&client, &account).await;
    Setup { app, client, dir }
}

/// A multipart body with `fields` and an `image` part.
fn multipart(fields: &[(&str, &str)], image: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----flagon-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, content_type, bytes)) = image {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\n\
                 Content-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn submit(s: &Setup, title: &str, image: Option<(&str, &str, &[u8])>) -> TestResponse {
    let token = common::token_from(&s.client, "/posts/new").await;
    let fields = [
        ("csrf_token", token.as_str()),
        ("title", title),
        ("body", "With a picture."),
        ("published", "on"),
    ];
    let (content_type, body) = multipart(&fields, image);
    s.client
        .post("/posts/new")
        .header("content-type", &content_type)
        .body(body)
        .send()
        .await
}

fn stored(s: &Setup) -> Vec<String> {
    match std::fs::read_dir(s.dir.path().join("uploads")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn an_image_is_stored_under_a_random_name_and_served_with_its_type() {
    let s = setup(4096).await;
    let res = submit(
        &s,
        "Picture",
        Some(("../../evil name.html", "text/html", PNG)),
    )
    .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let names = stored(&s);
    assert_eq!(names.len(), 1);
    let name = &names[0];
    assert!(
        example_blog::posts::valid_upload_name(name).is_some(),
        "{name}"
    );
    assert!(
        name.ends_with(".png"),
        "the type comes from the content: {name}"
    );

    let page = s.client.get("/posts/picture").send().await.text();
    assert!(page.contains(&format!("src=\"/uploads/{name}\"")), "{page}");
    assert!(
        s.client
            .get("/")
            .send()
            .await
            .text()
            .contains(&format!("/uploads/{name}"))
    );

    let guest = common::client(&s.app).await;
    let img = guest.get(&format!("/uploads/{name}")).send().await;
    assert_eq!(img.status(), 200);
    assert_eq!(img.header("content-type"), Some("image/png"));
    assert_eq!(img.header("x-content-type-options"), Some("nosniff"));
    assert!(
        img.header("cache-control")
            .unwrap_or("")
            .contains("max-age=31536000")
    );
    assert_eq!(img.bytes().as_ref(), PNG);

    // Another upload gets another name; a new image on edit replaces the post's.
    let token = common::token_from(&s.client, "/posts/picture/edit").await;
    let gif = b"GIF89a\x01\0\x01\0\0\0\0;";
    let (ct, body) = multipart(
        &[
            ("csrf_token", token.as_str()),
            ("title", "Picture"),
            ("body", "x"),
            ("published", "on"),
        ],
        Some(("a.png", "image/png", gif)),
    );
    let res = s
        .client
        .post("/posts/picture/edit")
        .header("content-type", &ct)
        .body(body)
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let names = stored(&s);
    assert_eq!(names.len(), 2);
    let gif_name = names
        .iter()
        .find(|n| n.ends_with(".gif"))
        .expect("stored as a GIF");
    let page = s.client.get("/posts/picture").send().await.text();
    assert!(page.contains(gif_name.as_str()), "{page}");
    let served = guest.get(&format!("/uploads/{gif_name}")).send().await;
    assert_eq!(served.header("content-type"), Some("image/gif"));
}

#[tokio::test]
async fn an_html_file_named_png_is_refused() {
    let s = setup(4096).await;
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let res = submit(&s, "Trojan", Some(("cat.png", "image/png", html))).await;
    assert_eq!(res.status(), 415);
    let page = res.text();
    assert!(
        page.contains("The image must be a PNG, JPEG, GIF or WebP file."),
        "{page}"
    );
    assert!(
        page.contains("value=\"Trojan\""),
        "the form keeps what was typed: {page}"
    );
    assert!(stored(&s).is_empty());
    assert_eq!(s.client.get("/posts/trojan").send().await.status(), 404);
}

#[tokio::test]
async fn an_oversized_upload_is_a_413_with_a_message() {
    let s = setup(1024).await;
    let mut big = PNG.to_vec();
    big.resize(5000, 0);
    let res = submit(&s, "Huge", Some(("big.png", "image/png", &big))).await;
    assert_eq!(res.status(), 413);
    let page = res.text();
    assert!(
        page.contains("The image is too large: at most 1 KiB."),
        "{page}"
    );
    assert!(stored(&s).is_empty());
    // Larger than the whole request body limit: core's 413.
    let huge = vec![0u8; 3 * 1024 * 1024];
    let res = submit(&s, "Huger", Some(("big.png", "image/png", &huge))).await;
    assert_eq!(res.status(), 413);
    assert!(stored(&s).is_empty());
}

#[tokio::test]
async fn no_name_reaches_outside_the_upload_directory() {
    let s = setup(4096).await;
    let uploads = s.dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(s.dir.path().join("secret.png"), PNG).unwrap();
    let fake = "0123456789abcdef0123456789abcdef";
    std::fs::write(uploads.join(format!("{fake}.html")), b"<script>x</script>").unwrap();
    let guest = common::client(&s.app).await;
    for path in [
        "/uploads/..%2Fsecret.png".to_owned(),
        "/uploads/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/uploads/%2e%2e%2fsecret.png".to_owned(),
        "/uploads/..".to_owned(),
        "/uploads/secret.png".to_owned(),
        format!("/uploads/{fake}.html"),
        format!("/uploads/{fake}.png"),
        format!("/uploads/{}.png", fake.to_uppercase()),
        format!("/uploads/{fake}.png%00.html"),
    ] {
        let res = guest.get(&path).send().await;
        assert_eq!(res.status(), 404, "{path}");
        assert_ne!(res.header("content-type"), Some("image/png"), "{path}");
    }
}
