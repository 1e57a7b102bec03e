//! Typed registries: attributed entries, clash checks for unique names, reading them in the
//! finish phase and at run time, and core's session stores built on them.

use std::sync::Arc;

use flagon::session::{MemoryStore, SessionStore, SessionStores};
use flagon::testing::{TestClient, testing_config, testing_config_toml};
use flagon::{App, Extension, RegistryKind, Route, Setup, SetupError};

/// A registry a mail extension offers: transports by name.
struct Transports;

impl RegistryKind for Transports {
    type Entry = Arc<dyn Fn(&str) -> String + Send + Sync>;
    const KIND: &'static str = "mail transport";
}

/// A registry where many parties may add the same name.
struct Tags;

impl RegistryKind for Tags {
    type Entry = u32;
    const KIND: &'static str = "tag";
    const UNIQUE: bool = false;
}

struct Smtp;

impl Extension for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.add_to::<Transports>("smtp", Arc::new(|m: &str| format!("smtp: {m}")));
        app.add_to::<Tags>("mail", 1);
        Ok(())
    }
}

struct Console;

impl Extension for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.add_to::<Transports>("console", Arc::new(|m: &str| format!("console: {m}")));
        app.add_to::<Tags>("mail", 2);
        Ok(())
    }
}

/// Offers the registry and picks an entry at finish, from every extension's additions.
struct Mail {
    transport: &'static str,
}

struct Chosen(Arc<dyn Fn(&str) -> String + Send + Sync>);

impl Extension for Mail {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let wanted = self.transport;
        app.on_finish(move |late| {
            let transports = late.registry::<Transports>();
            match transports.get(wanted) {
                Some(t) => {
                    let t = t.clone();
                    late.provide(Chosen(t));
                    Ok(())
                }
                None => Err(late.config_error(
                    "mail.transport",
                    format!(
                        "unknown transport `{wanted}`; registered: {}",
                        transports.names().collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        });
        Ok(())
    }
}

#[tokio::test]
async fn an_extension_picks_an_entry_another_extension_added_even_when_registered_first() {
    // `mail` is initialised before `console` adds its transport: the finish phase sees it.
    let app = App::builder()
        .settings(testing_config())
        .register(Mail {
            transport: "console",
        })
        .register(Smtp)
        .register(Console)
        .route(
            Route::get("/send", |c: flagon::Ext<Chosen>| async move { (c.0)("hi") }).name("send"),
        )
        .build()
        .unwrap();
    let res = TestClient::new(&app).get("/send").send().await;
    assert_eq!(res.text(), "console: hi");

    // Entries are attributed, listed per owner, and readable at run time.
    let transports = app.registry::<Transports>();
    let owners: Vec<(&str, &str)> = transports
        .iter()
        .map(|e| (e.name(), e.origin().owner))
        .collect();
    assert_eq!(owners, [("smtp", "smtp"), ("console", "console")]);
    assert!(
        app.registrations("console")
            .unwrap()
            .contains(&"mail transport `console`".to_owned())
    );
    let tags: Vec<u32> = app.registry::<Tags>().iter().map(|e| *e.value()).collect();
    assert_eq!(tags, [1, 2]);
}

#[test]
fn an_unknown_entry_fails_the_build_listing_the_known_ones() {
    let err = App::builder()
        .settings(testing_config())
        .register(Mail { transport: "smtps" })
        .register(Smtp)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mail.transport")
            && err.contains("unknown transport `smtps`; registered: smtp"),
        "{err}"
    );
}

#[test]
fn two_entries_of_one_unique_name_fail_the_build_naming_both() {
    struct Other;
    impl Extension for Other {
        fn name(&self) -> &'static str {
            "other-smtp"
        }
        fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
            app.add_to::<Transports>("smtp", Arc::new(|m: &str| m.to_owned()));
            Ok(())
        }
    }
    let err = App::builder()
        .settings(testing_config())
        .register(Smtp)
        .register(Other)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "mail transport `smtp` is registered twice: by extension `smtp` and by extension `other-smtp`"
        ),
        "{err}"
    );
}

/// A session store offered by another extension, as `db` and `cache` do.
struct TinyStore;

impl Extension for TinyStore {
    fn name(&self) -> &'static str {
        "tiny"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        app.session_store("tiny", |ctx| {
            Ok(Arc::new(MemoryStore::with_clock(4, ctx.clock())) as Arc<dyn SessionStore>)
        });
        Ok(())
    }
}

#[test]
fn session_stores_are_a_registry_anyone_adds_to() {
    let app = App::builder()
        .settings(testing_config_toml("[session]\nstore = \"tiny\"\n"))
        .register(TinyStore)
        .build()
        .unwrap();
    let names: Vec<(&str, &str)> = app
        .registry::<SessionStores>()
        .iter()
        .map(|e| (e.name(), e.origin().owner))
        .collect();
    assert_eq!(names, [("memory", "flagon"), ("tiny", "tiny")]);

    let err = App::builder()
        .settings(testing_config_toml("[session]\nstore = \"redis\"\n"))
        .register(TinyStore)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown session store `redis`; registered stores: memory, tiny"),
        "{err}"
    );
}
