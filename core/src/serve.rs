//! Serving: an accept loop with header-read timeouts and graceful shutdown with a deadline.
//!
//! On SIGINT/SIGTERM (or the given shutdown future) the server stops accepting, asks every
//! connection to finish its in-flight request, waits up to `server.shutdown_deadline`, then
//! cuts what is left, and finally runs shutdown hooks within the same deadline.
//!
//! Slow clients are bounded without a timer per request: one sweeper task ticks four times a
//! second over all connections. A connection that started sending a request head and has not
//! finished it within `server.header_read_timeout` is closed, and one idle between requests
//! for `server.keep_alive_timeout` is closed gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::App;
use crate::error::BoxError;
use crate::signals::{AppStarted, AppStopping};

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
    pub async fn startup(&self) -> Result<(), ServeError> {
        for (origin, hook) in &self.handle.0.startup {
            hook(self.handle.clone())
                .await
                .map_err(|source| ServeError::Startup {
                    owner: origin.to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Runs every shutdown hook, all of them bounded together by `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let hooks = async {
            for (origin, hook) in &self.handle.0.shutdown {
                tracing::debug!(owner = %origin, "running shutdown hook");
                hook(self.handle.clone()).await;
            }
        };
        if tokio::time::timeout(deadline, hooks).await.is_err() {
            tracing::warn!(
                ?deadline,
                "shutdown hooks did not finish before the deadline"
            );
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

    /// Serves on `listener` until `shutdown` completes: startup hooks first, then the accept
    /// loop, then a graceful stop within `server.shutdown_deadline`.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.startup().await?;
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
        tracing::info!(addr = ?local, profile = %self.handle.profile(), "serving");
        self.handle.signals().emit(AppStarted { addr: local });

        let mut conns = JoinSet::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        let service = self.service();
        let tracker = Tracker::new(Limits {
            header_read: settings.header_read_timeout,
            keep_alive: settings.keep_alive_timeout,
        });
        let _sweeper = SweeperGuard(tracker.clone().spawn_sweeper());

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
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
        let deadline = settings.shutdown_deadline;
        let stop_by = tokio::time::Instant::now() + deadline;
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
        // Shutdown hooks get what is left of the same deadline.
        let left = stop_by.saturating_duration_since(tokio::time::Instant::now());
        self.shutdown(left).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Stops the sweeper thread when serving ends, however it ends.
struct SweeperGuard(Arc<AtomicBool>);

impl Drop for SweeperGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How often the sweeper looks at every connection.
const TICK: Duration = Duration::from_millis(250);

#[derive(Clone, Copy)]
struct Limits {
    header_read: Duration,
    keep_alive: Duration,
}

// Connection phases.
const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

// Commands from the sweeper or the server to a connection.
const RUN: u8 = 0;
const DRAIN: u8 = 1;
const KILL: u8 = 2;

/// All open connections, and the coarse clock their activity is stamped with.
#[derive(Clone)]
struct Tracker {
    clock: Arc<AtomicU64>,
    conns: Arc<Mutex<Vec<Weak<Activity>>>>,
    limits: Limits,
}

impl Tracker {
    fn new(limits: Limits) -> Self {
        Tracker {
            clock: Arc::default(),
            conns: Arc::default(),
            limits,
        }
    }

    fn track(&self) -> Arc<Activity> {
        let a = Arc::new(Activity {
            clock: self.clock.clone(),
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(self.clock.load(Ordering::Relaxed)),
            in_flight: AtomicUsize::new(0),
            command: AtomicU8::new(RUN),
            waker: AtomicWaker::new(),
        });
        self.lock().push(Arc::downgrade(&a));
        a
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Activity>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn command_all(&self, command: u8) {
        for a in self.lock().iter().filter_map(Weak::upgrade) {
            a.send(command);
        }
    }

    /// Starts the sweeper on its own thread, so the runtime carries no timer for it; it
    /// stops when the returned flag is set.
    fn spawn_sweeper(self) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("flagon-sweeper".into())
            .spawn(move || self.sweep(&flag));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the connection sweeper: slow clients are not cut off");
        }
        stop
    }

    fn sweep(self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
            let mut conns = self.lock();
            conns.retain(|w| w.strong_count() > 0);
            for a in conns.iter().filter_map(Weak::upgrade) {
                // Phase first (pairs with the release in `stamp`): the `since` read after it
                // is at least as new as that phase's.
                let phase = a.phase.load(Ordering::Acquire);
                let elapsed = TICK * (now.saturating_sub(a.since.load(Ordering::Relaxed)) as u32);
                match phase {
                    HEAD if elapsed > self.limits.header_read => a.send(KILL),
                    IDLE if elapsed > self.limits.keep_alive => a.send(DRAIN),
                    _ => {}
                }
            }
        }
    }
}

/// What a connection is doing, stamped by its I/O and its requests, read by the sweeper.
pub(crate) struct Activity {
    clock: Arc<AtomicU64>,
    phase: AtomicU8,
    since: AtomicU64,
    in_flight: AtomicUsize,
    command: AtomicU8,
    waker: AtomicWaker,
}

impl Activity {
    fn stamp(&self, phase: u8) {
        self.since
            .store(self.clock.load(Ordering::Relaxed), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    fn bytes_read(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.stamp(HEAD);
        }
    }

    fn send(&self, command: u8) {
        if self.command.fetch_max(command, Ordering::Relaxed) < command {
            self.waker.wake();
        }
    }

    /// Completes when a command newer than `seen` arrives.
    fn next_command(&self, seen: u8) -> impl Future<Output = u8> + '_ {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            match self.command.load(Ordering::Relaxed) {
                c if c > seen => Poll::Ready(c),
                _ => Poll::Pending,
            }
        })
    }
}

/// A request in flight on a connection; finished when dropped.
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(crate) fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.phase.store(BUSY, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.stamp(IDLE);
        }
    }
}

/// The TCP stream, reporting reads to the connection's [`Activity`].
struct WatchedIo {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        res
    }
}

impl tokio::io::AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_connection(
    builder: auto::Builder<TokioExecutor>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    svc: crate::service::AppService,
    activity: Arc<Activity>,
) {
    let io = WatchedIo {
        inner: stream,
        activity: activity.clone(),
    };
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
                    tracing::debug!(%peer, "closing a connection whose request head is overdue");
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
