//! What an app command is given and where it writes: the contract between the commands
//! extensions register ([`Setup::command`](crate::Setup::command)) and the CLI that runs them
//! ([`cli`](crate::cli)), kept apart from the runner so that registration does not know it.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use clap::ArgMatches;

use crate::AppHandle;
use crate::error::BoxError;
use crate::future::BoxFuture;

pub(crate) type CommandFn =
    Arc<dyn Fn(CommandContext) -> BoxFuture<Result<(), BoxError>> + Send + Sync>;

/// Where a command writes: the process's stdout/stderr, or a buffer (in tests).
#[derive(Clone)]
pub struct Output(Sink);

#[derive(Clone)]
enum Sink {
    Stdout,
    Stderr,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl Output {
    /// The process's standard output.
    pub fn stdout() -> Self {
        Output(Sink::Stdout)
    }

    /// The process's standard error.
    pub fn stderr() -> Self {
        Output(Sink::Stderr)
    }

    /// An in-memory buffer; read it back with [`Output::contents`].
    pub fn buffer() -> Self {
        Output(Sink::Buffer(Arc::default()))
    }

    /// Whether to colour what is written here: only on a terminal, and not when `NO_COLOR`
    /// is set (<https://no-color.org>). Pipes, files and buffers get plain text.
    pub fn colour(&self) -> bool {
        match &self.0 {
            Sink::Stdout => colour_for(io::stdout().is_terminal()),
            Sink::Stderr => colour_for(io::stderr().is_terminal()),
            Sink::Buffer(_) => false,
        }
    }

    /// What was written to a buffer (empty for stdout/stderr).
    pub fn contents(&self) -> String {
        match &self.0 {
            Sink::Buffer(b) => {
                String::from_utf8_lossy(&b.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
            }
            _ => String::new(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.0 {
            Sink::Stdout => io::stdout().write(buf),
            Sink::Stderr => io::stderr().write(buf),
            Sink::Buffer(b) => {
                b.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.0 {
            Sink::Stdout => io::stdout().flush(),
            Sink::Stderr => io::stderr().flush(),
            Sink::Buffer(_) => Ok(()),
        }
    }
}

/// What an extension's command receives.
pub struct CommandContext {
    pub(crate) app: AppHandle,
    pub(crate) matches: ArgMatches,
    pub(crate) out: Output,
    pub(crate) err: Output,
}

impl CommandContext {
    /// The initialised app.
    pub fn app(&self) -> &AppHandle {
        &self.app
    }

    /// The parsed arguments of this command.
    pub fn matches(&self) -> &ArgMatches {
        &self.matches
    }

    /// Standard output (captured in tests).
    pub fn out(&self) -> Output {
        self.out.clone()
    }

    /// Standard error (captured in tests).
    pub fn err(&self) -> Output {
        self.err.clone()
    }
}

/// The commands core provides; extensions cannot take these names.
pub(crate) const BUILTINS: &[&str] = &["serve", "routes", "extensions", "config", "secret-key"];

/// A fresh `secret_key`: 32 bytes from the CSPRNG, as 64 hex characters.
pub(crate) fn fresh_secret_key() -> String {
    let bytes: [u8; 32] = rand::random();
    crate::crypto::hex(&bytes)
}

/// How to get a good key, for the errors that refuse one.
pub(crate) fn secret_key_hint() -> String {
    format!(
        "generate one with `{} secret-key` (run outside production) or `openssl rand -hex 32`",
        program_name()
    )
}

/// The program's name, as the shell invoked it.
pub(crate) fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "app".into())
}

/// Colour on a terminal unless `NO_COLOR` is set to anything but the empty string.
fn colour_for(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
