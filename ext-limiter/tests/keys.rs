//! Keys: client IP behind (un)trusted proxies, IPv6 grouping, user, header, function; and
//! the key cap (G1, G2).

mod common;

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use common::{builder, ok, peer, status};
use flagon::axum::extract::Request;
use flagon::testing::TestClient;
use flagon::{Identity, Route, proceed};
use flagon_limiter::{KeyedLimit, Limiter, LimiterState, ManualClock};

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
