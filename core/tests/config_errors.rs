//! Configuration errors stop the build, naming the key, where the value came from and what
//! was expected.

use flagon::config::{Config, Profile};
use flagon::{App, Extension, Setup, SetupError};
use serde::{Deserialize, Serialize};

#[derive(Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct MailConfig {
    host: String,
    port: u16,
}

struct Mail;

impl Extension for Mail {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let cfg: MailConfig = app.config("mail")?;
        if cfg.port == 1 {
            return Err(app.config_error("mail.port", "port 1 is not an SMTP port"));
        }
        Ok(())
    }
}

fn build_err(config: Config) -> String {
    App::builder()
        .settings(config)
        .register(Mail)
        .build()
        .expect_err("build must fail")
        .to_string()
}

#[test]
fn a_wrong_type_in_the_file_names_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flagon.toml");
    std::fs::write(&path, "[mail]\nhost = \"smtp\"\nport = \"twenty-five\"\n").unwrap();
    let config = Config::builder()
        .profile(Profile::Testing)
        .file(&path)
        .unwrap()
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(msg.contains("config key `mail.port`"), "{msg}");
    assert!(msg.contains(&format!("{} line 3", path.display())), "{msg}");
    assert!(msg.contains("u16"), "{msg}");
}

#[test]
fn a_wrong_type_from_the_environment_names_the_variable() {
    let config = Config::builder()
        .profile(Profile::Testing)
        .env([("FLAGON_MAIL__PORT", "lots")])
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(msg.contains("config key `mail.port`"), "{msg}");
    assert!(
        msg.contains("environment variable FLAGON_MAIL__PORT"),
        "{msg}"
    );
}

#[test]
fn an_unknown_key_is_named_with_what_was_expected() {
    let config = Config::builder()
        .profile(Profile::Testing)
        .toml("[mail]\nhots = \"smtp\"\n")
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(
        msg.contains("config key `mail.hots` (flagon.toml line 2): unknown key"),
        "{msg}"
    );
    assert!(msg.contains("host, port"), "{msg}");
}

#[test]
fn a_failed_validation_names_key_and_source() {
    let config = Config::builder()
        .profile(Profile::Testing)
        .toml("[mail]\nport = 1\n")
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(
        msg.contains("config key `mail.port` (flagon.toml line 2): port 1 is not an SMTP port"),
        "{msg}"
    );
}

#[test]
fn an_unknown_section_is_an_error() {
    let config = Config::builder()
        .profile(Profile::Testing)
        .toml("[mial]\nhost = \"x\"\n")
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(
        msg.contains("config key `mial` (flagon.toml line 1)"),
        "{msg}"
    );
    assert!(
        msg.contains("no registered extension reads this section"),
        "{msg}"
    );
}

#[test]
fn an_unknown_section_from_the_environment_names_the_variable() {
    let config = Config::builder()
        .profile(Profile::Testing)
        .env([("FLAGON_MIAL__HOST", "x")])
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(msg.contains("environment variable FLAGON_MIAL"), "{msg}");
}

#[test]
fn core_server_settings_are_checked_too() {
    let config = Config::builder()
        .profile(Profile::Testing)
        .toml("[server]\nrequest_timeout = \"soon\"\n")
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(
        msg.contains("config key `server.request_timeout` (flagon.toml line 2)"),
        "{msg}"
    );
}

#[test]
fn production_requires_a_secret_key() {
    let config = Config::builder()
        .profile(Profile::Production)
        .build()
        .unwrap();
    let msg = build_err(config);
    assert!(msg.contains("config key `secret_key`"), "{msg}");
    assert!(msg.contains("required in production"), "{msg}");

    let short = Config::builder()
        .profile(Profile::Production)
        .env([("FLAGON_SECRET_KEY", "short")])
        .build()
        .unwrap();
    let msg = build_err(short);
    assert!(
        msg.contains("environment variable FLAGON_SECRET_KEY"),
        "{msg}"
    );

    let key = "3f9c2a7e51b04d8896e1c0a5f27b3d4e9a8c6b1f0e2d4c7a5b3918e6f0d2c4a1";
    let good = Config::builder()
        .profile(Profile::Production)
        .env([("FLAGON_SECRET_KEY", key)])
        .build()
        .unwrap();
    let app = App::builder()
        .settings(good)
        .register(Mail)
        .build()
        .unwrap();
    let same = Config::builder()
        .profile(Profile::Testing)
        .toml(format!("secret_key = \"{key}\""))
        .build()
        .unwrap();
    let same = App::builder().settings(same).build().unwrap();
    assert_eq!(
        app.derive_key("mail.links").as_bytes(),
        same.derive_key("mail.links").as_bytes(),
        "the configured key is the one used"
    );
}

