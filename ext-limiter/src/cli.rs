//! `limiter limits [--endpoint E]`: the effective limits of every route.

use std::fmt::Write as _;

use flagon::clap::{Arg, Command};

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
