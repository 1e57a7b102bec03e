//! [`Mail`], the front type, and the extension that sets it up.

use std::future::Future;
use std::sync::Arc;

use flagon::axum::extract::FromRequestParts;
use flagon::http::request::Parts;
use flagon::{AppHandle, Extension, HttpError, Setup, SetupError};
use tokio::sync::Notify;

use crate::address::Mailbox;
use crate::config::{DEFAULT_FILE_DIR, MailConfig, OutboxStore, TransportKind};
use crate::error::Error;
use crate::message::{Message, Prepared};
use crate::outbox::{MemoryStore, Queue, Store};
use crate::signals::{MessageFailed, MessageQueued, MessageSent};
use crate::transport::{ConsoleTransport, Delivery, FileTransport, TestOutbox, Transport};

/// What the extension built, shared by every [`Mail`] handle.
pub(crate) struct Shared {
    pub(crate) config: MailConfig,
    pub(crate) default_sender: Option<Mailbox>,
    pub(crate) kind: TransportKind,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) test_outbox: Option<TestOutbox>,
    pub(crate) queue: Queue,
    pub(crate) wake: Notify,
}

/// The mail handle: send now, queue in the outbox, render templated mail, read the test
/// outbox. An extractor in handlers (`async fn signup(mail: Mail)`); elsewhere
/// [`Mail::of`]`(app)` (a command, a worker, a test). Cheap to clone.
#[derive(Clone)]
pub struct Mail {
    pub(crate) shared: Arc<Shared>,
    app: AppHandle,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("transport", &self.shared.kind)
            .field("queue", &self.shared.queue)
            .finish()
    }
}

impl Mail {
    /// The extension to register: `App::builder().register(Mail::extension())` (after
    /// `Db::extension()` for the durable outbox).
    pub fn extension() -> MailExtension {
        MailExtension { _private: () }
    }

    /// The handle on `app`'s mail, or `None` if the extension is not registered.
    pub fn of(app: &AppHandle) -> Option<Mail> {
        let shared = app.state::<Shared>()?;
        Some(Mail {
            shared,
            app: app.clone(),
        })
    }

    /// The `[mail]` settings in effect.
    pub fn config(&self) -> &MailConfig {
        &self.shared.config
    }

    /// The app.
    pub fn app(&self) -> &AppHandle {
        &self.app
    }

    /// Which transport is in use.
    pub fn transport_kind(&self) -> TransportKind {
        self.shared.kind
    }

    /// The transport.
    pub fn transport(&self) -> &dyn Transport {
        &*self.shared.transport
    }

    /// The test transport's record of every message (`Some` when `transport` is
    /// `outbox-test`, the testing profile's default).
    pub fn outbox(&self) -> Option<TestOutbox> {
        self.shared.test_outbox.clone()
    }

    /// The outbox queue: list, retry, purge.
    pub fn queue(&self) -> Queue {
        self.shared.queue.clone()
    }

    /// `msg` with the default sender, date and `Message-ID` filled in, written out.
    pub fn prepare(&self, msg: &Message) -> Result<Prepared, Error> {
        msg.prepare(self.shared.default_sender.as_ref())
    }

    /// Sends `msg` now, through the transport, every SMTP phase bounded by its timeout.
    /// `Err` when no recipient got it; a [`Delivery`] otherwise (check `deferred` and
    /// `rejected` for partial results). Emits [`MessageSent`] or [`MessageFailed`].
    ///
    /// For mail that must not be lost, prefer [`Mail::enqueue`] /
    /// `Mail::enqueue_in`: a direct send that fails is the caller's to retry.
    pub async fn send(&self, msg: &Message) -> Result<Delivery, Error> {
        let prepared = self.prepare(msg)?;
        self.send_prepared(&prepared).await
    }

