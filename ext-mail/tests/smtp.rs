//! SMTP against a real server (aiosmtpd, `tests/support/smtp_server.py`): delivery over
//! plain, STARTTLS and implicit TLS; header injection (D1); dot-stuffing and line endings
//! (D2); blackhole, slow-drip and stalled servers cut by the per-phase timeouts (D6);
//! refused or bad TLS (D7).

mod support;

use std::time::{Duration, Instant};

use flagon_mail::{Error, FailureClass, Mail, Message, Phase};
use support::{addr, mail_app, smtp};

fn mail_for(toml: &str) -> Mail {
    let app = mail_app(toml, None);
    Mail::of(app.handle()).unwrap()
}

#[tokio::test]
async fn delivers_over_plain_starttls_and_implicit_tls() {
    let Some(s) = smtp() else { return };
    for (port, tls, encrypted) in [
        (s.plain, "none", false),
        (s.starttls, "starttls", true),
        (s.implicit, "tls", true),
    ] {
        let mail = mail_for(&s.toml(port, tls, ""));
        let to = addr("ok-");
        let msg = Message::builder()
            .to(to.as_str())
            .subject("Hello")
            .text("Body")
            .build()
            .unwrap();
        let d = mail
            .send(&msg)
            .await
            .unwrap_or_else(|e| panic!("{tls}: {e}"));
        assert_eq!(d.accepted.len(), 1);
        assert!(d.reply.starts_with("250"), "{}", d.reply);
        let got = s.wait_for(&to, 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1, "{tls}");
        assert_eq!(got[0].tls, encrypted, "{tls}");
        assert_eq!(got[0].from, "app@example.com");
    }
}

