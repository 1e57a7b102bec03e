//! Benchmark placeholder: the load-test harness lands separately.

fn main() {}
