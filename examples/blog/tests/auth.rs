//! Accounts end to end through the forms: registration with a verification mail queued in
//! the registration's transaction, verification links, login with a safe `next`, logout,
//! password reset and change, rate limits per address and per account, the stored
//! language preference.

mod accounts;
mod common;

use accounts::{PASSWORD, delivered, link, login, login_next, queued, read, register};
use example_blog::auth::tokens::{self, Purpose};
use flagon_login::Role;

async fn users(app: &flagon::App) -> i64 {
    common::db(app)
        .query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&*common::db(app))
        .await
        .expect("counts")
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_the_account_which_can_then_log_in() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let page = client.get("/auth/register").send().await;
    assert_eq!(page.status(), 200);
    assert!(page.text().contains("Create an account"), "{}", page.text());

    let res = register(&client, "Ann@Example.com", "ann", PASSWORD).await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/auth/login"));
    let ann = accounts::account(&app, "ann@example.com")
        .await
        .expect("created, lower-cased");
    assert!(ann.verified_at.is_none(), "created unverified");
    assert_eq!(ann.role, "author");
    assert_eq!(queued(&app).await, 1, "the mail is in the outbox");
    // The flash says where the link went.
    let next = client.get("/auth/login").send().await.text();
    assert!(next.contains("We sent a link to ann@example.com"), "{next}");

    // Not verified yet: the password is right, the login is refused, clearly.
    let res = login(&client, "ann@example.com", PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().contains("not verified yet"), "{}", res.text());

    let sent = delivered(&app, 1).await;
    let mail = read(&sent[0]);
    assert_eq!(mail.subject, "Verify your address for Flagon Blog");
    assert!(mail.to.contains("ann@example.com"), "{}", mail.to);
    assert!(mail.text.contains("Hello ann,"), "{}", mail.text);
    assert!(mail.html.contains("Verify my address"), "{}", mail.html);
    let path = link(&mail.text, "/auth/verify/");
    assert!(
        mail.text.contains(&format!("http://127.0.0.1:5000{path}")),
        "links start with [blog] public_url: {}",
        mail.text
    );
    assert_eq!(link(&mail.html, "/auth/verify/"), path);

    let res = client.get(&path).send().await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/auth/login"));
    let ann = accounts::account(&app, "ann@example.com").await.unwrap();
    assert!(ann.verified_at.is_some());
    // A second click is harmless.
    assert_eq!(client.get(&path).send().await.status(), 303);

    let res = login(&client, "ann@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/"));
    let settings = client.get("/auth/settings").send().await;
    assert_eq!(settings.status(), 200, "logged in");
    assert!(
        settings
            .text()
            .contains("<a class=\"who\" href=\"/auth/settings\">ann</a>"),
        "the nav names the user and links the settings: {}",
        settings.text()
    );
}

#[tokio::test]
async fn the_verification_mail_is_in_the_registering_users_language() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let token = common::token_from(&client, "/auth/register").await;
    let res = client
        .post("/auth/register")
        .header("accept-language", "zh-CN,zh;q=0.9")
        .form(&[
            ("email", "lin@example.com"),
            ("username", "小林子"),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let mail = read(&delivered(&app, 1).await[0]);
    assert_eq!(mail.subject, "验证你在 Flagon Blog 的邮箱");
    assert!(mail.text.contains("小林子，你好"), "{}", mail.text);
    assert!(mail.html.contains("验证我的邮箱"), "{}", mail.html);
    assert!(mail.html.contains("<html lang=\"zh\">"), "{}", mail.html);
}

#[tokio::test]
async fn bad_registrations_are_422_with_a_message_per_field_and_create_nothing() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let res = register(&client, "not-an-address", "ab", "short").await;
    assert_eq!(res.status(), 422);
    let page = res.text();
    assert!(
        page.contains("This is not a valid email address."),
        "{page}"
    );
    assert!(
        page.contains("A username has 3 to 32 characters."),
        "{page}"
    );
    assert!(page.contains("The password is too short"), "{page}");
    assert!(
        page.contains("value=\"ab\""),
        "the form keeps what was typed"
    );
    let res = register(&client, "ann@example.com", "ann smith", "password123").await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text().contains("only letters, digits"),
        "{}",
        res.text()
    );
    assert!(res.text().contains("too common"), "{}", res.text());
    // In Chinese for a Chinese reader.
    let token = common::token_from(&client, "/auth/register").await;
    let res = client
        .post("/auth/register")
        .header("accept-language", "zh")
        .form(&[
            ("email", "x"),
            ("username", "ann"),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text().contains("这不是有效的电子邮箱"),
        "{}",
        res.text()
    );
    assert_eq!(users(&app).await, 0);
    assert_eq!(queued(&app).await, 0);
}

