//! Per-request behaviour of the core layer: request ids, body limit, timeout, signals (the
//! log line is tested alone in `request_log.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagon::signals::{RequestFinished, RequestStarted};
use flagon::testing::{TestClient, testing_config, testing_config_toml};
use flagon::{App, RequestId, Route};

async fn echo_id(id: RequestId) -> String {
    id.to_string()
}

fn app() -> App {
    App::builder()
        .settings(testing_config())
        .route(Route::get("/id", echo_id))
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let client = TestClient::new(&app());
    let a = client.get("/id").send().await;
    let b = client.get("/id").send().await;
    let id = a.header("x-request-id").unwrap().to_owned();
    assert_eq!(a.text(), id, "handlers see the same id");
    assert_ne!(id, b.header("x-request-id").unwrap());
    let missing = client.get("/missing").send().await;
    assert!(missing.header("x-request-id").is_some());
}

#[tokio::test]
async fn a_valid_incoming_request_id_is_honoured_and_a_bad_one_replaced() {
    let client = TestClient::new(&app());
    let res = client
        .get("/id")
        .header("x-request-id", "lb-1234.abc")
        .send()
        .await;
    assert_eq!(res.header("x-request-id"), Some("lb-1234.abc"));
    let res = client
        .get("/id")
        .header("x-request-id", "<script>")
        .send()
        .await;
    assert_ne!(res.header("x-request-id"), Some("<script>"));
    assert!(!res.header("x-request-id").unwrap().is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nbody_limit = 16\n[csrf]\nenabled = false\n",
        ))
        .route(
            Route::post("/upload", |body: bytes::Bytes| async move {
                body.len().to_string()
            })
            .name("upload"),
        )
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(
        client.post("/upload").body("small").send().await.text(),
        "5"
    );
    let res = client.post("/upload").body(vec![b'x'; 64]).send().await;
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn requests_past_the_timeout_get_503() {
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nrequest_timeout = \"100ms\"\n",
        ))
        .route(
            Route::get("/slow", || async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            })
            .name("slow"),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app)
        .get("/slow")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<serde_json::Value>()["error"]["message"],
        "The request took too long."
    );
}

#[tokio::test]
async fn request_signals_reach_subscribers() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = App::builder()
        .settings(testing_config())
        .configure(move |s| {
            s.subscribe(move |e: &RequestStarted| {
                s1.lock().unwrap().push(format!("started {}", e.path))
            });
            s.subscribe(move |e: &RequestFinished| {
                s2.lock()
                    .unwrap()
                    .push(format!("finished {} {}", e.path, e.status.as_u16()))
            });
            Ok(())
        })
        .route(Route::get("/id", echo_id))
        .build()
        .unwrap();
    TestClient::new(&app).get("/id").send().await;
    assert_eq!(*seen.lock().unwrap(), ["started /id", "finished /id 200"]);
}

#[tokio::test]
async fn async_subscribers_and_custom_signals() {
    struct UserLoggedIn(&'static str);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s1 = seen.clone();
    let app = App::builder()
        .settings(testing_config())
        .configure(move |s| {
            s.subscribe_async(move |e: Arc<UserLoggedIn>| {
                let s1 = s1.clone();
                async move { s1.lock().unwrap().push(format!("welcome {}", e.0)) }
            });
            Ok(())
        })
        .build()
        .unwrap();
    app.signals().emit_and_wait(UserLoggedIn("ada")).await;
    assert_eq!(*seen.lock().unwrap(), ["welcome ada"]);
}

#[tokio::test]
async fn streamed_bodies_are_bounded_too() {
    use axum::response::IntoResponse;
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nbody_limit = 16\n[csrf]\nenabled = false\n",
        ))
        .route(
            Route::post("/stream", |body: axum::body::Body| async move {
                // No limit of its own: only the server's bounds it.
                match axum::body::to_bytes(body, usize::MAX).await {
                    Ok(b) => b.len().to_string().into_response(),
                    Err(_) => http::StatusCode::PAYLOAD_TOO_LARGE.into_response(),
                }
            })
            .name("stream"),
        )
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    assert_eq!(
        client.post("/stream").body("small").send().await.text(),
        "5"
    );
    let res = client.post("/stream").body(vec![b'x'; 64]).send().await;
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn the_trailing_slash_redirect_never_leaves_the_site() {
    let app = App::builder()
        .settings(testing_config())
        .route(Route::get("/{user}/", |id: RequestId| async move { id.to_string() }).name("user"))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let res = client.get("/alice").send().await;
    assert_eq!(res.status(), 308);
    assert_eq!(res.location(), Some("/alice/"));
    // Browsers read `\` as `/`: each of these would be `//evil.com/`, another site.
    for path in ["//evil.com", "/\\evil.com", "/\\/evil.com", "/\\\\evil.com"] {
        let res = client.get(path).send().await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(res.location(), None, "{path}");
    }
    // Percent-encoded, the backslash is only a path character: the redirect stays here.
    let res = client.get("/%5Cevil.com").send().await;
    assert_eq!(res.status(), 308);
    assert_eq!(res.location(), Some("/%5Cevil.com/"));
}

