//! Session protection on the trusted-proxy-aware client IP (B6) and fresh logins.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use flagon::testing::TestClient;

const HOME: &str = "198.51.100.1:4000";
const ELSEWHERE: &str = "198.51.100.2:4000";

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn login_from(client: &TestClient, from: &str, xff: Option<&str>) {
    let token = client.get("/token").peer(peer(from)).send().await.text();
    let mut req = client
        .post("/login")
        .peer(peer(from))
        .header("user-agent", "browser/1");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let res = req
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await;
    assert_eq!(res.status(), 303, "{}", res.text());
}

async fn who(client: &TestClient, from: &str, xff: Option<&str>) -> String {
    let mut req = client
        .get("/whoami")
        .peer(peer(from))
        .header("user-agent", "browser/1");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.text()
}

#[tokio::test]
async fn b6_strong_protection_ignores_spoofed_forwarding_headers_and_ends_moved_sessions() {
    let t = app_with("session_protection = \"strong\"\n", "").await;
    let client = TestClient::new(&t.app);
    login_from(&client, HOME, None).await;
    assert_eq!(who(&client, HOME, None).await, "alice 1");
    // No trusted proxy: a forged X-Forwarded-For changes nothing (the peer is the client).
    assert_eq!(who(&client, HOME, Some("203.0.113.66")).await, "alice 1");
    // Another address: the session is deleted.
    assert_eq!(who(&client, ELSEWHERE, None).await, "anonymous -");
    assert_eq!(
        who(&client, HOME, None).await,
        "anonymous -",
        "deleted, not just hidden"
    );
}

#[tokio::test]
async fn b6_behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
    let t = app_with(
        "session_protection = \"strong\"\n",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    )
    .await;
    let proxy = "10.0.0.1:5000";
    let client = TestClient::new(&t.app);
    login_from(&client, proxy, Some("203.0.113.5")).await;
    assert_eq!(who(&client, proxy, Some("203.0.113.5")).await, "alice 1");
    // A client-written hop left of the real one is ignored.
    assert_eq!(
        who(&client, proxy, Some("6.6.6.6, 203.0.113.5")).await,
        "alice 1"
    );
    assert_eq!(
        who(&client, proxy, Some("203.0.113.9")).await,
        "anonymous -"
    );
}

#[tokio::test]
async fn basic_protection_keeps_the_user_but_makes_the_login_stale() {
    let t = app_with("", "").await; // basic is the default
    let client = TestClient::new(&t.app);
    login_from(&client, HOME, None).await;
    let fresh = client
        .get("/fresh")
        .peer(peer(HOME))
        .header("user-agent", "browser/1")
        .send()
        .await;
    assert_eq!(fresh.text(), "fresh page");
    assert_eq!(
        who(&client, ELSEWHERE, None).await,
        "alice 1",
        "still logged in"
    );
    let res = client
        .get("/fresh")
        .peer(peer(ELSEWHERE))
        .header("user-agent", "browser/1")
        .send()
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.location(), Some("/reauth?next=%2Ffresh"));
    let flashed = client
        .get("/flashes")
        .peer(peer(ELSEWHERE))
        .header("user-agent", "browser/1")
        .send()
        .await;
    assert_eq!(
        flashed.text(),
        "message: Please reauthenticate to access this page."
    );
    // Re-entering the password confirms the login.
    let token = client
        .get("/token")
        .peer(peer(ELSEWHERE))
        .send()
        .await
        .text();
    let res = client
        .post("/reauth")
        .peer(peer(ELSEWHERE))
        .header("user-agent", "browser/1")
        .form(&[("password", PASSWORD), ("csrf_token", token.as_str())])
        .send()
        .await;
    assert_eq!(res.text(), "confirmed");
    let res = client
        .get("/fresh")
        .peer(peer(ELSEWHERE))
        .header("user-agent", "browser/1")
        .send()
        .await;
    assert_eq!(res.text(), "fresh page");
}

#[tokio::test]
async fn a_fresh_login_goes_stale_after_fresh_max_age_and_json_clients_get_401() {
    let t = app_with(
        "fresh_max_age = \"10m\"\nsession_protection = \"off\"\n",
        "",
    )
    .await;
    let client = TestClient::new(&t.app);
    log_in(&client, "alice", false).await;
    assert_eq!(client.get("/fresh").send().await.text(), "fresh page");
    t.clock.advance(Duration::from_secs(601));
    assert_eq!(client.get("/fresh").send().await.status(), 303);
    let res = client
        .get("/fresh")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json();
    assert_eq!(body["detail"], "Please reauthenticate to access this page.");
    assert_eq!(
        client.get("/private").send().await.text(),
        "hello alice",
        "still logged in"
    );
}
