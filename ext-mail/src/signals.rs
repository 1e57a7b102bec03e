//! The signals mail emits: [`MessageQueued`], [`MessageSent`], [`MessageFailed`].

use crate::address::Address;
use crate::message::Prepared;
use crate::transport::{Delivery, RecipientFailure};

/// A message was stored in the outbox. With `Mail::enqueue_in`
/// it is emitted when the row is written, before the caller's transaction commits (a
/// rollback takes the message away again).
#[derive(Clone, Debug)]
pub struct MessageQueued {
    /// The outbox id.
    pub outbox_id: i64,
    /// The `Message-ID`.
    pub message_id: String,
    /// The envelope recipients.
    pub recipients: Vec<Address>,
}

/// A message was delivered to (some of) its recipients, or recorded by the test transport
/// (Flask-Mail's `email_dispatched`).
#[derive(Clone, Debug)]
pub struct MessageSent {
    /// The outbox id, for a queued message.
    pub outbox_id: Option<i64>,
    /// The message as sent (to the recipients of this attempt).
    pub message: Prepared,
    /// Who accepted it, who is deferred, who refused.
    pub delivery: Delivery,
}

/// A delivery attempt failed, for some recipients or all of them.
#[derive(Clone, Debug)]
pub struct MessageFailed {
    /// The outbox id, for a queued message.
    pub outbox_id: Option<i64>,
    /// The `Message-ID`.
    pub message_id: String,
    /// What went wrong.
    pub error: String,
    /// Whether the message (or these recipients) will not be tried again: a 5xx, or the
    /// last attempt (dead-lettered).
    pub permanent: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// The recipients concerned.
    pub recipients: Vec<RecipientFailure>,
}
