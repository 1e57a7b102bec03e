//! Every app binary is its own CLI: `serve` (the default), `routes`, `extensions`, `config`,
//! and the commands extensions add.
//!
//! Extension commands run with the app initialised (startup hooks done, so pools are open)
//! but without binding a port, and write through [`CommandContext::out`] so tests can capture
//! what they print.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, Write};

use clap::{Arg, ArgMatches, Command};

use crate::App;
use crate::command::{fresh_secret_key, program_name};
use crate::config::{REDACTED, is_secret_key, redact_url};
use crate::error::BoxError;

pub use crate::command::{CommandContext, Input, Output};

fn root_command(app: &App) -> Command {
    let mut cmd = Command::new(program_name())
        .about("A Flagon app. With no command, `serve` runs.")
        .subcommand(
            Command::new("serve")
                .about("Serve the app over HTTP until SIGINT/SIGTERM")
                .arg(
                    Arg::new("host")
                        .long("host")
                        .value_name("HOST")
                        .help("Address to bind (default: server.host)"),
                )
                .arg(
                    Arg::new("port")
                        .long("port")
                        .value_name("PORT")
                        .value_parser(clap::value_parser!(u16))
                        .help("Port to bind (default: server.port)"),
                ),
        )
        .subcommand(
            Command::new("routes")
                .about("List the routes: methods, path, endpoint and who registered each")
                .arg(
                    Arg::new("sort")
                        .long("sort")
                        .value_parser(["rule", "endpoint", "methods", "owner", "match"])
                        .default_value("rule")
                        .help("Sort order (`match` is registration order)"),
                ),
        )
        .subcommand(
            Command::new("extensions").about("List the extensions and everything each registered"),
        )
        .subcommand(
            Command::new("config")
                .about("Show the effective settings and their sources, secrets redacted"),
        )
        .subcommand(
            Command::new("secret-key")
                .about("Print a fresh random value for `secret_key` (64 hex characters)"),
        );
    for c in &app.handle.0.commands {
        cmd = cmd.subcommand(c.command.clone());
    }
    cmd
}

impl App {
    /// Runs the CLI on the process's arguments, logging to stderr (filter with
    /// `FLAGON_LOG`, default `info`). Returns the exit code.
    pub async fn run(self) -> std::process::ExitCode {
        init_logging();
        let code = self
            .run_with(std::env::args_os(), Output::stdout(), Output::stderr())
            .await;
        std::process::ExitCode::from(code)
    }

