//! Where limits apply, exactness on a test clock, build errors and the CLI.

mod common;

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use common::{admitted, build_error, builder, ok, peer, status};
use flagon::axum::extract::Request;
use flagon::http::StatusCode;
use flagon::testing::{TestClient, run_cli};
use flagon::{Blueprint, Route};
use flagon_limiter::{KeyedLimit, Limit, Limiter, ManualClock, exempt, limit, shared_limit};

// ---- exactness (GCRA on a test clock) ----

#[test]
fn gcra_burst_then_steady_rate_on_a_test_clock() {
    let clock = ManualClock::new();
    let limit =
        KeyedLimit::with_clock("10/minute", NonZeroUsize::new(10).unwrap(), clock.clone()).unwrap();
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    // The burst: 10 at once, the 11th refused with the emission interval to wait.
    for left in (0..10).rev() {
        assert_eq!(limit.check_ip(ip), Ok(left));
    }
    assert_eq!(limit.check_ip(ip), Err(Duration::from_secs(6)));
    // Refusals take nothing: the wait shrinks with time only.
    clock.advance(Duration::from_millis(5_999));
    assert_eq!(limit.check_ip(ip), Err(Duration::from_millis(1)));
    clock.advance(Duration::from_millis(1));
    assert_eq!(limit.check_ip(ip), Ok(0));
    // The steady rate: over the next 10 minutes, exactly one every 6 s.
    let mut admitted = 0;
    for _ in 0..600 {
        clock.advance(Duration::from_secs(1));
        admitted += usize::from(limit.check_ip(ip).is_ok());
    }
    assert_eq!(admitted, 100);
    // Idle for a whole period: the full burst again, and no more.
    clock.advance(Duration::from_secs(60));
    let burst = (0..20).filter(|_| limit.check_ip(ip).is_ok()).count();
    assert_eq!(burst, 10);
}

#[test]
fn several_limits_each_hold_and_cost_takes_more() {
    let clock = ManualClock::new();
    let limit = KeyedLimit::with_clock(
        "5/second; 8/minute",
        NonZeroUsize::new(10).unwrap(),
        clock.clone(),
    )
    .unwrap();
    let first = (0..10)
        .filter(|_| limit.check_key("k", NonZeroU32::MIN).is_ok())
        .count();
    assert_eq!(first, 5, "the per-second limit refuses the 6th");
    clock.advance(Duration::from_secs(1));
    let second = (0..10)
        .filter(|_| limit.check_key("k", NonZeroU32::MIN).is_ok())
        .count();
    assert_eq!(second, 3, "the per-minute limit has 3 left");
    let cost3 = NonZeroU32::new(3).unwrap();
    assert_eq!(limit.check_key("other", cost3), Ok(2));
    assert!(
        limit.check_key("other", cost3).is_err(),
        "2 left of 5: a cost of 3 is refused"
    );
    assert!(
        limit.check_key("big", NonZeroU32::new(6).unwrap()).is_err(),
        "a cost above the burst is never admitted"
    );
}

#[tokio::test]
async fn exactness_through_the_app_with_retry_after_rounded_up() {
    let clock = ManualClock::new();
    let app = builder("[limiter]\ndefault = \"3/10 seconds\"\n")
        .register(Limiter::new().clock(clock.clone()))
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let client = TestClient::new(&app);
    let from = "198.51.100.1:1000";
    assert_eq!(admitted(&client, "/", from, 5).await, 3);
    // Interval 3.333 s: Retry-After is the wait rounded up.
    let res = client.get("/").peer(peer(from)).send().await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.header("retry-after"), Some("4"));
    clock.advance(Duration::from_millis(3_000));
    let res = client.get("/").peer(peer(from)).send().await;
    assert_eq!(
        res.header("retry-after"),
        Some("1"),
        "0.333 s rounds up to 1, never 0"
    );
    clock.advance(Duration::from_millis(334));
    assert_eq!(admitted(&client, "/", from, 3).await, 1);
}
// ---- where limits apply ----

