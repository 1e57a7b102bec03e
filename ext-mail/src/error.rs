//! The crate's errors: [`Error`] for building, queueing and sending, [`AddressError`] and
//! [`HeaderProblem`] for what header checks refuse, [`SendError`] for a failed delivery.

use std::fmt;

use flagon::BoxError;

/// What is wrong with header text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// CR, LF (or a Unicode line or paragraph separator).
    LineBreak,
    /// A control character.
    Control(char),
    /// A Unicode bidi control (LRM, RLM, LRE…RLO, LRI…PDI).
    Bidi(char),
    /// `%0d` / `%0a`: a line break percent-encoded (decoded by someone downstream).
    EncodedLineBreak,
    /// `=?`: a pre-encoded RFC 2047 word (Flagon encodes text itself).
    PreEncoded,
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::LineBreak => f.write_str("contains a line break"),
            HeaderProblem::Control(c) => {
                write!(f, "contains the control character U+{:04X}", *c as u32)
            }
            HeaderProblem::Bidi(c) => write!(f, "contains the bidi control U+{:04X}", *c as u32),
            HeaderProblem::EncodedLineBreak => f.write_str("contains a percent-encoded line break"),
            HeaderProblem::PreEncoded => f.write_str(
                "contains a pre-encoded word (`=?`); pass plain text, it is encoded for you",
            ),
        }
    }
}

/// Why an address or mailbox was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The address is empty.
    #[error("the address is empty")]
    Empty,
    /// Not an address (`local@domain`).
    #[error("`{0}` is not a valid address")]
    Invalid(String),
    /// The address would inject header text.
    #[error("the address {0}")]
    Header(HeaderProblem),
    /// The display name would inject header text.
    #[error("the display name {0}")]
    Name(HeaderProblem),
}

/// The SMTP phase a delivery was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// TCP connect.
    Connect,
    /// Waiting for the server's `220` greeting and the `EHLO` reply.
    Greeting,
    /// `STARTTLS` or the TLS handshake.
    Tls,
    /// `AUTH`.
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` (until the `354`).
    Data,
    /// Sending the message and waiting for the reply to the final `.`.
    DataEnd,
    /// Not SMTP: the file, console or test transport.
    Local,
}

impl Phase {
    /// The phase's name, as logs and the outbox show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Tls => "tls",
            Phase::Auth => "auth",
            Phase::Mail => "mail",
            Phase::Rcpt => "rcpt",
            Phase::Data => "data",
            Phase::DataEnd => "data-end",
            Phase::Local => "local",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a failed delivery should be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureClass {
    /// Try again later: a 4xx reply, a timeout, a lost connection, a refused TLS upgrade.
    Transient,
    /// Do not retry: a 5xx reply.
    Permanent,
}

/// A delivery that failed as a whole (no recipient got the message).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SendError {
    /// Retry or not.
    pub class: FailureClass,
    /// Where it failed.
    pub phase: Phase,
    /// The SMTP reply code, if the server answered.
    pub code: Option<u16>,
    /// Whether a per-phase timeout fired.
    pub timed_out: bool,
    /// What happened, for logs and the outbox.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<BoxError>,
}

impl SendError {
    fn describe(&self) -> String {
        let class = match self.class {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
        };
        match self.code {
            Some(code) => format!(
                "{class} failure at {} ({code}): {}",
                self.phase, self.message
            ),
            None => format!("{class} failure at {}: {}", self.phase, self.message),
        }
    }

    /// A transient failure.
    pub fn transient(phase: Phase, message: impl Into<String>) -> SendError {
        SendError {
            class: FailureClass::Transient,
            phase,
            code: None,
            timed_out: false,
            message: message.into(),
            source: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(phase: Phase, message: impl Into<String>) -> SendError {
        SendError {
            class: FailureClass::Permanent,
            ..SendError::transient(phase, message)
        }
    }

    /// Keeps `source` as the cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> SendError {
        self.source = Some(source.into());
        self
    }

    /// Whether to retry.
    pub fn is_transient(&self) -> bool {
        self.class == FailureClass::Transient
    }
}

/// Everything that can go wrong building, queueing or sending mail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An address field (`to`, `cc`, `bcc`, `from`, `reply_to`, `mail.default_sender`) was
    /// refused.
    #[error("mail `{field}`: {source}")]
    Address {
        /// The field.
        field: &'static str,
        /// Why.
        #[source]
        source: AddressError,
    },
    /// Free header text (the subject, an extra header, a file name) was refused.
    #[error("mail header `{field}` {problem}")]
    Header {
        /// The header.
        field: String,
        /// Why.
        problem: HeaderProblem,
    },
    /// An extra header that is not allowed (a malformed name, or one Flagon writes itself).
    #[error("mail header `{0}` cannot be set as an extra header")]
    ReservedHeader(String),
    /// Neither the message nor `mail.default_sender` names a sender.
    #[error("the message has no sender: set `from` or `mail.default_sender`")]
    NoSender,
    /// No `to`, `cc` or `bcc`.
    #[error("the message has no recipients")]
    NoRecipients,
    /// lettre could not assemble the MIME message.
    #[error("the message could not be built")]
    Build(#[source] BoxError),
    /// A mail template failed to render.
    #[error("mail template `{name}` failed to render")]
    Template {
        /// The template.
        name: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The delivery failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The outbox could not store or update a message.
    #[error("the mail outbox failed")]
    Outbox(#[source] BoxError),
    /// The `Mail` extension is not registered on this app.
    #[error("the `mail` extension is not registered")]
    NotRegistered,
}