#[tokio::test]
async fn an_injected_header_in_a_registration_name_or_address_is_refused() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let res = register(
        &client,
        "eve@example.com",
        "eve\r\nBcc: victim@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text().contains("only letters, digits"),
        "{}",
        res.text()
    );
    let res = register(
        &client,
        "eve@example.com\r\nBcc: victim@example.com",
        "eve",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text().contains("not a valid email address"),
        "{}",
        res.text()
    );
    let res = register(
        &client,
        "eve@example.com%0d%0aBcc:v@example.com",
        "eve",
        PASSWORD,
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(users(&app).await, 0);
    assert_eq!(queued(&app).await, 0, "nothing reached the outbox");
}

#[tokio::test]
async fn a_taken_username_is_said_and_a_taken_address_is_not() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let res = register(&client, "other@example.com", "ANN", PASSWORD).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text().contains("This username is taken"),
        "{}",
        res.text()
    );

    // The address has an account: the same answer as a new registration…
    let res = register(&client, "ann@example.com", "someone", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/auth/login"));
    let next = client.get("/auth/login").send().await.text();
    assert!(next.contains("We sent a link to ann@example.com"), "{next}");
    assert_eq!(users(&app).await, 1, "no second account");
    // …and the owner hears of it.
    let mail = read(&delivered(&app, 1).await[0]);
    assert_eq!(mail.subject, "Your account at Flagon Blog");
    assert!(
        mail.text.contains("already has an account"),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("/auth/reset"), "{}", mail.text);
    assert!(!mail.text.contains("/auth/verify/"), "{}", mail.text);
}

#[tokio::test]
async fn the_account_and_its_mail_are_one_transaction() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    // The outbox refuses this recipient: the registration fails after its INSERT.
    common::db(&app)
        .query(
            "CREATE TRIGGER refuse_doomed BEFORE INSERT ON flagon_mail_outbox \
             WHEN NEW.recipients LIKE '%doomed%' BEGIN SELECT RAISE(ABORT, 'outbox refused'); END",
        )
        .execute(&*common::db(&app))
        .await
        .expect("creates the trigger");
    let res = register(&client, "doomed@example.com", "doomed", PASSWORD).await;
    assert_eq!(res.status(), 500);
    assert!(
        accounts::account(&app, "doomed@example.com")
            .await
            .is_none(),
        "the account was rolled back with its mail"
    );
    assert_eq!(queued(&app).await, 0);
    let res = register(&client, "fine@example.com", "fine", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert!(accounts::account(&app, "fine@example.com").await.is_some());
    assert_eq!(queued(&app).await, 1);
}

#[tokio::test]
async fn expired_forged_and_misused_links_are_400_pages_that_say_why() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let id = common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let ann = example_blog::models::Account::by_id(&common::db(&app), id)
        .await
        .unwrap()
        .unwrap();
    let now = example_blog::models::now();
    let expired = tokens::sign(app.handle(), Purpose::Verify, &ann, now - 1);
    let res = client.get(&format!("/auth/verify/{expired}")).send().await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text().contains("This link has expired"),
        "{}",
        res.text()
    );

    let good = tokens::sign(app.handle(), Purpose::Verify, &ann, now + 60);
    let mut forged = good.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        forged.as_str(),
        "1.99999999999.AAAA",
        "garbage",
        "999.99999999999.AAAA",
    ] {
        let res = client.get(&format!("/auth/verify/{bad}")).send().await;
        assert_eq!(res.status(), 400, "{bad}");
        assert!(
            res.text().contains("This link is not valid"),
            "{}",
            res.text()
        );
    }
    // A longer expiry with the old signature: the expiry is signed.
    let (head, tag) = good.rsplit_once('.').unwrap();
    let (uid, _) = head.split_once('.').unwrap();
    let stretched = format!("{uid}.{}.{tag}", now + 999_999);
    assert_eq!(
        client
            .get(&format!("/auth/verify/{stretched}"))
            .send()
            .await
            .status(),
        400
    );
    // A verification link is no reset link.
    let res = client.get(&format!("/auth/reset/{good}")).send().await;
    assert_eq!(res.status(), 400);
    // In Chinese too.
    let res = client
        .get(&format!("/auth/verify/{expired}"))
        .header("accept-language", "zh")
        .send()
        .await;
    assert!(res.text().contains("此链接已过期"), "{}", res.text());
    // Bound to the address: after a change of address the old link is dead.
    let set_email = |email: &'static str| {
        let db = common::db(&app);
        async move {
            db.query("UPDATE users SET email = ? WHERE id = ?")
                .bind(email)
                .bind(id)
                .execute(&*db)
                .await
                .unwrap();
        }
    };
    set_email("ann@elsewhere.example").await;
    let verify = |token: String| {
        let client = &client;
        async move {
            client
                .get(&format!("/auth/verify/{token}"))
                .send()
                .await
                .status()
        }
    };
    assert_eq!(verify(good.clone()).await, 400);
    set_email("ann@example.com").await;
    assert_eq!(verify(good).await, 303);
}