    /// Sends an already prepared message (see [`Mail::send`]).
    pub async fn send_prepared(&self, prepared: &Prepared) -> Result<Delivery, Error> {
        match self.shared.transport.send(prepared).await {
            Ok(d) if !d.accepted.is_empty() => {
                let failures: Vec<_> = d.deferred.iter().chain(&d.rejected).cloned().collect();
                if !failures.is_empty() {
                    self.emit_failed(prepared, "some recipients were refused", false, failures);
                }
                self.app.signals().emit(MessageSent {
                    outbox_id: None,
                    message: prepared.with_recipients(d.accepted.clone()),
                    delivery: d.clone(),
                });
                Ok(d)
            }
            Ok(d) => {
                let transient = !d.deferred.is_empty();
                let failures: Vec<_> = d.deferred.iter().chain(&d.rejected).cloned().collect();
                let message = failures
                    .iter()
                    .map(|f| format!("{} ({} {})", f.address, f.code, f.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.emit_failed(prepared, &message, !transient, failures);
                let e = if transient {
                    crate::SendError::transient(crate::Phase::Rcpt, message)
                } else {
                    crate::SendError::permanent(crate::Phase::Rcpt, message)
                };
                Err(Error::Send(e))
            }
            Err(e) => {
                tracing::warn!(target: "flagon_mail", message_id = %prepared.message_id(), error = %e, "sending mail failed");
                self.emit_failed(prepared, &e.to_string(), !e.is_transient(), Vec::new());
                Err(Error::Send(e))
            }
        }
    }

    fn emit_failed(
        &self,
        p: &Prepared,
        error: &str,
        permanent: bool,
        recipients: Vec<crate::RecipientFailure>,
    ) {
        self.app.signals().emit(MessageFailed {
            outbox_id: None,
            message_id: p.message_id().to_owned(),
            error: error.to_owned(),
            permanent,
            attempts: 1,
            recipients,
        });
    }

    /// Queues `msg` in the outbox, committed on its own; the relay worker sends it. Returns
    /// the outbox id. On the memory store a crash loses it (see the crate docs).
    pub async fn enqueue(&self, msg: &Message) -> Result<i64, Error> {
        let prepared = self.prepare(msg)?;
        let id = self.shared.queue.store.insert(&prepared).await?;
        self.queued(id, &prepared);
        Ok(id)
    }

    /// Queues `msg` in the caller's transaction (a `flagon_db::Tx` in a handler derefs to
    /// it): the message is stored if and only if the transaction commits. Needs the SQL
    /// outbox (`[mail.outbox] store = "db"`).
    ///
    /// ```no_run
    /// use flagon_db::Tx;
    /// use flagon_mail::{Mail, Message};
    ///
    /// async fn register(mail: Mail, mut tx: Tx) -> Result<&'static str, flagon::HttpError> {
    ///     tx.query("INSERT INTO users (email) VALUES (?)")
    ///         .bind("ann@example.com")
    ///         .execute(&mut *tx)
    ///         .await
    ///         .map_err(flagon_db::Error::from)?;
    ///     let welcome = Message::builder().to("ann@example.com").subject("Welcome").text("Hi!").build()?;
    ///     mail.enqueue_in(&mut tx, &welcome).await?;
    ///     Ok("registered") // the 200 commits both, or neither
    /// }
    /// ```
    #[cfg(feature = "db")]
    pub async fn enqueue_in(
        &self,
        tx: &mut flagon_db::TxConn,
        msg: &Message,
    ) -> Result<i64, Error> {
        if !self.shared.queue.is_durable() {
            return Err(Error::Outbox(
                "enqueue_in needs the SQL outbox: `[mail.outbox] store = \"db\"`".into(),
            ));
        }
        let prepared = self.prepare(msg)?;
        let id = crate::outbox::sql::insert_in(tx, &prepared).await?;
        self.queued(id, &prepared);
        Ok(id)
    }

    fn queued(&self, id: i64, p: &Prepared) {
        self.shared.wake.notify_one();
        self.app.signals().emit(MessageQueued {
            outbox_id: id,
            message_id: p.message_id().to_owned(),
            recipients: p.recipients().to_vec(),
        });
    }

    /// The longest one attempt at a message with `recipients` recipients can take: the sum
    /// of the SMTP phase timeouts (a local transport: a few seconds).
    pub fn worst_attempt(&self, recipients: usize) -> std::time::Duration {
        match self.shared.kind {
            TransportKind::Smtp => worst_smtp(&self.shared.config.smtp, recipients),
            _ => std::time::Duration::from_secs(5),
        }
    }

    /// Runs the outbox relay until `stop` completes: the background worker `mail.outbox`
    /// does this while the app serves; call it yourself to run a relay elsewhere (a
    /// dedicated process, a test). Several relays, in one process or many, share the SQL
    /// outbox safely: each message is claimed by one at a time.
    pub async fn relay(&self, stop: impl Future<Output = ()>) {
        crate::outbox::relay::run(self.clone(), stop).await;
    }
}

impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        HttpError::internal(e)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Mail {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppHandle::from_request_parts(parts, state)
            .await
            .map_err(|_| HttpError::internal("Mail extracted outside a Flagon request"))?;
        Mail::of(&app).ok_or_else(|| HttpError::internal(Error::NotRegistered))
    }
}

/// The `mail` extension (see [`Mail::extension`]).
pub struct MailExtension {
    _private: (),
}

impl Extension for MailExtension {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn init_app(&self, app: &mut Setup<'_>) -> Result<(), SetupError> {
        let config: MailConfig = app.config("mail")?;
        let default_sender = match &config.default_sender {
            Some(s) => Some(
                s.parse::<Mailbox>()
                    .map_err(|e| app.config_error("mail.default_sender", e.to_string()))?,
            ),
            None => None,
        };
        let kind = config
            .transport
            .unwrap_or_else(|| TransportKind::default_for(app.profile()));
        let mut test_outbox = None;
        let transport: Arc<dyn Transport> = match kind {
            TransportKind::OutboxTest => {
                let o = TestOutbox::new();
                test_outbox = Some(o.clone());
                Arc::new(o)
            }
            TransportKind::File => Arc::new(FileTransport::new(
                config
                    .file_dir
                    .clone()
                    .unwrap_or_else(|| DEFAULT_FILE_DIR.into()),
            )),
            TransportKind::Console => Arc::new(ConsoleTransport),
            TransportKind::Smtp => smtp_transport(app, &config)?,
        };
        let o = &config.outbox;
        if o.concurrency == 0 {
            return Err(app.config_error("mail.outbox.concurrency", "must be at least 1"));
        }
        if o.batch == 0 {
            return Err(app.config_error("mail.outbox.batch", "must be at least 1"));
        }
        if o.max_attempts == 0 {
            return Err(app.config_error("mail.outbox.max_attempts", "must be at least 1"));
        }
        if o.poll_interval.is_zero() {
            return Err(app.config_error("mail.outbox.poll_interval", "must be longer than 0s"));
        }
        if o.retry_initial.is_zero() || o.retry_max < o.retry_initial {
            return Err(app.config_error(
                "mail.outbox.retry_initial",
                "must be longer than 0s and not longer than retry_max",
            ));
        }
        if kind == TransportKind::Smtp {
            let s = &config.smtp;
            let worst =
                s.connect_timeout + s.greeting_timeout * 3 + s.command_timeout * 3 + s.data_timeout;
            if o.lease <= worst {
                return Err(app.config_error(
                    "mail.outbox.lease",
                    format!(
                        "must be longer than the slowest possible SMTP attempt ({worst:?} from the [mail.smtp] timeouts), or another worker would send a message still being sent"
                    ),
                ));
            }
        }
        let store = queue_store(app, o.store)?;
        let shared = app.provide(Shared {
            config,
            default_sender,
            kind,
            transport,
            test_outbox,
            queue: Queue { store },
            wake: Notify::new(),
        });
        // `/readyz`: the outbox answers; how many wait and how many were given up on.
        let queue = shared.queue.clone();
        app.health_check(
            "mail.outbox",
            std::time::Duration::from_secs(2),
            move |_app| {
                let queue = queue.clone();
                async move {
                    let pending = queue.count(crate::Status::Pending).await?;
                    let dead = queue.count(crate::Status::Dead).await?;
                    let failed = queue.count(crate::Status::Failed).await?;
                    Ok::<_, flagon::BoxError>(
                        flagon::health::CheckOutcome::healthy()
                            .detail("durable", queue.is_durable())
                            .detail("pending", pending)
                            .detail("failed", failed)
                            .detail("dead", dead),
                    )
                }
            },
        );
        app.worker("mail.outbox", |ctx| async move {
            let Some(mail) = Mail::of(ctx.app()) else {
                return Ok(());
            };
            mail.relay(ctx.stopping()).await;
            Ok(())
        });
        crate::cli::register(app);
        Ok(())
    }
}

/// Connect, greeting + EHLO, STARTTLS, AUTH, MAIL, each RCPT, DATA and the message.
fn worst_smtp(s: &crate::SmtpConfig, recipients: usize) -> std::time::Duration {
    let commands = u32::try_from(recipients.saturating_add(2)).unwrap_or(u32::MAX);
    s.connect_timeout
        + s.greeting_timeout * 3
        + s.command_timeout.saturating_mul(commands)
        + s.data_timeout
}

fn smtp_transport(app: &Setup<'_>, config: &MailConfig) -> Result<Arc<dyn Transport>, SetupError> {
    #[cfg(feature = "smtp")]
    {
        crate::transport::SmtpTransport::new(&config.smtp)
            .map(|t| Arc::new(t) as Arc<dyn Transport>)
            .map_err(|(key, message)| app.config_error(&key, message))
    }
    #[cfg(not(feature = "smtp"))]
    {
        let _ = config;
        Err(app.config_error(
            "mail.transport",
            "`smtp` needs the `smtp` feature of flagon-mail (or choose `file`, `console` or `outbox-test`)",
        ))
    }
}

fn queue_store(
    app: &mut Setup<'_>,
    chosen: Option<OutboxStore>,
) -> Result<Arc<dyn Store>, SetupError> {
    #[cfg(feature = "db")]
    {
        let db = app.state::<flagon_db::Db>();
        match (chosen, db) {
            (Some(OutboxStore::Memory), _) | (None, None) => Ok(Arc::new(MemoryStore::default())),
            (Some(OutboxStore::Db) | None, Some(db)) => {
                app.add_to::<flagon_db::Migrations>("mail", crate::outbox::sql::migrations());
                Ok(Arc::new(crate::outbox::sql::SqlStore::new(Db::clone(&db))))
            }
            (Some(OutboxStore::Db), None) => Err(app.config_error(
                "mail.outbox.store",
                "`db` needs the `db` extension, registered before `mail`",
            )),
        }
    }
    #[cfg(not(feature = "db"))]
    {
        match chosen {
            Some(OutboxStore::Db) => Err(app.config_error(
                "mail.outbox.store",
                "`db` needs the `db` feature of flagon-mail and the `db` extension",
            )),
            _ => {
                let _ = app;
                Ok(Arc::new(MemoryStore::default()))
            }
        }
    }
}

#[cfg(feature = "db")]
use flagon_db::Db;
