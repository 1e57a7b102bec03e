//! The `console` transport: logs each message.

use futures_util::future::BoxFuture;

use super::{Delivery, Transport};
use crate::error::SendError;
use crate::message::Prepared;

/// Logs each message, whole, at INFO on the `flagon_mail::console` target (Flask-Mailman's
/// console backend). Nothing is sent.
#[derive(Clone, Debug, Default)]
pub struct ConsoleTransport;

impl Transport for ConsoleTransport {
    fn name(&self) -> &'static str {
        "console"
    }

    fn send<'a>(&'a self, msg: &'a Prepared) -> BoxFuture<'a, Result<Delivery, SendError>> {
        Box::pin(async move {
            let to: Vec<&str> = msg.recipients().iter().map(|a| a.as_str()).collect();
            tracing::info!(
                target: "flagon_mail::console",
                message_id = %msg.message_id(),
                from = %msg.envelope_from(),
                to = ?to,
                "mail message:\n{}",
                msg.raw_str()
            );
            let mut d = Delivery::all(msg, "logged");
            d.transcript.push("logged on flagon_mail::console".into());
            Ok(d)
        })
    }
}
