//! F1: corrupt, foreign, other-version, other-type and oversized Redis entries are misses,
//! and are deleted.

mod common;

use flagon_cache::Ttl;

#[tokio::test]
async fn bad_redis_entries_are_misses_and_deleted() {
    if !common::redis_up("bad_redis_entries_are_misses_and_deleted") {
        return;
    }
    let prefix = common::unique_prefix("poison");
    let app = common::app(&common::redis_toml(&prefix, "max_value_bytes = 1048576"));
    let c = common::default_cache(&app);
    let mut raw = common::raw_redis();
    let k = |name: &str| format!("{prefix}{name}");
    let exists = |name: &str, raw: &mut redis::Connection| -> bool {
        redis::cmd("EXISTS").arg(k(name)).query::<i64>(raw).unwrap() == 1
    };

    // Random bytes, a pickle blob (Flask-Caching's format), JSON, another version byte, a
    // right version byte with a truncated payload.
    let plant: &[(&str, &[u8])] = &[
        ("random", &[0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]),
        (
            "pickle",
            b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93",
        ),
        ("json", br#"{"id":1,"name":"x"}"#),
        ("version2", &[0xC2, 0x81, 0xA1, 0x61, 0x01]),
        ("truncated", &[0xC1, 0x82, 0xA2, 0x69]),
    ];
    for (name, bytes) in plant {
        redis::cmd("SET")
            .arg(k(name))
            .arg(*bytes)
            .exec(&mut raw)
            .unwrap();
    }
    // Over the 1 MiB cap: the server refuses to send it and unlinks it.
    redis::cmd("SET")
        .arg(k("huge"))
        .arg(vec![0xC1u8; 2 << 20])
        .exec(&mut raw)
        .unwrap();
    // Not a string at all.
    redis::cmd("RPUSH")
        .arg(k("list"))
        .arg("a")
        .exec(&mut raw)
        .unwrap();

    for name in [
        "random",
        "pickle",
        "json",
        "version2",
        "truncated",
        "huge",
        "list",
    ] {
        assert!(exists(name, &mut raw), "{name} planted");
        assert_eq!(
            c.get::<std::collections::BTreeMap<String, u32>>(name).await,
            None,
            "{name}"
        );
        assert!(!exists(name, &mut raw), "{name} deleted after the miss");
    }

    // get_many: the bad ones are misses and deleted, the good one is a hit.
    c.set("good", &7u32, Ttl::Default).await.unwrap();
    redis::cmd("SET")
        .arg(k("bad"))
        .arg(&b"garbage"[..])
        .exec(&mut raw)
        .unwrap();
    redis::cmd("SET")
        .arg(k("big"))
        .arg(vec![b'x'; 2 << 20])
        .exec(&mut raw)
        .unwrap();
    assert_eq!(
        c.get_many::<u32>(&["good", "bad", "big", "none"]).await,
        vec![Some(7), None, None, None]
    );
    assert!(!exists("bad", &mut raw) && !exists("big", &mut raw));
    assert!(exists("good", &mut raw));

    // A value of another type is a miss and deleted; has() does not decode.
    c.set("typed", "a string", Ttl::Default).await.unwrap();
    assert!(c.has("typed").await);
    assert_eq!(c.get::<Vec<u64>>("typed").await, None);
    assert!(!exists("typed", &mut raw));

    // get_or_set_with over a poisoned entry loads and overwrites it.
    redis::cmd("SET")
        .arg(k("gos"))
        .arg(&b"\x00\x01"[..])
        .exec(&mut raw)
        .unwrap();
    let v = c
        .get_or_set_with("gos", Ttl::Default, || async { Ok::<_, ()>(3u8) })
        .await
        .unwrap();
    assert_eq!(v, 3);
    assert_eq!(c.get::<u8>("gos").await, Some(3));
    c.clear().await.unwrap();
}
