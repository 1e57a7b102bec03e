//! Serving over real sockets on 127.0.0.1:0: graceful shutdown with a deadline, startup and
//! shutdown hooks, connection timeouts and the connection cap.

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

#[tokio::test]
async fn before_serving_hooks_run_after_the_startup_hooks_and_can_abort_serving() {
    let ran = Arc::new(std::sync::Mutex::new(Vec::<&'static str>::new()));
    let (a, b) = (ran.clone(), ran.clone());
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(move |s| {
            s.before_serving(move |_| {
                b.lock().unwrap().push("before_serving");
                async { Err("migrations failed".into()) }
            });
            s.on_startup(move |_| {
                a.lock().unwrap().push("startup");
                async { Ok(()) }
            });
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
        "startup hook of the app failed: migrations failed"
    );
    assert_eq!(*ran.lock().unwrap(), ["startup", "before_serving"]);
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
            "[server]\nshutdown_hooks_timeout = \"300ms\"\n",
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

#[tokio::test]
async fn shutdown_hooks_get_their_own_time_after_a_drain_cut() {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nshutdown_deadline = \"300ms\"\nshutdown_hooks_timeout = \"5s\"\n",
        ))
        .route(Route::get("/slow/{ms}", slow))
        .configure(move |s| {
            s.on_shutdown(move |_| {
                let flag = flag.clone();
                async move {
                    // An awaiting hook (closing a pool): cancelled at once if it only got
                    // what the cut drain left.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    flag.store(true, Ordering::SeqCst);
                }
            });
            Ok(())
        })
        .build()
        .unwrap();
    let (addr, tx, server) = start(app).await;
    let _in_flight = tokio::spawn(request(addr, "/slow/20000"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(()).unwrap();
    server.await.unwrap();
    assert!(
        done.load(Ordering::SeqCst),
        "the shutdown hook ran to its end"
    );
}

struct Opens(&'static str, Arc<std::sync::Mutex<Vec<String>>>, bool);

impl flagon::Extension for Opens {
    fn name(&self) -> &'static str {
        self.0
    }

    fn init_app(&self, app: &mut flagon::Setup<'_>) -> Result<(), flagon::SetupError> {
        let (name, log, fail) = (self.0, self.1.clone(), self.2);
        app.on_startup(move |_| async move {
            if fail {
                Err("cannot connect".into())
            } else {
                Ok(())
            }
        });
        app.on_shutdown(move |_| {
            let log = log.clone();
            async move { log.lock().unwrap().push(format!("closed {name}")) }
        });
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_startup_closes_what_the_started_extensions_opened() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .register(Opens("pool", log.clone(), false))
        .register(Opens("broker", log.clone(), true))
        .register(Opens("later", log.clone(), false))
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = app
        .serve(listener, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "startup hook of extension `broker` failed: cannot connect"
    );
    assert_eq!(*log.lock().unwrap(), ["closed pool"]);
}

fn conn_app(server: &str) -> App {
    App::builder()
        .settings(testing_config_toml(&format!("[server]\n{server}")))
        .route(Route::get("/slow/{ms}", slow))
        .route(Route::get("/big", big))
        .route(Route::get("/stream", stream))
        .build()
        .unwrap()
}

/// Six chunks, 250 ms apart.
async fn stream() -> axum::body::Body {
    let chunks = futures_util::stream::unfold(0u8, |i| async move {
        if i == 6 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        Some((
            Ok::<_, std::io::Error>(bytes::Bytes::from(format!("{i}"))),
            i + 1,
        ))
    });
    axum::body::Body::from_stream(chunks)
}

async fn big() -> Vec<u8> {
    vec![b'x'; 64 * 1024 * 1024]
}

/// Whether the server closed `s` within `within` (EOF or reset while reading).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_cut_at_the_header_read_timeout() {
    let (addr, tx, server) = start(conn_app(
        "header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"60s\"\n",
    ))
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_partial_head_pipelined_behind_a_request_is_timed() {
    let (addr, tx, server) = start(conn_app(
        "header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"60s\"\n",
    ))
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow/1 HTTP/1.1\r\nHost: test\r\n\r\nGET /slow/1 HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let (got, took) = read_until_closed(&mut s).await;
    assert!(
        got.contains("slept 1ms"),
        "the first request is answered: {got}"
    );
    assert_eq!(got.matches("HTTP/1.1 200").count(), 1, "{got}");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_are_all_answered() {
    let (addr, tx, server) = start(conn_app(
        "header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"60s\"\n",
    ))
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /slow/1 HTTP/1.1\r\nHost: test\r\n\r\nGET /slow/2 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let (got, _) = read_until_closed(&mut s).await;
    assert!(
        got.contains("slept 1ms") && got.ends_with("slept 2ms"),
        "{got}"
    );
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn stray_crlf_between_requests_is_ignored() {
    let (addr, tx, server) = start(conn_app(
        "header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"60s\"\n",
    ))
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow/1 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("slept 1ms"));
    s.write_all(b"\r\n").await.unwrap();
    // Well past the header timeout: a stray CRLF does not start a head.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s.write_all(b"GET /slow/2 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut s).await;
    assert!(got.ends_with("slept 2ms"), "the connection was kept: {got}");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_unread() {
    let (addr, tx, server) = start(conn_app(
        "max_connections = 2\nheader_read_timeout = \"30s\"\nkeep_alive_timeout = \"60s\"\n",
    ))
    .await;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(request(addr, "/slow/1"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "a third connection is not served");
    drop(first);
    let res = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .unwrap();
    assert!(res.ends_with("slept 1ms"), "{res}");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    let (addr, tx, server) = start(conn_app("write_timeout = \"500ms\"\n")).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    // Read nothing while the server's writes back up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let read_all = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(read_all.is_ok(), "the connection was closed");
    assert!(
        total < 64 * 1024 * 1024,
        "the response was cut, not delivered: {total} bytes"
    );
    tx.send(()).unwrap();
    server.await.unwrap();
}

/// An HTTP/2 (h2c) client connection and the task driving it.
async fn h2_client(
    addr: std::net::SocketAddr,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
    h2::PingPong,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let ping = conn.ping_pong().expect("ping pong");
    let driver = tokio::spawn(conn);
    (send, driver, ping)
}

async fn h2_get(send: &mut h2::client::SendRequest<bytes::Bytes>, path: &str) -> String {
    let req = http::Request::get(format!("http://test{path}"))
        .body(())
        .unwrap();
    let (res, _) = send.send_request(req, true).unwrap();
    let mut body = res.await.unwrap().into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn h2_pings_do_not_cut_a_connection_and_an_idle_one_gets_a_goaway() {
    let (addr, tx, server) = start(conn_app(
        "header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"2s\"\n",
    ))
    .await;
    let (send, driver, mut ping) = h2_client(addr).await;
    let mut send = send.ready().await.unwrap();
    assert_eq!(h2_get(&mut send, "/slow/1").await, "slept 1ms");
    // PINGs for well past the header timeout: control frames are not a request head.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ping.ping(h2::Ping::opaque()).await.unwrap();
    }
    assert_eq!(h2_get(&mut send, "/slow/2").await, "slept 2ms");
    // Then idle: closed with a GOAWAY (the client's connection ends cleanly).
    let idle_from = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(8), driver)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(ended.is_ok(), "closed with GOAWAY, not cut: {ended:?}");
    assert!(
        idle_from.elapsed() >= Duration::from_millis(1500),
        "after the keep-alive timeout: {:?}",
        idle_from.elapsed()
    );
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_long_h2_response_is_not_mistaken_for_an_idle_connection() {
    let (addr, tx, server) = start(conn_app(
        "header_read_timeout = \"300ms\"\nkeep_alive_timeout = \"500ms\"\n",
    ))
    .await;
    let (send, _driver, _ping) = h2_client(addr).await;
    let mut send = send.ready().await.unwrap();
    assert_eq!(h2_get(&mut send, "/slow/1500").await, "slept 1500ms");
    // A streamed body longer than both timeouts, with the client's WINDOW_UPDATEs.
    assert_eq!(h2_get(&mut send, "/stream").await, "012345");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn an_h2_client_that_grants_no_window_is_closed_after_the_write_timeout() {
    let (addr, tx, server) = start(conn_app(
        "write_timeout = \"500ms\"\nheader_read_timeout = \"30s\"\nkeep_alive_timeout = \"60s\"\n",
    ))
    .await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let req = http::Request::get("http://test/stream").body(()).unwrap();
    let (res, _) = send.send_request(req, true).unwrap();
    let res = res.await.unwrap();
    assert_eq!(res.status(), 200);
    // Never release capacity: the streamed body cannot move.
    let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(ended.is_ok(), "the stalled connection was closed");
    tx.send(()).unwrap();
    server.await.unwrap();
}
