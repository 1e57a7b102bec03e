//! The example production profile in `flagon.toml` (commented out there) is a valid
//! configuration of the blog: uncommented, the app builds on it in the production profile,
//! every key known to the extension that reads it, and each backend is the scaled-out one.

use flagon::config::{Config, Profile};

/// `flagon.toml` with the block between `# >>> production` and `# <<< production`
/// uncommented (one `# ` dropped per line).
fn uncommented() -> String {
    let text = std::fs::read_to_string(example_blog::asset_dir("flagon.toml")).expect("reads");
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        match line.trim() {
            "# >>> production" => inside = true,
            "# <<< production" => inside = false,
            _ if inside => {
                let line = line.strip_prefix("# ").unwrap_or(line);
                out.push_str(line.strip_prefix('#').unwrap_or(line));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    assert!(!inside, "the production block is closed");
    out
}

fn production(toml: &str) -> Config {
    Config::builder()
        .profile(Profile::Production)
        .toml(toml)
        .env([
            ("FLAGON_SECRET_KEY", "x7Qp2LmZ9vR4tK8wB3nY6cF1hJ5dG0sA"),
            ("FLAGON_MAIL__SMTP__PASSWORD", "an smtp password"),
        ])
        .build()
        .expect("the settings load")
}

#[test]
fn the_commented_production_profile_builds_the_blog_on_postgres_redis_and_smtp() {
    let toml = uncommented();
    assert!(toml.contains("[production.db]\nurl = \"postgres://"));
    let config = production(&toml);
    let section = |key: &str| -> String {
        config
            .value::<flagon::serde_json::Value>(key)
            .unwrap_or_else(|e| panic!("{key}: {e}"))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    assert_eq!(section("session.store"), "\"redis\"");
    assert_eq!(section("cache.backend"), "\"redis\"");
    assert_eq!(section("login.remember_store"), "\"redis\"");
    assert_eq!(section("mail.transport"), "\"smtp\"");
    assert!(section("limiter.storage").starts_with("\"redis://"));
    if let Err(e) = example_blog::build(config) {
        panic!("the production profile does not build the blog: {e}");
    }
}

#[test]
fn the_profile_stays_commented_so_the_embedded_defaults_are_what_runs() {
    let text = std::fs::read_to_string(example_blog::asset_dir("flagon.toml")).expect("reads");
    let config = production(&text);
    let store: Option<String> = config.value("session.store").expect("reads");
    assert_eq!(store, None, "no production table is active in the file");
    // And the uncommenting above is what makes the difference.
    let store: Option<String> = production(&uncommented())
        .value("session.store")
        .expect("reads");
    assert_eq!(store.as_deref(), Some("redis"));
}
