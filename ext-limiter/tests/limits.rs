//! The limiter driven through built apps: where limits apply, keys, the key cap, exactness
//! on a test clock, and the 429s.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flagon::axum::extract::Request;
use flagon::http::StatusCode;
use flagon::testing::{TestClient, run_cli, testing_config_toml};
use flagon::{App, AppBuilder, Blueprint, Identity, Route, proceed};
use flagon_limiter::{
    KeyedLimit, Limit, Limiter, LimiterError, LimiterState, ManualClock, RateLimited, exempt,
    limit, shared_limit,
};

async fn ok() -> &'static str {
    "ok"
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn builder(toml: &str) -> AppBuilder {
    App::builder().settings(testing_config_toml(toml))
}

async fn status(client: &TestClient, path: &str, from: &str) -> u16 {
    client
        .get(path)
        .peer(peer(from))
        .send()
        .await
        .status()
        .as_u16()
}

/// How many of `n` GETs of `path` from `from` were admitted.
async fn admitted(client: &TestClient, path: &str, from: &str, n: usize) -> usize {
    let mut count = 0;
    for _ in 0..n {
        let s = status(client, path, from).await;
        assert!(s == 200 || s == 429, "unexpected status {s}");
        count += usize::from(s == 200);
    }
    count
}

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

fn build_error(toml: &str, routes: Vec<Route>) -> String {
    let mut b = builder(toml).register(Limiter::new());
    for r in routes {
        b = b.route(r);
    }
    b.build().unwrap_err().to_string()
}

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

// ---- keys ----

#[tokio::test]
async fn spoofed_forwarding_headers_change_nothing_without_trusted_proxies() {
    let app = builder("[limiter]\ndefault = \"2/minute\"\n")
        .register(Limiter::new())
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let mut ok_count = 0;
    for i in 0..10 {
        let res = c
            .get("/")
            .peer(peer("198.51.100.7:5000"))
            .header("x-forwarded-for", &format!("1.2.3.{i}"))
            .header("x-real-ip", &format!("5.6.7.{i}"))
            .header("forwarded", &format!("for=9.9.9.{i}"))
            .send()
            .await;
        ok_count += usize::from(res.status() == 200);
    }
    assert_eq!(ok_count, 2, "every request counted against the peer");
}

