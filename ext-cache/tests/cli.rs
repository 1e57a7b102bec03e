//! `cache clear`, `cache stats` and `cache get`.

mod common;

use flagon::testing::run_cli;
use flagon_cache::{Caches, Ttl};

#[tokio::test]
async fn memory_caches() {
    let app = common::app("[cache]\n[cache.named.bulk]\n");
    let caches = Caches::of(app.handle()).unwrap();
    let c = caches.default();
    c.set("user", &("ada", 36u8), Ttl::Default).await.unwrap();
    c.incr("views", 3).await.unwrap();
    assert!(c.get::<String>("nope").await.is_none());
    assert!(c.get::<u64>("views").await.is_some());

    let out = run_cli(&app, ["cache", "get", "user"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), r#"["ada",36]"#);
    assert_eq!(
        run_cli(&app, ["cache", "get", "views"]).await.stdout.trim(),
        "3"
    );
    assert_eq!(
        run_cli(&app, ["cache", "get", "nope"]).await.stdout.trim(),
        "(no entry)"
    );

    let out = run_cli(&app, ["cache", "stats"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines[0].starts_with("default (memory) entries=2 bytes="),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("hits=1 misses=1 hit_rate=50.0%"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("bulk (memory) entries=0"),
        "{}",
        lines[1]
    );

    let out = run_cli(&app, ["cache", "clear"]).await;
    assert_ne!(out.code, 0, "clear without --yes refuses");
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(c.has("user").await);
    let out = run_cli(&app, ["cache", "clear", "--yes"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("2 entries removed"), "{}", out.stdout);
    assert!(!c.has("user").await);

    let out = run_cli(&app, ["cache", "stats", "--cache", "nope"]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("no cache named `nope`") && out.stderr.contains("bulk"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn redis_cache() {
    if !common::redis_up("cli redis_cache") {
        return;
    }
    let prefix = common::unique_prefix("cli");
    let app = common::app(&common::redis_toml(&prefix, ""));
    let c = Caches::of(app.handle()).unwrap().default().clone();
    c.set_many(&[("a", 1u8), ("b", 2u8)], Ttl::Default)
        .await
        .unwrap();
    let out = run_cli(&app, ["cache", "stats"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("default (redis) entries=2 "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("server=\"redis "), "{}", out.stdout);
    let mut raw = common::raw_redis();
    redis::cmd("SET")
        .arg(format!("{prefix}bad"))
        .arg("garbage")
        .exec(&mut raw)
        .unwrap();
    let out = run_cli(&app, ["cache", "get", "bad"]).await;
    assert!(out.stdout.starts_with("(undecodable:"), "{}", out.stdout);
    let out = run_cli(&app, ["cache", "clear", "--yes"]).await;
    assert!(out.stdout.contains("3 entries removed"), "{}", out.stdout);
}
