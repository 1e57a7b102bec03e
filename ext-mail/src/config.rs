//! The `[mail]` section: [`MailConfig`], with `[mail.smtp]` ([`SmtpConfig`]) and
//! `[mail.outbox]` ([`OutboxConfig`]).

use std::path::PathBuf;
use std::time::Duration;

use flagon::config::{Profile, Secret};
use serde::{Deserialize, Serialize};

/// Which transport delivers mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// SMTP through lettre (feature `smtp`): the production default.
    Smtp,
    /// One `.eml` file per message in `mail.file_dir`: the development default.
    File,
    /// Logs each message (at INFO on `flagon_mail::console`).
    Console,
    /// Records every message in memory for [`Mail::outbox`](crate::Mail::outbox): the
    /// testing default. Nothing is sent; `MessageSent` still fires.
    OutboxTest,
}

impl TransportKind {
    /// The name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Smtp => "smtp",
            TransportKind::File => "file",
            TransportKind::Console => "console",
            TransportKind::OutboxTest => "outbox-test",
        }
    }

    /// The default for a profile: `outbox-test` in testing, `file` in development, `smtp`
    /// in production.
    pub fn default_for(profile: Profile) -> TransportKind {
        match profile {
            Profile::Testing => TransportKind::OutboxTest,
            Profile::Development => TransportKind::File,
            _ => TransportKind::Smtp,
        }
    }
}

/// How the SMTP connection is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// `STARTTLS`, required: a server that does not offer it (or a stripped offer) is a
    /// failure, never a fall back to plain text. Port 587.
    Starttls,
    /// Implicit TLS from the first byte (SMTPS). Port 465.
    Tls,
    /// Plain text: only for a relay on localhost. Credentials are refused on it.
    None,
}

/// `[mail]`.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `transport` | by profile | `smtp`, `file`, `console`, `outbox-test` ([`TransportKind`]) |
/// | `default_sender` | none | `"App <noreply@example.com>"`, used when a message sets no `from` |
/// | `file_dir` | `instance/mail` | where the `file` transport writes `.eml` files |
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The transport (default: by profile, see [`TransportKind::default_for`]).
    pub transport: Option<TransportKind>,
    /// The sender of messages that set none.
    pub default_sender: Option<String>,
    /// The `file` transport's directory.
    pub file_dir: Option<PathBuf>,
    /// `[mail.smtp]`.
    pub smtp: SmtpConfig,
    /// `[mail.outbox]`.
    pub outbox: OutboxConfig,
}

/// The default `file_dir`.
pub const DEFAULT_FILE_DIR: &str = "instance/mail";

/// `[mail.smtp]`. Every timeout bounds one phase of the dialogue; the defaults are below
/// RFC 5321 §4.5.3.2's (5 min for most, 10 min for the final dot), so that a stuck server
/// frees the worker sooner.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `host` | `127.0.0.1` | the server |
/// | `port` | by `tls`: 587, 465, 25 | the port |
/// | `tls` | `starttls` | `starttls` (required), `tls` (implicit), `none` |
/// | `username` / `password` | none | credentials (`password` is a secret: use `FLAGON_MAIL__SMTP__PASSWORD`); never sent without TLS |
/// | `hello_name` | the host name | the `EHLO` name |
/// | `ca_file` | none | an extra PEM root certificate (a private CA); the webpki roots stay trusted |
/// | `connect_timeout` | `10s` | TCP connect |
/// | `greeting_timeout` | `30s` | the `220` greeting, `EHLO`, `STARTTLS` and the TLS handshake, `AUTH` |
/// | `command_timeout` | `60s` | each `MAIL FROM` / `RCPT TO` / `DATA` reply |
/// | `data_timeout` | `300s` | sending the message and the reply to its final dot |
/// | `pool_size` | `4` | idle connections kept for reuse |
/// | `pool_idle_timeout` | `60s` | an idle pooled connection older than this is closed |
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// The server's host name (also the name its certificate must carry).
    pub host: String,
    /// The port (default by `tls`).
    pub port: Option<u16>,
    /// Encryption.
    pub tls: TlsMode,
    /// Login name.
    pub username: Option<String>,
    /// Password (a secret: never printed).
    pub password: Option<Secret>,
    /// The `EHLO` name.
    pub hello_name: Option<String>,
    /// An extra trusted root certificate (PEM file).
    pub ca_file: Option<PathBuf>,
    /// TCP connect bound.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Greeting, EHLO, TLS and AUTH bound.
    #[serde(with = "humantime_serde")]
    pub greeting_timeout: Duration,
    /// Bound on each MAIL / RCPT / DATA reply.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Bound on sending the message and the final reply.
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    /// Idle connections kept.
    pub pool_size: usize,
    /// How long an idle connection is kept.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: None,
            tls: TlsMode::Starttls,
            username: None,
            password: None,
            hello_name: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            greeting_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(300),
            pool_size: 4,
            pool_idle_timeout: Duration::from_secs(60),
        }
    }
}

impl SmtpConfig {
    /// The port: the configured one, else 587 / 465 / 25 by `tls`.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        })
    }
}

/// Where queued messages are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutboxStore {
    /// The app's SQL database (feature `db`, needs the `db` extension): durable.
    Db,
    /// In memory: lost if the process dies (see the crate docs).
    Memory,
}

/// `[mail.outbox]`: the queue behind [`Mail::enqueue`](crate::Mail::enqueue) and its
/// worker.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `store` | `db` when the `db` extension is registered, else `memory` | [`OutboxStore`] |
/// | `concurrency` | `4` | messages one instance sends at once |
/// | `batch` | `16` | messages claimed per poll |
/// | `poll_interval` | `1s` | how often the worker looks for due messages when idle |
/// | `lease` | `10m` | a claimed message is another worker's after this (a crashed worker's messages come back); longer than the worst send |
/// | `retry_initial` | `1m` | first retry delay after a transient failure |
/// | `retry_max` | `2h` | the longest retry delay |
/// | `max_attempts` | `12` | a message failing transiently this often is dead-lettered |
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// The store (default: `db` if the `db` extension is registered, else `memory`).
    pub store: Option<OutboxStore>,
    /// Messages sent at once.
    pub concurrency: usize,
    /// Messages claimed per poll.
    pub batch: usize,
    /// Idle poll interval.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Claim lease.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// First retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            store: None,
            concurrency: 4,
            batch: 16,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(600),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(7200),
            max_attempts: 12,
        }
    }
}

impl OutboxConfig {
    /// The delay before retry number `attempt` (1 after the first failure): exponential from
    /// `retry_initial`, capped at `retry_max`, with ±25 % jitter so that retries of many
    /// messages spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry_initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)));
        let base = exp.min(self.retry_max);
        let jitter: f64 = rand::random_range(0.75..1.25);
        base.mul_f64(jitter)
    }
}