#[tokio::test]
async fn d1_injected_headers_never_reach_the_wire() {
    let Some(s) = smtp() else { return };
    let mail = mail_for(&s.toml(s.plain, "none", ""));
    let to = addr("d1-");
    // Each attempt is refused with a typed error before anything is sent.
    let attempts = [
        Message::builder()
            .to(to.as_str())
            .subject("Hi\r\nBcc: evil@example.net")
            .build(),
        Message::builder()
            .to(to.as_str())
            .subject("Hi\nBcc: evil@example.net")
            .build(),
        Message::builder()
            .to(to.as_str())
            .subject("Hi %0d%0aBcc: evil@example.net")
            .build(),
        Message::builder()
            .to(to.as_str())
            .subject("Hi \u{2068}admin\u{2069}")
            .build(),
        Message::builder()
            .to(format!("Ann\r\nBcc: evil@example.net <{to}>").as_str())
            .build(),
        Message::builder()
            .to((("Ann\nBcc: evil@example.net"), to.as_str()))
            .build(),
        Message::builder()
            .to(format!("{to}\r\nBcc: evil@example.net").as_str())
            .build(),
        Message::builder()
            .to(to.as_str())
            .header("X-Note", "a\r\nBcc: evil@example.net")
            .build(),
    ];
    for a in attempts {
        match a {
            Err(Error::Address { .. } | Error::Header { .. }) => {}
            other => panic!("not refused with a typed error: {other:?}"),
        }
    }
    // Free text that is allowed goes out encoded, and the DATA has no extra header lines.
    let msg = Message::builder()
        .from(("Zoë: \"the boss\"", "boss@example.com"))
        .to(to.as_str())
        .subject("Grüße: Bcc evil@example.net")
        .text("body")
        .build()
        .unwrap();
    mail.send(&msg).await.unwrap();
    let got = s.wait_for(&to, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let raw = String::from_utf8_lossy(&got[0].raw);
    let headers = raw.split("\r\n\r\n").next().unwrap();
    for line in headers.lines() {
        assert!(!line.to_ascii_lowercase().starts_with("bcc:"), "{headers}");
    }
    assert_eq!(got[0].to, vec![to.to_lowercase()], "no recipient was added");
    let parsed = mailparse::parse_mail(&got[0].raw).unwrap();
    use mailparse::MailHeaderMap;
    assert_eq!(
        parsed.headers.get_first_value("Subject").unwrap(),
        "Grüße: Bcc evil@example.net"
    );
}

#[tokio::test]
async fn d2_dot_lines_and_bare_line_endings_arrive_as_one_message() {
    let Some(s) = smtp() else { return };
    let mail = mail_for(&s.toml(s.plain, "none", ""));
    let to = addr("d2-");
    let body = "first\r\n.\r\nMAIL FROM:<evil@example.net>\r\n\n.\nRCPT TO:<evil@example.net>\n\r.\r..x\n.\nlast line";
    let msg = Message::builder()
        .to(to.as_str())
        .subject("dots")
        .text(body)
        .build()
        .unwrap();
    mail.send(&msg).await.unwrap();
    // A raw message with bare LFs, as stored in an outbox row, goes through the same path.
    let prepared = mail.prepare(&msg).unwrap();
    let mut raw = prepared.raw().to_vec();
    raw.extend_from_slice(b"\n.\nQUIT\n");
    let bare = flagon_mail::normalize_crlf(&raw);
    assert!(!bare.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    let got = s.wait_for(&to, 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_after = s.received_for(&to);
    assert_eq!(got.len(), 1, "exactly one message");
    assert_eq!(got_after.len(), 1, "exactly one message");
    assert!(
        s.received_for("evil@example.net").is_empty(),
        "no smuggled transaction"
    );
    let parsed = mailparse::parse_mail(&got[0].raw).unwrap();
    let text = parsed.get_body().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"."), "{text:?}");
    assert!(lines.contains(&"..x") || text.contains("..x"), "{text:?}");
    assert!(
        text.contains("MAIL FROM:<evil@example.net>"),
        "the body kept its text"
    );
    assert!(
        text.trim_end().ends_with("last line"),
        "the whole body arrived: {text:?}"
    );
}

#[tokio::test]
async fn d6_blackhole_drip_and_stall_are_cut_by_the_phase_timeouts() {
    let Some(s) = smtp() else { return };
    let quick = "connect_timeout = \"1s\"\ngreeting_timeout = \"1s\"\ncommand_timeout = \"1s\"\ndata_timeout = \"1s\"";
    let toml = |port| {
        s.toml(port, "none", "").replace(
        "connect_timeout = \"2s\"\ngreeting_timeout = \"2s\"\ncommand_timeout = \"2s\"\ndata_timeout = \"3s\"",
        quick,
    )
    };
    let msg = |to: &str| {
        Message::builder()
            .to(to)
            .subject("t")
            .text("b")
            .build()
            .unwrap()
    };

    for (port, what) in [(s.blackhole, "blackhole"), (s.drip, "drip")] {
        let mail = mail_for(&toml(port));
        let started = Instant::now();
        let e = mail.send(&msg(&addr("x-"))).await.unwrap_err();
        let took = started.elapsed();
        let Error::Send(e) = e else {
            panic!("{what}: {e}")
        };
        assert!(e.timed_out, "{what}: {e}");
        assert_eq!(e.phase, Phase::Greeting, "{what}: {e}");
        assert_eq!(e.class, FailureClass::Transient);
        assert!(took < Duration::from_millis(1900), "{what} took {took:?}");
    }

    // A server that stalls after the final dot, and one that stalls a RCPT: each cut, while
    // messages to a healthy mailbox keep flowing alongside.
    let mail = mail_for(&toml(s.plain));
    let stalled = addr("stall-");
    let slow = addr("slow-rcpt-");
    let healthy: Vec<String> = (0..5).map(|_| addr("flow-")).collect();
    let started = Instant::now();
    let (m_stalled, m_slow) = (msg(&stalled), msg(&slow));
    let (a, b, others) = tokio::join!(mail.send(&m_stalled), mail.send(&m_slow), async {
        let mut out = Vec::new();
        for h in &healthy {
            out.push(mail.send(&msg(h)).await);
        }
        out
    });
    let Error::Send(a) = a.unwrap_err() else {
        panic!()
    };
    assert!(a.timed_out && a.phase == Phase::DataEnd, "{a}");
    let Error::Send(b) = b.unwrap_err() else {
        panic!()
    };
    assert!(b.timed_out && b.phase == Phase::Rcpt, "{b}");
    for r in others {
        r.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for h in &healthy {
        assert_eq!(s.received_for(h).len(), 1);
    }
}

#[tokio::test]
async fn d7_no_starttls_or_a_bad_certificate_means_not_sent_and_no_credentials() {
    let Some(s) = smtp() else { return };
    let creds = "username = \"app\"\npassword = \"secret\"";
    // The plain port offers no STARTTLS (as when a MITM strips it), but offers AUTH in clear.
    let mail = mail_for(&s.toml(s.plain, "starttls", creds));
    let to = addr("d7-");
    let msg = Message::builder()
        .to(to.as_str())
        .subject("t")
        .text("b")
        .build()
        .unwrap();
    let Error::Send(e) = mail.send(&msg).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.phase, Phase::Tls, "{e}");
    assert!(e.is_transient());
    // A certificate for another host.
    let mail = mail_for(&s.toml(s.starttls_wrong, "starttls", creds));
    let Error::Send(e) = mail.send(&msg).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.phase, Phase::Tls, "{e}");
    // An expired certificate for the right host.
    let mail = mail_for(&s.toml(s.starttls_expired, "starttls", creds));
    let Error::Send(e) = mail.send(&msg).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.phase, Phase::Tls, "{e}");
    // A certificate from a CA nobody trusts (no ca_file).
    let toml = s
        .toml(s.implicit, "tls", creds)
        .replace(&format!("ca_file = \"{}\"\n", s.certs.ca_pem.display()), "");
    let mail = mail_for(&toml);
    assert!(mail.send(&msg).await.is_err());
    assert!(s.received_for(&to).is_empty(), "nothing was sent");
    assert!(
        !s.auth_log().contains("tls=False"),
        "credentials went out in clear: {}",
        s.auth_log()
    );
    assert!(
        !s.auth_log().contains("app tls"),
        "credentials reached a bad server: {}",
        s.auth_log()
    );

    // With a good certificate the same credentials log in, encrypted.
    let mail = mail_for(&s.toml(s.starttls, "starttls", creds));
    mail.send(&msg).await.unwrap();
    assert!(s.auth_log().contains("app tls=True"), "{}", s.auth_log());
    assert_eq!(s.wait_for(&to, 1, Duration::from_secs(5)).await.len(), 1);
}

