//! The SMTP transport, on lettre's connection with every phase under its own timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use super::{Delivery, RecipientFailure, Transport};
use crate::config::{SmtpConfig, TlsMode};
use crate::error::{FailureClass, Phase, SendError};
use crate::message::Prepared;

/// SMTP through lettre's async connection (feature `smtp`).
///
/// lettre's own transport bounds only the TCP connect (lettre #1027), so this one drives
/// lettre's [`AsyncSmtpConnection`] itself: the connect, the greeting and `EHLO`,
/// `STARTTLS`, `AUTH`, `MAIL FROM`, each `RCPT TO`, `DATA` and the message with its final dot
/// each run under a timeout from `[mail.smtp]`. A connection on which a timeout fired (or
/// any I/O failed) is dropped, never reused; healthy ones go back to a small pool.
///
/// * `tls = "starttls"` requires the upgrade: a server that does not offer `STARTTLS` (or
///   whose offer was stripped) gets nothing, and certificates are verified (webpki roots plus
///   `ca_file`). Credentials are sent only on an encrypted connection.
/// * Recipients are handled one by one: each `RCPT TO` reply is kept, the message goes to
///   those accepted, and the [`Delivery`] lists the deferred (4xx, and `552` as `452`) and
///   rejected (5xx) ones.
/// * Line endings are CRLF before the dot-stuffing codec sees the message (lettre 0.11.23
///   does not stuff a dot after a bare LF).
pub struct SmtpTransport {
    cfg: SmtpConfig,
    port: u16,
    hello: ClientId,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    pool: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("host", &self.cfg.host)
            .field("port", &self.port)
            .field("tls", &self.cfg.tls)
            .finish_non_exhaustive()
    }
}

/// A pooled connection idle for less than this is used without a `NOOP` first.
const FRESH: Duration = Duration::from_secs(2);

/// A step failed; `keep` says whether the connection can still be used.
struct Failed {
    err: SendError,
    keep: bool,
}

