//! Capturing log lines in tests.

use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

/// The log lines emitted on the current thread while it lives, as text without colour, for
/// asserting that an extension logs what it should (a failing worker, a refused cookie).
///
/// It installs tracing's thread-local default subscriber, so run the test on a
/// current-thread runtime (`#[tokio::test]`'s default) and keep it in a test binary of its
/// own when other tests serve requests concurrently: tracing caches per call site whether
/// anyone listens, and a thread without a subscriber can make that cache say no.
///
/// ```
/// use flagon::testing::LogCapture;
///
/// let logs = LogCapture::start(tracing::Level::INFO);
/// tracing::warn!(worker = "outbox", "restarting");
/// assert!(logs.text().contains("restarting"));
/// ```
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: DefaultGuard,
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture").finish_non_exhaustive()
    }
}

impl LogCapture {
    /// Starts capturing lines at `level` and above on this thread.
    pub fn start(level: tracing::Level) -> LogCapture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(level)
            .finish();
        LogCapture {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        let bytes = self.buf.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