#[tokio::test]
async fn negotiated_error_pages_vary_on_accept() {
    let client = TestClient::new(&app());
    let html = client.get("/missing").send().await;
    let json = client
        .get("/missing")
        .header("accept", "application/json")
        .send()
        .await;
    for res in [&html, &json] {
        assert_eq!(res.status(), 404);
        let vary: Vec<_> = res.headers().get_all("vary").iter().collect();
        assert!(
            vary.iter()
                .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("accept")),
            "{vary:?}"
        );
    }
    assert!(
        json.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        html.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
}

/// Finds a salt `s` with `(ids[j+1] ^ s) - (ids[j] ^ s) == step` for every pair, bit by bit
/// from the lowest (a difference's low bits depend only on the operands' low bits).
fn recover_salt(ids: &[u64], step: u64, bit: u32, salt: u64) -> Option<u64> {
    if bit == 64 {
        return Some(salt);
    }
    let mask = if bit == 63 {
        u64::MAX
    } else {
        (1u64 << (bit + 1)) - 1
    };
    [0u64, 1].into_iter().find_map(|b| {
        let s = salt | (b << bit);
        let fits = ids
            .windows(2)
            .all(|w| ((w[1] ^ s).wrapping_sub(w[0] ^ s)) & mask == step & mask);
        if fits {
            recover_salt(ids, step, bit + 1, s)
        } else {
            None
        }
    })
}

#[tokio::test]
async fn generated_request_ids_do_not_reveal_traffic_or_the_next_id() {
    let client = TestClient::new(&app());
    let mut ids = Vec::new();
    for _ in 0..33 {
        let res = client.get("/id").send().await;
        ids.push(res.header("x-request-id").unwrap().parse::<u64>().unwrap());
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    // A counter mixed by an odd multiplier and a salt (golden-ratio step) gives itself away:
    // from 32 ids the salt follows, and with it the next id and the request count.
    const STEP: u64 = 0x9E37_79B9_7F4A_7C15;
    let (seen, next) = ids.split_at(32);
    if let Some(salt) = recover_salt(seen, STEP, 0, 0) {
        let predicted = ((seen[31] ^ salt).wrapping_add(STEP)) ^ salt;
        assert_ne!(
            predicted, next[0],
            "the next id was predicted from the previous ones"
        );
    }
    // And the bits look uniform (about 32 of 64 set per id).
    let bits_set: u32 = ids.iter().map(|i| i.count_ones()).sum();
    assert!(
        (33 * 20..=33 * 44).contains(&bits_set),
        "ids are not uniform: {bits_set}"
    );
}

#[tokio::test]
async fn http11_requests_need_exactly_one_valid_host() {
    let service = || app().service();
    let send = |version: http::Version, hosts: &'static [&'static str]| {
        let service = service();
        async move {
            let mut req = http::Request::builder().uri("/id").version(version);
            for h in hosts {
                req = req.header("host", *h);
            }
            let req = req.body(flagon::axum::body::Body::empty()).unwrap();
            tower::ServiceExt::oneshot(service, req).await.unwrap()
        }
    };
    use http::Version;
    assert_eq!(send(Version::HTTP_11, &["example.com"]).await.status(), 200);
    assert_eq!(
        send(Version::HTTP_11, &["example.com:8080"]).await.status(),
        200
    );
    assert_eq!(send(Version::HTTP_10, &[]).await.status(), 200);
    assert_eq!(send(Version::HTTP_2, &[]).await.status(), 200);
    for (version, hosts) in [
        (Version::HTTP_11, &[][..]),
        (Version::HTTP_11, &["a.example", "b.example"][..]),
        (Version::HTTP_2, &["a.example", "b.example"][..]),
        (Version::HTTP_11, &["evil.example/@x"][..]),
        (Version::HTTP_11, &["evil.example\\x"][..]),
    ] {
        let res = send(version, hosts).await;
        assert_eq!(res.status(), 400, "{version:?} {hosts:?}");
        assert!(res.headers().contains_key("x-request-id"));
    }
}

/// Sends raw request bytes over a real connection and returns the status line.
async fn raw(addr: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn over_a_real_connection_host_and_redirect_rules_hold() {
    let app = App::builder()
        .settings(testing_config())
        .route(Route::get("/id", echo_id).name("id"))
        .route(Route::get("/{user}/", echo_id).name("user"))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let close = "Connection: close\r\n\r\n";
    let cases = [
        (
            format!("GET /id HTTP/1.1\r\nHost: a.example\r\n{close}"),
            "200",
        ),
        (format!("GET /id HTTP/1.1\r\n{close}"), "400"),
        (
            format!("GET /id HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n{close}"),
            "400",
        ),
        (
            format!("GET /id HTTP/1.1\r\nHost: a.example/@b\r\n{close}"),
            "400",
        ),
        (format!("GET /id HTTP/1.0\r\n{close}"), "200"),
        (
            format!("GET /alice HTTP/1.1\r\nHost: a.example\r\n{close}"),
            "308",
        ),
        (
            format!("GET /\\evil.com HTTP/1.1\r\nHost: a.example\r\n{close}"),
            "404",
        ),
    ];
    for (head, status) in cases {
        let line = raw(addr, &head).await;
        assert!(line.split(' ').nth(1) == Some(status), "{head:?} -> {line}");
    }
    tx.send(()).unwrap();
    server.await.unwrap();
}
