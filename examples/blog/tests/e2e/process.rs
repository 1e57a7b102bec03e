//! The blog binary as a real process: `serve` on port 0 (the address is read from its
//! `serving` log line, so no port is guessed), its commands, and its log kept for failures.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_example-blog");

/// How long a server may take from spawn to serving (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment for a blog process: the caller's `FLAGON_*` variables are dropped (the test
/// decides every setting), then `env` is set.
fn command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("FLAGON_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("FLAGON_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running blog server. Killed (and its log printed when the test is failing) on drop.
pub struct Blog {
    /// Which one, in messages.
    pub name: String,
    /// Where it serves.
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Blog {
    /// Starts `example-blog serve` in `dir` with `env` on a port of the system's choosing and
    /// waits until it serves.
    pub fn start(name: &str, dir: &Path, env: &[(String, String)]) -> Blog {
        let mut env = env.to_vec();
        env.push(("FLAGON_SERVER__HOST".into(), "127.0.0.1".into()));
        env.push(("FLAGON_SERVER__PORT".into(), "0".into()));
        let mut child = command(dir, &env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {BIN}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("piped")),
        ] {
            let (log, tx) = (log.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(addr) = serving_addr(&line) {
                        let _ = tx.send(addr);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        drop(tx);
        let mut blog = Blog {
            name: name.to_owned(),
            addr: "0.0.0.0:0".parse().unwrap(),
            child,
            log,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => blog.addr = addr,
            Err(_) => {
                let status = blog.child.try_wait().ok().flatten();
                panic!(
                    "blog `{name}` did not start serving within {START_TIMEOUT:?} (exit: {status:?}); its log:\n{}",
                    blog.log()
                );
            }
        }
        blog
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Blog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of blog `{}` ----\n{}", self.name, self.log());
        }
    }
}

/// The address in core's `serving addr=Some(127.0.0.1:PORT)` line.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("serving") {
        return None;
    }
    let start = line.find("addr=Some(")? + "addr=Some(".len();
    let end = line[start..].find(')')? + start;
    line[start..end].parse().ok()
}

/// What a command printed, and whether it succeeded.
pub struct Output {
    /// Exit status was 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `example-blog ARGS…` in `dir` with `env`, writing `stdin` to it.
pub fn run(dir: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> Output {
    let mut child = command(dir, env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {BIN} {args:?}: {e}"));
    let mut input = child.stdin.take().expect("piped");
    input.write_all(stdin.as_bytes()).expect("writes stdin");
    drop(input);
    let out = child.wait_with_output().expect("the command finishes");
    Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed.
pub fn run_ok(dir: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> String {
    let out = run(dir, env, args, stdin);
    assert!(
        out.success,
        "example-blog {args:?} failed:\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// Where a test keeps what it wants to look at after a failure:
/// `$CARGO_TARGET_DIR/<name>/` (the target directory is found from the test binary's path).
pub fn artifact_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // …/target/debug/deps/browser-HASH → …/target
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(std::env::temp_dir);
    target.join(name)
}

#[test]
fn the_serving_line_gives_the_address() {
    let line = "2026-12-02T04:00:00Z  INFO flagon::serve: serving addr=Some(127.0.0.1:41234) profile=development max_connections=768";
    assert_eq!(serving_addr(line), Some("127.0.0.1:41234".parse().unwrap()));
    assert_eq!(serving_addr("INFO request addr=Some(1.2.3.4:5)"), None);
}
