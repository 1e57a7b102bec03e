//! What the binary writes into pipes and files is plain text: no terminal colour codes in its
//! log lines or its usage errors, whatever the environment asks of the terminal libraries.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn hello() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_example-hello"));
    cmd.env("FLAGON_ENV", "testing")
        .env_remove("FLAGON_CONFIG")
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn log_lines_into_a_pipe_carry_no_colour_codes() {
    let mut child = hello()
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example binary runs");
    let stderr = child.stderr.take().expect("piped");
    let mut line = String::new();
    let mut reader = BufReader::new(stderr);
    let read = reader.read_line(&mut line);
    child.kill().expect("the server is still running");
    let _ = child.wait();
    read.expect("a log line");
    assert!(line.contains("serving"), "{line:?}");
    assert!(!line.contains('\u{1b}'), "{line:?}");
}

#[test]
fn usage_errors_and_help_into_a_pipe_carry_no_colour_codes() {
    let out = hello().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.contains("--no-such-flag"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let help = hello().arg("--help").output().unwrap();
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("secret-key"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}
