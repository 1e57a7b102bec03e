//! Rate-limited warnings: one line per interval, with the count of those held back, so a
//! backend outage logs a line every few seconds instead of one per request.
//!
//! ```
//! use std::time::Duration;
//! use flagon::throttle::Throttle;
//!
//! let warn = Throttle::new(Duration::from_secs(10));
//! if let Some(held_back) = warn.allow() {
//!     eprintln!("redis unreachable ({held_back} more since the last warning)");
//! }
//! assert_eq!(warn.allow(), None, "quiet until the interval has passed");
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One line per interval.
pub struct Throttle {
    start: Instant,
    every_ms: u64,
    /// Milliseconds since `start` of the last line, plus one (0 = never).
    last: AtomicU64,
    held: AtomicU64,
}

impl Throttle {
    /// At most one line every `every`.
    pub fn new(every: Duration) -> Self {
        Throttle {
            start: Instant::now(),
            every_ms: every.as_millis().max(1) as u64,
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were held back since
    /// the last one; `None` to stay quiet.
    pub fn allow(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last + self.every_ms {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Some(self.held.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.held.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval() {
        let t = Throttle::new(Duration::from_secs(60));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        let t = Throttle::new(Duration::from_millis(1));
        assert_eq!(t.allow(), Some(0));
        std::thread::sleep(Duration::from_millis(3));
        assert!(t.allow().is_some());
    }
}
