//! Connection tracking: what each connection is doing, stamped by its own I/O and requests,
//! and the sweeper that enforces the header-read, keep-alive and write-progress timeouts.
//!
//! Why a sweeper and not hyper's timers is explained in [`crate::serve`]'s module docs.
//!
//! Each connection has an [`Activity`]: a phase and the coarse tick it began, packed into one
//! atomic word (so the sweeper never sees a new phase with an old start, on any CPU), plus
//! a few counters written only by the connection's own task. The sweeper thread ticks four
//! times a second and looks at every connection:
//! - `HEAD` (a request head is due) longer than `header_read_timeout`: cut. A connection is in
//!   `HEAD` from accept, from the first byte of each later head (stray CRLFs between requests
//!   are ignored, RFC 9112 §2.2), and from the end of a request whose read buffer still holds
//!   part of a pipelined head.
//! - `IDLE` longer than `keep_alive_timeout`: closed gracefully (HTTP/2 gets a GOAWAY; an
//!   HTTP/2 connection that does not close within `header_read_timeout` after that is cut).
//! - a write waiting on the socket, or an HTTP/2 response waiting for flow-control window,
//!   with no progress for `write_timeout`: cut.
//!
//! HTTP/1 phases come from the bytes read: a small scanner finds the end of each head, counts
//! the bytes read past it and compares them with the body length the request declared. HTTP/2
//! phases come from streams only (a stream is busy until its response body ends), so PINGs,
//! SETTINGS and WINDOW_UPDATE frames neither keep a connection alive nor get it cut.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::Frame;

/// How often the sweeper looks at every connection.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// The timeouts the sweeper enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) header_read: Duration,
    pub(crate) keep_alive: Duration,
    pub(crate) write: Duration,
}

// Connection phases (the top byte of `Activity::state`).
const IDLE: u64 = 0;
const HEAD: u64 = 1;
const BUSY: u64 = 2;
const PHASE_SHIFT: u32 = 56;
const TICK_MASK: u64 = (1 << PHASE_SHIFT) - 1;

// Commands from the sweeper or the server to a connection.
pub(crate) const RUN: u8 = 0;
pub(crate) const DRAIN: u8 = 1;
pub(crate) const KILL: u8 = 2;

// Protocols, as far as the connection's bytes tell.
const UNKNOWN: u8 = 0;
const H1: u8 = 1;
const H2: u8 = 2;
/// Upgraded (a 101 response): the connection's bytes are no longer HTTP.
const UPGRADED: u8 = 3;

// HTTP/1 head scanner states; `IN_HEAD + n` remembers how the bytes read so far end
// (0: other, 1: `\n`, 2: `\n\r`), so a head end split across reads is found.
const START: u8 = 0;
const AFTER_HEAD: u8 = 1;
const IN_HEAD: u8 = 2;

/// An unknown (chunked) request body length.
const UNKNOWN_LEN: u64 = u64::MAX;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// All open connections, and the coarse clock their activity is stamped with.
#[derive(Clone)]
pub(crate) struct Tracker {
    clock: Arc<AtomicU64>,
    conns: Arc<Mutex<Vec<Weak<Activity>>>>,
    limits: Limits,
}

impl Tracker {
    pub(crate) fn new(limits: Limits) -> Self {
        Tracker {
            clock: Arc::default(),
            conns: Arc::default(),
            limits,
        }
    }

