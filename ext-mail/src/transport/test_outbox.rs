//! The `outbox-test` transport: records messages for tests.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{Delivery, Transport};
use crate::error::SendError;
use crate::message::Prepared;

/// Records a copy of every message instead of sending it (the testing profile's transport;
/// Flask-Mail's `record_messages`, Flask-Mailman's `locmem`). Get it with
/// [`Mail::outbox`](crate::Mail::outbox). The `MessageSent` signal still fires for each.
#[derive(Clone, Debug, Default)]
pub struct TestOutbox {
    messages: Arc<Mutex<Vec<Prepared>>>,
}

impl TestOutbox {
    /// An empty outbox.
    pub fn new() -> TestOutbox {
        TestOutbox::default()
    }

    /// Copies of the messages recorded so far, oldest first.
    pub fn messages(&self) -> Vec<Prepared> {
        self.lock().clone()
    }

    /// How many were recorded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets every recorded message.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Waits (up to `timeout`) until at least `n` messages are recorded: for messages sent by
    /// the outbox worker. Returns whether they were.
    pub async fn wait_for(&self, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.len() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Prepared>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Transport for TestOutbox {
    fn name(&self) -> &'static str {
        "outbox-test"
    }

    fn send<'a>(&'a self, msg: &'a Prepared) -> BoxFuture<'a, Result<Delivery, SendError>> {
        Box::pin(async move {
            self.lock().push(msg.clone());
            let mut d = Delivery::all(msg, "recorded");
            d.transcript.push("recorded in the test outbox".into());
            Ok(d)
        })
    }
}
