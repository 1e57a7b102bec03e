//! Serving: an accept loop with a connection cap, connection timeouts, background workers
//! and graceful shutdown with a deadline.
//!
//! On SIGINT/SIGTERM (or the given shutdown future) the server stops accepting, asks every
//! connection to finish its in-flight request and every worker to stop, waits for both up to
//! `server.shutdown_deadline`, then cuts what is left. Shutdown hooks run after that with
//! their own bound, `server.shutdown_hooks_timeout`, however long the drain took.
//!
//! At most `server.max_connections` connections are open at once (by default three quarters
//! of the process's file-descriptor limit). Beyond that the server stops accepting: new
//! connections wait in the kernel's backlog, unread, until one closes. A failing `accept`
//! (`EMFILE`, out of descriptors) is retried after a backoff from 10 ms up to 1 s instead of
//! spinning.
//!
//! # Why a sweeper and not hyper's timers
//!
//! Slow clients are bounded by one sweeper thread that ticks four times a second over all
//! connections (`connection.rs`), not by a timer per request. hyper 1.x has an HTTP/1
//! `header_read_timeout`, but it does not fit, on cost and on meaning:
//! - cost: hyper arms it in `poll_read_head` for every request and drops it once the head is
//!   parsed (`proto/h1/conn.rs`), so each request pays a boxed `Sleep` plus a tokio timer
//!   wheel insert and removal. Measured in isolation (a million boxed `sleep_until`s polled
//!   once and dropped, on a two-worker runtime, release build) that is 115–145 ns per
//!   request, against about 9 ns for the sweeper's stamps (two release stores and an atomic
//!   increment and decrement) plus a word-at-a-time newline scan of each read; the commit
//!   that introduced the sweeper measured hyper's timer at about 20% of `/hello` requests
//!   per second under wrk, where the timer wheel is also shared between the runtime's
//!   threads.
//! - meaning: hyper's timer starts when the previous response is done, so it also bounds the
//!   idle time between requests: it cannot give a 10 s header deadline with a 75 s keep-alive.
//!   HTTP/2 has no idle timeout in hyper at all (its keep-alive is PING-based liveness, which
//!   a client answering PINGs passes forever), and no write-progress timeout exists in either.
//!
//! hyper's own mechanisms are used where they fit: graceful shutdown (`graceful_shutdown` on
//! each connection: HTTP/1 closes once idle, HTTP/2 sends GOAWAY).
//!
//! What the sweeper enforces, from `[server]`:
//! - `header_read_timeout`: the first request's head must arrive within it of accept, each
//!   later head within it of its first byte, whether that byte was just read or was already
//!   buffered behind the previous request (pipelined); stray CRLFs between requests are
//!   ignored;
//! - `keep_alive_timeout`: an HTTP/1 connection idle between requests, or an HTTP/2
//!   connection with no open stream (PINGs and other control frames do not count), is closed
//!   gracefully, with a GOAWAY for HTTP/2;
//! - `write_timeout`: a connection whose response makes no progress for it (the client stopped
//!   reading: the socket does not take bytes, or an HTTP/2 stream waits for window) is closed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::App;
use crate::connection::{Activity, DRAIN, KILL, Limits, RUN, Tracker, WatchedIo};
use crate::error::BoxError;
use crate::signals::{AppStarted, AppStopping};
use crate::worker::RunningWorkers;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A startup hook failed.
    #[error("startup hook of {owner} failed: {source}")]
    Startup {
        /// Who registered the hook.
        owner: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// Binding or accepting failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl App {
    /// Runs every startup hook in registration order; the first failure aborts.
    ///
    /// After a failure, the shutdown hooks of the owners whose startup hooks had all run are
    /// run (bounded by `server.shutdown_hooks_timeout`), so that what those opened (pools,
    /// leases) is closed again; those of the failing owner and of owners not started yet
    /// are not.
    pub async fn startup(&self) -> Result<(), ServeError> {
        self.run_lifecycle(&[&self.handle.0.startup]).await
    }

    /// Runs the startup hooks, then the before-serving hooks
    /// ([`Setup::before_serving`](crate::Setup::before_serving)): what [`App::serve`] and the
    /// test client do before the first request. Failures are handled as in
    /// [`App::startup`].
    pub async fn start_serving(&self) -> Result<(), ServeError> {
        self.run_lifecycle(&[&self.handle.0.startup, &self.handle.0.before_serving])
            .await
    }

    async fn run_lifecycle(
        &self,
        phases: &[&Vec<(crate::Origin, crate::registry::LifecycleFn)>],
    ) -> Result<(), ServeError> {
        let hooks: Vec<_> = phases.iter().flat_map(|p| p.iter()).collect();
        for (i, (origin, hook)) in hooks.iter().enumerate() {
            if let Err(source) = hook(self.handle.clone()).await {
                let not_started: Vec<&str> = hooks[i..].iter().map(|(o, _)| o.owner).collect();
                self.run_shutdown_hooks(|owner| !not_started.contains(&owner))
                    .await;
                return Err(ServeError::Startup {
                    owner: origin.to_string(),
                    source,
                });
            }
        }
        Ok(())
    }

    /// Runs every shutdown hook in registration order, all of them bounded together by
    /// `limit`.
    pub async fn shutdown(&self, limit: Duration) {
        self.run_shutdown_hooks_within(limit, |_| true).await;
    }

    async fn run_shutdown_hooks(&self, of: impl Fn(&str) -> bool) {
        let limit = self.handle.0.server.shutdown_hooks_timeout;
        self.run_shutdown_hooks_within(limit, of).await;
    }

    async fn run_shutdown_hooks_within(&self, limit: Duration, of: impl Fn(&str) -> bool) {
        let hooks = async {
            for (origin, hook) in self.handle.0.shutdown.iter().filter(|(o, _)| of(o.owner)) {
                tracing::debug!(owner = %origin, "running shutdown hook");
                hook(self.handle.clone()).await;
            }
        };
        if tokio::time::timeout(limit, hooks).await.is_err() {
            tracing::warn!(?limit, "shutdown hooks did not finish in time");
        }
    }

    /// Binds `host:port` and serves until SIGINT or SIGTERM.
    pub async fn serve_on(&self, host: &str, port: u16) -> Result<(), ServeError> {
        let addr = format!("{host}:{port}");
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        self.serve(listener, shutdown_signal()).await
    }

    /// Serves on `listener` until `shutdown` completes: startup hooks first, then the
    /// workers and the accept loop, then a graceful stop within `server.shutdown_deadline`,
    /// then the shutdown hooks within `server.shutdown_hooks_timeout`.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.start_serving().await?;
        if self.handle.0.secret_generated
            && self.handle.profile() == crate::config::Profile::Development
        {
            tracing::warn!(
                "no secret_key configured: using a throwaway key for this process; \
                 sessions and signed values will not survive a restart"
            );
        }
        let local = listener.local_addr().ok();
        let settings = &self.handle.0.server;
        let max_connections = settings.effective_max_connections();
        tracing::info!(addr = ?local, profile = %self.handle.profile(), max_connections, "serving");
        let workers = RunningWorkers::start(&self.handle);
        self.handle.signals().emit(AppStarted { addr: local });

        let mut conns = JoinSet::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        let service = self.service();
        let tracker = Tracker::new(Limits {
            header_read: settings.header_read_timeout,
            keep_alive: settings.keep_alive_timeout,
            write: settings.write_timeout,
        });
        let _sweeper = tracker.clone().spawn_sweeper();

        tokio::pin!(shutdown);
        let mut backoff: Option<Duration> = None;
        let mut at_cap = false;
        let mut cap_warned: Option<tokio::time::Instant> = None;
        loop {
            let full = conns.len() >= max_connections;
            if full && !at_cap && cap_warned.is_none_or(|t| t.elapsed() > CAP_WARN_EVERY) {
                cap_warned = Some(tokio::time::Instant::now());
                tracing::warn!(
                    max_connections,
                    "connection limit reached: new connections wait unaccepted"
                );
            }
            at_cap = full;
            if let Some(pause) = backoff {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    () = &mut shutdown => break,
                }
            }
            tokio::select! {
                accepted = listener.accept(), if !full => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            let pause = backoff.map_or(ACCEPT_BACKOFF_MIN, |b| (b * 2).min(ACCEPT_BACKOFF_MAX));
                            if backoff.is_none() {
                                tracing::warn!(error = %e, connections = conns.len(), "accept failed: retrying with backoff");
                            }
                            backoff = Some(pause);
                            continue;
                        }
                    };
                    if backoff.take().is_some() {
                        tracing::info!("accepting again");
                    }
                    let _ = stream.set_nodelay(true);
                    let activity = tracker.track();
                    let svc = service.clone().for_connection(peer, activity.clone());
                    conns.spawn(serve_connection(builder.clone(), stream, peer, svc, activity));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!("stopping: no new connections; finishing requests in flight");
        self.handle.signals().emit(AppStopping);
        tracker.command_all(DRAIN);
        workers.signal();
        let deadline = settings.shutdown_deadline;
        let stop_by = tokio::time::Instant::now() + deadline;
        let drain = async {
            let drained = tokio::time::timeout_at(stop_by, async {
                while conns.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    connections = conns.len(),
                    ?deadline,
                    "shutdown deadline passed: cutting the remaining connections"
                );
                conns.shutdown().await;
            }
        };
        tokio::join!(drain, workers.join(stop_by));
        // Shutdown hooks get their own bound, not what the drain left of its deadline.
        self.shutdown(settings.shutdown_hooks_timeout).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// At most one "connection limit reached" warning per this long.
const CAP_WARN_EVERY: Duration = Duration::from_secs(60);

/// The first pause after a failed `accept`; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

async fn serve_connection(
    builder: auto::Builder<TokioExecutor>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    svc: crate::service::AppService,
    activity: Arc<Activity>,
) {
    let io = WatchedIo::new(stream, activity.clone());
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    let mut seen = RUN;
    loop {
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            command = activity.next_command(seen) => {
                seen = command;
                if command == KILL {
                    tracing::debug!(%peer, "connection cut off");
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C; stop the server with SIGTERM");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
