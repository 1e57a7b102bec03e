//! Locale negotiation for a realistic `Accept-Language` header and a simple message lookup
//! (targets: median ≤ 300 ns each); prints both medians.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::Criterion;
use flagon::Locale;
use flagon_i18n::{I18n, accept};

const NEGOTIATE: &str = "i18n negotiate Accept-Language";
const LOOKUP: &str = "i18n simple message lookup";

fn benches(c: &mut Criterion) {
    let available: Vec<Locale> = ["en", "ar", "de", "es", "fr", "pl", "zh", "zh-Hant"]
        .iter()
        .map(|t| Locale::parse(t).unwrap())
        .collect();
    let header = "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5";
    c.bench_function(NEGOTIATE, |b| {
        b.iter(|| {
            let ranges = accept::parse(black_box(header), 500, 32);
            black_box(accept::negotiate(&ranges, &available))
        })
    });

    let dir = tempfile::tempdir().unwrap();
    for (l, src) in [("en", "hello = Hello!\n"), ("fr", "hello = Bonjour !\n")] {
        std::fs::create_dir_all(dir.path().join(l)).unwrap();
        std::fs::write(dir.path().join(l).join("main.ftl"), src).unwrap();
    }
    let toml = format!("[i18n]\ndirs = [{:?}]\n", dir.path().display().to_string());
    let app = flagon::App::builder()
        .settings(flagon::testing::testing_config_toml(&toml))
        .register(I18n::new())
        .build()
        .unwrap();
    let fr = I18n::for_locale(app.handle(), "fr").unwrap();
    assert_eq!(fr.t("hello", ()), "Bonjour !");
    c.bench_function(LOOKUP, |b| {
        b.iter(|| black_box(fr.t(black_box("hello"), ())))
    });
}

/// Criterion prints the mean; the targets are on the median, which it writes to
/// `criterion/<id>/new/estimates.json` under the target directory.
fn print_median(id: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("criterion").join(id).join("new/estimates.json");
    let median = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| flagon::serde_json::from_str::<flagon::serde_json::Value>(&text).ok())
        .and_then(|v| v["median"]["point_estimate"].as_f64());
    match median {
        Some(ns) => println!("{id}: median {ns:.1} ns (target ≤ 300 ns)"),
        None => println!("{id}: no median found at {}", path.display()),
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    print_median(NEGOTIATE);
    print_median(LOOKUP);
}
