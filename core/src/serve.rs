//! Serving: an accept loop with header-read timeouts and graceful shutdown with a deadline.
//!
//! On SIGINT/SIGTERM (or the given shutdown future) the server stops accepting, asks every
//! connection to finish its in-flight request, waits up to `server.shutdown_deadline`, then
//! cuts what is left, and finally runs shutdown hooks within the same deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout);
        let service = self.service();

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
                    conns.spawn(serve_connection(builder, stream, peer, svc, stop));
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

async fn serve_connection(
    builder: auto::Builder<TokioExecutor>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    svc: crate::service::AppService,
    mut stop: watch::Receiver<bool>,
) {
    let hyper_svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut svc = svc.clone();
        svc.call(req.map(Body::new))
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_svc);
    tokio::pin!(conn);
    let stopping = stop.wait_for(|s| *s);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stopping => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
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
