//! Flagon benchmark binary (filled in on the main branch).
fn main() {}
