//! `limiter limits [--endpoint E]`: the effective limits of every route.

use std::fmt::Write as _;

use flagon::clap::{Arg, ArgAction, Command};

use crate::runtime::Counter;

/// One route's limits, as `limiter limits` prints them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Row {
    pub(crate) path: String,
    pub(crate) methods: String,
    pub(crate) endpoint: String,
    pub(crate) limits: String,
}

/// The `limiter` command group.
pub(crate) fn command() -> Command {
    Command::new("limiter")
        .about("Inspect rate limits")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("limits")
                .about("Print the effective limits of every route, and where each comes from")
                .arg(
                    Arg::new("endpoint")
                        .long("endpoint")
                        .value_name("ENDPOINT")
                        .help("Only this endpoint"),
                ),
        )
        .subcommand(
            Command::new("status")
                .about(
                    "Print the remaining quota of each KEY per limit. With Redis storage these \
                     are the counters every instance shares; with in-process storage \
                     (memory://) only the counters of the process running the command, which \
                     a separate CLI process does not share with the server",
                )
                .arg(
                    Arg::new("key")
                        .required(true)
                        .num_args(1..)
                        .value_name("KEY")
                        .help("An address (IPv6 grouped as requests are), user:ID, key:API-KEY, or a custom key"),
                ),
        )
        .subcommand(
            Command::new("reset")
                .about(
                    "Forget the counters of KEY (or --all), so its buckets are full again. With \
                     Redis storage for every instance (only keys under redis.key_prefix); with \
                     in-process storage (memory://) only in the process running the command",
                )
                .arg(Arg::new("key").value_name("KEY").help("The key to reset"))
                .arg(
                    Arg::new("all")
                        .long("all")
                        .action(ArgAction::SetTrue)
                        .help("Every counter of the limiter"),
                )
                .arg(
                    Arg::new("yes")
                        .long("yes")
                        .action(ArgAction::SetTrue)
                        .help("Do it without asking"),
                ),
        )
}

/// The text `limiter status` prints for one key.
pub(crate) fn status(key: &str, counters: &[Counter], redis: bool) -> String {
    let mut out = String::new();
    let place = if redis { "Redis" } else { "this process" };
    if counters.is_empty() {
        let _ = writeln!(out, "{key}: no counters in {place} (every bucket is full)");
        return out;
    }
    let _ = writeln!(out, "{key}: {} counters in {place}", counters.len());
    for c in counters {
        let secs = c.full_in.as_secs() + u64::from(c.full_in.subsec_nanos() > 0);
        let _ = writeln!(
            out,
            "  {}  {}  method {}  remaining {}  full in {secs}s",
            c.limit, c.scope, c.method, c.remaining
        );
    }
    out
}

/// The text `limiter limits` prints; `Err` names an unknown endpoint.
pub(crate) fn limits(rows: &[Row], endpoint: Option<&str>) -> Result<String, String> {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| endpoint.is_none_or(|e| r.endpoint == e))
        .collect();
    if let (Some(e), true) = (endpoint, rows.is_empty()) {
        return Err(format!("`{e}` is not an endpoint; `routes` lists them"));
    }
    let header = ["Rule", "Methods", "Endpoint", "Limits"];
    let cells: Vec<[&str; 4]> = std::iter::once(header)
        .chain(
            rows.iter()
                .map(|r| [r.path.as_str(), &r.methods, &r.endpoint, &r.limits]),
        )
        .collect();
    let mut widths = [0usize; 4];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for row in cells {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i == 3 {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    Ok(out)
}
