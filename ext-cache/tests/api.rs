//! Every API call, against the memory backend and a real Redis (one suite, run on both).

mod common;

use std::time::Duration;

use flagon::serde::{Deserialize, Serialize};
use flagon_cache::{BackendKind, CacheError, CacheHandle, Ttl};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(crate = "flagon::serde")]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn ada() -> User {
    User {
        id: 1,
        name: "Ada".into(),
        tags: vec!["admin".into()],
    }
}

async fn suite(c: &CacheHandle) {
    // get / set / has / delete
    assert_eq!(c.get::<User>("u1").await, None);
    assert!(!c.has("u1").await);
    c.set("u1", &ada(), Ttl::Default).await.unwrap();
    assert_eq!(c.get::<User>("u1").await, Some(ada()));
    assert!(c.has("u1").await);
    c.set("u1", &User { id: 2, ..ada() }, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        c.get::<User>("u1").await.map(|u| u.id),
        Some(2),
        "set replaces"
    );
    assert!(c.delete("u1").await);
    assert!(!c.delete("u1").await, "a second delete finds nothing");
    assert_eq!(c.get::<User>("u1").await, None);

    // unsized values and strings
    c.set("s", "text", Ttl::Forever).await.unwrap();
    assert_eq!(c.get::<String>("s").await.as_deref(), Some("text"));
    c.set("v", &[1u8, 2, 3][..], Ttl::Forever).await.unwrap();
    assert_eq!(c.get::<Vec<u8>>("v").await, Some(vec![1, 2, 3]));

    // another type under a key: a miss, and the entry is gone
    assert_eq!(c.get::<u32>("s").await, None);
    assert!(!c.has("s").await, "an entry of another type is deleted");

    // add: only if absent
    assert!(c.add("a", &1u32, Ttl::Default).await.unwrap());
    assert!(!c.add("a", &2u32, Ttl::Default).await.unwrap());
    assert_eq!(c.get::<u32>("a").await, Some(1));

    // many
    c.set_many(&[("m1", 1u32), ("m2", 2u32), ("m3", 3u32)], Ttl::Default)
        .await
        .unwrap();
    assert_eq!(
        c.get_many::<u32>(&["m1", "nope", "m3"]).await,
        vec![Some(1), None, Some(3)]
    );
    assert_eq!(c.delete_many(&["m1", "m2", "nope"]).await, 2);
    assert_eq!(
        c.get_many::<u32>(&["m1", "m2", "m3"]).await,
        vec![None, None, Some(3)]
    );
    assert_eq!(c.get_many::<u32>(&[]).await, Vec::<Option<u32>>::new());

    // counters
    assert_eq!(c.incr("n", 1).await.unwrap(), 1);
    assert_eq!(c.incr("n", 10).await.unwrap(), 11);
    assert_eq!(c.decr("n", 4).await.unwrap(), 7);
    assert_eq!(
        c.get::<i64>("n").await,
        Some(7),
        "counters read back as integers"
    );
    assert_eq!(c.get::<u16>("n").await, Some(7));
    assert!(
        matches!(c.incr("a", 1).await, Err(CacheError::NotACounter(_))),
        "a set value is not a counter"
    );
    c.incr("big", i64::MAX).await.unwrap();
    assert!(matches!(
        c.incr("big", 1).await,
        Err(CacheError::Overflow(_))
    ));
    assert!(matches!(
        c.decr("n", i64::MIN).await,
        Err(CacheError::Overflow(_))
    ));
    assert_eq!(
        c.get::<i64>("big").await,
        Some(i64::MAX),
        "an overflowing incr changes nothing"
    );

    // TTLs: zero stores nothing and removes the old value; MAX and Forever keep it
    c.set("t", &1u8, Duration::ZERO).await.unwrap();
    assert!(!c.has("t").await);
    c.set("t", &1u8, Ttl::Forever).await.unwrap();
    c.set("t", &2u8, Duration::ZERO).await.unwrap();
    assert_eq!(
        c.get::<u8>("t").await,
        None,
        "a zero TTL removes the old value"
    );
    assert!(!c.add("t", &3u8, Duration::ZERO).await.unwrap());
    c.set("max", &9u8, Duration::MAX).await.unwrap();
    assert_eq!(
        c.get::<u8>("max").await,
        Some(9),
        "Duration::MAX neither overflows nor expires"
    );
    assert!(c.add("max2", &9u8, Duration::MAX).await.unwrap());
    c.set_many(&[("zero", 1u8)], Duration::ZERO).await.unwrap();
    assert!(!c.has("zero").await);

    // short TTLs expire (1 ns rounds up to 1 ms on Redis, not "no expiry")
    c.set("short", &1u8, Duration::from_millis(50))
        .await
        .unwrap();
    c.set("tiny", &1u8, Duration::from_nanos(1)).await.unwrap();
    assert!(
        c.add("short_add", &1u8, Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert_eq!(c.get::<u8>("short").await, Some(1));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.get::<u8>("short").await, None, "expired");
    assert_eq!(c.get::<u8>("tiny").await, None, "expired");
    assert!(
        c.add("short_add", &2u8, Ttl::Default).await.unwrap(),
        "an expired key is absent for add"
    );
    assert_eq!(
        c.incr("short", 5).await.unwrap(),
        5,
        "an expired key is absent for incr"
    );

    // too large: refused on write, the old value untouched
    c.set("big_value", &1u8, Ttl::Default).await.unwrap();
    let huge = "x".repeat(2000);
    assert!(matches!(
        c.set("big_value", &huge, Ttl::Default).await,
        Err(CacheError::TooLarge { max: 1024, .. })
    ));
    assert_eq!(c.get::<u8>("big_value").await, Some(1));

    // get_or_set_with: loads once, then hits
    let v = c
        .get_or_set_with("gos", Ttl::Default, || async { Ok::<_, String>(ada()) })
        .await
        .unwrap();
    assert_eq!(v, ada());
    let again = c
        .get_or_set_with("gos", Ttl::Default, || async {
            Err::<User, _>("must not run".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(again, ada());
    let err = c
        .get_or_set_with("gos_err", Ttl::Default, || async { Err::<u8, _>("boom") })
        .await;
    assert_eq!(*err.unwrap_err(), "boom");
    assert!(!c.has("gos_err").await, "an error is not cached");

    // clear removes this cache's entries
    assert!(c.has("a").await);
    let removed = c.clear().await.unwrap();
    assert!(removed >= 1, "clear reported {removed}");
    for k in ["a", "m3", "n", "max", "gos"] {
        assert!(!c.has(k).await, "{k} survived clear");
    }
}

#[tokio::test]
async fn memory_backend() {
    let app = common::app("[cache]\nmax_value_bytes = 1024\n");
    let c = common::default_cache(&app);
    assert_eq!(c.backend(), BackendKind::Memory);
    suite(&c).await;
}

#[tokio::test]
async fn redis_backend() {
    if !common::redis_up("redis_backend") {
        return;
    }
    let prefix = common::unique_prefix("api");
    let app = common::app(&common::redis_toml(&prefix, "max_value_bytes = 1024"));
    let c = common::default_cache(&app);
    assert_eq!(c.backend(), BackendKind::Redis);
    suite(&c).await;

    // The keys live under the prefix, and clear touched nothing else.
    let mut raw = common::raw_redis();
    let other = format!("{}-other:k", prefix.trim_end_matches(':'));
    redis::cmd("SET")
        .arg(&other)
        .arg("keep")
        .exec(&mut raw)
        .unwrap();
    c.set("mine", &1u8, Ttl::Default).await.unwrap();
    let full: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{prefix}mine"))
        .query(&mut raw)
        .unwrap();
    assert!(full.is_some(), "keys are stored under the prefix");
    assert_eq!(c.clear().await.unwrap(), 1);
    let kept: Option<String> = redis::cmd("GET").arg(&other).query(&mut raw).unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("keep"),
        "clear leaves other prefixes alone"
    );
    redis::cmd("DEL").arg(&other).exec(&mut raw).unwrap();

    // Redis keeps the TTLs it was given: the default, and none for Forever.
    c.set("d", &1u8, Ttl::Default).await.unwrap();
    c.set("f", &1u8, Ttl::Forever).await.unwrap();
    c.incr("ctr", 1).await.unwrap();
    let pttl = |k: &str, raw: &mut redis::Connection| -> i64 {
        redis::cmd("PTTL")
            .arg(format!("{prefix}{k}"))
            .query(raw)
            .unwrap()
    };
    assert!((299_000..=300_000).contains(&pttl("d", &mut raw)));
    assert_eq!(pttl("f", &mut raw), -1);
    assert!(
        pttl("ctr", &mut raw) > 299_000,
        "a new counter gets the default TTL"
    );
    c.clear().await.unwrap();
}

#[tokio::test]
async fn null_backend_stores_nothing() {
    let app = common::app("[cache]\nbackend = \"null\"\n");
    let c = common::default_cache(&app);
    c.set("k", &1u8, Ttl::Default).await.unwrap();
    assert_eq!(c.get::<u8>("k").await, None);
    assert!(!c.has("k").await);
    assert!(!c.add("k", &1u8, Ttl::Default).await.unwrap());
    assert!(matches!(
        c.incr("k", 1).await,
        Err(CacheError::Unavailable(_))
    ));
    assert_eq!(c.clear().await.unwrap(), 0);
    let mut calls = 0;
    for _ in 0..2 {
        let v = c
            .get_or_set_with("k", Ttl::Default, || async { Ok::<_, ()>(5u8) })
            .await
            .unwrap();
        assert_eq!(v, 5);
        calls += 1;
    }
    assert_eq!(calls, 2);
}

#[tokio::test]
async fn named_caches_are_separate() {
    let app = common::app(
        "[cache]\n[cache.named.bulk]\nmax_value_bytes = 10\n[cache.named.off]\nbackend = \"null\"\n",
    );
    let caches = flagon_cache::Caches::of(app.handle()).unwrap();
    let bulk = caches.named("bulk").unwrap();
    assert_eq!(bulk.name(), "bulk");
    assert_eq!(caches.named("off").unwrap().backend(), BackendKind::Null);
    assert!(caches.named("nope").is_none());
    caches.default().set("k", &1u8, Ttl::Default).await.unwrap();
    assert_eq!(
        bulk.get::<u8>("k").await,
        None,
        "named caches do not share entries"
    );
    assert!(
        bulk.set("x", &"more than ten bytes", Ttl::Default)
            .await
            .is_err(),
        "own max_value_bytes"
    );
    assert_eq!(caches.all().count(), 3);
}

#[tokio::test]
async fn the_extractor_serves_the_default_cache() {
    async fn hit(c: CacheHandle) -> String {
        c.incr("hits", 1)
            .await
            .map(|n| n.to_string())
            .unwrap_or_else(|e| e.to_string())
    }
    let app = flagon::App::builder()
        .settings(flagon::testing::testing_config())
        .register(flagon_cache::Cache::new())
        .route(flagon::Route::get("/", hit))
        .build()
        .unwrap();
    let client = flagon::testing::TestClient::new(&app);
    assert_eq!(client.get("/").send().await.text(), "1");
    assert_eq!(client.get("/").send().await.text(), "2");

    let bare = flagon::App::builder()
        .settings(flagon::testing::testing_config())
        .route(flagon::Route::get("/", hit))
        .build()
        .unwrap();
    let res = flagon::testing::TestClient::new(&bare)
        .get("/")
        .send()
        .await;
    assert_eq!(
        res.status(),
        500,
        "without the extension the extractor is a clear 500"
    );
}
