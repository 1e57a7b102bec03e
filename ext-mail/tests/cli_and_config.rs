//! The `mail` commands against a real outbox and SMTP server, the file and console
//! transports, the profile defaults, and configuration errors naming their key.

mod support;

use std::time::Duration;

use flagon::App;
use flagon::cli::Output;
use flagon::config::{Config, Profile};
use flagon::testing::testing_config_toml;
use flagon_mail::{Mail, Message, Status, TransportKind};
use support::{TestDb, addr, mail_app, relay_until, smtp, start};

async fn run(app: &App, args: &[&str]) -> (u8, String, String) {
    let (out, err) = (Output::buffer(), Output::buffer());
    let args = std::iter::once("app").chain(args.iter().copied());
    let code = app.run_with(args, out.clone(), err.clone()).await;
    (code, out.contents(), err.contents())
}

#[tokio::test]
async fn send_test_prints_the_smtp_dialogue() {
    let Some(s) = smtp() else { return };
    let app = mail_app(&s.toml(s.starttls, "starttls", ""), None);
    let to = addr("cli-");
    let (code, out, err) = run(&app, &["mail", "send-test", &to]).await;
    assert_eq!(code, 0, "{out}{err}");
    for expected in [
        "transport: smtp",
        "STARTTLS: encrypted",
        "MAIL FROM:<app@example.com> → 250",
        "DATA → 354",
        "sent to",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert_eq!(s.wait_for(&to, 1, Duration::from_secs(5)).await.len(), 1);
    // A refused recipient: exit status 1 and the reason.
    let (code, out, err) = run(&app, &["mail", "send-test", &addr("rcpt-550-")]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("refused") && out.contains("550"), "{out}");
}

#[tokio::test]
async fn outbox_list_retry_and_purge() {
    let Some(s) = smtp() else { return };
    let t = TestDb::sqlite();
    let toml = format!(
        "{}[mail.outbox]\npoll_interval = \"50ms\"\n",
        s.toml(s.plain, "none", "")
    );
    let app = mail_app(&toml, Some(&t.url));
    start(&app).await;
    let mail = Mail::of(app.handle()).unwrap();
    let ok = addr("list-ok-");
    let hard = addr("rcpt-550-");
    mail.enqueue(
        &Message::builder()
            .to(ok.as_str())
            .text("b")
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let failed = mail
        .enqueue(
            &Message::builder()
                .to(hard.as_str())
                .text("b")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    // Each command runs on an app of its own (a command ends with the app's shutdown).
    let cli = || mail_app(&toml, Some(&t.url));
    let (code, out, err) = run(&cli(), &["mail", "outbox", "--status", "pending"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&ok) && out.contains(&hard), "{out}");
    relay_until(&mail, Duration::from_secs(10), || {
        !s.received_for(&ok).is_empty()
    })
    .await;
    relay_until(&mail, Duration::from_millis(300), || false).await;
    let (_, out, _) = run(&cli(), &["mail", "outbox", "--status", "failed"]).await;
    assert!(
        out.contains(&hard) && out.contains("550") && !out.contains(&ok),
        "{out}"
    );
    let (_, out, _) = run(&cli(), &["mail", "outbox", "--status", "sent"]).await;
    assert!(out.contains(&ok) && !out.contains(&hard), "{out}");
    let (code, out, _) = run(&cli(), &["mail", "outbox", "retry", &failed.to_string()]).await;
    assert_eq!(code, 0);
    assert!(out.contains("1 message(s) queued again"), "{out}");
    assert_eq!(
        mail.queue()
            .list(Some(Status::Pending), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    relay_until(&mail, Duration::from_millis(500), || false).await;
    let (_, out, _) = run(&cli(), &["mail", "outbox", "retry", "--all-failed"]).await;
    assert!(out.contains("1 message(s) queued again"), "{out}");
    let (code, _, err) = run(&cli(), &["mail", "outbox", "retry"]).await;
    assert_eq!(code, 1, "{err}");
    // Purge: nothing sent a day ago; everything sent before now.
    let (_, out, _) = run(&cli(), &["mail", "outbox", "purge", "--sent-before", "1d"]).await;
    assert!(out.contains("0 sent message(s) purged"), "{out}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, out, _) = run(&cli(), &["mail", "outbox", "purge", "--sent-before", "1ms"]).await;
    assert!(out.contains("1 sent message(s) purged"), "{out}");
    let (code, _, err) = run(
        &cli(),
        &["mail", "outbox", "purge", "--sent-before", "soon"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("--sent-before"), "{err}");
}

#[tokio::test]
async fn the_file_transport_writes_one_eml_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[mail]\ntransport = \"file\"\nfile_dir = \"{}\"\ndefault_sender = \"app@example.com\"\n",
        dir.path().join("mail").display()
    );
    let app = mail_app(&toml, None);
    let mail = Mail::of(app.handle()).unwrap();
    for i in 0..3 {
        let m = Message::builder()
            .to("ann@example.com")
            .subject(format!("n{i}"))
            .text("b")
            .build()
            .unwrap();
        mail.send(&m).await.unwrap();
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(files.len(), 3);
    for f in files {
        assert!(f.file_name().to_string_lossy().ends_with(".eml"));
        let raw = std::fs::read(f.path()).unwrap();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        assert_eq!(parsed.get_body().unwrap().trim(), "b");
    }
}

#[test]
fn transports_default_by_profile() {
    let kind = |profile| {
        let app = App::builder()
            .settings(
                Config::builder()
                    .profile(profile)
                    .toml("secret_key = \"a-long-enough-secret-key-for-production-use-0123456789\"")
                    .build()
                    .unwrap(),
            )
            .register(Mail::extension())
            .build();
        app.map(|a| Mail::of(a.handle()).unwrap().transport_kind())
    };
    assert_eq!(kind(Profile::Testing).unwrap(), TransportKind::OutboxTest);
    assert_eq!(kind(Profile::Development).unwrap(), TransportKind::File);
    // Production: SMTP (this crate's tests compile the `smtp` feature in).
    assert_eq!(kind(Profile::Production).unwrap(), TransportKind::Smtp);
}

#[test]
fn bad_configuration_names_the_key() {
    for (toml, key) in [
        ("[mail]\ntransport = \"carrier-pigeon\"", "mail.transport"),
        (
            "[mail]\ndefault_sender = \"not an address\"",
            "mail.default_sender",
        ),
        ("[mail]\nunknown = 1", "mail"),
        (
            "[mail.smtp]\nconnect_timeout = \"soon\"",
            "mail.smtp.connect_timeout",
        ),
        ("[mail.outbox]\nconcurrency = 0", "mail.outbox.concurrency"),
        ("[mail.outbox]\nstore = \"db\"", "mail.outbox.store"),
        (
            "[mail]\ntransport = \"smtp\"\n[mail.smtp]\nusername = \"u\"",
            "mail.smtp.password",
        ),
        (
            "[mail]\ntransport = \"smtp\"\n[mail.smtp]\nca_file = \"/nonexistent.pem\"",
            "mail.smtp.ca_file",
        ),
        (
            "[mail]\ntransport = \"smtp\"\n[mail.outbox]\nlease = \"10s\"",
            "mail.outbox.lease",
        ),
    ] {
        let err = App::builder()
            .settings(testing_config_toml(toml))
            .register(Mail::extension())
            .build()
            .err()
            .unwrap_or_else(|| panic!("accepted: {toml}"));
        assert!(err.to_string().contains(key), "{toml}: {err}");
    }
}

#[tokio::test]
async fn the_console_transport_logs_the_message_and_reports_it_sent() {
    let app = mail_app(
        "[mail]\ntransport = \"console\"\ndefault_sender = \"app@example.com\"\n",
        None,
    );
    let mail = Mail::of(app.handle()).unwrap();
    assert_eq!(mail.transport_kind(), TransportKind::Console);
    let m = Message::builder()
        .to("ann@example.com")
        .subject("logged")
        .text("b")
        .build()
        .unwrap();
    let d = mail.send(&m).await.unwrap();
    assert_eq!(d.reply, "logged");
    assert_eq!(d.accepted.len(), 1);
    assert!(mail.outbox().is_none(), "only the test transport records");
}
