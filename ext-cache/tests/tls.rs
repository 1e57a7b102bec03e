//! `rediss://`: the cache talks TLS to a private `redis-server` this test starts on free
//! ports with a self-signed certificate made here, trusting it through `tls_ca_file`; the
//! same server is unusable without that trust, and the settings are checked at build.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flagon_cache::Ttl;

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn skip_or_fail(why: &str) -> Option<(Server, u16, PathBuf)> {
    if std::env::var("FLAGON_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("TLS test: {why}");
    }
    println!("skipping the TLS test: {why}");
    None
}

/// Runs openssl with `args` in `dir`; `false` if it is missing or fails.
fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A test CA and a server certificate for 127.0.0.1 it signed (openssl), and a TLS-only
/// `redis-server` presenting it. Returns the server, its port and the CA's file.
fn start(dir: &Path) -> Option<(Server, u16, PathBuf)> {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let rsa = ["-newkey", "rsa:2048", "-nodes"];
    let made = openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &rsa,
            &["-days", "1", "-subj", "/CN=flagon test CA"],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    ) && openssl(
        dir,
        &[
            &["req"][..],
            &rsa,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
    ) && openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    if !made {
        return skip_or_fail("openssl could not make the test certificates");
    }
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return skip_or_fail(&format!("redis-server could not be started: {e}")),
    };
    let server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return skip_or_fail(
                "redis-server (built without TLS?) did not listen on its TLS port",
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((server, port, dir.join("ca.pem")))
}

fn toml(url: &str, ca: Option<&Path>) -> String {
    let ca = ca
        .map(|p| format!("tls_ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    format!(
        "[cache]\nbackend = \"redis\"\n[cache.redis]\nurl = \"{url}\"\n{ca}key_prefix = \"tls:\"\n\
         command_timeout = \"2s\"\nconnect_timeout = \"2s\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_trusted_ca() {
    let dir =
        std::env::temp_dir().join(common::unique_prefix("flagon-cache-tls").replace(':', "-"));
    std::fs::create_dir_all(&dir).unwrap();
    let Some((_server, port, cert)) = start(&dir) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{port}");

    let app = common::app(&toml(&url, Some(&cert)));
    let c = common::default_cache(&app);
    c.set("k", "over tls", Ttl::Default).await.unwrap();
    assert_eq!(c.get::<String>("k").await.as_deref(), Some("over tls"));
    assert_eq!(c.incr("n", 2).await.unwrap(), 2);
    assert!(c.reachable().await);

    // The same server, not trusted: the handshake fails, so calls are misses.
    let untrusted = common::app(&toml(&url, None));
    let u = common::default_cache(&untrusted);
    assert_eq!(
        u.get::<String>("k").await,
        None,
        "an unknown certificate is refused"
    );
    assert!(!u.reachable().await);
    // Plain text to the TLS port gets nothing either.
    let plain = common::app(&toml(&format!("redis://127.0.0.1:{port}"), None));
    assert_eq!(common::default_cache(&plain).get::<String>("k").await, None);
}

#[test]
fn tls_settings_are_checked_at_build() {
    let err = common::build_error(&toml(
        "redis://127.0.0.1:6379",
        Some(Path::new("/nope.pem")),
    ));
    assert!(
        err.contains("cache.redis.tls_ca_file") && err.contains("rediss://"),
        "{err}"
    );
    let err = common::build_error(&toml(
        "rediss://127.0.0.1:6379",
        Some(Path::new("/nope.pem")),
    ));
    assert!(
        err.contains("cache.redis.tls_ca_file") && err.contains("/nope.pem"),
        "{err}"
    );
}
