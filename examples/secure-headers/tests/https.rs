//! The https redirect believes `X-Forwarded-Proto` only from `server.trusted_proxies`.

use std::net::SocketAddr;

use flagon::testing::{TestClient, TestResponse, testing_config_toml};
use flagon::{App, Route};
use flagon_secure_headers::SecureHeaders;

const TRUSTED: &str = "10.0.0.1:4000";
const STRANGER: &str = "203.0.113.9:5555";

fn app(extra: &str) -> App {
    let toml = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.1\", \"::1\"]\n\
         [secure_headers]\nforce_https = true\n{extra}"
    );
    App::builder()
        .settings(testing_config_toml(&toml))
        .register(SecureHeaders::new())
        .route(Route::get("/account", || async { "account" }).name("account"))
        .route(Route::get("/up", || async { "up" }).name("up"))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn get(app: &App, path: &str, peer: &str, proto: Option<&str>) -> TestResponse {
    let mut req = TestClient::new(app)
        .get(path)
        .header("host", "example.com")
        .peer(peer.parse::<SocketAddr>().unwrap());
    if let Some(p) = proto {
        req = req.header("x-forwarded-proto", p);
    }
    req.send().await
}

#[tokio::test]
async fn a_trusted_proxy_saying_http_gets_a_redirect() {
    let app = app("");
    let res = get(&app, "/account?tab=1", TRUSTED, Some("http")).await;
    assert_eq!(res.status(), 302);
    assert_eq!(res.location(), Some("https://example.com/account?tab=1"));
    assert!(res.header("strict-transport-security").is_none());
}

#[tokio::test]
async fn a_trusted_proxy_saying_https_is_served_with_hsts() {
    let app = app("");
    let res = get(&app, "/account", TRUSTED, Some("https")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "account");
    assert!(res.header("strict-transport-security").is_some());
    // The last value is the one our proxy set.
    let res = get(&app, "/account", TRUSTED, Some("https, http")).await;
    assert_eq!(res.status(), 302);
    let res = get(&app, "/account", TRUSTED, Some("http, HTTPS")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_untrusted_peer_sending_the_header_is_not_believed() {
    let app = app("");
    let res = get(&app, "/account", STRANGER, Some("https")).await;
    assert_eq!(res.status(), 302, "the header was believed from a stranger");
    assert_eq!(res.location(), Some("https://example.com/account"));
    assert!(res.header("strict-transport-security").is_none());
}

#[tokio::test]
async fn a_request_without_peer_or_header_is_plain_http() {
    let app = app("");
    let res = TestClient::new(&app)
        .get("/account")
        .header("host", "example.com")
        .send()
        .await;
    assert_eq!(res.status(), 302);
}

#[tokio::test]
async fn ipv4_mapped_peers_match_and_ipv6_proxies_work() {
    let app = app("");
    let res = get(&app, "/account", "[::ffff:10.0.0.1]:4000", Some("https")).await;
    assert_eq!(res.status(), 200);
    let res = get(&app, "/account", "[::1]:4000", Some("https")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn permanent_redirects_and_per_route_exemptions() {
    let app =
        app("force_https_permanent = true\n[secure_headers.endpoints.up]\nforce_https = false\n");
    let res = get(&app, "/account", STRANGER, None).await;
    assert_eq!(res.status(), 301);
    let res = get(&app, "/up", STRANGER, None).await;
    assert_eq!(res.status(), 200, "a health probe over http is exempt");
}

#[tokio::test]
async fn a_malformed_host_is_a_400_not_a_redirect() {
    let app = app("");
    let res = TestClient::new(&app)
        .get("/account")
        .header("host", "evil.com/@x")
        .send()
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.location().is_none());
}

#[tokio::test]
async fn the_standard_forwarded_header_is_read_from_trusted_proxies_too() {
    let app = app("");
    let send = |peer: &'static str, value: &'static str| {
        let app = app.clone();
        async move {
            TestClient::new(&app)
                .get("/account")
                .header("host", "example.com")
                .header("forwarded", value)
                .peer(peer.parse::<SocketAddr>().unwrap())
                .send()
                .await
                .status()
        }
    };
    assert_eq!(
        send(TRUSTED, "for=192.0.2.60;proto=https;by=10.0.0.1").await,
        200
    );
    assert_eq!(
        send(TRUSTED, "proto=https, for=192.0.2.60;proto=http").await,
        302
    );
    assert_eq!(send(STRANGER, "for=192.0.2.60;proto=https").await, 302);
}

#[tokio::test]
async fn an_absolute_https_request_line_from_a_client_is_not_believed() {
    let app = app("");
    let res = TestClient::new(&app)
        .get("https://example.com/account")
        .header("host", "example.com")
        .peer(STRANGER.parse::<SocketAddr>().unwrap())
        .send()
        .await;
    assert_eq!(
        res.status(),
        302,
        "plain http, whatever the request line says"
    );
    assert!(res.header("strict-transport-security").is_none());
}

#[tokio::test]
async fn the_plain_http_port_is_dropped_from_the_redirect() {
    let app = app("");
    let res = TestClient::new(&app)
        .get("/account")
        .header("host", "example.com:8080")
        .peer(TRUSTED.parse::<SocketAddr>().unwrap())
        .header("x-forwarded-proto", "http")
        .send()
        .await;
    assert_eq!(res.location(), Some("https://example.com/account"));
}

#[tokio::test]
async fn a_configured_https_host_ignores_the_request_host() {
    let app = app("https_host = \"www.example.com\"\nforce_https_permanent = true\n");
    let res = TestClient::new(&app)
        .get("/account?x=1")
        .header("host", "evil.example")
        .peer(TRUSTED.parse::<SocketAddr>().unwrap())
        .header("x-forwarded-proto", "http")
        .send()
        .await;
    assert_eq!(res.status(), 301);
    assert_eq!(res.location(), Some("https://www.example.com/account?x=1"));
}

#[test]
fn a_malformed_https_host_is_a_build_error_naming_the_key() {
    let toml = "[secure_headers]\nhttps_host = \"example.com/evil\"\n";
    let err = App::builder()
        .settings(testing_config_toml(toml))
        .register(SecureHeaders::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("secure_headers.https_host"), "{err}");
}