#[tokio::test]
async fn behind_trusted_proxies_the_client_is_keyed_and_malformed_hops_fall_back() {
    let toml = "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[limiter]\ndefault = \"2/minute\"\n";
    let app = builder(toml)
        .register(Limiter::new())
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let via = |xff: String| {
        let c = &c;
        async move {
            c.get("/")
                .peer(peer("10.0.0.2:4000"))
                .header("x-forwarded-for", &xff)
                .send()
                .await
                .status()
                .as_u16()
        }
    };
    // Distinct real clients behind the proxy: each its own bucket.
    for i in 0..5 {
        assert_eq!(via(format!("6.6.6.6, 203.0.113.{i}")).await, 200);
        assert_eq!(
            via(format!("7.7.7.7, 203.0.113.{i}")).await,
            200,
            "a forged left hop is not the key"
        );
        assert_eq!(via(format!("203.0.113.{i}")).await, 429);
    }
    // Malformed chains: never a 500; a malformed hop means the proxy's own address, which
    // then has its own bucket. A long chain of valid hops keys on its rightmost one.
    let long = vec!["1.1.1.1"; 10_000].join(",");
    let mut statuses = Vec::new();
    for xff in [
        "unknown".to_owned(),
        "1.1.1.1,,garbage".to_owned(),
        "[fe80::1%eth0]".to_owned(),
        long.clone(),
        long,
        "1.1.1.1".to_owned(),
    ] {
        statuses.push(via(xff).await);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
}

#[tokio::test]
async fn ipv6_is_grouped_by_64_and_ipv4_is_not() {
    let app = builder("[limiter]\ndefault = \"3/minute\"\n")
        .register(Limiter::new())
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let mut ok6 = 0;
    for i in 0..50u32 {
        let from = format!("[2001:db8:1:2:{:x}:{:x}::1]:80", i * 7, i);
        ok6 += usize::from(status(&c, "/", &from).await == 200);
    }
    assert_eq!(ok6, 3, "one /64, one bucket");
    assert_eq!(
        status(&c, "/", "[2001:db8:1:3::1]:80").await,
        200,
        "the next /64"
    );
    let mut ok4 = 0;
    for i in 0..50 {
        ok4 += usize::from(status(&c, "/", &format!("192.0.2.{i}:80")).await == 200);
    }
    assert_eq!(ok4, 50);
}

#[tokio::test]
async fn keys_by_user_header_and_function() {
    // Default limits are checked in a route guard, which runs before the app's before
    // hooks: the identity is set by a guard (as a login extension does).
    let set_identity = |app: &mut flagon::Setup<'_>| {
        app.guard(
            |_| true,
            |mut req| async move {
                let who = req
                    .headers()
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if let Some(who) = who {
                    let _ = Identity::set(&mut req, Identity::new(who));
                }
                proceed(req)
            },
        );
        Ok(())
    };
    let app = builder("[limiter]\ndefault = \"2/minute\"\nkey = \"user\"\n")
        .register(Limiter::new())
        .configure(set_identity)
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let as_user = |user: &'static str, ip: &'static str| {
        let c = &c;
        async move {
            let mut r = c.get("/").peer(peer(ip));
            if !user.is_empty() {
                r = r.header("x-user", user);
            }
            r.send().await.status().as_u16()
        }
    };
    assert_eq!(as_user("ada", "192.0.2.1:1").await, 200);
    assert_eq!(as_user("ada", "192.0.2.2:1").await, 200);
    assert_eq!(
        as_user("ada", "192.0.2.3:1").await,
        429,
        "the user, from any address"
    );
    assert_eq!(as_user("bob", "192.0.2.1:1").await, 200);
    assert_eq!(
        as_user("", "192.0.2.1:1").await,
        200,
        "anonymous: the address"
    );
    assert_eq!(as_user("", "192.0.2.1:1").await, 200);
    assert_eq!(as_user("", "192.0.2.1:1").await, 429);

    let app = builder(
        "[limiter]\ndefault = \"1/minute\"\nkey = \"header\"\nkey_header = \"x-api-key\"\n",
    )
    .register(Limiter::new())
    .route(Route::get("/", ok).name("index"))
    .build()
    .unwrap();
    let c = TestClient::new(&app);
    let with_key = |key: &'static str, ip: &'static str| {
        let c = &c;
        async move {
            c.get("/")
                .peer(peer(ip))
                .header("x-api-key", key)
                .send()
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(with_key("k1", "192.0.2.1:1").await, 200);
    assert_eq!(with_key("k1", "192.0.2.2:1").await, 429);
    assert_eq!(with_key("k2", "192.0.2.1:1").await, 200);

    let app = builder("[limiter]\ndefault = \"1/minute\"\n")
        .register(Limiter::new().key_fn(|req: &Request| {
            req.headers()
                .get("x-tenant")?
                .to_str()
                .ok()
                .map(str::to_owned)
        }))
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let tenant = |t: &'static str| {
        let c = &c;
        async move {
            c.get("/")
                .peer(peer("192.0.2.1:1"))
                .header("x-tenant", t)
                .send()
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(tenant("a").await, 200);
    assert_eq!(tenant("a").await, 429);
    assert_eq!(tenant("b").await, 200);
}

// ---- memory (G1) ----

#[test]
fn a_hundred_thousand_keys_stay_within_the_cap_and_the_sweeper_frees_them() {
    let clock = ManualClock::new();
    let cap = NonZeroUsize::new(10_000).unwrap();
    let limit = KeyedLimit::with_clock("5/second", cap, clock.clone()).unwrap();
    for i in 0..100_000u32 {
        let ip = IpAddr::from((0x0b00_0000 + i).to_be_bytes());
        let _ = limit.check_ip(ip);
        assert!(limit.keys() <= cap.get());
    }
    assert_eq!(limit.keys(), cap.get());
    // Keys beyond the cap share one strict cell: they are not unlimited.
    let newcomer: IpAddr = "203.0.113.200".parse().unwrap();
    assert!(
        limit.check_ip(newcomer).is_err(),
        "90k requests already spent the overflow cell"
    );
    // Once buckets are full again the sweeper forgets them and room returns.
    clock.advance(Duration::from_secs(2));
    limit.sweep();
    assert_eq!(limit.keys(), 0);
    assert_eq!(limit.check_ip(newcomer), Ok(4));
    assert_eq!(limit.keys(), 1);
}

#[tokio::test]
async fn the_app_holds_at_most_max_keys() {
    let clock = ManualClock::new();
    let app = builder("[limiter]\ndefault = \"5/second\"\nmax_keys = 500\n")
        .register(Limiter::new().clock(clock.clone()))
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    for i in 0..3_000u32 {
        let _ = status(&c, "/", &format!("100.{}.0.{}:1", i / 250, i % 250)).await;
    }
    let state = app.state::<LimiterState>().unwrap();
    assert_eq!(state.keys(), 500);
    assert!(state.overflowed() >= 2_500);
    clock.advance(Duration::from_secs(2));
    assert_eq!(state.sweep(), 0);
    assert_eq!(state.keys(), 0);
}

// ---- responses (G8) ----

#[tokio::test]
async fn refusals_carry_headers_and_a_body_by_accept() {
    let app = builder("[limiter]\ndefault = \"1/minute; 100/day\"\nlegacy_headers = true\n")
        .register(Limiter::new())
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let from = peer("192.0.2.50:1");
    assert_eq!(c.get("/").peer(from).send().await.status(), 200);

    let res = c
        .get("/")
        .peer(from)
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.header("ratelimit-policy"),
        Some("\"1/minute\";q=1;w=60, \"100/day\";q=100;w=86400")
    );
    let rl = res.header("ratelimit").unwrap().to_owned();
    assert!(rl.starts_with("\"1/minute\";r=0;t="), "{rl}");
    let t: u64 = rl.rsplit("t=").next().unwrap().parse().unwrap();
    assert!(t >= retry, "the reset is never earlier than Retry-After");
    assert_eq!(res.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(res.header("x-ratelimit-remaining"), Some("0"));
    assert!(
        res.header("x-ratelimit-reset")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1_700_000_000
    );
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let body: flagon::serde_json::Value = res.json();
    assert_eq!(
        body["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    assert_eq!(body["status"], 429);
    assert_eq!(body["retry_after"], retry);

    let res = c
        .get("/")
        .peer(from)
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status(), 429);
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    assert!(res.text().contains("rate limit exceeded (1/minute)"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(res.header("retry-after").is_some());
}

#[tokio::test]
async fn the_apps_429_handler_renders_browser_refusals() {
    let app = builder("[limiter]\ndefault = \"1/minute\"\n")
        .register(Limiter::new())
        .configure(|app| {
            app.error_handler(StatusCode::TOO_MANY_REQUESTS, |ctx| async move {
                let secs = match ctx.error.find_cause::<LimiterError>() {
                    Some(LimiterError::Exceeded {
                        retry_after_secs, ..
                    }) => *retry_after_secs,
                    _ => 0,
                };
                (StatusCode::TOO_MANY_REQUESTS, format!("slow down, {secs}s"))
            });
            Ok(())
        })
        .route(Route::get("/", ok).name("index"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let from = peer("192.0.2.60:1");
    c.get("/").peer(from).send().await;
    let res = c.get("/").peer(from).send().await;
    assert_eq!(res.status(), 429);
    let text = res.text();
    assert!(
        text == "slow down, 60s" || text == "slow down, 59s",
        "{text}"
    );
}

#[tokio::test]
async fn success_headers_and_the_signal() {
    let refused = Arc::new(AtomicUsize::new(0));
    let seen = refused.clone();
    let app = builder("[limiter]\nheaders_on_success = true\ndefault = \"3/hour\"\n")
        .register(Limiter::new())
        .configure(move |app| {
            let seen = seen.clone();
            app.subscribe(move |e: &RateLimited| {
                assert_eq!(e.endpoint.as_deref(), Some("index"));
                assert_eq!(e.key, "192.0.2.70");
                assert_eq!(e.limit, "2/minute");
                seen.fetch_add(1, Ordering::SeqCst);
            });
            Ok(())
        })
        .route(Route::get("/", ok).name("index").with(limit("2/minute")))
        .route(Route::get("/plain", ok).name("plain"))
        .build()
        .unwrap();
    let c = TestClient::new(&app);
    let from = peer("192.0.2.70:1");
    let res = c.get("/plain").peer(from).send().await;
    assert_eq!(
        res.header("ratelimit-policy"),
        Some("\"3/hour\";q=3;w=3600")
    );
    assert_eq!(res.header("ratelimit"), Some("\"3/hour\";r=2;t=1200"));
    let res = c.get("/").peer(from).send().await;
    assert_eq!(
        res.header("ratelimit-policy"),
        Some("\"2/minute\";q=2;w=60")
    );
    assert_eq!(res.header("ratelimit"), Some("\"2/minute\";r=1;t=30"));
    c.get("/").peer(from).send().await;
    assert_eq!(c.get("/").peer(from).send().await.status(), 429);
    assert_eq!(c.get("/").peer(from).send().await.status(), 429);
    assert_eq!(refused.load(Ordering::SeqCst), 2);
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
