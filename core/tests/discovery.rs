//! Link-time discovery: extensions announced with `submit_extension!` are registered by
//! `.discover()`, can be disabled in `[extensions]`, and go through the same ordering and
//! clash checks as explicit ones.

use flagon::testing::{TestClient, testing_config, testing_config_toml};
use flagon::{App, Arrival, Extension, Route, Setup, SetupError};

/// Discovered; requires `disc-base`, which sorts after it by name.
struct Audit;

impl Extension for Audit {
    fn name(&self) -> &'static str {
        "disc-audit"
    }

    fn requires(&self) -> &'static [&'static str] {
        &["disc-base"]
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let base = app
            .state::<BaseState>()
            .ok_or_else(|| SetupError::init("disc-audit", "disc-base did not run first"))?;
        app.provide(AuditState(format!("audited by {}", base.0)));
        Ok(())
    }
}

/// Discovered; reads `[disc_base]` and serves `/disc/ping`.
struct Base {
    greeting: String,
}

#[derive(Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
struct BaseConfig {
    greeting: Option<String>,
}

struct BaseState(String);
struct AuditState(String);

impl Extension for Base {
    fn name(&self) -> &'static str {
        "disc-base"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.provide(BaseState(self.greeting.clone()));
        let greeting = self.greeting.clone();
        app.route(
            Route::get("/disc/ping", move || {
                let g = greeting.clone();
                async move { g }
            })
            .name("disc_ping"),
        );
        Ok(())
    }
}

flagon::submit_extension!("disc-audit", |_config| Ok(Box::new(Audit)));
flagon::submit_extension!("disc-base", |config| {
    let cfg: BaseConfig = config.section("disc_base").map_err(|mut e| e.remove(0))?;
    Ok(Box::new(Base {
        greeting: cfg.greeting.unwrap_or_else(|| "pong".into()),
    }))
});

/// An explicit extension whose route clashes with `disc-base`'s.
struct Squatter;

impl Extension for Squatter {
    fn name(&self) -> &'static str {
        "squatter"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.route(Route::get("/disc/ping", || async { "mine" }).name("squat"));
        Ok(())
    }
}

fn arrivals(app: &App) -> Vec<(&'static str, Arrival)> {
    app.extensions().map(|e| (e.name, e.arrival)).collect()
}

#[tokio::test]
async fn discovery_registers_linked_extensions() {
    let app = App::builder()
        .settings(testing_config())
        .discover()
        .build()
        .unwrap();
    // `disc-audit` requires `disc-base`, so `disc-base` is initialised first although
    // discovery sorts by name.
    assert_eq!(
        arrivals(&app),
        [
            ("disc-base", Arrival::Discovered),
            ("disc-audit", Arrival::Discovered)
        ]
    );
    assert_eq!(
        app.state::<AuditState>().unwrap().0,
        "audited by pong",
        "disc-audit saw disc-base's state"
    );
    let res = TestClient::new(&app).get("/disc/ping").send().await;
    assert_eq!(res.text(), "pong");
    let listing = app.extensions_text();
    assert!(listing.contains("disc-base (discovered)\n"), "{listing}");
    assert!(
        listing.contains("disc-audit (discovered; requires disc-base)\n"),
        "{listing}"
    );
    assert!(listing.contains("config section [extensions]"), "{listing}");
}

#[test]
fn without_discover_nothing_is_registered() {
    let app = App::builder().settings(testing_config()).build().unwrap();
    assert_eq!(app.extensions().count(), 0);
    assert!(!app.extensions_text().contains("[extensions]"));
}

#[tokio::test]
async fn the_factory_reads_config() {
    let app = App::builder()
        .settings(testing_config_toml("[disc_base]\ngreeting = \"hi\"\n"))
        .configure(|s| {
            // Nobody else reads [disc_base]: the factory read it, the app claims it.
            let _: BaseConfig = s.config("disc_base")?;
            Ok(())
        })
        .discover()
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/disc/ping").send().await;
    assert_eq!(res.text(), "hi");
}

#[test]
fn config_disables_a_discovered_extension() {
    let config = testing_config_toml("[extensions]\ndisabled = [\"disc-audit\"]\n");
    let app = App::builder().settings(config).discover().build().unwrap();
    assert_eq!(arrivals(&app), [("disc-base", Arrival::Discovered)]);
    assert!(
        app.extensions_text()
            .contains("disc-audit (discovered, disabled by [extensions] disabled)"),
        "{}",
        app.extensions_text()
    );
}

#[test]
fn disabling_a_required_extension_is_a_build_error() {
    let config = testing_config_toml("[extensions]\ndisabled = [\"disc-base\"]\n");
    let err = App::builder()
        .settings(config)
        .discover()
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("config key `extensions.disabled`"), "{err}");
    assert!(
        err.contains("`disc-base` is disabled, but extension `disc-audit` requires it"),
        "{err}"
    );
}

#[test]
fn an_unknown_disabled_name_is_a_config_error_naming_the_key() {
    let config = testing_config_toml("[extensions]\ndisabled = [\"disc-typo\"]\n");
    let err = App::builder()
        .settings(config)
        .discover()
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("config key `extensions.disabled`"), "{err}");
    assert!(err.contains("flagon.toml line 2"), "{err}");
    assert!(err.contains("`disc-typo`"), "{err}");
    assert!(err.contains("linked: disc-audit, disc-base"), "{err}");
}

#[test]
fn a_clash_between_discovered_and_explicit_extensions_names_both() {
    let err = App::builder()
        .settings(testing_config())
        .register(Squatter)
        .discover()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("route GET /disc/ping is registered twice: by extension `squatter` and by extension `disc-base`"),
        "{err}"
    );
}

#[tokio::test]
async fn an_explicit_registration_replaces_the_discovered_one() {
    let app = App::builder()
        .settings(testing_config())
        .register(Base {
            greeting: "explicit".into(),
        })
        .discover()
        .build()
        .unwrap();
    assert_eq!(
        arrivals(&app),
        [
            ("disc-base", Arrival::Explicit),
            ("disc-audit", Arrival::Discovered)
        ]
    );
    let listing = app.extensions_text();
    assert!(
        listing.contains("disc-base (registered explicitly, replacing the discovered one)"),
        "{listing}"
    );
    let res = TestClient::new(&app).get("/disc/ping").send().await;
    assert_eq!(res.text(), "explicit");
}

#[test]
fn linked_entries_are_sorted() {
    let names: Vec<&str> = flagon::discovery::linked()
        .iter()
        .map(|d| d.name())
        .collect();
    assert_eq!(names, ["disc-audit", "disc-base"]);
    assert!(
        flagon::discovery::linked()[0]
            .module()
            .starts_with("discovery")
    );
}

#[test]
fn the_config_command_shows_the_section_with_its_source() {
    let config = testing_config_toml("[extensions]\ndisabled = [\"disc-audit\"]\n");
    let app = App::builder().settings(config).discover().build().unwrap();
    let text = app.config_text();
    let line = text
        .lines()
        .find(|l| l.starts_with("extensions.disabled"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("[\"disc-audit\"]"), "{line}");
    assert!(line.contains("flagon.toml line 2"), "{line}");
}
