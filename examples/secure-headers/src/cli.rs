//! `secure-headers show`: the effective policy of every route.

use std::fmt::Write as _;

use flagon::AppHandle;
use flagon::clap::Command;

use crate::layer::Shared;

/// The `secure-headers` command group.
pub(crate) fn command() -> Command {
    Command::new("secure-headers")
        .about("Inspect the security headers policy")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("show").about(
                "Print the effective headers of every route, and where each policy comes from",
            ),
        )
}

/// The text `secure-headers show` prints.
pub(crate) fn show(shared: &Shared, app: &AppHandle) -> String {
    let resolved = shared.resolve(app);
    let mut out = String::new();
    let _ = writeln!(out, "App-wide");
    for line in shared.global.lines() {
        let _ = writeln!(out, "  {line}");
    }

    let mut rows: Vec<[String; 4]> = resolved
        .routes
        .iter()
        .map(|r| {
            let methods: Vec<String> = r.route.methods.iter().map(|m| m.to_string()).collect();
            [
                r.route.path.clone(),
                methods.join(","),
                r.route.endpoint.clone(),
                r.label.clone(),
            ]
        })
        .collect();
    rows.sort();
    let _ = writeln!(out, "\nRoutes");
    let header = ["Rule", "Methods", "Endpoint", "Policy"];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for cells in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let mut line = String::from("  ");
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }

    let mut shown: Vec<&str> = Vec::new();
    let default = std::iter::once(("default", &shared.default));
    let others = resolved
        .routes
        .iter()
        .map(|r| (r.label.as_str(), &r.policy));
    for (label, policy) in default.chain(others) {
        if shown.contains(&label) {
            continue;
        }
        shown.push(label);
        let _ = writeln!(out, "\nPolicy: {label}");
        let lines = policy.lines(shared.global.permanent_redirect);
        if lines.is_empty() {
            let _ = writeln!(out, "  (no per-route headers)");
        }
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
