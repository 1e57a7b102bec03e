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
        .config(config)
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

    let good = Config::builder()
        .profile(Profile::Production)
        .env([("FLAGON_SECRET_KEY", "k".repeat(40))])
        .build()
        .unwrap();
    let app = App::builder().config(good).register(Mail).build().unwrap();
    let same = Config::builder()
        .profile(Profile::Testing)
        .toml(format!("secret_key = \"{}\"", "k".repeat(40)))
        .build()
        .unwrap();
    let same = App::builder().config(same).build().unwrap();
    assert_eq!(
        app.derive_key("mail.links").as_bytes(),
        same.derive_key("mail.links").as_bytes(),
        "the configured key is the one used"
    );
}

#[test]
fn development_generates_a_throwaway_key() {
    let config = Config::builder()
        .profile(Profile::Development)
        .build()
        .unwrap();
    let a = App::builder().config(config.clone()).build().unwrap();
    let b = App::builder().config(config).build().unwrap();
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
}