#[tokio::test]
async fn d3_a_421_greeting_is_a_transient_failure() {
    let Some(s) = smtp() else { return };
    let mail = mail_for(&s.toml(s.busy, "none", ""));
    let msg = Message::builder()
        .to(addr("busy-").as_str())
        .text("b")
        .build()
        .unwrap();
    let Error::Send(e) = mail.send(&msg).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.phase, Phase::Greeting, "{e}");
    assert_eq!(e.class, FailureClass::Transient, "{e}");
    assert_eq!(e.code, Some(421), "{e}");
}

#[tokio::test]
async fn credentials_with_tls_none_are_a_build_error_naming_the_key() {
    let Some(s) = smtp() else { return };
    let toml = s.toml(s.plain, "none", "username = \"app\"\npassword = \"secret\"");
    let built = flagon::App::builder()
        .settings(flagon::testing::testing_config_toml(&toml))
        .register(Mail::extension())
        .build();
    let Err(err) = built else { panic!("accepted") };
    assert!(err.to_string().contains("mail.smtp.tls"), "{err}");
}

#[tokio::test]
async fn mixed_recipients_are_reported_one_by_one() {
    let Some(s) = smtp() else { return };
    let mail = mail_for(&s.toml(s.plain, "none", ""));
    let ok = addr("mixed-ok-");
    let soft = addr("rcpt-451-");
    let hard = addr("rcpt-550-");
    let too_many = addr("rcpt-552-");
    let msg = Message::builder()
        .to(ok.as_str())
        .cc(soft.as_str())
        .bcc(hard.as_str())
        .bcc(too_many.as_str())
        .subject("t")
        .text("b")
        .build()
        .unwrap();
    let d = mail.send(&msg).await.unwrap();
    assert_eq!(
        d.accepted.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        vec![ok.clone()]
    );
    let deferred: Vec<_> = d
        .deferred
        .iter()
        .map(|f| (f.address.to_string(), f.code))
        .collect();
    assert_eq!(
        deferred,
        vec![(soft.clone(), 451), (too_many.clone(), 552)],
        "552 counts as 452"
    );
    assert_eq!(d.rejected.len(), 1);
    assert_eq!(d.rejected[0].code, 550);
    let got = s.wait_for(&ok, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec![ok.to_lowercase()]);
    // Nothing accepted: an error, with the class of the refusals.
    let msg = Message::builder()
        .to(hard.as_str())
        .subject("t")
        .text("b")
        .build()
        .unwrap();
    let Error::Send(e) = mail.send(&msg).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.class, FailureClass::Permanent);
}

#[tokio::test]
async fn a_pooled_connection_is_reused_and_a_broken_one_replaced() {
    let Some(s) = smtp() else { return };
    let mail = mail_for(&s.toml(s.plain, "none", ""));
    let to = addr("pool-");
    let msg = Message::builder()
        .to(to.as_str())
        .subject("t")
        .text("b")
        .build()
        .unwrap();
    let first = mail.send(&msg).await.unwrap();
    assert!(first.transcript.iter().any(|l| l.starts_with("connected")));
    let second = mail.send(&msg).await.unwrap();
    assert!(
        second
            .transcript
            .iter()
            .any(|l| l == "reused a pooled connection"),
        "{:?}",
        second.transcript
    );
    assert_eq!(s.wait_for(&to, 2, Duration::from_secs(5)).await.len(), 2);
}
