//! What the account, admin and CLI tests share: registering and logging in through the
//! forms, running the mail relay until messages arrive, and reading them.
#![allow(dead_code)] // each test file uses its own part

use std::time::{Duration, Instant};

use flagon::App;
use flagon::testing::{TestClient, TestResponse};
use flagon_mail::{Mail, Prepared};

use super::common;

/// A password every policy accepts.
pub const PASSWORD: &str = "correct horse battery";

/// GETs the register form and posts it.
pub async fn register(
    client: &TestClient,
    email: &str,
    username: &str,
    password: &str,
) -> TestResponse {
    let token = common::token_from(client, "/auth/register").await;
    client
        .post("/auth/register")
        .form(&[
            ("email", email),
            ("username", username),
            ("password", password),
            ("csrf_token", &token),
        ])
        .send()
        .await
}

/// GETs the login form and posts it (`next` and `remember` empty).
pub async fn login(client: &TestClient, email: &str, password: &str) -> TestResponse {
    login_next(client, email, password, "").await
}

/// GETs the login form and posts it with `next`.
pub async fn login_next(
    client: &TestClient,
    email: &str,
    password: &str,
    next: &str,
) -> TestResponse {
    let token = common::token_from(client, "/auth/login").await;
    client
        .post("/auth/login")
        .form(&[
            ("email", email),
            ("password", password),
            ("next", next),
            ("csrf_token", &token),
        ])
        .send()
        .await
}

/// Runs the outbox relay until the test transport has recorded `n` messages (at most 10
/// s) and returns them.
pub async fn delivered(app: &App, n: usize) -> Vec<Prepared> {
    let mail = Mail::of(app.handle()).expect("mail is registered");
    let outbox = mail.outbox().expect("the testing profile records mail");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = {
        let mail = mail.clone();
        tokio::spawn(async move {
            mail.relay(async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox.len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let _ = relay.await;
    let got = outbox.messages();
    assert!(got.len() >= n, "{} of {n} messages delivered", got.len());
    got
}

/// How many messages wait in the outbox queue (all statuses).
pub async fn queued(app: &App) -> usize {
    let mail = Mail::of(app.handle()).expect("mail is registered");
    mail.queue().list(None, 1000).await.expect("lists").len()
}

/// The decoded subject, text and HTML parts of a delivered message.
pub struct Read {
    /// `Subject`, decoded.
    pub subject: String,
    /// `To`, as written.
    pub to: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
}

/// Reads `p` as a mail client would.
pub fn read(p: &Prepared) -> Read {
    use mailparse::MailHeaderMap as _;
    let parsed = mailparse::parse_mail(p.raw()).expect("a well-formed message");
    let subject = parsed
        .headers
        .get_first_value("Subject")
        .unwrap_or_default();
    let to = parsed.headers.get_first_value("To").unwrap_or_default();
    let mut text = String::new();
    let mut html = String::new();
    let mut parts = vec![&parsed];
    while let Some(part) = parts.pop() {
        if part.subparts.is_empty() {
            let body = part.get_body().expect("a decodable body");
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = body,
                "text/html" => html = body,
                _ => {}
            }
        } else {
            parts.extend(part.subparts.iter());
        }
    }
    Read {
        subject,
        to,
        text,
        html,
    }
}

/// The path of the first link in `text` whose path starts with `prefix`.
pub fn link(text: &str, prefix: &str) -> String {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in: {text}"));
    let end = text[start..]
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .map_or(text.len(), |e| start + e);
    text[start..end].to_owned()
}

/// The account with `email`, as the app loads it.
pub async fn account(app: &App, email: &str) -> Option<example_blog::models::Account> {
    example_blog::models::Account::by_email(&common::db(app), email)
        .await
        .expect("queries")
}

/// A client logged in as the account `id` (through a remember-me token, no form).
pub async fn logged_in(app: &App, id: i64) -> TestClient {
    let client = common::client(app).await;
    let account = example_blog::models::Account::by_id(&common::db(app), id)
        .await
        .expect("queries")
        .expect("exists");
    flagon_login::testing::login_as(&client, &account).await;
    client
}
