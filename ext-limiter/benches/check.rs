//! One in-process check for an existing key (target: median ≤ 150 ns); prints the median.

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use criterion::Criterion;
use flagon_limiter::KeyedLimit;

const ID: &str = "limiter check, existing key";

fn check(c: &mut Criterion) {
    // A limit no benchmark run exhausts, over 10k keys already held.
    let limit = KeyedLimit::new("1000000000/second", NonZeroUsize::new(100_000).unwrap()).unwrap();
    for i in 0..10_000u32 {
        let _ = limit.check_ip(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
    }
    let ip: IpAddr = "10.0.0.42".parse().unwrap();
    c.bench_function(ID, |b| b.iter(|| black_box(limit.check_ip(black_box(ip)))));
}

/// Criterion prints the mean; the target is on the median, which it writes to
/// `criterion/<id>/new/estimates.json` under the target directory.
fn print_median() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("criterion").join(ID).join("new/estimates.json");
    let median = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| flagon::serde_json::from_str::<flagon::serde_json::Value>(&text).ok())
        .and_then(|v| v["median"]["point_estimate"].as_f64());
    match median {
        Some(ns) => println!("{ID}: median {ns:.1} ns (target ≤ 150 ns)"),
        None => println!("{ID}: no median found at {}", path.display()),
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    check(&mut c);
    c.final_summary();
    print_median();
}
