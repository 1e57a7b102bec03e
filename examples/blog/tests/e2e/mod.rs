//! What the out-of-process tests share: the real blog binary started on a free port in a
//! directory of its own, its commands, an HTTP client with a cookie jar, the mails the file
//! transport wrote, and the rule for tests that need services (skip with a reason, fail when
//! `FLAGON_TEST_REQUIRE_SERVICES=1`).
#![allow(dead_code)] // each test file uses its own part

pub mod chrome;
pub mod http;
pub mod mail;
pub mod process;

/// Whether missing services fail the test (CI) instead of skipping it.
pub fn services_required() -> bool {
    std::env::var("FLAGON_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A test that cannot run here: one line on stderr, or a failure when services are required.
pub fn skip(reason: &str) {
    if services_required() {
        panic!("FLAGON_TEST_REQUIRE_SERVICES=1 but {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// A name unique to this run, for databases and key prefixes: `prefix_<pid>_<random>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
