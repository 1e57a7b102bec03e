//! Serving: an accept loop with header-read timeouts and graceful shutdown with a deadline.
//!
//! On SIGINT/SIGTERM (or the given shutdown future) the server stops accepting, asks every
//! connection to finish its in-flight request, waits up to `server.shutdown_deadline`, then
//! cuts what is left, and finally runs shutdown hooks within the same deadline.
//!
//! Slow clients are bounded per connection by a watchdog that ticks twice a second rather
//! than a timer per request: a connection that started sending a request head and has not
//! finished it within `server.header_read_timeout` is closed, and one idle between requests
//! for `server.keep_alive_timeout` is closed gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

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
        let local = listener.local_addr().ok();
        let settings = &self.handle.0.server;
        tracing::info!(addr = ?local, profile = %self.handle.profile(), "serving");
        self.handle.signals().emit(AppStarted { addr: local });

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        let service = self.service();
        let limits = Limits {
            header_read: settings.header_read_timeout,
            keep_alive: settings.keep_alive_timeout,
        };

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
                    let svc = service.clone().with_peer(peer);
                    let builder = builder.clone();
                    let stop = stop_rx.clone();
                    conns.spawn(serve_connection(builder, stream, peer, svc, stop, limits));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!("stopping: no new connections; finishing requests in flight");
        self.handle.signals().emit(AppStopping);
        let _ = stop_tx.send(true);
        let deadline = settings.shutdown_deadline;
        let drained = tokio::time::timeout(deadline, async {
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
        self.shutdown(deadline).await;
        tracing::info!("stopped");
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Limits {
    header_read: Duration,
    keep_alive: Duration,
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// What a connection is doing, updated by its I/O and its service, read by its watchdog.
struct Activity {
    epoch: Instant,
    phase: AtomicU8,
    since_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn bytes_read(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.phase.store(HEAD, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.phase.store(IDLE, Ordering::Relaxed);
        }
    }

    /// `Some(reason)` when the connection should be closed.
    fn overdue(&self, limits: Limits) -> Option<&'static str> {
        let elapsed = Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.since_ms.load(Ordering::Relaxed)),
        );
        match self.phase.load(Ordering::Relaxed) {
            HEAD if elapsed > limits.header_read => Some("request head not received in time"),
            IDLE if elapsed > limits.keep_alive => Some("idle keep-alive connection"),
            _ => None,
        }
    }
}

/// Marks the request finished when its future completes or is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
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
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let activity = Arc::new(Activity::new());
    let io = WatchedIo {
        inner: stream,
        activity: activity.clone(),
    };
    let svc_activity = activity.clone();
    let hyper_svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut svc = svc.clone();
        svc_activity.request_started();
        let guard = InFlight(svc_activity.clone());
        let fut = svc.call(req.map(Body::new));
        async move {
            let res = fut.await;
            drop(guard);
            res
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_svc);
    tokio::pin!(conn);
    let mut watchdog = tokio::time::interval(Duration::from_millis(500));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = watchdog.tick() => {
                match activity.overdue(limits) {
                    Some(reason) if activity.phase.load(Ordering::Relaxed) == HEAD => {
                        tracing::debug!(%peer, reason, "closing connection");
                        return;
                    }
                    Some(reason) if !stopping => {
                        tracing::debug!(%peer, reason, "closing connection");
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ => {}
                }
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