    /// Starts tracking a connection just accepted: its first head is due from now.
    pub(crate) fn track(&self) -> Arc<Activity> {
        let now = self.clock.load(Ordering::Relaxed);
        let a = Arc::new(Activity {
            clock: self.clock.clone(),
            state: AtomicU64::new(pack(HEAD, now)),
            in_flight: AtomicUsize::new(0),
            command: AtomicU8::new(RUN),
            waker: AtomicWaker::new(),
            proto: AtomicU8::new(UNKNOWN),
            scan: AtomicU8::new(START),
            beyond: AtomicU64::new(0),
            body_len: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            stalled: AtomicUsize::new(0),
            progress: AtomicU64::new(now),
            drained_at: AtomicU64::new(0),
        });
        self.lock().push(Arc::downgrade(&a));
        a
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Activity>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `command` to every open connection.
    pub(crate) fn command_all(&self, command: u8) {
        for a in self.lock().iter().filter_map(Weak::upgrade) {
            a.send(command);
        }
    }

    /// Starts the sweeper on its own thread, so the runtime carries no timer for it; it
    /// stops when the returned guard is dropped.
    pub(crate) fn spawn_sweeper(self) -> SweeperGuard {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("flagon-sweeper".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    self.sweep_once();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the connection sweeper: slow clients are not cut off");
        }
        SweeperGuard(stop)
    }

    /// Advances the clock one tick and acts on every connection that is overdue.
    fn sweep_once(&self) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        let ticks = |d: Duration| d.as_millis().div_ceil(TICK.as_millis()) as u64;
        let (head, idle, write) = (
            ticks(self.limits.header_read),
            ticks(self.limits.keep_alive),
            ticks(self.limits.write),
        );
        let mut conns = self.lock();
        conns.retain(|w| w.strong_count() > 0);
        for a in conns.iter().filter_map(Weak::upgrade) {
            let proto = a.proto.load(Ordering::Acquire);
            if proto == UPGRADED {
                continue;
            }
            let (phase, since) = unpack(a.state.load(Ordering::Acquire));
            let elapsed = now.saturating_sub(since);
            let blocked = a.write_blocked.load(Ordering::Relaxed);
            if blocked != 0 && now.saturating_sub(blocked - 1) > write {
                tracing::debug!("closing a connection whose writes made no progress");
                a.send(KILL);
                continue;
            }
            if a.stalled.load(Ordering::Relaxed) > 0
                && now.saturating_sub(a.progress.load(Ordering::Relaxed)) > write
            {
                tracing::debug!("closing an HTTP/2 connection whose responses made no progress");
                a.send(KILL);
                continue;
            }
            let drained = a.drained_at.load(Ordering::Relaxed);
            if proto == H2
                && drained != 0
                && a.in_flight.load(Ordering::Relaxed) == 0
                && now.saturating_sub(drained - 1) > head
            {
                tracing::debug!("closing an HTTP/2 connection that did not finish after GOAWAY");
                a.send(KILL);
                continue;
            }
            match phase {
                HEAD if elapsed > head && proto == H2 => a.drain(now),
                HEAD if elapsed > head => {
                    tracing::debug!("closing a connection whose request head is overdue");
                    a.send(KILL);
                }
                IDLE if elapsed > idle => a.drain(now),
                _ => {}
            }
        }
    }
}

/// Stops the sweeper thread when serving ends, however it ends.
pub(crate) struct SweeperGuard(Arc<AtomicBool>);

impl Drop for SweeperGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn pack(phase: u64, tick: u64) -> u64 {
    (phase << PHASE_SHIFT) | (tick & TICK_MASK)
}

fn unpack(state: u64) -> (u64, u64) {
    (state >> PHASE_SHIFT, state & TICK_MASK)
}

/// What a connection is doing, stamped by its I/O and its requests, read by the sweeper.
pub(crate) struct Activity {
    clock: Arc<AtomicU64>,
    /// The phase and the tick it began, in one word: stored with `Release`, loaded with
    /// `Acquire`, never torn.
    state: AtomicU64,
    in_flight: AtomicUsize,
    command: AtomicU8,
    waker: AtomicWaker,
    proto: AtomicU8,
    // HTTP/1 only, written by the connection's own task.
    scan: AtomicU8,
    /// Bytes read past the current request's head.
    beyond: AtomicU64,
    /// The current request's declared body length.
    body_len: AtomicU64,
    /// One more than the tick a socket write began waiting, or 0.
    write_blocked: AtomicU64,
    // HTTP/2 only: responses that handed data on and wait to be polled again (for window),
    // and the tick any response last made progress.
    stalled: AtomicUsize,
    progress: AtomicU64,
    /// One more than the tick the sweeper asked the connection to close, or 0.
    drained_at: AtomicU64,
}

