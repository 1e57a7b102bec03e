//! What an app command is given and where it writes: the contract between the commands
//! extensions register ([`Setup::command`](crate::Setup::command)) and the CLI that runs them
//! ([`cli`](crate::cli)), kept apart from the runner so that registration does not know it.

use std::io::{self, BufRead, IsTerminal, Read, Write};
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

/// Where a command reads: the process's standard input, or given bytes (in tests, with
/// [`run_cli_with_input`](crate::testing::run_cli_with_input)). A command that takes a
/// secret (`--password-stdin`) reads it here rather than from `std::io::stdin()`, so a
/// test can feed it.
///
/// ```
/// use std::io::Read as _;
/// let mut input = flagon::cli::Input::from_bytes("hunter22\nrest");
/// assert_eq!(input.read_line().unwrap().as_deref(), Some("hunter22"));
/// let mut rest = String::new();
/// input.read_to_string(&mut rest).unwrap();
/// assert_eq!(rest, "rest");
/// ```
#[derive(Clone)]
pub struct Input(Source);

#[derive(Clone)]
enum Source {
    Stdin,
    Buffer(Arc<Mutex<io::Cursor<Vec<u8>>>>),
}

impl Input {
    /// The process's standard input.
    pub fn stdin() -> Self {
        Input(Source::Stdin)
    }

    /// `bytes`, then end of input.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Input(Source::Buffer(Arc::new(Mutex::new(io::Cursor::new(
            bytes.into(),
        )))))
    }

    /// Nothing: reads see end of input at once.
    pub fn empty() -> Self {
        Input::from_bytes(Vec::new())
    }

    /// Whether this is a terminal (a person typing, not a pipe, a file or a buffer).
    pub fn is_terminal(&self) -> bool {
        match &self.0 {
            Source::Stdin => io::stdin().is_terminal(),
            Source::Buffer(_) => false,
        }
    }

    /// One line without its line ending (`\n` or `\r\n`), or `None` at end of input.
    /// Reads block: call it from a command, not from a request.
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        let n = match &self.0 {
            Source::Stdin => io::stdin().lock().read_line(&mut line)?,
            Source::Buffer(b) => b
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_line(&mut line)?,
        };
        if n == 0 {
            return Ok(None);
        }
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(Some(line))
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.0 {
            Source::Stdin => io::stdin().read(buf),
            Source::Buffer(b) => b.lock().unwrap_or_else(|e| e.into_inner()).read(buf),
        }
    }
}

/// What an extension's command receives.
pub struct CommandContext {
    pub(crate) app: AppHandle,
    pub(crate) matches: ArgMatches,
    pub(crate) input: Input,
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

    /// Standard input (given by tests).
    pub fn input(&self) -> Input {
        self.input.clone()
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