#[test]
fn production_refuses_a_guessable_secret_key_and_says_how_to_make_one() {
    for weak in [
        "a".repeat(32),
        "k".repeat(40),
        "changeme".repeat(4),
        "abcdefghijklmnopqrstuvwxyz0123456789".to_owned(),
    ] {
        let config = Config::builder()
            .profile(Profile::Production)
            .env([("FLAGON_SECRET_KEY", weak.as_str())])
            .build()
            .unwrap();
        let msg = build_err(config);
        assert!(msg.contains("config key `secret_key`"), "{msg}");
        assert!(msg.contains("too easy to guess"), "{msg}");
        assert!(msg.contains(" secret-key`"), "names the command: {msg}");
    }
    // Development keeps accepting anything: the key is the developer's own business there.
    let dev = Config::builder()
        .env([("FLAGON_SECRET_KEY", "a".repeat(32))])
        .build()
        .unwrap();
    assert!(App::builder().settings(dev).build().is_ok());
}

#[test]
fn development_generates_a_throwaway_key() {
    let config = Config::builder()
        .profile(Profile::Development)
        .build()
        .unwrap();
    let a = App::builder().settings(config.clone()).build().unwrap();
    let b = App::builder().settings(config).build().unwrap();
    assert_ne!(a.derive_key("x").as_bytes(), b.derive_key("x").as_bytes());
}

#[test]
fn a_missing_config_file_named_by_flagon_config_is_an_error() {
    let err = Config::load_from(
        vec![("FLAGON_CONFIG".into(), "/nonexistent/flagon.toml".into())],
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert_eq!(err.key(), "FLAGON_CONFIG");
}

#[test]
fn bad_toml_names_the_line() {
    let err = Config::builder()
        .toml("[mail]\nport = = 3\n")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("flagon.toml line 2"), "{err}");
    let cause = std::error::Error::source(&err).expect("the TOML error is kept");
    assert!(cause.to_string().contains("line 2"), "{cause}");
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Feature {
    enabled: bool,
    limit: Option<u32>,
    ratio: f64,
    password: String,
}

fn feature(config: &Config) -> Result<Feature, Vec<flagon::config::ConfigError>> {
    config.section::<Feature>("feature")
}

#[test]
fn a_bool_is_only_true_or_false_in_the_file() {
    for value in ["\"yes\"", "\"on\"", "1", "\"true\""] {
        let config = Config::builder()
            .toml(format!("[feature]\nenabled = {value}\n"))
            .build()
            .unwrap();
        let err = feature(&config).expect_err(value).remove(0);
        assert_eq!(err.key(), "feature.enabled", "{value}");
        assert_eq!(err.source_desc(), "flagon.toml line 2", "{value}");
        assert!(err.message().contains("bool"), "{value}: {err}");
    }
    let config = Config::builder()
        .toml("[feature]\nenabled = true\nlimit = 5\nratio = 0.5\n")
        .build()
        .unwrap();
    let f = feature(&config).unwrap();
    assert!(f.enabled);
    assert_eq!(f.limit, Some(5));
}

#[test]
fn environment_text_is_read_as_the_setting_needs_and_no_more() {
    let config = Config::builder()
        .env([
            ("FLAGON_FEATURE__ENABLED", "true"),
            ("FLAGON_FEATURE__LIMIT", "8080"),
            ("FLAGON_FEATURE__RATIO", "0.25"),
            ("FLAGON_FEATURE__PASSWORD", "0123456"),
        ])
        .build()
        .unwrap();
    let f = feature(&config).unwrap();
    assert!(f.enabled);
    assert_eq!(f.limit, Some(8080));
    assert_eq!(f.ratio, 0.25);
    assert_eq!(f.password, "0123456");
    for value in ["yes", "on", "1", "TRUE"] {
        let config = Config::builder()
            .env([("FLAGON_FEATURE__ENABLED", value)])
            .build()
            .unwrap();
        let err = feature(&config).expect_err(value).remove(0);
        assert_eq!(err.key(), "feature.enabled");
        assert_eq!(
            err.source_desc(),
            "environment variable FLAGON_FEATURE__ENABLED"
        );
    }
    let config = Config::builder()
        .env([("FLAGON_FEATURE__LIMIT", "lots")])
        .build()
        .unwrap();
    assert_eq!(feature(&config).unwrap_err()[0].key(), "feature.limit");
}

#[test]
fn a_wrong_type_stops_the_build_with_its_cause_kept() {
    use std::error::Error as _;
    let config = Config::builder()
        .profile(Profile::Testing)
        .toml("[mail]\nport = \"25\"\n")
        .build()
        .unwrap();
    let err = App::builder()
        .settings(config)
        .register(Mail)
        .build()
        .expect_err("a string is not a port");
    let SetupError::Config(config_err) = &err.errors()[0] else {
        panic!("{err}");
    };
    assert_eq!(config_err.key(), "mail.port");
    let cause = config_err.source().expect("figment's error is kept");
    assert!(cause.to_string().contains("u16"), "{cause}");
    let Err(missing) = Config::builder().file("/nonexistent/flagon.toml") else {
        panic!("the file does not exist");
    };
    let io = missing.source().unwrap().downcast_ref::<std::io::Error>();
    assert_eq!(io.unwrap().kind(), std::io::ErrorKind::NotFound);
}