#[tokio::test]
async fn login_goes_to_a_safe_next_and_an_open_redirect_goes_home() {
    let app = common::app();
    common::client(&app).await; // migrated
    common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    // A protected page sends to the login form with `next`.
    let res = client.get("/auth/settings").send().await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/auth/login?next=%2Fauth%2Fsettings"));
    let form = client
        .get("/auth/login?next=%2Fauth%2Fsettings")
        .send()
        .await
        .text();
    assert!(
        form.contains("name=\"next\" value=\"/auth/settings\""),
        "{form}"
    );
    let res = login_next(&client, "ann@example.com", PASSWORD, "/auth/settings").await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/auth/settings"));

    for evil in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
    ] {
        let other = common::client(&app).await;
        let res = login_next(&other, "ann@example.com", PASSWORD, evil).await;
        assert_eq!(res.status(), 303, "{evil}");
        assert_eq!(res.location(), Some("/"), "{evil}");
    }
}

#[tokio::test]
async fn wrong_passwords_and_deactivated_accounts_are_refused_with_a_message() {
    let app = common::app();
    common::client(&app).await; // migrated
    let id = common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    let res = login(&client, "ann@example.com", "not the password").await;
    assert_eq!(res.status(), 401);
    assert!(
        res.text().contains("Wrong email address or password."),
        "{}",
        res.text()
    );
    let res = login(&client, "nobody@example.com", PASSWORD).await;
    assert_eq!(res.status(), 401, "an unknown address gets the same answer");
    assert!(res.text().contains("Wrong email address or password."));
    let res = login(&client, "", "").await;
    assert_eq!(res.status(), 422);
    common::db(&app)
        .query("UPDATE users SET active = 0 WHERE id = ?")
        .bind(id)
        .execute(&*common::db(&app))
        .await
        .unwrap();
    let res = login(&client, "ann@example.com", PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert!(
        res.text().contains("This account is deactivated."),
        "{}",
        res.text()
    );
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_ends_the_session() {
    let app = common::app();
    common::client(&app).await; // migrated
    common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    let res = login(&client, "ann@example.com", PASSWORD).await;
    assert_eq!(res.status(), 303);
    let page = client.get("/auth/settings").send().await;
    assert_eq!(page.status(), 200);
    let token = common::csrf_token(&page.text());
    let res = client.post("/auth/logout").send().await;
    assert_eq!(res.status(), 403, "no token: refused");
    let res = client
        .post("/auth/logout")
        .form(&[("csrf_token", "forged")])
        .send()
        .await;
    assert_eq!(res.status(), 403, "a forged token: refused");
    assert_eq!(
        client.get("/auth/settings").send().await.status(),
        200,
        "still in"
    );
    let res = client
        .post("/auth/logout")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/"));
    assert_eq!(
        client.get("/auth/settings").send().await.status(),
        303,
        "logged out"
    );
}

#[tokio::test]
async fn remember_me_issues_a_token_that_outlives_the_session() {
    let app = common::app();
    common::client(&app).await; // migrated
    common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    let token = common::token_from(&client, "/auth/login").await;
    let res = client
        .post("/auth/login")
        .form(&[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("remember", "1"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    let remember = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("remember_token="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a remember-me cookie");
    // A new browser session with only the remember-me cookie is logged in.
    let other = common::client(&app).await;
    let (name, value) = remember.split_once('=').unwrap();
    other.set_cookie(name, value);
    assert_eq!(other.get("/auth/settings").send().await.status(), 200);
}

/// Posts the one-field email form at `path` (`/auth/reset`, `/auth/verify`) with a CSRF
/// token taken from its page.
async fn post_email(
    client: &flagon::testing::TestClient,
    path: &str,
    email: &str,
) -> flagon::testing::TestResponse {
    let token = common::token_from(client, path).await;
    client
        .post(path)
        .form(&[("email", email), ("csrf_token", token.as_str())])
        .send()
        .await
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once() {
    let app = common::app();
    common::client(&app).await; // migrated
    common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    let res = post_email(&client, "/auth/reset", "ANN@example.com").await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let next = client.get("/auth/login").send().await.text();
    assert!(next.contains("If ann@example.com has an account"), "{next}");
    let mail = read(&delivered(&app, 1).await[0]);
    assert_eq!(mail.subject, "Reset your password for Flagon Blog");
    let path = link(&mail.text, "/auth/reset/");
    let form = client.get(&path).send().await;
    assert_eq!(form.status(), 200);
    let token = common::csrf_token(&form.text());
    let res = client
        .post(&path)
        .form(&[("password", "short"), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 422, "the policy applies");
    let res = client
        .post(&path)
        .form(&[
            ("password", "a brand new passphrase"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/auth/login"));
    // The link is bound to the old password: used once, it is dead.
    let again = client.get(&path).send().await;
    assert_eq!(again.status(), 400);
    assert!(
        again.text().contains("This link is not valid"),
        "{}",
        again.text()
    );
    let res = client
        .post(&path)
        .form(&[
            ("password", "yet another passphrase"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        login(&client, "ann@example.com", PASSWORD).await.status(),
        401
    );
    assert_eq!(
        login(&client, "ann@example.com", "a brand new passphrase")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn a_reset_for_an_unknown_address_answers_the_same_and_sends_nothing() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let res = post_email(&client, "/auth/reset", "nobody@example.com").await;
    assert_eq!(res.status(), 303);
    let next = client.get("/auth/login").send().await.text();
    assert!(
        next.contains("If nobody@example.com has an account"),
        "{next}"
    );
    assert_eq!(queued(&app).await, 0);
    let res = post_email(&client, "/auth/reset", "not an address").await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text().contains("not a valid email address"),
        "{}",
        res.text()
    );
}

#[tokio::test]
async fn an_expired_reset_link_is_refused() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let id = common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let ann = example_blog::models::Account::by_id(&common::db(&app), id)
        .await
        .unwrap()
        .unwrap();
    let old = tokens::sign(
        app.handle(),
        Purpose::Reset,
        &ann,
        example_blog::models::now() - 5,
    );
    let res = client.get(&format!("/auth/reset/{old}")).send().await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text().contains("This link has expired"),
        "{}",
        res.text()
    );
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_logs_out_other_devices() {
    let app = common::app();
    common::client(&app).await; // migrated
    common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let laptop = common::client(&app).await;
    let phone = common::client(&app).await;
    assert_eq!(
        login(&laptop, "ann@example.com", PASSWORD).await.status(),
        303
    );
    assert_eq!(
        login(&phone, "ann@example.com", PASSWORD).await.status(),
        303
    );
    let anonymous = common::client(&app).await;
    assert_eq!(anonymous.get("/auth/password").send().await.status(), 303);

    let token = common::token_from(&laptop, "/auth/password").await;
    let res = laptop
        .post("/auth/password")
        .form(&[
            ("current_password", "wrong guess"),
            ("password", "a brand new passphrase"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        res.text().contains("The current password is wrong."),
        "{}",
        res.text()
    );
    let res = laptop
        .post("/auth/password")
        .form(&[
            ("current_password", PASSWORD),
            ("password", "short"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 422);
    let res = laptop
        .post("/auth/password")
        .form(&[
            ("current_password", PASSWORD),
            ("password", "a brand new passphrase"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/auth/settings"));
    let page = laptop.get("/auth/settings").send().await;
    assert_eq!(page.status(), 200, "this device stays logged in");
    assert!(
        page.text().contains("other devices are logged out"),
        "{}",
        page.text()
    );
    assert_eq!(
        phone.get("/auth/settings").send().await.status(),
        303,
        "the other device is logged out"
    );
    assert_eq!(
        login(&phone, "ann@example.com", PASSWORD).await.status(),
        401
    );
    assert_eq!(
        login(&phone, "ann@example.com", "a brand new passphrase")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn login_is_limited_per_client_address() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let peer: std::net::SocketAddr = "203.0.113.7:4000".parse().unwrap();
    let token = common::token_from(&client, "/auth/login").await;
    let attempt = |i: usize| {
        let email = format!("user{i}@example.com");
        let token = token.clone();
        let client = &client;
        async move {
            client
                .post("/auth/login")
                .peer(peer)
                .form(&[
                    ("email", email.as_str()),
                    ("password", "wrong"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
        }
    };
    let limit: usize = example_blog::auth::LOGIN_PER_IP
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // GCRA: a burst of `limit`, then one more every period/limit; the attempts hash
    // passwords, so a slow machine may see a token come back before the burst is spent.
    let mut refused = None;
    for i in 0..limit + 5 {
        let res = attempt(i).await;
        if res.status() == 429 {
            refused = Some((i, res));
            break;
        }
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    let (at, refused) = refused.expect("the address was refused");
    assert!(
        at >= limit,
        "refused after {at} attempts, before the burst of {limit}"
    );
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another address is not affected.
    let other: std::net::SocketAddr = "198.51.100.9:4000".parse().unwrap();
    let res = client
        .post("/auth/login")
        .peer(other)
        .form(&[
            ("email", "x@example.com"),
            ("password", "wrong"),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn login_is_limited_per_account_whatever_the_address() {
    let app = common::app();
    common::client(&app).await; // migrated
    common::account(&app, "ann@example.com", "ann", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    let token = common::token_from(&client, "/auth/login").await;
    let limit: usize = example_blog::auth::limits::LOGIN_PER_ACCOUNT
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let attempt = |i: usize, email: &'static str, password: &'static str| {
        let peer: std::net::SocketAddr = format!("203.0.113.{}:4000", i + 1).parse().unwrap();
        let token = token.clone();
        let client = &client;
        async move {
            client
                .post("/auth/login")
                .peer(peer)
                .form(&[
                    ("email", email),
                    ("password", password),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
        }
    };
    let mut at = None;
    for i in 0..limit + 5 {
        let res = attempt(i, "ann@example.com", "wrong").await;
        if res.status() == 429 {
            assert!(res.header("retry-after").is_some());
            at = Some(i);
            break;
        }
        assert_eq!(res.status(), 401, "{i}");
    }
    let at = at.expect("the account was refused");
    assert!(
        at >= limit,
        "refused after {at}, before the burst of {limit}"
    );
    let refused = attempt(at + 1, "ANN@example.com", PASSWORD).await;
    assert_eq!(
        refused.status(),
        429,
        "even with the right password, from a new address"
    );
    assert_eq!(
        attempt(limit + 1, "bob@example.com", "wrong")
            .await
            .status(),
        401,
        "other accounts are not affected"
    );
}

#[tokio::test]
async fn registration_and_reset_are_limited_per_account_and_per_address() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    let token = common::token_from(&client, "/auth/register").await;
    let per_account: usize = example_blog::auth::limits::REGISTER_PER_ACCOUNT
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for i in 0..=per_account {
        let peer: std::net::SocketAddr = format!("203.0.113.{}:4000", i + 1).parse().unwrap();
        let name = format!("user{i}");
        let res = client
            .post("/auth/register")
            .peer(peer)
            .form(&[
                ("email", "same@example.com"),
                ("username", name.as_str()),
                ("password", PASSWORD),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await;
        if i < per_account {
            assert_eq!(res.status(), 303, "{i}: {}", res.text());
        } else {
            assert_eq!(res.status(), 429, "{i}");
            assert!(res.header("retry-after").is_some());
        }
    }
    // Per address: many accounts from one client.
    let peer: std::net::SocketAddr = "198.51.100.1:4000".parse().unwrap();
    let per_ip: usize = example_blog::auth::REGISTER_PER_IP
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut refused = None;
    for i in 0..per_ip + 5 {
        let email = format!("many{i}@example.com");
        let name = format!("many{i}");
        let res = client
            .post("/auth/register")
            .peer(peer)
            .form(&[
                ("email", email.as_str()),
                ("username", name.as_str()),
                ("password", "x"),
                ("csrf_token", token.as_str()),
            ])
            .send()
            .await;
        if res.status() == 429 {
            refused = Some(i);
            break;
        }
        assert_eq!(res.status(), 422);
    }
    assert_eq!(
        refused,
        Some(per_ip),
        "the address is refused past its limit"
    );

    // Reset links per account.
    let reset = common::token_from(&client, "/auth/reset").await;
    let per_account: usize = example_blog::auth::limits::RESET_PER_ACCOUNT
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for i in 0..=per_account {
        let peer: std::net::SocketAddr = format!("192.0.2.{}:4000", i + 1).parse().unwrap();
        let res = client
            .post("/auth/reset")
            .peer(peer)
            .form(&[
                ("email", "target@example.com"),
                ("csrf_token", reset.as_str()),
            ])
            .send()
            .await;
        let want = if i < per_account { 303 } else { 429 };
        assert_eq!(res.status(), want, "{i}");
    }
    // Reset requests per address: different accounts from one client.
    let peer: std::net::SocketAddr = "198.51.100.2:4000".parse().unwrap();
    let per_ip: usize = example_blog::auth::RESET_PER_IP
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut refused = None;
    for i in 0..per_ip + 5 {
        let email = format!("reset{i}@example.com");
        let res = client
            .post("/auth/reset")
            .peer(peer)
            .form(&[("email", email.as_str()), ("csrf_token", reset.as_str())])
            .send()
            .await;
        if res.status() == 429 {
            assert!(res.header("retry-after").is_some());
            refused = Some(i);
            break;
        }
        assert_eq!(res.status(), 303, "{i}");
    }
    let at = refused.expect("the address was refused");
    assert!(
        at >= per_ip,
        "refused after {at}, before the burst of {per_ip}"
    );
}

#[tokio::test]
async fn the_stored_language_preference_chooses_the_pages_language() {
    let app = common::app();
    common::client(&app).await; // migrated
    let id = common::account(&app, "lin@example.com", "lin", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    assert_eq!(
        login(&client, "lin@example.com", PASSWORD).await.status(),
        303
    );
    let get = |path: &'static str| client.get(path).header("accept-language", "en");
    assert!(
        get("/auth/settings")
            .send()
            .await
            .text()
            .contains("<h1>Settings</h1>")
    );

    let token = common::token_from(&client, "/auth/settings").await;
    let res = client
        .post("/auth/settings")
        .form(&[("locale", "klingon"), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 422);
    let res = client
        .post("/auth/settings")
        .form(&[("locale", "zh"), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    let stored: Option<String> = common::db(&app)
        .query_scalar("SELECT locale FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(&*common::db(&app))
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("zh"));
    // The browser's cookie is set too; without it, the stored preference still decides
    // over Accept-Language (another device, the same account).
    client.set_cookie("lang", "");
    let other = common::client(&app).await;
    assert_eq!(
        login(&other, "lin@example.com", PASSWORD).await.status(),
        303
    );
    let page = other
        .get("/auth/settings")
        .header("accept-language", "en")
        .send()
        .await;
    assert!(page.text().contains("<h1>设置</h1>"), "{}", page.text());
    assert_eq!(page.header("content-language"), Some("zh"));
    // The switcher still works on this device: `?lang=` and its cookie win here.
    let page = other
        .get("/auth/settings?lang=en")
        .header("accept-language", "en")
        .send()
        .await;
    assert!(page.text().contains("<h1>Settings</h1>"), "{}", page.text());
    other.set_cookie("lang", "en");
    let page = other.get("/auth/settings").send().await;
    assert!(page.text().contains("<h1>Settings</h1>"), "{}", page.text());
    // Guests keep Accept-Language.
    let guest = common::client(&app).await;
    let page = guest
        .get("/auth/login")
        .header("accept-language", "zh")
        .send()
        .await;
    assert!(page.text().contains("<h1>登录</h1>"), "{}", page.text());
    // The reset mail goes out in the account's language, whatever the asking browser says.
    let reset = common::token_from(&guest, "/auth/reset").await;
    let res = guest
        .post("/auth/reset")
        .header("accept-language", "en")
        .form(&[("email", "lin@example.com"), ("csrf_token", reset.as_str())])
        .send()
        .await;
    assert_eq!(res.status(), 303);
    let mail = read(&delivered(&app, 1).await[0]);
    assert_eq!(mail.subject, "重置你在 Flagon Blog 的密码");
}

#[tokio::test]
async fn mailed_links_use_the_configured_public_url_never_the_requests_host() {
    let app = common::app_with("[blog]\npublic_url = \"https://blog.example.com/\"\n");
    let client = common::client(&app).await;
    let token = common::token_from(&client, "/auth/register").await;
    let res = client
        .post("/auth/register")
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .form(&[
            ("email", "ann@example.com"),
            ("username", "ann"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let mail = read(&delivered(&app, 1).await[0]);
    assert!(
        mail.text.contains("https://blog.example.com/auth/verify/"),
        "{}",
        mail.text
    );
    assert!(!mail.text.contains("evil.example") && !mail.html.contains("evil.example"));
}

#[tokio::test]
async fn an_unverified_address_can_ask_for_a_new_link_that_verifies_it() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    assert_eq!(
        register(&client, "ann@example.com", "ann", PASSWORD)
            .await
            .status(),
        303
    );
    // The login page and an expired link's page both lead to the form.
    let login_page = client.get("/auth/login").send().await.text();
    assert!(login_page.contains("href=\"/auth/verify\""), "{login_page}");
    let form = client.get("/auth/verify").send().await;
    assert_eq!(form.status(), 200);
    assert!(form.text().contains("Get a new verification link"));

    let res = post_email(&client, "/auth/verify", "ANN@example.com").await;
    assert_eq!(res.status(), 303, "{}", res.text());
    assert_eq!(res.location(), Some("/auth/login"));
    let next = client.get("/auth/login").send().await.text();
    assert!(
        next.contains("If ann@example.com has an account that is not verified yet"),
        "{next}"
    );
    assert_eq!(
        queued(&app).await,
        2,
        "the registration's mail and the new one"
    );
    let sent = delivered(&app, 2).await;
    let newest = sent
        .iter()
        .map(read)
        .find(|m| m.subject == "Verify your address for Flagon Blog")
        .expect("a verification mail");
    let path = link(&newest.text, "/auth/verify/");
    let res = client.get(&path).send().await;
    assert_eq!(res.status(), 303, "{}", res.text());
    let ann = accounts::account(&app, "ann@example.com").await.unwrap();
    assert!(
        ann.verified_at.is_some(),
        "the new link verified the address"
    );
    assert_eq!(
        login(&client, "ann@example.com", PASSWORD).await.status(),
        303
    );
}

#[tokio::test]
async fn a_new_link_for_a_verified_or_unknown_address_answers_the_same_and_sends_nothing() {
    let app = common::app();
    common::client(&app).await; // migrated
    common::account(&app, "bob@example.com", "bob", PASSWORD, Role::Author).await;
    let client = common::client(&app).await;
    for email in ["bob@example.com", "nobody@example.com"] {
        let res = post_email(&client, "/auth/verify", email).await;
        assert_eq!(res.status(), 303, "{email}: {}", res.text());
        let next = client.get("/auth/login").send().await.text();
        assert!(
            next.contains(&format!(
                "If {email} has an account that is not verified yet"
            )),
            "{next}"
        );
    }
    assert_eq!(queued(&app).await, 0);
    let res = post_email(&client, "/auth/verify", "not an address").await;
    assert_eq!(res.status(), 422);
    assert!(res.text().contains("not a valid email address"));
}

#[tokio::test]
async fn new_links_are_limited_per_account() {
    let app = common::app();
    common::client(&app).await; // migrated
    let client = common::client(&app).await;
    register(&client, "ann@example.com", "ann", PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(
            post_email(&client, "/auth/verify", "ann@example.com")
                .await
                .status(),
            303
        );
    }
    let res = post_email(&client, "/auth/verify", "ann@example.com").await;
    assert_eq!(res.status(), 429, "{}", res.text());
    assert!(res.header("retry-after").is_some());
    assert_eq!(
        queued(&app).await,
        4,
        "one registration mail and three links"
    );
}