#[tokio::test]
async fn default_config_routes_decorators_exemptions() {
    let toml =
        "[limiter]\ndefault = \"2/minute\"\n[limiter.routes]\n\"configured\" = \"4/minute\"\n";
    let api = Blueprint::new("api")
        .url_prefix("/api")
        .with(limit("3/minute"))
        .route(Route::get("/a", ok).name("a"))
        .route(Route::get("/b", ok).name("b"));
    let open = Blueprint::new("open")
        .url_prefix("/open")
        .with(exempt())
        .route(Route::get("/x", ok).name("x"));
    let app = builder(toml)
        .register(
            Limiter::new().exempt_when(|req: &Request| req.headers().contains_key("x-internal")),
        )
        .route(Route::get("/plain", ok).name("plain"))
        .route(Route::get("/other", ok).name("other"))
        .route(Route::get("/configured", ok).name("configured"))
        .route(Route::get("/own", ok).name("own").with(limit("1/minute")))
        .route(Route::get("/free", ok).name("free").with(exempt()))
        .blueprint(api)
        .blueprint(open)
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let ip = "192.0.2.1:1";
    assert_eq!(admitted(&c, "/plain", ip, 5).await, 2, "the default");
    assert_eq!(
        admitted(&c, "/other", ip, 5).await,
        2,
        "the default, per route"
    );
    assert_eq!(
        admitted(&c, "/configured", ip, 6).await,
        4,
        "[limiter.routes] replaces it"
    );
    assert_eq!(
        admitted(&c, "/own", ip, 5).await,
        1,
        "a decorator replaces it"
    );
    assert_eq!(admitted(&c, "/free", ip, 10).await, 10, "exempt route");
    assert_eq!(
        admitted(&c, "/open/x", ip, 10).await,
        10,
        "exempt blueprint"
    );
    assert_eq!(admitted(&c, "/api/a", ip, 5).await, 3, "a blueprint limit");
    assert_eq!(
        admitted(&c, "/api/b", ip, 5).await,
        3,
        "each route of it, its own bucket"
    );
    assert_eq!(
        admitted(&c, "/plain", "192.0.2.2:1", 5).await,
        2,
        "another client"
    );
    // The predicate.
    for _ in 0..5 {
        let res = c
            .get("/plain")
            .peer(peer(ip))
            .header("x-internal", "1")
            .send()
            .await;
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn shared_scopes_per_method_and_cost() {
    let app = builder("[limiter]\n")
        .register(Limiter::new())
        .route(
            Route::get("/s1", ok)
                .name("s1")
                .with(shared_limit("search", "3/minute")),
        )
        .route(
            Route::get("/s2", ok)
                .name("s2")
                .with(shared_limit("search", "3/minute")),
        )
        .route(
            Route::get("/pm", ok)
                .and_put(ok)
                .name("pm")
                .with(Limit::new("2/minute").per_method().decorator()),
        )
        .configure(|app| {
            app.csrf_exempt("pm");
            Ok(())
        })
        .route(
            Route::get("/costly", ok)
                .name("costly")
                .with(Limit::new("5/minute").cost(2).decorator()),
        )
        .route(
            Route::get("/computed", ok).name("computed").with(
                Limit::new("4/minute")
                    .cost_with(|req: &Request| {
                        if req.uri().query() == Some("free") {
                            0
                        } else {
                            4
                        }
                    })
                    .decorator(),
            ),
        )
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let ip = "192.0.2.9:1";
    assert_eq!(admitted(&c, "/s1", ip, 2).await, 2);
    assert_eq!(
        admitted(&c, "/s2", ip, 3).await,
        1,
        "one bucket for the scope"
    );
    assert_eq!(admitted(&c, "/s1", ip, 1).await, 0);

    assert_eq!(admitted(&c, "/pm", ip, 3).await, 2);
    let mut puts = 0;
    for _ in 0..3 {
        let s = c.put("/pm").peer(peer(ip)).send().await.status();
        puts += usize::from(s == 200);
    }
    assert_eq!(puts, 2, "PUT counts apart from GET");

    assert_eq!(admitted(&c, "/costly", ip, 5).await, 2, "cost 2 of 5");
    assert_eq!(admitted(&c, "/computed", ip, 3).await, 1, "cost 4 of 4");
    assert_eq!(
        admitted(&c, "/computed?free", ip, 3).await,
        3,
        "cost 0 counts nothing"
    );
}

#[tokio::test]
async fn deduct_when_counts_only_the_selected_responses() {
    async fn login(req: Request) -> StatusCode {
        if req.uri().query() == Some("bad") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        }
    }
    let app = builder("[limiter]\n")
        .register(Limiter::new())
        .route(
            Route::get("/login", login).name("login").with(
                Limit::new("2/minute")
                    .deduct_when(|res| res.status() == StatusCode::UNAUTHORIZED)
                    .decorator(),
            ),
        )
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let ip = "192.0.2.30:1";
    assert_eq!(
        admitted(&c, "/login", ip, 6).await,
        6,
        "successes are not counted"
    );
    assert_eq!(status(&c, "/login?bad", ip).await, 401);
    assert_eq!(status(&c, "/login?bad", ip).await, 401);
    assert_eq!(
        status(&c, "/login?bad", ip).await,
        429,
        "two failures spent the limit"
    );
    assert_eq!(status(&c, "/login", ip).await, 429);
    assert_eq!(status(&c, "/login", "192.0.2.31:1").await, 200, "per key");
}

#[tokio::test]
async fn application_limits_share_one_bucket_over_every_route() {
    let app = builder("[limiter]\napplication = \"3/minute\"\ndefault = \"10/minute\"\n")
        .register(Limiter::new())
        .route(Route::get("/a", ok).name("a"))
        .route(Route::get("/b", ok).name("b").with(limit("10/minute")))
        .route(Route::get("/free", ok).name("free").with(exempt()))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let ip = "192.0.2.40:1";
    assert_eq!(admitted(&c, "/a", ip, 2).await, 2);
    assert_eq!(
        admitted(&c, "/b", ip, 3).await,
        1,
        "the third request of the app"
    );
    assert_eq!(admitted(&c, "/a", ip, 1).await, 0);
    assert_eq!(admitted(&c, "/free", ip, 5).await, 5, "exempt from it too");
    assert_eq!(admitted(&c, "/a", "192.0.2.41:1", 3).await, 3, "per key");
    let e = build_error("[limiter]\napplication = \"lots\"\n", vec![]);
    assert!(e.contains("limiter.application"), "{e}");
}

#[tokio::test]
async fn disabled_limits_nothing() {
    let app = builder("[limiter]\nenabled = false\ndefault = \"1/minute\"\n")
        .register(Limiter::new())
        .route(Route::get("/", ok).name("index").with(limit("1/minute")))
        .build()
        .unwrap();
    assert_eq!(
        admitted(&TestClient::new(&app), "/", "192.0.2.1:1", 5).await,
        5
    );
}
// ---- build errors ----

#[test]
fn malformed_limits_fail_the_build_naming_their_source() {
    let e = build_error("[limiter]\ndefault = \"10 per fortnight\"\n", vec![]);
    assert!(
        e.contains("limiter.default") && e.contains("fortnight"),
        "{e}"
    );

    let e = build_error(
        "[limiter.routes]\n\"index\" = \"0/minute\"\n",
        vec![Route::get("/", ok).name("index")],
    );
    assert!(
        e.contains("limiter.routes.\"index\"") && e.contains("count of 0"),
        "{e}"
    );

    let e = build_error(
        "[limiter]\n",
        vec![Route::get("/", ok).name("index").with(limit("5/minnute"))],
    );
    assert!(
        e.contains("endpoint `index`") && e.contains("minnute"),
        "{e}"
    );

    let e = build_error(
        "[limiter.routes]\n\"auth.login\" = \"5/minute\"\n",
        vec![Route::get("/", ok).name("index")],
    );
    assert!(
        e.contains("limiter.routes.\"auth.login\"") && e.contains("not an endpoint"),
        "{e}"
    );

    let e = build_error(
        "[limiter]\n",
        vec![
            Route::get("/a", ok)
                .name("a")
                .with(shared_limit("s", "1/minute")),
            Route::get("/b", ok)
                .name("b")
                .with(shared_limit("s", "2/minute")),
        ],
    );
    assert!(e.contains("shared limit `s`"), "{e}");

    for (toml, key) in [
        ("[limiter]\nmax_keys = 0\n", "limiter.max_keys"),
        ("[limiter]\nipv6_prefix = 129\n", "limiter.ipv6_prefix"),
        ("[limiter]\nkey = \"header\"\n", "limiter.key_header"),
        (
            "[limiter]\nkey = \"header\"\nkey_header = \"bad header\"\n",
            "limiter.key_header",
        ),
        (
            "[limiter]\nsweep_interval = \"0s\"\n",
            "limiter.sweep_interval",
        ),
        ("[limiter]\nkye = \"ip\"\n", "kye"),
    ] {
        let e = build_error(toml, vec![]);
        assert!(e.contains(key), "{toml}: {e}");
    }
}

#[test]
fn a_limit_decorator_without_the_limiter_fails_the_build() {
    let e = builder("")
        .route(Route::get("/", ok).name("index").with(limit("1/minute")))
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("limiter"), "{e}");
}
// ---- CLI ----

