//! Background workers: they run only while serving, get the stop signal and are awaited,
//! and are restarted with backoff (and logged) when they fail or panic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flagon::App;
use flagon::clap::Command;
use flagon::testing::{run_cli, testing_config_toml};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves `app` until the returned sender fires.
async fn serve(app: App) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (tx, server)
}

#[tokio::test]
async fn a_worker_runs_while_serving_and_not_under_a_command() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(move |s| {
            s.worker("counter", move |ctx| {
                let runs = counted.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    ctx.stopping().await;
                    Ok(())
                }
            });
            s.command(Command::new("noop"), |_| async { Ok(()) });
            Ok(())
        })
        .build()
        .unwrap();
    for args in [&["noop"][..], &["routes"], &["extensions"]] {
        let out = run_cli(&app, args.iter().copied()).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no worker under commands");
    let (tx, server) = serve(app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one run while serving");
    tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_worker_gets_the_stop_signal_and_is_awaited() {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nshutdown_deadline = \"5s\"\n",
        ))
        .configure(move |s| {
            s.worker("outbox", move |ctx| {
                let flag = flag.clone();
                async move {
                    assert_eq!(ctx.name(), "outbox");
                    assert!(!ctx.is_stopping());
                    ctx.stopping().await;
                    // Finishing the current batch takes a while.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    flag.store(true, Ordering::SeqCst);
                    Ok(())
                }
            });
            Ok(())
        })
        .build()
        .unwrap();
    let (tx, server) = serve(app).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(()).unwrap();
    server.await.unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "serve waited for the worker"
    );
}

#[tokio::test]
async fn a_worker_that_ignores_the_signal_is_cancelled_at_the_deadline() {
    let app = App::builder()
        .settings(testing_config_toml(
            "[server]\nshutdown_deadline = \"300ms\"\n",
        ))
        .configure(|s| {
            s.worker("stubborn", |_| async {
                std::future::pending::<()>().await;
                Ok(())
            });
            Ok(())
        })
        .build()
        .unwrap();
    let (tx, server) = serve(app).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tx.send(()).unwrap();
    server.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_workers_of_one_name_fail_the_build() {
    let err = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(|s| {
            s.worker("sweeper", |_| async { Ok(()) });
            s.worker("sweeper", |_| async { Ok(()) });
            Ok(())
        })
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("worker `sweeper`"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_or_panicking_worker_is_logged_and_restarted_with_backoff() {
    let logs = flagon::testing::LogCapture::start(tracing::Level::INFO);

    let starts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = starts.clone();
    let app = App::builder()
        .settings(flagon::testing::testing_config())
        .configure(move |s| {
            s.worker("flaky", move |ctx| {
                let seen = seen.clone();
                async move {
                    let attempt = {
                        let mut s = seen.lock().unwrap();
                        s.push(Instant::now());
                        s.len()
                    };
                    match attempt {
                        1 => Err("the queue is unreachable".into()),
                        2 => panic!("a bug in the worker"),
                        _ => {
                            ctx.stopping().await;
                            Ok(())
                        }
                    }
                }
            });
            Ok(())
        })
        .build()
        .unwrap();
    let (tx, server) = serve(app).await;
    let until = Instant::now() + Duration::from_secs(5);
    while starts.lock().unwrap().len() < 3 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(()).unwrap();
    server.await.unwrap();

    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 3, "restarted after the failure and the panic");
    let first_pause = starts[1] - starts[0];
    let second_pause = starts[2] - starts[1];
    assert!(first_pause >= Duration::from_millis(90), "{first_pause:?}");
    assert!(
        second_pause >= Duration::from_millis(190),
        "backoff doubles: {second_pause:?}"
    );
    let log = logs.text();
    assert!(
        log.contains("worker failed: the queue is unreachable; restarting"),
        "{log}"
    );
    assert!(
        log.contains("worker panicked: a bug in the worker; restarting"),
        "{log}"
    );
    assert!(log.contains("worker=flaky"), "{log}");
}
