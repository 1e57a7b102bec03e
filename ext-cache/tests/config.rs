//! Bad `[cache]` settings stop the build with the key's path.

mod common;

use common::build_error;

#[test]
fn unknown_keys_name_the_key() {
    let e = build_error("[cache]\nbakend = \"memory\"\n");
    assert!(e.contains("bakend"), "{e}");
    let e = build_error("[cache.memory]\nmax_entry = 5\n");
    assert!(e.contains("max_entry"), "{e}");
    let e = build_error("[cache.named.bulk]\nbogus = 1\n");
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn bad_values_name_the_key() {
    let e = build_error("[cache]\nbackend = \"memcached\"\n");
    assert!(
        e.contains("cache.backend") && e.contains("memcached"),
        "{e}"
    );
    let e = build_error("[cache]\ndefault_ttl = \"0s\"\n");
    assert!(e.contains("cache.default_ttl"), "{e}");
    let e = build_error("[cache]\ndefault_ttl = \"soon\"\n");
    assert!(e.contains("default_ttl"), "{e}");
    let e = build_error("[cache.memory]\nmax_entries = 0\n");
    assert!(e.contains("cache.memory.max_entries"), "{e}");
    let e = build_error("[cache]\nmax_value_bytes = 2048\n[cache.memory]\nmax_bytes = 1024\n");
    assert!(e.contains("cache.memory.max_bytes"), "{e}");
    let e = build_error("[cache]\nmax_value_bytes = 0\n");
    assert!(e.contains("cache.max_value_bytes"), "{e}");
    let e = build_error("[cache]\nbackend = \"redis\"\n[cache.redis]\nkey_prefix = \"\"\n");
    assert!(e.contains("cache.redis.key_prefix"), "{e}");
    let e = build_error("[cache]\nbackend = \"redis\"\n[cache.redis]\nurl = \"http://x\"\n");
    assert!(e.contains("cache.redis.url"), "{e}");
    let e = build_error("[cache]\nbackend = \"redis\"\n[cache.redis]\ncommand_timeout = \"0ms\"\n");
    assert!(e.contains("cache.redis.command_timeout"), "{e}");
    let e = build_error("[cache.named.bulk]\ndefault_ttl = \"0s\"\n");
    assert!(e.contains("cache.named.bulk.default_ttl"), "{e}");
    let e = build_error("[cache.named.\"a-b\"]\n");
    assert!(e.contains("cache.named.a-b"), "{e}");
    let e = build_error("[cache.named.a.named.b]\n");
    assert!(e.contains("cache.named.a.named"), "{e}");
}

#[test]
fn overlapping_redis_prefixes_are_refused() {
    let e = build_error(
        "[cache]\nbackend = \"redis\"\n[cache.redis]\nkey_prefix = \"app:\"\n\
         [cache.named.bulk]\nbackend = \"redis\"\n[cache.named.bulk.redis]\nkey_prefix = \"app:bulk:\"\n",
    );
    assert!(
        e.contains("cache.named.bulk.redis.key_prefix") && e.contains("overlaps"),
        "{e}"
    );
    // The derived defaults do not overlap.
    common::app("[cache]\nbackend = \"redis\"\n[cache.named.bulk]\nbackend = \"redis\"\n");
}

#[test]
fn an_app_starts_while_redis_is_down() {
    // Nothing listens on port 1: the build does not connect, and calls are misses.
    let app = common::app(
        "[cache]\nbackend = \"redis\"\n[cache.redis]\nurl = \"redis://127.0.0.1:1\"\ncommand_timeout = \"50ms\"\n",
    );
    let c = common::default_cache(&app);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(c.get::<u8>("k").await, None);
        c.set("k", &1u8, flagon_cache::Ttl::Default).await.unwrap();
        assert!(matches!(
            c.incr("k", 1).await,
            Err(flagon_cache::CacheError::Unavailable(_))
        ));
    });
}

/// Captures what the build logs.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_of_build(profile: flagon::config::Profile, toml: &str) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    flagon::tracing::subscriber::with_default(subscriber, || {
        let settings = flagon::config::Config::builder()
            .profile(profile)
            .toml(toml)
            .build()
            .unwrap();
        flagon::App::builder()
            .settings(settings)
            .register(flagon_cache::Cache::new())
            .build()
            .unwrap();
    });
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn the_null_backend_warns_outside_testing_unless_silenced() {
    use flagon::config::Profile;
    let null = "[cache]\nbackend = \"null\"\n";
    let dev = logs_of_build(Profile::Development, null);
    assert!(dev.contains("caches nothing"), "{dev}");
    let testing = logs_of_build(Profile::Testing, null);
    assert!(!testing.contains("caches nothing"), "{testing}");
    let silenced = logs_of_build(
        Profile::Development,
        "[cache]\nbackend = \"null\"\nsilence_null_warning = true\n",
    );
    assert!(!silenced.contains("caches nothing"), "{silenced}");
}
