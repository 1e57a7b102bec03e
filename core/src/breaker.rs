//! A circuit breaker for extensions that call a remote backend (Redis, SMTP): after
//! `failures` failures in a row, calls skip the backend for `cooldown`; then one call probes
//! it, and its outcome closes or reopens the circuit. flagon-cache and flagon-limiter put one
//! in front of Redis, so an outage costs each request nothing once the circuit is open.
//!
//! ```
//! use std::time::Duration;
//! use flagon::breaker::{Breaker, Change};
//!
//! let b = Breaker::new(2, Duration::from_secs(5), Duration::from_millis(100));
//! assert!(b.allow());
//! assert_eq!(b.record(false), Change::None);
//! assert_eq!(b.record(false), Change::Opened);
//! assert!(!b.allow(), "open: calls skip the backend until the cooldown ends");
//! ```

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One call is probing; if it never reports (its future was dropped), another may
    /// probe after `stale`.
    Probing {
        since: Instant,
    },
}

/// The breaker: shared by every caller of one backend.
pub struct Breaker {
    failures: u32,
    cooldown: Duration,
    /// How long a probe may stay unreported before another is let through.
    stale: Duration,
    state: Mutex<State>,
}

/// What [`Breaker::record`] changed, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing.
    None,
    /// The circuit opened: calls skip the backend for the cooldown.
    Opened,
    /// A probe succeeded: calls go to the backend again.
    Closed,
}

impl Breaker {
    /// Opens after `failures` failures in a row, for `cooldown`; `call_timeout` is the
    /// longest a call may take (a probe unreported for `cooldown + 2 × call_timeout` is taken
    /// as dropped, and another call may probe).
    pub fn new(failures: u32, cooldown: Duration, call_timeout: Duration) -> Self {
        Breaker {
            failures,
            cooldown,
            stale: cooldown + call_timeout * 2,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to the backend now.
    pub fn allow(&self) -> bool {
        let mut s = self.lock();
        let now = Instant::now();
        match *s {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                *s = State::Probing { since: now };
                true
            }
            State::Probing { since } if now.duration_since(since) >= self.stale => {
                *s = State::Probing { since: now };
                true
            }
            State::Open { .. } | State::Probing { .. } => false,
        }
    }

    /// Records a call's outcome.
    pub fn record(&self, ok: bool) -> Change {
        let mut s = self.lock();
        let now = Instant::now();
        match (*s, ok) {
            (State::Closed { failures: 0 }, true) => Change::None,
            (State::Closed { .. }, true) => {
                *s = State::Closed { failures: 0 };
                Change::None
            }
            (State::Open { .. } | State::Probing { .. }, true) => {
                *s = State::Closed { failures: 0 };
                Change::Closed
            }
            (State::Closed { failures }, false) if failures + 1 >= self.failures => {
                *s = State::Open {
                    until: now + self.cooldown,
                };
                Change::Opened
            }
            (State::Closed { failures }, false) => {
                *s = State::Closed {
                    failures: failures + 1,
                };
                Change::None
            }
            (State::Probing { .. } | State::Open { .. }, false) => {
                *s = State::Open {
                    until: now + self.cooldown,
                };
                Change::None
            }
        }
    }

    /// Whether calls are being skipped (open, or probing).
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_and_probes_after_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(30), Duration::from_millis(10));
        assert_eq!(b.record(false), Change::None);
        assert_eq!(b.record(false), Change::None);
        assert!(b.allow());
        assert_eq!(b.record(false), Change::Opened);
        assert!(b.is_open());
        assert!(!b.allow(), "open: calls skip the backend");
        std::thread::sleep(Duration::from_millis(35));
        assert!(b.allow(), "the first call after the cooldown probes");
        assert!(!b.allow(), "only one probe at a time");
        assert_eq!(b.record(false), Change::None);
        assert!(!b.allow(), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(35));
        assert!(b.allow());
        assert_eq!(b.record(true), Change::Closed);
        assert!(b.allow() && b.allow());
    }

    #[test]
    fn a_dropped_probe_does_not_wedge_the_circuit() {
        let b = Breaker::new(1, Duration::from_millis(10), Duration::from_millis(5));
        b.record(false);
        std::thread::sleep(Duration::from_millis(12));
        assert!(b.allow()); // the probe, never reported
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.allow(), "a stale probe lets another through");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(10), Duration::from_millis(5));
        b.record(false);
        b.record(true);
        assert_eq!(b.record(false), Change::None);
        assert!(!b.is_open());
    }
}