impl Activity {
    fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    fn set_phase(&self, phase: u64) {
        self.state.store(pack(phase, self.now()), Ordering::Release);
    }

    fn phase(&self) -> u64 {
        unpack(self.state.load(Ordering::Acquire)).0
    }

    fn drain(&self, now: u64) {
        if self.command.load(Ordering::Acquire) == RUN {
            self.drained_at.store(now + 1, Ordering::Relaxed);
        }
        self.send(DRAIN);
    }

    pub(crate) fn send(&self, command: u8) {
        if self.command.fetch_max(command, Ordering::AcqRel) < command {
            self.waker.wake();
        }
    }

    /// Completes when a command newer than `seen` arrives.
    pub(crate) fn next_command(&self, seen: u8) -> impl Future<Output = u8> + '_ {
        std::future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            match self.command.load(Ordering::Acquire) {
                c if c > seen => Poll::Ready(c),
                _ => Poll::Pending,
            }
        })
    }

    /// Whether the connection speaks HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        self.proto.load(Ordering::Relaxed) == H2
    }

    /// The connection was upgraded to another protocol: no more HTTP timeouts apply.
    pub(crate) fn upgraded(&self) {
        self.proto.store(UPGRADED, Ordering::Release);
    }

    /// Bytes were read (HTTP/1): find where heads begin and end.
    fn scan_h1(&self, bytes: &[u8]) {
        let mut state = self.scan.load(Ordering::Relaxed);
        let mut rest = bytes;
        if state == START {
            // Stray CRLFs before a head are ignored (RFC 9112 §2.2).
            match bytes.iter().position(|b| !matches!(b, b'\r' | b'\n')) {
                None => return,
                Some(p) => {
                    rest = &bytes[p..];
                    state = IN_HEAD;
                    if self.phase() == IDLE {
                        self.set_phase(HEAD);
                    }
                }
            }
        }
        if state == AFTER_HEAD {
            self.add_beyond(rest.len());
            return;
        }
        match head_end(rest, state - IN_HEAD) {
            Ok(end) => {
                state = AFTER_HEAD;
                self.add_beyond(rest.len() - end);
            }
            Err(tail) => state = IN_HEAD + tail,
        }
        self.scan.store(state, Ordering::Relaxed);
    }

    fn add_beyond(&self, n: usize) {
        if n > 0 {
            let b = self.beyond.load(Ordering::Relaxed);
            self.beyond
                .store(b.saturating_add(n as u64), Ordering::Relaxed);
        }
    }
}

/// Where the head in `buf` ends (the index after its empty line), or how `buf` ends: 1 for
/// `\n`, 2 for `\n\r`, else 0. `tail` is how the bytes before `buf` ended.
///
/// Runs on every read, so newlines are found eight bytes at a time (a word compare, with no
/// call per line as a `memchr` per newline costs on short heads).
fn head_end(buf: &[u8], tail: u8) -> Result<usize, u8> {
    let empty_line = |nl: usize| match nl {
        0 => tail >= 1,
        1 => buf[0] == b'\n' || (buf[0] == b'\r' && tail == 1),
        _ => buf[nl - 1] == b'\n' || (buf[nl - 1] == b'\r' && buf[nl - 2] == b'\n'),
    };
    let mut chunks = buf.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight bytes"));
        let mut mask = newline_mask(word);
        while mask != 0 {
            let nl = base + (mask.trailing_zeros() / 8) as usize;
            if empty_line(nl) {
                return Ok(nl + 1);
            }
            mask &= mask - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b'\n' && empty_line(base + i) {
            return Ok(base + i + 1);
        }
    }
    Err(match buf {
        [.., b'\n'] => 1,
        [.., b'\n', b'\r'] => 2,
        [b'\r'] if tail == 1 => 2,
        [] => tail,
        _ => 0,
    })
}

