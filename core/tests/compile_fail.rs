//! Misuse the type system stops: registering on a built app, and a handler axum cannot call.
//! The expected compiler output is in `tests/ui/*.stderr` (regenerate with
//! `TRYBUILD=overwrite cargo test -p flagon --test compile_fail` and review the diff).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