    /// Runs the CLI on `args` (the first is the program name), writing to `out` and `err`;
    /// commands read the process's standard input.
    pub async fn run_with<I, T>(&self, args: I, out: Output, err: Output) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        self.run_with_input(args, Input::stdin(), out, err).await
    }

    /// Runs the CLI on `args` (the first is the program name), commands reading `input`
    /// ([`CommandContext::input`]) and writing to `out` and `err`.
    pub async fn run_with_input<I, T>(
        &self,
        args: I,
        input: Input,
        mut out: Output,
        mut err: Output,
    ) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = match root_command(self).try_get_matches_from(args) {
            Ok(m) => m,
            Err(e) => {
                let target = if e.use_stderr() { &mut err } else { &mut out };
                let styled = e.render();
                let text = match target.colour() {
                    true => styled.ansi().to_string(),
                    false => styled.to_string(),
                };
                let _ = target.write_all(text.as_bytes());
                return if e.use_stderr() { 2 } else { 0 };
            }
        };
        let result = match matches.subcommand() {
            None => self.cmd_serve(None, None).await,
            Some(("serve", m)) => {
                self.cmd_serve(
                    m.get_one::<String>("host").cloned(),
                    m.get_one::<u16>("port").copied(),
                )
                .await
            }
            Some(("routes", m)) => {
                let sort = m
                    .get_one::<String>("sort")
                    .map(String::as_str)
                    .unwrap_or("rule");
                out.write_all(self.routes_text(sort).as_bytes())
                    .map_err(Into::into)
            }
            Some(("extensions", _)) => out
                .write_all(self.extensions_text().as_bytes())
                .map_err(Into::into),
            Some(("config", _)) => out
                .write_all(self.config_text().as_bytes())
                .map_err(Into::into),
            Some(("secret-key", _)) => writeln!(out, "{}", fresh_secret_key()).map_err(Into::into),
            Some((name, m)) => {
                self.cmd_extension(name, m.clone(), input, out.clone(), err.clone())
                    .await
            }
        };
        match result {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                1
            }
        }
    }

    async fn cmd_serve(&self, host: Option<String>, port: Option<u16>) -> Result<(), BoxError> {
        let s = &self.handle.0.server;
        let host = host.unwrap_or_else(|| s.host.clone());
        let port = port.unwrap_or(s.port);
        self.serve_on(&host, port).await.map_err(Into::into)
    }

    async fn cmd_extension(
        &self,
        name: &str,
        matches: ArgMatches,
        input: Input,
        out: Output,
        err: Output,
    ) -> Result<(), BoxError> {
        let Some(entry) = self
            .handle
            .0
            .commands
            .iter()
            .find(|c| c.command.get_name() == name)
        else {
            return Err(format!("no command `{name}`").into());
        };
        self.startup().await?;
        let ctx = CommandContext {
            app: self.handle.clone(),
            matches,
            input,
            out,
            err,
        };
        let result = (entry.run)(ctx).await;
        self.shutdown(self.handle.0.server.shutdown_hooks_timeout)
            .await;
        result
    }

    /// The `routes` listing. `sort` is `rule`, `endpoint`, `methods`, `owner` or `match`.
    /// Mounted routers and services are listed with `(mount)` as their methods; a
    /// `Decorators` column appears when some route has decorators.
    pub fn routes_text(&self, sort: &str) -> String {
        let table_ = self.handle.routes();
        let mut rows: Vec<[String; 5]> = table_
            .iter()
            .map(|r| {
                let methods: Vec<String> = r.methods.iter().map(|m| m.to_string()).collect();
                let decorators: Vec<&str> = r.decorators.iter().map(|d| d.description()).collect();
                [
                    r.endpoint.clone(),
                    methods.join(", "),
                    r.path.clone(),
                    r.origin.to_string(),
                    decorators.join(", "),
                ]
            })
            .collect();
        rows.extend(table_.mounts().map(|m| {
            [
                m.description.clone(),
                "(mount)".to_owned(),
                format!("{}/*", m.prefix),
                m.origin.to_string(),
                String::new(),
            ]
        }));
        if rows.is_empty() {
            return "No routes were registered.\n".into();
        }
        match sort {
            "endpoint" => rows.sort_by(|a, b| a[0].cmp(&b[0])),
            "methods" => rows.sort_by(|a, b| (&a[1], &a[2]).cmp(&(&b[1], &b[2]))),
            "owner" => rows.sort_by(|a, b| (&a[3], &a[2]).cmp(&(&b[3], &b[2]))),
            "match" => {}
            _ => rows.sort_by(|a, b| (&a[2], &a[1]).cmp(&(&b[2], &b[1]))),
        }
        if rows.iter().any(|r| !r[4].is_empty()) {
            let header = ["Endpoint", "Methods", "Rule", "Registered by", "Decorators"];
            return table(&header, &rows);
        }
        let rows: Vec<[String; 4]> = rows
            .into_iter()
            .map(|[e, m, r, o, _]| [e, m, r, o])
            .collect();
        table(&["Endpoint", "Methods", "Rule", "Registered by"], &rows)
    }

    /// The `extensions` listing.
    pub fn extensions_text(&self) -> String {
        let s = &self.handle.0;
        let mut out = String::new();
        let _ = writeln!(out, "flagon core");
        for line in &s.core_lines {
            let _ = writeln!(out, "  {line}");
        }
        for e in &s.extensions {
            let _ = write!(out, "{} ({}", e.name, e.arrival.as_str());
            if e.replaces_discovered {
                let _ = write!(out, ", replacing the discovered one");
            }
            if !e.requires.is_empty() {
                let _ = write!(out, "; requires {}", e.requires.join(", "));
            }
            let _ = writeln!(out, ")");
            if e.contributions.is_empty() {
                let _ = writeln!(out, "  (registered nothing)");
            }
            for line in &e.contributions {
                let _ = writeln!(out, "  {line}");
            }
        }
        for name in &s.disabled {
            let _ = writeln!(
                out,
                "{name} (discovered, disabled by [extensions] disabled)"
            );
        }
        if !s.app_lines.is_empty() {
            let _ = writeln!(out, "app");
            for line in &s.app_lines {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }

    /// The `config` listing: effective settings with sources, secrets redacted.
    pub fn config_text(&self) -> String {
        let s = &self.handle.0;
        let mut rows = Vec::new();
        let mut leaves = Vec::new();
        for (section, value) in &s.effective {
            flatten(section, value, &mut leaves);
        }
        leaves.push((
            "secret_key".to_owned(),
            serde_json::Value::String(REDACTED.into()),
        ));
        for (key, value) in leaves {
            let shown = match &value {
                _ if is_secret_key(&key) => REDACTED.to_owned(),
                serde_json::Value::String(v) => format!("{:?}", redact_url(v)),
                other => other.to_string(),
            };
            let source = match s.config.source_of(&key) {
                src if src == "default"
                    && key == "secret_key"
                    && s.config
                        .value::<String>("secret_key")
                        .ok()
                        .flatten()
                        .is_none() =>
                {
                    "generated for this process".to_owned()
                }
                src => src,
            };
            rows.push([key, shown, source]);
        }
        let mut out = format!("profile: {}\n", s.config.profile());
        out.push_str(&table(&["Key", "Value", "Source"], &rows));
        out
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        serde_json::Value::Array(items) => {
            out.push((
                prefix.to_owned(),
                serde_json::Value::Array(items.iter().map(redact_value).collect()),
            ));
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// Redacts URL passwords anywhere inside an array or table value.
fn redact_value(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(redact_url(s)),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(redact_value).collect())
        }
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        serde_json::Value::String(REDACTED.into())
                    } else {
                        redact_value(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
        &mut out,
    );
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLAGON_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Escape codes only for a person at a terminal: log files and collectors get plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(Output::stderr().colour())
        .with_writer(io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "Bee"], &[["long".into(), "x".into()]]);
        assert_eq!(t, "A     Bee\n----  ---\nlong  x\n");
    }
}