/// The top bit of each byte of `word` (little-endian) that is `\n`, and no other bit: exact,
/// since no addition carries from one byte into the next.
fn newline_mask(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ 0x0a0a_0a0a_0a0a_0a0a;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// A request in flight on a connection; finished when dropped (for HTTP/2, when its
/// response body ends: see [`InFlight::guard_body`]).
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    /// A request whose head was just read; `body_len` is the body length it declared
    /// (`None` when unknown: chunked).
    pub(crate) fn start(activity: Arc<Activity>, body_len: Option<u64>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.set_phase(BUSY);
        if activity.proto.load(Ordering::Relaxed) == H1 {
            activity.scan.store(AFTER_HEAD, Ordering::Relaxed);
            activity
                .body_len
                .store(body_len.unwrap_or(UNKNOWN_LEN), Ordering::Relaxed);
        }
        InFlight(activity)
    }

    /// The response is ready: on HTTP/2 the stream stays busy until its body ends; a 101
    /// takes the connection out of HTTP's timeouts.
    pub(crate) fn finish(self, res: axum::response::Response) -> axum::response::Response {
        if res.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            self.0.upgraded();
            return res;
        }
        if !self.0.is_h2() {
            return res;
        }
        res.map(|inner| {
            Body::new(TrackedBody {
                inner,
                handed: false,
                _in_flight: self,
            })
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        if a.proto.load(Ordering::Relaxed) != H1 {
            a.set_phase(IDLE);
            // An HTTP/2 stream that started meanwhile on another thread may have stamped
            // BUSY just before this IDLE.
            if a.in_flight.load(Ordering::Acquire) > 0 {
                a.set_phase(BUSY);
            }
            return;
        }
        // Bytes read past the head beyond the declared body are the start of a pipelined
        // head, waiting in the read buffer: it is timed from now.
        let beyond = a.beyond.load(Ordering::Relaxed);
        a.beyond.store(0, Ordering::Relaxed);
        let body = a.body_len.load(Ordering::Relaxed);
        let leftover = if body == UNKNOWN_LEN {
            beyond > 0
        } else {
            beyond > body
        };
        if leftover {
            a.scan.store(IN_HEAD, Ordering::Relaxed);
            a.set_phase(HEAD);
        } else {
            a.scan.store(START, Ordering::Relaxed);
            a.set_phase(IDLE);
        }
    }
}

/// An HTTP/2 response body: keeps its stream in flight, and reports when it waits for the
/// client's flow-control window (hyper polls a body again only once there is window).
struct TrackedBody {
    inner: Body,
    /// It returned data that has not been followed by another poll yet.
    handed: bool,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let a = &this._in_flight.0;
        a.progress.store(a.now(), Ordering::Relaxed);
        if std::mem::take(&mut this.handed) {
            a.stalled.fetch_sub(1, Ordering::Relaxed);
        }
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &res
            && frame.is_data()
            && !this.inner.is_end_stream()
        {
            this.handed = true;
            a.stalled.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.handed {
            self._in_flight.0.stalled.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The TCP stream, reporting reads and stalled writes to the connection's [`Activity`].
pub(crate) struct WatchedIo {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
    /// How much of the HTTP/2 preface the first bytes matched, until the protocol is known.
    preface: usize,
    proto: u8,
    /// A write is waiting on the socket (mirrors `Activity::write_blocked`).
    blocked: bool,
}

impl WatchedIo {
    pub(crate) fn new(inner: tokio::net::TcpStream, activity: Arc<Activity>) -> Self {
        WatchedIo {
            inner,
            activity,
            preface: 0,
            proto: UNKNOWN,
            blocked: false,
        }
    }

    fn bytes_read(&mut self, bytes: &[u8]) {
        match self.proto {
            H1 => self.activity.scan_h1(bytes),
            UNKNOWN => {
                let want = &H2_PREFACE[self.preface..];
                let n = want.len().min(bytes.len());
                if bytes[..n] == want[..n] {
                    self.preface += n;
                    if self.preface == H2_PREFACE.len() {
                        self.proto = H2;
                        self.activity.proto.store(H2, Ordering::Release);
                    }
                } else {
                    self.proto = H1;
                    self.activity.proto.store(H1, Ordering::Release);
                    self.activity.scan_h1(bytes);
                }
            }
            _ => {}
        }
    }

    fn write_result<T>(&mut self, res: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match (&res, self.blocked) {
            (Poll::Pending, false) => {
                self.blocked = true;
                let now = self.activity.now();
                self.activity
                    .write_blocked
                    .store(now + 1, Ordering::Relaxed);
            }
            (Poll::Ready(_), true) => {
                self.blocked = false;
                self.activity.write_blocked.store(0, Ordering::Relaxed);
            }
            _ => {}
        }
        res
    }
}

impl tokio::io::AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.bytes_read(&buf.filled()[before..]);
        }
        res
    }
}

impl tokio::io::AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_result(res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_result(res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_result(res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_ends_are_found_across_reads() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest", 0),
            Ok(27)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest", 0), Ok(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), Err(1));
        assert_eq!(head_end(b"\r\nbody", 1), Ok(2));
        assert_eq!(head_end(b"Host: x\r\n\r", 0), Err(2));
        assert_eq!(head_end(b"\nbody", 2), Ok(1));
        assert_eq!(head_end(b"\r", 1), Err(2));
        assert_eq!(head_end(b"\n", 1), Ok(1));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHo", 0), Err(0));
    }

    /// The scanner as first written, a `memchr` per newline: the word-at-a-time one must agree.
    fn head_end_by_line(buf: &[u8], tail: u8) -> Result<usize, u8> {
        for nl in memchr::memchr_iter(b'\n', buf) {
            let empty_line = match nl {
                0 => tail >= 1,
                1 => buf[0] == b'\n' || (buf[0] == b'\r' && tail == 1),
                _ => buf[nl - 1] == b'\n' || (buf[nl - 1] == b'\r' && buf[nl - 2] == b'\n'),
            };
            if empty_line {
                return Ok(nl + 1);
            }
        }
        Err(match buf {
            [.., b'\n'] => 1,
            [.., b'\n', b'\r'] => 2,
            [b'\r'] if tail == 1 => 2,
            [] => tail,
            _ => 0,
        })
    }

    #[test]
    fn word_scanner_agrees_with_the_line_scanner() {
        // Every string of up to 9 bytes over `\r \n x \x8a` (a byte that differs from `\n`
        // only in its top bit), at every length of chunk remainder, after every tail.
        let alphabet = [b'\r', b'\n', b'x', 0x8a];
        for len in 0..=9u32 {
            for code in 0..4usize.pow(len) {
                let mut buf: Vec<u8> = (0..len).map(|i| alphabet[(code >> (2 * i)) & 3]).collect();
                for tail in 0..=2 {
                    assert_eq!(
                        head_end(&buf, tail),
                        head_end_by_line(&buf, tail),
                        "{buf:?}"
                    );
                }
                buf.splice(0..0, *b"GET / HTTP/1.1\r\nA: b");
                assert_eq!(head_end(&buf, 0), head_end_by_line(&buf, 0), "{buf:?}");
            }
        }
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b, b'\n', b, b, b'\n', b, b, b]);
            let expected = if b == b'\n' {
                0x8080_8080_8080_8080
            } else {
                0x0000_0080_0000_8000
            };
            assert_eq!(newline_mask(word), expected, "{b}");
        }
    }

    #[test]
    fn phase_and_start_travel_in_one_word() {
        let packed = pack(BUSY, 12345);
        assert_eq!(unpack(packed), (BUSY, 12345));
        assert_eq!(unpack(pack(IDLE, 0)), (IDLE, 0));
    }
}