impl SmtpTransport {
    /// A transport for `cfg`. Errors name the key: a `ca_file` that cannot be read or
    /// parsed, credentials with `tls = "none"`.
    pub fn new(cfg: &SmtpConfig) -> Result<SmtpTransport, (String, String)> {
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_owned())),
            (None, None) => None,
            (Some(_), None) => {
                return Err((
                    "mail.smtp.password".into(),
                    "username is set but password is not".into(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "mail.smtp.username".into(),
                    "password is set but username is not".into(),
                ));
            }
        };
        if credentials.is_some() && cfg.tls == TlsMode::None {
            return Err((
                "mail.smtp.tls".into(),
                "credentials are never sent in clear: use `starttls` or `tls`".into(),
            ));
        }
        let tls = match cfg.tls {
            TlsMode::None => None,
            _ => {
                let mut b = TlsParameters::builder(cfg.host.clone());
                if let Some(path) = &cfg.ca_file {
                    let pem = std::fs::read(path).map_err(|e| {
                        (
                            "mail.smtp.ca_file".to_owned(),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        (
                            "mail.smtp.ca_file".to_owned(),
                            format!("not a PEM certificate: {e}"),
                        )
                    })?;
                    b = b.add_root_certificate(cert);
                }
                Some(
                    b.build_rustls()
                        .map_err(|e| ("mail.smtp.tls".to_owned(), e.to_string()))?,
                )
            }
        };
        let hello = match &cfg.hello_name {
            Some(n) => ClientId::Domain(n.clone()),
            None => ClientId::default(),
        };
        Ok(SmtpTransport {
            port: cfg.effective_port(),
            cfg: cfg.clone(),
            hello,
            tls,
            credentials,
            pool: Mutex::new(Vec::new()),
        })
    }

    fn checkout(&self) -> Option<(AsyncSmtpConnection, Duration)> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((conn, since)) = pool.pop() {
            let idle = since.elapsed();
            if idle < self.cfg.pool_idle_timeout && !conn.has_broken() {
                return Some((conn, idle));
            }
        }
        None
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.cfg.pool_size {
            pool.push((conn, Instant::now()));
        }
    }

    /// Drops every pooled connection.
    pub fn close_idle(&self) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    async fn connect(&self, log: &mut Vec<String>) -> Result<AsyncSmtpConnection, SendError> {
        let host = self.cfg.host.as_str();
        let addr = (host, self.port);
        let mut conn = match self.cfg.tls {
            TlsMode::Tls => {
                let bound = self.cfg.connect_timeout + self.cfg.greeting_timeout;
                let params = self.tls.clone();
                let c = tokio::time::timeout(
                    bound,
                    AsyncSmtpConnection::connect_tokio1(
                        addr,
                        Some(self.cfg.connect_timeout),
                        &self.hello,
                        params,
                        None,
                    ),
                )
                .await;
                let c =
                    timed(c, Phase::Greeting, bound)?.map_err(|e| classify(e, Phase::Greeting))?;
                log.push(format!(
                    "connected to {host}:{} with implicit TLS",
                    self.port
                ));
                c
            }
            _ => {
                let tcp = tokio::time::timeout(
                    self.cfg.connect_timeout,
                    tokio::net::TcpStream::connect(addr),
                )
                .await;
                let tcp = timed(tcp, Phase::Connect, self.cfg.connect_timeout)?.map_err(|e| {
                    SendError::transient(
                        Phase::Connect,
                        format!("connecting to {host}:{}: {e}", self.port),
                    )
                    .with_source(e)
                })?;
                // The message and its final dot are two writes: without this, Nagle holds
                // the dot until the server's delayed ACK (40 ms a message).
                let _ = tcp.set_nodelay(true);
                log.push(format!("connected to {host}:{}", self.port));
                let c = tokio::time::timeout(
                    self.cfg.greeting_timeout,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
                )
                .await;
                timed(c, Phase::Greeting, self.cfg.greeting_timeout)?
                    .map_err(|e| classify(e, Phase::Greeting))?
            }
        };
        log.push("greeting and EHLO: ok".into());
        if self.cfg.tls == TlsMode::Starttls {
            if !conn.can_starttls() {
                // Never fall back to plain text: the offer may have been stripped.
                return Err(SendError::transient(
                    Phase::Tls,
                    "the server does not offer STARTTLS, which `mail.smtp.tls = \"starttls\"` requires",
                ));
            }
            let params = self.tls.clone().expect("STARTTLS has TLS parameters");
            let up = tokio::time::timeout(
                self.cfg.greeting_timeout,
                conn.starttls(params, &self.hello),
            )
            .await;
            timed(up, Phase::Tls, self.cfg.greeting_timeout)?
                .map_err(|e| classify(e, Phase::Tls))?;
            log.push("STARTTLS: encrypted".into());
        }
        if let Some(creds) = &self.credentials {
            if !conn.is_encrypted() {
                return Err(SendError::transient(
                    Phase::Auth,
                    "refusing to send credentials over an unencrypted connection",
                ));
            }
            let auth = tokio::time::timeout(
                self.cfg.greeting_timeout,
                conn.auth(&[Mechanism::Plain, Mechanism::Login], creds),
            )
            .await;
            timed(auth, Phase::Auth, self.cfg.greeting_timeout)?
                .map_err(|e| transient(classify(e, Phase::Auth)))?;
            log.push("AUTH: ok".into());
        }
        Ok(conn)
    }

    async fn deliver(&self, msg: &Prepared) -> Result<Delivery, SendError> {
        let mut log = Vec::new();
        let (mut conn, reused) = match self.checkout() {
            // Idle a moment: used just now, no need to ask. Idle longer: NOOP first.
            Some((c, idle)) if idle < FRESH => {
                log.push("reused a pooled connection".into());
                (c, true)
            }
            Some((mut c, _)) => {
                let noop = tokio::time::timeout(self.cfg.command_timeout, c.test_connected()).await;
                if matches!(noop, Ok(true)) {
                    log.push("reused a pooled connection".into());
                    (c, true)
                } else {
                    (self.connect(&mut log).await?, false)
                }
            }
            None => (self.connect(&mut log).await?, false),
        };
        let mut result = self.transaction(&mut conn, msg, &mut log).await;
        // The server closed a pooled connection before our MAIL FROM: nothing was sent;
        // try once on a fresh connection.
        if reused
            && let Err(Failed { err, .. }) = &result
            && err.phase == Phase::Mail
            && err.code.is_none()
            && !err.timed_out
        {
            log.push(format!(
                "pooled connection lost ({}); reconnecting",
                err.message
            ));
            conn = self.connect(&mut log).await?;
            result = self.transaction(&mut conn, msg, &mut log).await;
        }
        match result {
            Ok(mut d) => {
                self.checkin(conn);
                d.transcript = log;
                Ok(d)
            }
            Err(Failed { err, keep }) => {
                if keep {
                    let rset =
                        tokio::time::timeout(self.cfg.command_timeout, conn.command(Rset)).await;
                    if matches!(rset, Ok(Ok(_))) {
                        self.checkin(conn);
                    }
                }
                Err(err)
            }
        }
    }

    async fn step<T>(
        &self,
        phase: Phase,
        bound: Duration,
        fut: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, Failed> {
        match tokio::time::timeout(bound, fut).await {
            Err(_) => Err(Failed {
                err: timeout_error(phase, bound),
                keep: false,
            }),
            Ok(Err(e)) => {
                let keep = e.status().is_some();
                Err(Failed {
                    err: classify(e, phase),
                    keep,
                })
            }
            Ok(Ok(v)) => Ok(v),
        }
    }

    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        msg: &Prepared,
        log: &mut Vec<String>,
    ) -> Result<Delivery, Failed> {
        let mut options = Vec::new();
        let non_ascii_addr = !msg.envelope_from().as_str().is_ascii()
            || msg.recipients().iter().any(|a| !a.as_str().is_ascii());
        if non_ascii_addr {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(Failed {
                    err: SendError::permanent(
                        Phase::Mail,
                        "a non-ASCII address needs SMTPUTF8, which the server does not offer",
                    ),
                    keep: true,
                });
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !msg.raw().is_ascii() {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let from = msg.envelope_from().lettre().clone();
        let r = self
            .step(
                Phase::Mail,
                self.cfg.command_timeout,
                conn.command(Mail::new(Some(from), options)),
            )
            .await?;
        log.push(format!(
            "MAIL FROM:<{}> → {}",
            msg.envelope_from(),
            reply_line(&r)
        ));
        let mut delivery = Delivery::default();
        for rcpt in msg.recipients() {
            let sent = tokio::time::timeout(
                self.cfg.command_timeout,
                conn.command(Rcpt::new(rcpt.lettre().clone(), vec![])),
            )
            .await;
            match sent {
                Err(_) => {
                    return Err(Failed {
                        err: timeout_error(Phase::Rcpt, self.cfg.command_timeout),
                        keep: false,
                    });
                }
                Ok(Ok(r)) => {
                    log.push(format!("RCPT TO:<{rcpt}> → {}", reply_line(&r)));
                    delivery.accepted.push(rcpt.clone());
                }
                Ok(Err(e)) => match e.status() {
                    Some(code) => {
                        let code = u16::from(code);
                        let failure = RecipientFailure {
                            address: rcpt.clone(),
                            code,
                            message: e.to_string(),
                        };
                        log.push(format!("RCPT TO:<{rcpt}> → {code}"));
                        // RFC 5321 §4.5.3.1.10: 552 on RCPT means too many recipients: 452.
                        if (400..500).contains(&code) || code == 552 {
                            delivery.deferred.push(failure);
                        } else {
                            delivery.rejected.push(failure);
                        }
                    }
                    None => {
                        return Err(Failed {
                            err: classify(e, Phase::Rcpt),
                            keep: false,
                        });
                    }
                },
            }
        }
        if delivery.accepted.is_empty() {
            // Nothing accepted: end the transaction; the caller sees who was refused.
            let _ = tokio::time::timeout(self.cfg.command_timeout, conn.command(Rset)).await;
            delivery.reply = "no recipient accepted".into();
            return Ok(delivery);
        }
        let r = self
            .step(Phase::Data, self.cfg.command_timeout, conn.command(Data))
            .await?;
        log.push(format!("DATA → {}", reply_line(&r)));
        let raw = crate::message::normalize_crlf(msg.raw());
        let r = self
            .step(Phase::DataEnd, self.cfg.data_timeout, conn.message(&raw))
            .await?;
        delivery.reply = reply_line(&r);
        log.push(format!(
            "message ({} bytes) → {}",
            raw.len(),
            delivery.reply
        ));
        Ok(delivery)
    }
}

fn reply_line(r: &lettre::transport::smtp::response::Response) -> String {
    format!("{} {}", r.code(), r.first_line().unwrap_or(""))
        .trim_end()
        .to_owned()
}

fn timeout_error(phase: Phase, bound: Duration) -> SendError {
    let mut e = SendError::transient(phase, format!("no answer within {bound:?}"));
    e.timed_out = true;
    e
}

fn timed<T>(
    r: Result<T, tokio::time::error::Elapsed>,
    phase: Phase,
    bound: Duration,
) -> Result<T, SendError> {
    r.map_err(|_| timeout_error(phase, bound))
}

fn transient(mut e: SendError) -> SendError {
    e.class = FailureClass::Transient;
    e
}

/// lettre's error as a [`SendError`]: 5xx permanent, everything else (4xx, I/O, TLS)
/// transient. Connection-level steps (greeting, TLS, AUTH) are made transient by the
/// caller where the message itself is not at fault.
fn classify(e: lettre::transport::smtp::Error, phase: Phase) -> SendError {
    let code = e.status().map(u16::from);
    let class = if e.is_permanent() && phase != Phase::Greeting && phase != Phase::Tls {
        FailureClass::Permanent
    } else {
        FailureClass::Transient
    };
    let message = e.to_string();
    SendError {
        class,
        phase,
        code,
        timed_out: e.is_timeout(),
        message,
        source: Some(Box::new(e)),
    }
}

impl Transport for SmtpTransport {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, msg: &'a Prepared) -> BoxFuture<'a, Result<Delivery, SendError>> {
        Box::pin(self.deliver(msg))
    }
}
