//! A flashed `Message` waits in the session untranslated and is translated when shown, in
//! the locale of the request that shows it.
#![allow(clippy::result_large_err)] // `configure` closures return SetupError

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::response::{Html, Redirect};
use flagon::messages::{Message, Translator, Translators};
use flagon::session::Session;
use flagon::templates::Templates;
use flagon::testing::{TestClient, testing_config_toml};
use flagon::{App, HttpError, Locale, Route};

struct ByLocale;

impl Translator for ByLocale {
    fn translate(&self, locale: Option<&Locale>, m: &Message) -> Option<String> {
        let n = match m.get("n") {
            Some(flagon::messages::Arg::Number(n)) => *n,
            _ => 0.0,
        };
        match (locale.map(Locale::as_str), m.id()) {
            (Some("fr"), "saved") => Some(format!("{n} enregistrés")),
            (_, "saved") => Some(format!("{n} saved")),
            _ => None,
        }
    }
}

async fn save(session: Session) -> Result<Redirect, HttpError> {
    session.flash_message(
        Message::new("saved").arg("n", 3).fallback("Saved."),
        "success",
    )?;
    session.flash_message(Message::new("unknown").fallback("As written."), "info")?;
    session.flash("Plain text.", "info")?;
    Ok(Redirect::to("/show"))
}

async fn show(tpl: Templates) -> Result<Html<String>, HttpError> {
    tpl.render("flashes.txt", ()).await
}

#[tokio::test]
async fn a_flashed_message_is_translated_when_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flashes.txt"),
        "{% for c, m in get_flashed_messages(with_categories=true) %}[{{ c }}: {{ m }}]{% endfor %}",
    )
    .unwrap();
    let toml = format!(
        "[templates]\ndir = {:?}\n",
        dir.path().display().to_string()
    );
    let app = App::builder()
        .settings(testing_config_toml(&toml))
        .configure(|s| {
            s.add_to::<Translators>(Translators::NAME, Arc::new(ByLocale));
            s.before_request(|mut req: axum::extract::Request| async move {
                if req.uri().query() == Some("fr") {
                    let _ = Locale::set(&mut req, Locale::parse("fr").unwrap());
                }
                ControlFlow::Continue(req)
            });
            s.route(Route::get("/save", save));
            s.route(Route::get("/show", show));
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TestClient::new(&app).follow_redirects(false);
    let r = client.get("/save").send().await;
    assert_eq!(r.location(), Some("/show"));
    // Shown in the locale of the request that shows it, not the one that flashed it.
    let r = client.get("/show?fr").send().await;
    assert_eq!(
        r.text(),
        "[success: 3 enregistrés][info: As written.][info: Plain text.]"
    );
    client.get("/save?fr").send().await;
    assert_eq!(
        client.get("/show").send().await.text(),
        "[success: 3 saved][info: As written.][info: Plain text.]"
    );
}
