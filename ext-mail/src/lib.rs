//! Flask-Mail for Flagon, on [lettre]: messages whose headers cannot be injected, SMTP with a
//! timeout on every phase, file/console/test transports, templated mail, and a durable
//! outbox that never loses a message.
//!
//! ```
//! use flagon::testing::{TestClient, testing_config_toml};
//! use flagon::{App, Route};
//! use flagon_mail::{Mail, Message};
//!
//! async fn signup(mail: Mail) -> Result<&'static str, flagon::HttpError> {
//!     let msg = Message::builder()
//!         .to("Ann <ann@example.com>")
//!         .subject("Welcome!")
//!         .text("Thanks for signing up.")
//!         .html("<p>Thanks for signing up.</p>")
//!         .build()?;
//!     mail.send(&msg).await?;
//!     Ok("ok")
//! }
//!
//! # #[flagon::tokio::main(crate = "flagon::tokio")]
//! # async fn main() {
//! let app = App::builder()
//!     .settings(testing_config_toml("[mail]\ndefault_sender = \"App <app@example.com>\""))
//!     .register(Mail::extension())
//!     .route(Route::get("/signup", signup))
//!     .build()
//!     .unwrap();
//! TestClient::new(&app).get("/signup").send().await;
//! // The testing profile records messages instead of sending them.
//! let sent = Mail::of(app.handle()).unwrap().outbox().unwrap().messages();
//! assert_eq!(sent[0].message().unwrap().subject(), "Welcome!");
//! assert!(sent[0].raw_str().contains("From: App <app@example.com>"));
//! # }
//! ```
//!
//! # Messages
//!
//! [`Message::builder`] covers Flask-Mail's `Message`: subject, sender (default
//! `mail.default_sender`), to/cc/bcc (bcc only in the envelope), reply-to, extra headers,
//! date, text and HTML alternatives, attachments ([`Attachment::new`]: content type guessed
//! or given, RFC 2231 names) and inline images ([`Attachment::inline`], `cid:` in the HTML,
//! `multipart/related`). Addresses are [`Address`] / [`Mailbox`], which refuse CR/LF,
//! controls, bidi marks (U+2066–U+2069, U+202A–U+202E, LRM/RLM), `%0d%0a` and pre-encoded
//! words with an [`AddressError`]; subjects, display names and header values are free text,
//! RFC 2047-encoded when not ASCII and refused ([`Error::Header`]) when they would break a
//! header. Each message gets a `Message-ID` on the sender's domain when it is sent or
//! queued, kept across retries, so a duplicate delivery is recognisable.
//!
//! # Sending
//!
//! * [`Mail::send`]: now, through the transport. Every SMTP phase has its own timeout, so a
//!   request never hangs on a dead server.
//! * [`Mail::enqueue`]: into the outbox; the relay worker (`mail.outbox`, running while the
//!   app serves) sends it, retrying transient failures.
//! * `Mail::enqueue_in` (feature `db`): into the outbox **inside the caller's database
//!   transaction** (a `flagon_db::Tx`): a registration that rolls back sends nothing, one
//!   that commits always sends.
//!
//! ## The outbox
//!
//! With the `db` feature and the `db` extension registered before `mail`, the outbox is the
//! table `flagon_mail_outbox` (migration owner `mail`; `db upgrade` creates it) on SQLite,
//! PostgreSQL or MariaDB/MySQL. Relays claim due rows with `SELECT … FOR UPDATE SKIP LOCKED`
//! (SQLite: inside its single-writer `BEGIN IMMEDIATE` transaction) and mark them with a
//! claim token and a lease; the outcome is written only if the token still matches. So:
//!
//! * each message is sent once across any number of instances; a crashed relay's messages
//!   come back when their lease (`mail.outbox.lease`) expires. The only duplicate possible
//!   is a crash between the server's `250` and the outbox update, and it has the same
//!   Message-ID;
//! * a 4xx reply, a timeout, a refused TLS upgrade or a lost connection is retried with
//!   exponential backoff and jitter, the attempt count persisted (counted when claimed, so a
//!   message that crashes its relay is counted too); `552` on `RCPT` is treated as `452`;
//! * a 5xx reply fails the message for good, kept (status `failed`) for inspection and
//!   `mail outbox retry`;
//! * with mixed recipient results, accepted recipients get the message once and only the
//!   deferred ones are retried; refused ones are recorded in `last_error`;
//! * a message failing `max_attempts` times is dead-lettered (status `dead`) and logged,
//!   without holding up the rest; `concurrency` messages are in flight at once, so one slow
//!   server does not stall the queue.
//!
//! **Without `db`** the outbox is in memory: the same retries, but **a crash or restart
//! loses every queued message that was not yet sent**, and instances do not share it. Use
//! it for development and tests only.
//!
//! # Templated mail
//!
//! [`Mail::render`]`("welcome", ctx)` renders `mail/welcome.subject.txt`, `mail/welcome.txt`
//! and `mail/welcome.html` (any may be absent) with core's templates, context processors
//! and filters, into a [`MessageBuilder`]; [`Mail::render_for`] renders in the recipient's
//! [`Locale`](flagon::Locale). A line break that a template puts into the subject is an
//! error, not a header.
//!
//! # Testing
//!
//! In the testing profile the transport is `outbox-test`: nothing is sent, every message is
//! recorded ([`Mail::outbox`]), and [`MessageSent`] still fires (Flask-Mail's
//! `MAIL_SUPPRESS_SEND` made explicit: recorded, not sent).
//!
//! # Configuration
//!
//! `[mail]` in `flagon.toml` (or `FLAGON_MAIL__KEY`); durations are humantime (`"30s"`).
//! Unknown keys and bad values stop the build naming the key.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `transport` | `outbox-test` (testing), `file` (development), `smtp` (production) | [`TransportKind`] |
//! | `default_sender` | none | `"App <noreply@example.com>"` |
//! | `file_dir` | `instance/mail` | the `file` transport's directory |
//! | `smtp.host` | `127.0.0.1` | server (and the name its certificate must carry) |
//! | `smtp.port` | 587 / 465 / 25 by `tls` | port |
//! | `smtp.tls` | `starttls` | `starttls` (required, never opportunistic), `tls` (implicit), `none` |
//! | `smtp.username`, `smtp.password` | none | credentials; the password is a [`Secret`](flagon::config::Secret) (`FLAGON_MAIL__SMTP__PASSWORD`); refused with `tls = "none"` and never sent on an unencrypted connection |
//! | `smtp.hello_name` | host name | `EHLO` name |
//! | `smtp.ca_file` | none | an extra trusted root (PEM) |
//! | `smtp.connect_timeout` | `10s` | TCP connect |
//! | `smtp.greeting_timeout` | `30s` | greeting + `EHLO`, `STARTTLS`, `AUTH`, each |
//! | `smtp.command_timeout` | `60s` | each `MAIL`, `RCPT`, `DATA` reply |
//! | `smtp.data_timeout` | `300s` | the message and the reply to its final dot |
//! | `smtp.pool_size` | `4` | idle connections kept |
//! | `smtp.pool_idle_timeout` | `60s` | an idle connection is closed after this |
//! | `outbox.store` | `db` if the `db` extension is registered, else `memory` | [`OutboxStore`] |
//! | `outbox.concurrency` | `4` | messages in flight per instance |
//! | `outbox.batch` | `16` | messages claimed per poll |
//! | `outbox.poll_interval` | `1s` | idle polling (an enqueue in this process wakes the relay at once) |
//! | `outbox.lease` | `10m` | a claim's lifetime; must exceed the slowest SMTP attempt |
//! | `outbox.retry_initial` | `1m` | first retry delay; doubles per attempt, ±25 % jitter |
//! | `outbox.retry_max` | `2h` | longest retry delay |
//! | `outbox.max_attempts` | `12` | transient failures before a message is dead-lettered |
//!
//! # Commands
//!
//! `mail send-test TO` (sends through the configured transport, prints the SMTP dialogue),
//! `mail outbox [--status pending|sent|failed|dead]`, `mail outbox retry ID|--all-failed`,
//! `mail outbox purge --sent-before DURATION`.
//!
//! # Operations
//!
//! `/readyz` has a check `mail.outbox`: the outbox answers within 2 s, with its `pending`,
//! `failed` and `dead` counts and whether it is `durable`. Log targets: `flagon_mail` (direct
//! sends), `flagon_mail::outbox` (each attempt at DEBUG, failures at WARN, dead letters and
//! store errors at ERROR), `flagon_mail::console`.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `smtp` | off | the SMTP transport (lettre, rustls with ring, webpki roots) |
//! | `db` | off | the outbox in the app's SQL database (`flagon-db`), and `Mail::enqueue_in` |
//!
//! # Signals
//!
//! [`MessageQueued`], [`MessageSent`] (also for the test transport) and [`MessageFailed`]
//! (with `permanent` for 5xx and dead-lettered messages).
//!
//! # Errors
//!
//! | error | when |
//! |---|---|
//! | [`Error::Address`], [`Error::Header`], [`Error::ReservedHeader`] | building a message: the field and what is wrong |
//! | [`Error::NoSender`], [`Error::NoRecipients`] | sending or queueing |
//! | [`Error::Template`] | rendering templated mail |
//! | [`Error::Send`] ([`SendError`]: class, phase, reply code, timed out) | a direct send no recipient got |
//! | [`Error::Outbox`] | the outbox store failed (its cause kept) |
//!
//! In a handler, `?` turns an [`Error`] into a 500 ([`HttpError`](flagon::HttpError)).
//!
//! # Why not lettre's `AsyncSmtpTransport`
//!
//! Its timeout bounds only the TCP connect (lettre #1027), a cancelled pooled send can leave
//! a connection mid-`DATA` in its pool, and one refused `RCPT` aborts the whole message. The
//! `SmtpTransport` here drives lettre's `AsyncSmtpConnection` command by command instead,
//! with its own small pool.

mod address;
pub mod cli;
mod config;
mod error;
mod mail;
mod message;
pub mod outbox;
mod render;
mod signals;
pub mod transport;

pub use address::{Address, Mailbox};
pub use config::{
    DEFAULT_FILE_DIR, MailConfig, OutboxConfig, OutboxStore, SmtpConfig, TlsMode, TransportKind,
};
pub use error::{AddressError, Error, FailureClass, HeaderProblem, Phase, SendError};
pub use mail::{Mail, MailExtension};
pub use message::{
    Attachment, IntoMailbox, Message, MessageBuilder, Prepared, guess_content_type, normalize_crlf,
};
pub use outbox::{Entry, Queue, RetryWhich, Status};
pub use signals::{MessageFailed, MessageQueued, MessageSent};
#[cfg(feature = "smtp")]
pub use transport::SmtpTransport;
pub use transport::{
    ConsoleTransport, Delivery, FileTransport, RecipientFailure, TestOutbox, Transport,
};

/// The outbox table and its migrations (feature `db`).
#[cfg(feature = "db")]
pub mod sql {
    pub use crate::outbox::sql::{TABLE, migrations};
}

pub use lettre;
