//! The soak load generator: mixed keep-alive traffic against a running `example-hello`, plus
//! a few slow clients, for a bounded time. Run through `examples/bench/soak`, which builds
//! and starts the server; it prints one line:
//!
//! ```text
//! soak secs=60 conns=256 requests=N errors=N (kind=N ...) p50_us=N p99_us=N
//!      rss_idle_kib=N rss_start_kib=N rss_end_kib=N rss_growth=P% slow_cut=N/N
//! ```
//!
//! `rss_start` is taken after a warm-up of the same traffic (`WARMUP`), so the growth is what
//! a minute of steady load adds, not the first allocations of 256 connections.
//!
//! Usage: `soak ADDR SERVER_PID [SECONDS] [CONNECTIONS]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const WARMUP: Duration = Duration::from_secs(5);
/// A request slower than this counts as a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Slow clients: each holds a connection and trickles a head, or sends nothing at all.
const SLOW_CLIENTS: usize = 8;

#[derive(Default)]
struct Stats {
    requests: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
}

impl Stats {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

/// One keep-alive connection with a cookie jar of one cookie.
struct Client {
    addr: SocketAddr,
    conn: Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
    cookie: Option<String>,
}

impl Client {
    async fn send(&mut self, head: &str, body: &[u8]) -> Result<Response, String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).await.map_err(|_| "connect")?;
            s.set_nodelay(true).ok();
            let (r, w) = s.into_split();
            self.conn = Some((BufReader::new(r), w));
        }
        let (r, w) = self.conn.as_mut().expect("connected");
        let mut req = head.to_owned();
        if let Some(c) = &self.cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        w.write_all(&bytes).await.map_err(|_| "write")?;
        let mut line = String::new();
        if r.read_line(&mut line).await.map_err(|_| "read")? == 0 {
            return Err("closed".into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let (mut len, mut cookie, mut close) = (0usize, None, false);
        loop {
            line.clear();
            r.read_line(&mut line).await.map_err(|_| "read")?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((name, value)) = l.split_once(':') else {
                return Err("bad header".into());
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => len = value.parse().map_err(|_| "bad length")?,
                "set-cookie" => cookie = value.split(';').next().map(str::to_owned),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "transfer-encoding" => return Err("chunked response".into()),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).await.map_err(|_| "read")?;
        if close {
            self.conn = None;
        }
        if cookie.is_some() {
            self.cookie = cookie;
        }
        Ok(Response { status, body })
    }
}

/// A tiny xorshift: enough to mix request kinds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn csrf_token(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let at = text.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = text[at..].find('"')?;
    Some(text[at..at + end].to_owned())
}

/// Sends one request, recording its latency and any error; the response if it came.
async fn timed(
    client: &mut Client,
    head: &str,
    body: &[u8],
    stats: &Mutex<Stats>,
) -> Option<Response> {
    let started = Instant::now();
    let res = tokio::time::timeout(REQUEST_TIMEOUT, client.send(head, body)).await;
    let mut s = stats.lock().unwrap();
    s.requests += 1;
    s.latencies_us
        .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    match res {
        Ok(Ok(r)) => Some(r),
        Ok(Err(kind)) => {
            client.conn = None;
            s.error(kind);
            None
        }
        Err(_) => {
            client.conn = None;
            s.error("timeout");
            None
        }
    }
}

