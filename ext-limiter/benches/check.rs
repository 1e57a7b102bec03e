//! One in-process check for an existing key (target: median ≤ 150 ns); prints the median.
//! Then, when the machine's Redis answers, one request through an app whose limit is kept in
//! Redis, next to the same request with in-process storage: the difference is one Redis
//! check, a loopback round trip plus the Lua script.

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use criterion::Criterion;
use flagon_limiter::KeyedLimit;

const ID: &str = "limiter check, existing key";
const REDIS_ID: &str = "request with a limit, Redis storage (loopback round trip)";
const MEMORY_ID: &str = "request with a limit, in-process storage";

fn check(c: &mut Criterion) {
    // A limit no benchmark run exhausts, over 10k keys already held.
    let limit = KeyedLimit::new("1000000000/second", NonZeroUsize::new(100_000).unwrap()).unwrap();
    for i in 0..10_000u32 {
        let _ = limit.check_ip(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
    }
    let ip: IpAddr = "10.0.0.42".parse().unwrap();
    c.bench_function(ID, |b| b.iter(|| black_box(limit.check_ip(black_box(ip)))));
}

fn app(toml: &str) -> flagon::App {
    flagon::App::builder()
        .settings(flagon::testing::testing_config_toml(toml))
        .register(flagon_limiter::Limiter::new())
        .route(
            flagon::Route::get("/r", || async { "ok" })
                .name("r")
                .with(flagon_limiter::limit("1000000000/second")),
        )
        .build()
        .unwrap()
}

fn requests(c: &mut Criterion) -> bool {
    let addr: std::net::SocketAddr = "127.0.0.1:6379".parse().unwrap();
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)).is_err() {
        println!("skipping the Redis case: Redis at {addr} is unreachable");
        return false;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer: std::net::SocketAddr = "10.0.0.42:1000".parse().unwrap();
    let prefix = format!("flagon-bench:limiter:{}:", std::process::id());
    let redis = app(&format!(
        "[limiter]\nstorage = \"redis://{addr}\"\nfail_mode = \"closed\"\n\
         [limiter.redis]\nkey_prefix = \"{prefix}\"\ncommand_timeout = \"1s\"\n"
    ));
    let memory = app("[limiter]\n");
    for (id, app) in [(MEMORY_ID, &memory), (REDIS_ID, &redis)] {
        let client = flagon::testing::TestClient::new(app);
        assert_eq!(
            rt.block_on(client.get("/r").peer(peer).send()).status(),
            200
        );
        c.bench_function(id, |b| {
            b.iter(|| {
                let res = rt.block_on(client.get("/r").peer(peer).send());
                assert_eq!(res.status(), 200, "a check Redis did not decide");
            })
        });
    }
    true
}

/// Criterion prints the mean; the target is on the median, which it writes to
/// `criterion/<id>/new/estimates.json` under the target directory.
fn print_median(id: &str, unit_ns: bool, note: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("criterion").join(id).join("new/estimates.json");
    let median = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| flagon::serde_json::from_str::<flagon::serde_json::Value>(&text).ok())
        .and_then(|v| v["median"]["point_estimate"].as_f64());
    match median {
        Some(ns) if unit_ns => println!("{id}: median {ns:.1} ns{note}"),
        Some(ns) => println!("{id}: median {:.1} µs{note}", ns / 1000.0),
        None => println!("{id}: no median found at {}", path.display()),
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    check(&mut c);
    let redis = requests(&mut c);
    c.final_summary();
    print_median(ID, true, " (target ≤ 150 ns)");
    if redis {
        print_median(MEMORY_ID, false, "");
        print_median(REDIS_ID, false, "");
    }
}