#[tokio::test]
async fn limiter_limits_prints_every_routes_effective_limits() {
    let app = builder("[limiter]\ndefault = \"2/minute\"\n[limiter.routes]\n\"configured\" = \"4/minute; 10/hour\"\n")
        .register(Limiter::new())
        .route(Route::get("/plain", ok).name("plain"))
        .route(Route::get("/configured", ok).name("configured"))
        .route(Route::get("/own", ok).name("own").with(Limit::new("1/minute").per_method().decorator()))
        .route(Route::get("/free", ok).name("free").with(exempt()))
        .build()
        .unwrap();
    let out = run_cli(&app, ["limiter", "limits"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let want = "\
Rule         Methods  Endpoint    Limits
/configured  GET      configured  4/minute; 10/hour (limiter.routes)
/free        GET      free        limit exempt
/healthz     GET      healthz     none
/own         GET      own         limit 1/minute [per method]
/plain       GET      plain       2/minute (default)
/readyz      GET      readyz      none
";
    assert_eq!(out.stdout, want);

    let out = run_cli(&app, ["limiter", "limits", "--endpoint", "own"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 2);
    assert!(out.stdout.contains("limit 1/minute"));

    let out = run_cli(&app, ["limiter", "limits", "--endpoint", "nope"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("`nope` is not an endpoint"),
        "{}",
        out.stderr
    );
}
