//! Keys derived from the secret key for one purpose each (`derive_key`).

use std::sync::{Arc, Mutex};

use flagon::testing::testing_config_toml;
use flagon::{App, DerivedKey, Extension, Setup, SetupError};

fn app(secret: &str) -> App {
    App::builder()
        .settings(testing_config_toml(&format!("secret_key = \"{secret}\"")))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn distinct_purposes_give_distinct_keys() {
    let app = app("one secret key, long enough for the test");
    let remember = app.derive_key("login.remember");
    let reset = app.derive_key("login.reset");
    assert_ne!(remember.as_bytes(), reset.as_bytes());
    assert_ne!(remember.as_bytes(), app.derive_key("").as_bytes());
    assert_ne!(remember.as_bytes(), &[0u8; 32]);
}

#[test]
fn keys_are_stable_across_builds_with_the_same_secret() {
    let a = app("one secret key, long enough for the test");
    let b = app("one secret key, long enough for the test");
    assert_eq!(
        a.derive_key("login.remember").as_bytes(),
        b.derive_key("login.remember").as_bytes()
    );
}

#[test]
fn another_secret_gives_other_keys() {
    let a = app("one secret key, long enough for the test");
    let b = app("another secret key, long enough for it");
    assert_ne!(
        a.derive_key("login.remember").as_bytes(),
        b.derive_key("login.remember").as_bytes()
    );
}

#[test]
fn a_derived_key_does_not_print_its_bytes() {
    let key = app("one secret key, long enough for the test").derive_key("login.remember");
    let printed = format!("{key:?}");
    assert_eq!(printed, "DerivedKey(..)");
}

/// Takes its key at setup, as an extension building a signer in `init_app` does.
struct Remember(Arc<Mutex<Option<DerivedKey>>>);

impl Extension for Remember {
    fn name(&self) -> &'static str {
        "remember"
    }
    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        *self.0.lock().unwrap() = Some(app.derive_key("remember.token"));
        Ok(())
    }
}

#[test]
fn the_setup_time_key_is_the_handles_key() {
    let seen = Arc::new(Mutex::new(None));
    let app = App::builder()
        .settings(testing_config_toml(
            "secret_key = \"one secret key, long enough for the test\"",
        ))
        .register(Remember(seen.clone()))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let at_setup = seen.lock().unwrap().clone().expect("init_app ran");
    assert_eq!(
        at_setup.as_bytes(),
        app.derive_key("remember.token").as_bytes()
    );
}
