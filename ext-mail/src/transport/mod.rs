//! Transports: how a [`Prepared`] message leaves the process. `SmtpTransport` (feature
//! `smtp`), [`FileTransport`], [`ConsoleTransport`] and [`TestOutbox`]; the trait
//! [`Transport`] for others.

mod console;
mod file;
#[cfg(feature = "smtp")]
mod smtp;
mod test_outbox;

use futures_util::future::BoxFuture;

pub use console::ConsoleTransport;
pub use file::FileTransport;
#[cfg(feature = "smtp")]
pub use smtp::SmtpTransport;
pub use test_outbox::TestOutbox;

use crate::address::Address;
use crate::error::SendError;
use crate::message::Prepared;

/// One recipient the server did not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientFailure {
    /// The recipient.
    pub address: Address,
    /// The reply code (`451`, `550`, …).
    pub code: u16,
    /// The server's text.
    pub message: String,
}

/// What a delivery achieved, recipient by recipient.
///
/// `accepted` got the message. `deferred` were refused with a 4xx (or `552`, treated as
/// `452` per RFC 5321 §4.5.3.1.10) and are worth retrying; `rejected` were refused with a
/// 5xx and are not. A delivery with nothing accepted sends no `DATA`.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    /// Recipients that got the message.
    pub accepted: Vec<Address>,
    /// Recipients to retry.
    pub deferred: Vec<RecipientFailure>,
    /// Recipients refused for good.
    pub rejected: Vec<RecipientFailure>,
    /// The server's reply to the message (or the transport's note).
    pub reply: String,
    /// A summary of the dialogue, one line per step (`mail send-test` prints it).
    pub transcript: Vec<String>,
}

impl Delivery {
    /// Every recipient accepted, with `reply`.
    pub fn all(msg: &Prepared, reply: impl Into<String>) -> Delivery {
        Delivery {
            accepted: msg.recipients().to_vec(),
            reply: reply.into(),
            ..Delivery::default()
        }
    }
}

/// Delivers prepared messages. Implementations bound every remote step with a timeout and
/// classify failures ([`SendError::class`]); a failure of the whole message is an `Err`, a
/// per-recipient refusal is in the [`Delivery`].
pub trait Transport: Send + Sync + 'static {
    /// The transport's name (`smtp`, `file`, …).
    fn name(&self) -> &'static str;

    /// Sends `msg` to its envelope recipients.
    fn send<'a>(&'a self, msg: &'a Prepared) -> BoxFuture<'a, Result<Delivery, SendError>>;
}
