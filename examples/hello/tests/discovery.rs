//! The hello binary picks up `flagon-secure-headers` by discovery: it calls
//! `flagon_secure_headers::link()` and `.discover()`, and never registers it by hand.
//! This runs the real binary, so it checks that the linker kept the registration.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_example-hello"))
        .args(args)
        .env("FLAGON_ENV", "testing")
        .env_remove("FLAGON_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the example binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn secure_headers_arrives_by_discovery() {
    let listing = run(&["extensions"]);
    assert!(listing.contains("secure-headers (discovered)"), "{listing}");
    assert!(
        listing.contains("greeter (registered explicitly)"),
        "{listing}"
    );
}

#[test]
fn its_command_is_available() {
    let shown = run(&["secure-headers", "show"]);
    assert!(shown.contains("/hello/{name}"), "{shown}");
    assert!(
        shown.contains("Content-Security-Policy: default-src 'self'"),
        "{shown}"
    );
}
