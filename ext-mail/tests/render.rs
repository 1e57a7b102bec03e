//! Templated and localized mail: `mail/NAME.{subject.txt,txt,html}` rendered with core's
//! templates in the recipient's locale, snapshotted as MIME (insta), and header injection
//! through a template (D1).

use flagon::templates::{Value, context, from_args};
use flagon::testing::testing_config_toml;
use flagon::{App, Locale};
use flagon_mail::{Attachment, Error, Mail};

fn app() -> App {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/templates");
    App::builder()
        .settings(testing_config_toml(&format!(
            "[templates]\ndir = \"{dir}\"\n[mail]\ndefault_sender = \"Shop <shop@example.com>\"\n"
        )))
        .register(Mail::extension())
        .configure(|app| {
            // What an i18n extension's `_()` does: translate into the locale being rendered
            // for (core's RenderRequest::locale), through core only.
            app.template_request_function("_", |req, args: &[Value]| {
                let (text,): (String,) = from_args(args)?;
                Ok(
                    match (
                        req.locale().map(|l| l.language().to_owned()).as_deref(),
                        text.as_str(),
                    ) {
                        (Some("fr"), "Welcome") => "Bienvenue".to_owned(),
                        (Some("de"), "Welcome") => "Willkommen".to_owned(),
                        (Some("ar"), "Welcome") => "\u{2068}مرحبا\u{2069}".to_owned(),
                        _ => text,
                    },
                )
            });
            Ok(())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Snapshots the message as sent, with what changes per run (id, date, boundaries) replaced.
fn snapshot(name: &str, raw: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"Message-ID: <[^>]+>", "Message-ID: <[id]>");
    settings.add_filter(r"Date: [^\n]+", "Date: [date]");
    settings.add_filter(r#"boundary="[^"]+""#, r#"boundary="[b]""#);
    settings.add_filter(r"(?m)^--[A-Za-z0-9]{20,}", "--[b]");
    settings.bind(|| insta::assert_snapshot!(name, raw.replace("\r\n", "\n")));
}

#[tokio::test]
async fn a_templated_mail_renders_text_html_and_subject_with_an_inline_image() {
    let app = app();
    let mail = Mail::of(app.handle()).unwrap();
    let msg = mail
        .render("welcome", context! { name => "Ann" })
        .await
        .unwrap()
        .to("Ann <ann@example.com>")
        .attach(Attachment::inline(
            "logo",
            "logo.png",
            vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3],
        ))
        .build()
        .unwrap();
    assert_eq!(msg.subject(), "Welcome, Ann!");
    assert!(msg.html().unwrap().contains("<b>Ann</b>"));
    let p = mail.prepare(&msg).unwrap();
    snapshot("welcome_en", &p.raw_str());
}

#[tokio::test]
async fn a_templated_mail_renders_in_the_recipients_locale() {
    let app = app();
    let mail = Mail::of(app.handle()).unwrap();
    for (tag, subject) in [("fr", "Bienvenue, Zoë!"), ("de-AT", "Willkommen, Zoë!")] {
        let locale = Locale::parse(tag).unwrap();
        let msg = mail
            .render_for(&locale, "welcome", context! { name => "Zoë" })
            .await
            .unwrap()
            .to("zoe@example.com")
            .build()
            .unwrap();
        assert_eq!(msg.subject(), subject);
        assert!(
            msg.text().unwrap().contains(&format!("({tag})")),
            "{:?}",
            msg.text()
        );
        let p = mail.prepare(&msg).unwrap();
        let subject_line = p
            .raw_str()
            .lines()
            .find(|l| l.starts_with("Subject:"))
            .unwrap()
            .to_owned();
        assert!(
            subject_line.is_ascii() && subject_line.contains("=?utf-8?"),
            "RFC 2047: {subject_line}"
        );
        if tag == "fr" {
            snapshot("welcome_fr", &p.raw_str());
        }
    }
}

#[tokio::test]
async fn either_body_may_be_absent_but_not_every_template() {
    let app = app();
    let mail = Mail::of(app.handle()).unwrap();
    let msg = mail
        .render("html_only", context! { name => "Ann" })
        .await
        .unwrap()
        .to("a@example.com")
        .build()
        .unwrap();
    assert!(msg.text().is_none());
    assert!(msg.html().unwrap().contains("Only HTML for Ann"));
    assert_eq!(msg.subject(), "");
    let e = mail.render("missing", context! {}).await.unwrap_err();
    assert!(matches!(e, Error::Template { .. }), "{e}");
}

#[tokio::test]
async fn d1_a_line_break_or_bidi_mark_a_template_puts_in_the_subject_is_refused() {
    let app = app();
    let mail = Mail::of(app.handle()).unwrap();
    for evil in [
        "Hi\r\nBcc: evil@example.net",
        "Hi\nBcc: evil@example.net",
        "Hi%0d%0aBcc: evil@example.net",
    ] {
        let e = mail
            .render("echo", context! { subject => evil })
            .await
            .unwrap()
            .to("a@example.com")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Header { .. }), "{evil:?}: {e}");
    }
    // A translation with Unicode isolation marks (Fluent's default) is refused in a header.
    let ar = Locale::parse("ar").unwrap();
    let e = mail
        .render_for(&ar, "welcome", context! { name => "x" })
        .await
        .unwrap()
        .to("a@example.com")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Header { .. }), "{e}");
}
