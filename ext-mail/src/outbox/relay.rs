//! The relay: claims due messages and delivers them, `concurrency` at a time.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Claimed, Settle};
use crate::error::SendError;
use crate::mail::Mail;
use crate::signals::{MessageFailed, MessageSent};
use crate::transport::RecipientFailure;

/// Runs until `stop` completes, then lets the sends in flight finish (each is bounded by the
/// transport's timeouts).
pub(crate) async fn run(mail: Mail, stop: impl Future<Output = ()>) {
    let cfg = mail.config().outbox.clone();
    let store = mail.queue().store;
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Claimed and not yet started: a claim takes up to `batch` at once (one transaction),
    // and they start as senders free up. Their leases run from the claim.
    let mut ready: VecDeque<Claimed> = VecDeque::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let mut full = false;
        if ready.is_empty() && tasks.len() < cfg.concurrency {
            match store.claim(cfg.batch, cfg.lease).await {
                Ok(batch) => {
                    full = batch.len() == cfg.batch;
                    ready.extend(batch);
                }
                Err(e) => {
                    tracing::error!(target: "flagon_mail::outbox", error = %e, cause = ?std::error::Error::source(&e), "claiming outbox messages failed");
                }
            }
        }
        while tasks.len() < cfg.concurrency {
            let Some(c) = ready.pop_front() else { break };
            // Start only while the lease outlasts the slowest possible attempt: otherwise
            // another relay may claim the message while this one still sends it.
            let worst = mail.worst_attempt(c.prepared.recipients().len());
            if worst < cfg.lease && c.claimed_at.elapsed() + worst >= cfg.lease {
                if let Err(e) = store.release(&c).await {
                    tracing::warn!(target: "flagon_mail::outbox", id = c.id, error = %e, "releasing a stale claim failed");
                }
                continue;
            }
            tasks.spawn(deliver(mail.clone(), c));
        }
        let idle = ready.is_empty() && tasks.len() < cfg.concurrency;
        if idle && full {
            // A full batch: more may be due at once.
            continue;
        }
        tokio::select! {
            biased;
            () = &mut stop => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = mail.shared.wake.notified(), if idle => {}
            () = tokio::time::sleep(cfg.poll_interval), if idle => {}
        }
    }
    // Claimed but never started: give them back now rather than at their lease's end.
    for c in ready {
        if let Err(e) = store.release(&c).await {
            tracing::warn!(target: "flagon_mail::outbox", id = c.id, error = %e, "releasing an unsent claim failed; it returns when its lease expires");
        }
    }
    while tasks.join_next().await.is_some() {}
}

fn summary(list: &[RecipientFailure]) -> String {
    list.iter()
        .map(|f| format!("{} ({} {})", f.address, f.code, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One attempt at one claimed message, settled in the store.
async fn deliver(mail: Mail, c: Claimed) {
    let cfg = &mail.config().outbox;
    let result = mail.transport().send(&c.prepared).await;
    let signals = mail.app().signals();
    let out_of_attempts = c.attempts >= cfg.max_attempts;
    let settle = match result {
        Ok(d) => {
            let rejected =
                (!d.rejected.is_empty()).then(|| format!("refused: {}", summary(&d.rejected)));
            if !d.rejected.is_empty() {
                signals.emit(MessageFailed {
                    outbox_id: Some(c.id),
                    message_id: c.prepared.message_id().to_owned(),
                    error: summary(&d.rejected),
                    permanent: true,
                    attempts: c.attempts,
                    recipients: d.rejected.clone(),
                });
            }
            let deferred = d.deferred.clone();
            if !d.accepted.is_empty() {
                let sent = c.prepared.with_recipients(d.accepted.clone());
                signals.emit(MessageSent {
                    outbox_id: Some(c.id),
                    message: sent,
                    delivery: d.clone(),
                });
            }
            if !deferred.is_empty() {
                let error = format!("deferred: {}", summary(&deferred));
                let error = match &rejected {
                    Some(r) => format!("{error}; {r}"),
                    None => error,
                };
                signals.emit(MessageFailed {
                    outbox_id: Some(c.id),
                    message_id: c.prepared.message_id().to_owned(),
                    error: error.clone(),
                    permanent: out_of_attempts,
                    attempts: c.attempts,
                    recipients: deferred.clone(),
                });
                if out_of_attempts {
                    Settle::Dead { error }
                } else {
                    Settle::Retry {
                        recipients: deferred.into_iter().map(|f| f.address).collect(),
                        after: cfg.backoff(c.attempts),
                        error,
                    }
                }
            } else if d.accepted.is_empty() {
                Settle::Failed {
                    error: rejected.unwrap_or_else(|| "no recipient accepted".into()),
                }
            } else {
                Settle::Sent { note: rejected }
            }
        }
        Err(e) => failed(&mail, &c, e, out_of_attempts),
    };
    let what = match &settle {
        Settle::Sent { .. } => "sent",
        Settle::Retry { .. } => "retry",
        Settle::Failed { .. } => "failed",
        Settle::Dead { .. } => "dead-lettered",
    };
    tracing::debug!(target: "flagon_mail::outbox", id = c.id, message_id = %c.prepared.message_id(), attempts = c.attempts, outcome = what, "outbox attempt");
    if let Settle::Dead { error } = &settle {
        tracing::error!(target: "flagon_mail::outbox", id = c.id, message_id = %c.prepared.message_id(), attempts = c.attempts, error = %error, "outbox message dead-lettered");
    }
    // The update that records the outcome: retried briefly, because failing it means a
    // resend (same Message-ID) once the lease expires.
    for attempt in 0..3 {
        match mail.queue().store.settle(&c, settle.clone()).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(target: "flagon_mail::outbox", id = c.id, "the claim on this outbox message expired before it was settled (another worker may send it again)");
                return;
            }
            Err(e) => {
                tracing::error!(target: "flagon_mail::outbox", id = c.id, attempt, error = %e, "recording an outbox outcome failed");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

fn failed(mail: &Mail, c: &Claimed, e: SendError, out_of_attempts: bool) -> Settle {
    let permanent = !e.is_transient() || out_of_attempts;
    tracing::warn!(target: "flagon_mail::outbox", id = c.id, message_id = %c.prepared.message_id(), attempts = c.attempts, error = %e, "outbox delivery failed");
    mail.app().signals().emit(MessageFailed {
        outbox_id: Some(c.id),
        message_id: c.prepared.message_id().to_owned(),
        error: e.to_string(),
        permanent,
        attempts: c.attempts,
        recipients: c
            .prepared
            .recipients()
            .iter()
            .map(|a| RecipientFailure {
                address: a.clone(),
                code: e.code.unwrap_or(0),
                message: e.message.clone(),
            })
            .collect(),
    });
    let error = e.to_string();
    if !e.is_transient() {
        Settle::Failed { error }
    } else if out_of_attempts {
        Settle::Dead { error }
    } else {
        Settle::Retry {
            recipients: c.prepared.recipients().to_vec(),
            after: mail.config().outbox.backoff(c.attempts),
            error,
        }
    }
}
