//! One in-process check for an existing key (target: median ≤ 150 ns).
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroUsize;

use criterion::{Criterion, criterion_group, criterion_main};
use flagon_limiter::KeyedLimit;

fn check(c: &mut Criterion) {
    // A limit no benchmark run exhausts, over 10k keys already held.
    let limit = KeyedLimit::new("1000000000/second", NonZeroUsize::new(100_000).unwrap()).unwrap();
    for i in 0..10_000u32 {
        let _ = limit.check_ip(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
    }
    let ip: IpAddr = "10.0.0.42".parse().unwrap();
    c.bench_function("limiter check, existing key", |b| {
        b.iter(|| black_box(limit.check_ip(black_box(ip))))
    });
}

criterion_group!(benches, check);
criterion_main!(benches);
