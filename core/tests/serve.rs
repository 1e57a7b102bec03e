//! Serving over real sockets on 127.0.0.1:0: graceful shutdown with a deadline, startup and
//! shutdown hooks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flagon::testing::testing_config_toml;
use flagon::{App, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

async fn slow(axum::extract::Path(ms): axum::extract::Path<u64>) -> String {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms}ms")
}

fn app(deadline: &str, stopped: Arc<AtomicBool>) -> App {
    App::builder()
        .settings(testing_config_toml(&format!(
            "[server]\nshutdown_deadline = \"{deadline}\"\n"
        )))
        .route(Route::get("/slow/{ms}", slow))
        .configure(move |s| {
            s.on_shutdown(move |_| {
                let stopped = stopped.clone();
                async move { stopped.store(true, Ordering::SeqCst) }
            });
            Ok(())
        })
        .build()
        .unwrap()
}

/// Sends one HTTP/1.1 request and reads until the server closes the connection.
async fn request(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

async fn start(
    app: App,
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, server)
}

#[tokio::test]
async fn serves_requests_with_a_request_id() {
    let stopped = Arc::new(AtomicBool::new(false));
    let (addr, tx, server) = start(app("5s", stopped.clone())).await;
    let res = request(addr, "/slow/1").await.unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.to_ascii_lowercase().contains("x-request-id: "), "{res}");
    assert!(res.ends_with("slept 1ms"), "{res}");
    tx.send(()).unwrap();
    server.await.unwrap();
    assert!(stopped.load(Ordering::SeqCst), "shutdown hooks ran");
}

#[tokio::test]
async fn graceful_shutdown_finishes_a_request_in_flight() {
    let stopped = Arc::new(AtomicBool::new(false));
    let (addr, tx, server) = start(app("5s", stopped.clone())).await;
    let in_flight = tokio::spawn(request(addr, "/slow/400"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(()).unwrap();
    let res = in_flight.await.unwrap().unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.ends_with("slept 400ms"), "{res}");
    server.await.unwrap();
    assert!(stopped.load(Ordering::SeqCst));
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connections after stop"
    );
}

#[tokio::test]
async fn graceful_shutdown_cuts_a_request_past_the_deadline() {
    let stopped = Arc::new(AtomicBool::new(false));
    let (addr, tx, server) = start(app("300ms", stopped.clone())).await;
    let in_flight = tokio::spawn(request(addr, "/slow/20000"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tx.send(()).unwrap();
    server.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped within the deadline: {:?}",
        started.elapsed()
    );
    let res = tokio::time::timeout(Duration::from_secs(2), in_flight)
        .await
        .expect("client sees the cut")
        .unwrap();
    match res {
        Ok(text) => assert!(
            !text.contains("slept"),
            "the slow request must not complete: {text}"
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    assert!(stopped.load(Ordering::SeqCst), "shutdown hooks still ran");
}

#[tokio::test]
async fn a_failing_startup_hook_aborts_serving_with_its_message() {
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(|s| {
            s.on_startup(|_| async { Err("migrations are pending".into()) });
            Ok(())
        })
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = app
        .serve(listener, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "startup hook of the app failed: migrations are pending"
    );
}

fn timeouts_app() -> App {
    App::builder()
        .settings(testing_config_toml(
            "[server]\nheader_read_timeout = \"300ms\"\nkeep_alive_timeout = \"300ms\"\n",
        ))
        .route(Route::get("/slow/{ms}", slow))
        .build()
        .unwrap()
}

/// Reads until EOF or 5 s; returns what arrived and how long it took.
async fn read_until_closed(s: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (addr, tx, server) = start(timeouts_app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow/1 HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let (got, took) = read_until_closed(&mut s).await;
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    assert!(!got.contains("slept"), "{got}");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, tx, server) = start(timeouts_app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow/1 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = read_until_closed(&mut s).await;
    assert!(
        got.contains("slept 1ms"),
        "the request is answered first: {got}"
    );
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_slow_handler_is_not_mistaken_for_a_slow_client() {
    let (addr, tx, server) = start(timeouts_app()).await;
    let res = request(addr, "/slow/900").await.unwrap();
    assert!(res.ends_with("slept 900ms"), "{res}");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn lifecycle_signals_fire_and_a_hanging_shutdown_hook_is_cut_at_the_deadline() {
    use flagon::signals::{AppStarted, AppStopping};
    let seen = Arc::new(std::sync::Mutex::new(Vec::<&'static str>::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nshutdown_deadline = \"300ms\"\n",
        ))
        .configure(move |s| {
            s.subscribe(move |_: &AppStarted| s1.lock().unwrap().push("started"));
            s.subscribe(move |_: &AppStopping| s2.lock().unwrap().push("stopping"));
            s.on_shutdown(|_| async { std::future::pending::<()>().await });
            Ok(())
        })
        .build()
        .unwrap();
    let (_addr, tx, server) = start(app).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    tx.send(()).unwrap();
    server.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut at the deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(*seen.lock().unwrap(), ["started", "stopping"]);
}
