//! Background workers: long-running tasks (an outbox sender, a key sweeper, session expiry)
//! that run only while the app serves.
//!
//! A worker registered with [`Setup::worker`] starts after the startup hooks, when serving
//! begins, never during `routes`, `db upgrade` or any other command. When serving stops it
//! is told so through [`WorkerContext::stopping`], and awaited within
//! `server.shutdown_deadline` (alongside the requests in flight); one still running then is
//! cancelled, with a warning. A worker that fails or panics is logged and restarted after a
//! backoff that starts at 100 ms and doubles up to 30 s (back to 100 ms once a run lasted
//! longer than that). A worker that returns `Ok(())` before serving stops is finished.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::{BoxError, Origin};
use crate::future::BoxFuture;
use crate::{AppHandle, Setup};

/// The first restart delay of a failed worker.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

type WorkerFn = Arc<dyn Fn(WorkerContext) -> BoxFuture<Result<(), BoxError>> + Send + Sync>;

#[derive(Clone)]
struct WorkerEntry {
    name: Arc<str>,
    origin: Origin,
    run: WorkerFn,
}

/// The workers registered during setup: a registry of unique names, as any extension could
/// keep one.
struct Workers;

impl crate::RegistryKind for Workers {
    type Entry = WorkerEntry;
    const KIND: &'static str = "worker";
}

impl Setup<'_> {
    /// Registers a background worker named `name` that runs while the app serves.
    ///
    /// `run` is called once when serving starts, and again after a failure or panic (with a
    /// backoff). It should return soon after [`WorkerContext::stopping`] completes. The
    /// name is listed by `extensions`; two workers of the same name fail the build.
    ///
    /// ```
    /// # use flagon::{Setup, SetupError};
    /// # fn init(app: &mut Setup<'_>) -> Result<(), SetupError> {
    /// app.worker("sweeper", |ctx| async move {
    ///     let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    ///     loop {
    ///         tokio::select! {
    ///             _ = tick.tick() => { /* remove expired keys */ }
    ///             () = ctx.stopping() => return Ok(()),
    ///         }
    ///     }
    /// });
    /// # Ok(()) }
    /// ```
    pub fn worker<F, Fut>(&mut self, name: &str, run: F) -> &mut Self
    where
        F: Fn(WorkerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let entry = WorkerEntry {
            name: name.into(),
            origin: self.origin(),
            run: Arc::new(move |ctx| Box::pin(run(ctx))),
        };
        self.add_to::<Workers>(name, entry)
    }
}

/// What a worker gets: the app, its name, and the signal that serving stops.
#[derive(Clone)]
pub struct WorkerContext {
    app: AppHandle,
    name: Arc<str>,
    stop: watch::Receiver<bool>,
}

impl WorkerContext {
    /// The app.
    pub fn app(&self) -> &AppHandle {
        &self.app
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Completes when serving stops (at once if it already has).
    pub async fn stopping(&self) {
        let mut stop = self.stop.clone();
        // An error means the server is gone: stopping as well.
        let _ = stop.wait_for(|s| *s).await;
    }

    /// Whether serving is stopping.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The running workers of one `serve`.
pub(crate) struct RunningWorkers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningWorkers {
    /// Starts every registered worker.
    pub(crate) fn start(app: &AppHandle) -> RunningWorkers {
        let (stop, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for w in app.registry::<Workers>().iter().map(|e| e.value()) {
            tracing::debug!(worker = %w.name, owner = %w.origin, "starting worker");
            let ctx = WorkerContext {
                app: app.clone(),
                name: w.name.clone(),
                stop: rx.clone(),
            };
            tasks.spawn(supervise(w.clone(), ctx));
        }
        RunningWorkers { stop, tasks }
    }

    /// Tells every worker that serving stops.
    pub(crate) fn signal(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for every worker until `by`, then cancels those still running.
    pub(crate) async fn join(mut self, by: tokio::time::Instant) {
        self.signal();
        let done = tokio::time::timeout_at(by, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if done.is_err() {
            tracing::warn!(
                workers = self.tasks.len(),
                "workers still running at the shutdown deadline: cancelled"
            );
            self.tasks.shutdown().await;
        }
    }
}

/// Runs one worker, restarting it with backoff after a failure or panic.
async fn supervise(w: WorkerEntry, ctx: WorkerContext) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let run = w.run.clone();
        let c = ctx.clone();
        let res = AssertUnwindSafe(async move { run(c).await })
            .catch_unwind()
            .await;
        let failure = match res {
            Ok(Ok(())) => {
                tracing::debug!(worker = %w.name, "worker finished");
                return;
            }
            Ok(Err(e)) => format!("failed: {e}"),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        if ctx.is_stopping() {
            tracing::warn!(worker = %w.name, owner = %w.origin, "worker {failure} while stopping");
            return;
        }
        if started.elapsed() > MAX_BACKOFF {
            backoff = MIN_BACKOFF;
        }
        tracing::error!(
            worker = %w.name,
            owner = %w.origin,
            retry_in = ?backoff,
            "worker {failure}; restarting"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = ctx.stopping() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic")
}