/// One round of the mix, with the expected status of each answer checked.
async fn one(client: &mut Client, rng: &mut Rng, stats: &Mutex<Stats>) {
    let host = format!("Host: {}\r\n", client.addr);
    let pick = rng.next() % 100;
    let (path, want) = match pick {
        0..40 => ("/".to_owned(), 200),
        40..55 => (format!("/hello/soak{}", rng.next() % 1000), 200),
        55..70 => ("/form".to_owned(), 200),
        70..85 => (format!("/missing/{}", rng.next() % 1000), 404),
        85..95 => ("/admin/".to_owned(), 200),
        _ => ("/healthz".to_owned(), 200),
    };
    let head = format!("GET {path} HTTP/1.1\r\n{host}");
    let Some(res) = timed(client, &head, b"", stats).await else {
        return;
    };
    if res.status != want {
        stats
            .lock()
            .unwrap()
            .error(format!("status_{}", res.status));
        return;
    }
    if path != "/form" {
        return;
    }
    // Post the form back with its token: a 303 to `/` with a flashed message.
    let Some(token) = csrf_token(&res.body) else {
        stats.lock().unwrap().error("no_csrf_token");
        return;
    };
    let body = format!("csrf_token={token}&value=soak+note+{}", rng.next() % 100);
    let head = format!(
        "POST /form HTTP/1.1\r\n{host}Origin: http://{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        client.addr,
        body.len()
    );
    if let Some(r) = timed(client, &head, body.as_bytes(), stats).await
        && r.status != 303
    {
        stats
            .lock()
            .unwrap()
            .error(format!("form_status_{}", r.status));
    }
}

/// A slow client: trickles a request head one byte a second (or sends nothing) until the
/// server cuts it; returns whether it was cut before `until`.
async fn slow_client(addr: SocketAddr, silent: bool, until: Instant) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let head =
        b"GET / HTTP/1.1\r\nHost: slow\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut buf = [0u8; 512];
    for i in 0.. {
        if Instant::now() >= until {
            return false;
        }
        if !silent && s.write_all(&head[i % head.len()..][..1]).await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(pid)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2).and_then(|p| p.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: soak ADDR SERVER_PID [SECONDS] [CONNECTIONS]");
        std::process::exit(2);
    };
    if !addr.ip().is_loopback() {
        eprintln!("soak drives loopback servers only");
        std::process::exit(2);
    }
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(60);
    let conns: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(256);

    let rss_idle = rss_kib(pid);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let measuring = Arc::new(AtomicBool::new(false));
    let warm_until = Instant::now() + WARMUP;
    let until = warm_until + Duration::from_secs(secs);
    let seed = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (stats, measuring) = (stats.clone(), measuring.clone());
        let mut rng = Rng(seed.fetch_add(0x1234_5678_9ABC_DEF1, Ordering::Relaxed) | 1);
        tasks.push(tokio::spawn(async move {
            let mut client = Client {
                addr,
                conn: None,
                cookie: None,
            };
            let warmup = Mutex::new(Stats::default());
            while Instant::now() < until {
                if measuring.load(Ordering::Relaxed) {
                    one(&mut client, &mut rng, &stats).await;
                } else {
                    one(&mut client, &mut rng, &warmup).await;
                }
            }
        }));
    }
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|i| tokio::spawn(slow_client(addr, i % 2 == 0, until)))
        .collect();

    tokio::time::sleep_until(warm_until.into()).await;
    let rss_start = rss_kib(pid);
    measuring.store(true, Ordering::Relaxed);
    // Bounded whatever the server does: every task stops at `until`, plus the request timeout.
    let hard_stop = until + REQUEST_TIMEOUT + Duration::from_secs(5);
    for t in tasks {
        let _ = tokio::time::timeout_at(hard_stop.into(), t).await;
    }
    let rss_end = rss_kib(pid);
    let mut cut = 0;
    for t in slow {
        if let Ok(Ok(true)) = tokio::time::timeout_at(hard_stop.into(), t).await {
            cut += 1;
        }
    }

    let mut s = stats.lock().unwrap();
    s.latencies_us.sort_unstable();
    let pct = |p: f64| -> u32 {
        let v = &s.latencies_us;
        if v.is_empty() {
            return 0;
        }
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    let (p50, p99) = (pct(0.50), pct(0.99));
    let errors: u64 = s.errors.values().sum();
    let kinds: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
    let growth = if rss_start > 0 {
        (rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0
    } else {
        0.0
    };
    println!(
        "soak secs={secs} conns={conns} requests={} errors={errors} ({}) p50_us={p50} p99_us={p99} rss_idle_kib={rss_idle} rss_start_kib={rss_start} rss_end_kib={rss_end} rss_growth={growth:.1}% slow_cut={cut}/{SLOW_CLIENTS}",
        s.requests,
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(" ")
        },
    );
}
