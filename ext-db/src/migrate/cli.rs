//! The `db` commands: upgrade, downgrade, status, history, new, check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Arg, ArgMatches, Command};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sqlx::AnyPool;

use super::engine::{Direction, Progress, Report};
use super::error::MigrateError;
use super::plan::{APP_OWNER, Migrator, Target};
use super::set::BACKEND_DIRS;
use super::status::{AppliedRecord, MigrationState};

/// The `db` command and its subcommands, for [`Setup::command`](flagon::Setup::command); run
/// what it parses with [`run_cli`].
pub fn commands() -> Command {
    let target = |help: &'static str| Arg::new("target").value_name("TARGET").help(help);
    Command::new("db")
        .about("Database migrations: upgrade, downgrade, status, history, new, check")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("upgrade")
                .about("Apply pending migrations (all, or up to TARGET)")
                .arg(target(
                    "OWNER, OWNER:VERSION or VERSION (the app's); default: every pending migration",
                )),
        )
        .subcommand(
            Command::new("downgrade")
                .about("Revert migrations with their down files (default: the last one applied)")
                .arg(target(
                    "OWNER (its last one), OWNER:VERSION (those above VERSION; 0 for all) or \
                     VERSION (the app's)",
                )),
        )
        .subcommand(Command::new("status").about("Each owner's applied and pending migrations"))
        .subcommand(Command::new("history").about("Applied migrations, in the order applied"))
        .subcommand(
            Command::new("new")
                .about("Write the next numbered up/down file pair for the app")
                .arg(
                    Arg::new("name")
                        .value_name("NAME")
                        .required(true)
                        .help("What the migration does, as add_posts"),
                ),
        )
        .subcommand(
            Command::new("check").about(
                "Fail (exit status 1) when migrations are pending or an applied file changed",
            ),
        )
}

/// Runs the `db` subcommand `matches` (the matches of the `db` command itself).
///
/// `migrations_dir` is where `db new` writes the app's files; `interactive` (stdout is a
/// terminal: from a Flagon command, `ctx.out().colour()`) turns on a progress bar when
/// several migrations run; the lines are written to `out` either way. `db check` failing is
/// [`MigrateError::CheckFailed`], so the app exits with status 1. Nothing written here
/// contains a database URL.
pub async fn run_cli(
    matches: &ArgMatches,
    pool: &AnyPool,
    migrator: &Migrator,
    migrations_dir: &Path,
    out: &mut (dyn Write + Send),
    interactive: bool,
) -> Result<(), MigrateError> {
    let target = |m: &ArgMatches| -> Result<Target, MigrateError> {
        m.get_one::<String>("target")
            .map_or(Ok(Target::Default), |t| t.parse())
    };
    let io = |source| MigrateError::Io {
        path: PathBuf::from("<stdout>"),
        source,
    };
    match matches.subcommand() {
        Some(("upgrade", m)) => {
            let target = target(m)?;
            let report = {
                let mut shown = Shown::new(out, interactive, Direction::Up);
                let result = migrator
                    .upgrade_with(pool, &target, &mut |p| shown.show(p))
                    .await;
                shown.finish();
                result?
            };
            summary(out, &report, Direction::Up).map_err(io)
        }
        Some(("downgrade", m)) => {
            let target = target(m)?;
            let report = {
                let mut shown = Shown::new(out, interactive, Direction::Down);
                let result = migrator
                    .downgrade_with(pool, &target, &mut |p| shown.show(p))
                    .await;
                shown.finish();
                result?
            };
            summary(out, &report, Direction::Down).map_err(io)
        }
        Some(("status", _)) => {
            let status = migrator.status(pool).await?;
            write_status(out, &status).map_err(io)
        }
        Some(("check", _)) => {
            let status = migrator.status(pool).await?;
            write_status(out, &status).map_err(io)?;
            if status.is_up_to_date() {
                writeln!(out, "up to date").map_err(io)?;
                return Ok(());
            }
            Err(MigrateError::CheckFailed {
                pending: status.pending(),
                mismatched: status.changed(),
            })
        }
        Some(("history", _)) => {
            let rows = migrator.history(pool).await?;
            if rows.is_empty() {
                writeln!(out, "no migration has been applied").map_err(io)?;
            }
            for r in rows {
                writeln!(
                    out,
                    "{}  {:<12} {:<40} {} ms",
                    timestamp(r.applied_at_ms),
                    r.owner,
                    r.name,
                    r.duration_ms
                )
                .map_err(io)?;
            }
            Ok(())
        }
        Some(("new", m)) => {
            let name = m.get_one::<String>("name").map_or("", String::as_str);
            let created = new_files(migrator, migrations_dir, name)?;
            for path in &created.files {
                writeln!(out, "created {}", path.display()).map_err(io)?;
            }
            match &created.touched {
                Some(t) => writeln!(
                    out,
                    "touched {} so that the next build embeds the new files",
                    t.display()
                ),
                None => writeln!(
                    out,
                    "declare the directory with `flagon_db::migrations!(\"{}\")` as the `app` \
                     migration set to embed them",
                    migrations_dir.display()
                ),
            }
            .map_err(io)
        }
        Some((other, _)) => Err(MigrateError::Target(format!("no command `db {other}`"))),
        None => Err(MigrateError::Target(
            "`db` needs a subcommand: upgrade, downgrade, status, history, new or check".into(),
        )),
    }
}

/// Shows progress: plain lines, or a bar on a terminal when several migrations run.
struct Shown<'a> {
    out: &'a mut (dyn Write + Send),
    interactive: bool,
    direction: Direction,
    bar: Option<ProgressBar>,
}

impl<'a> Shown<'a> {
    fn new(out: &'a mut (dyn Write + Send), interactive: bool, direction: Direction) -> Self {
        Shown {
            out,
            interactive,
            direction,
            bar: None,
        }
    }

    fn show(&mut self, p: Progress<'_>) {
        match p {
            Progress::Waiting => self
                .line("waiting for the migration lock: another process is migrating this database"),
            Progress::Planned(n) if n > 1 && self.interactive => {
                let bar =
                    ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stdout());
                if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
                    bar.set_style(style);
                }
                self.bar = Some(bar);
            }
            Progress::Planned(_) => {}
            Progress::Started(step) => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{} {}", step.owner, step.name));
                }
            }
            Progress::Finished(step, took) => {
                let verb = match self.direction {
                    Direction::Up => "applied",
                    Direction::Down => "reverted",
                };
                self.line(&format!(
                    "{verb} {} {} ({})",
                    step.owner,
                    step.name,
                    millis(took)
                ));
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
        }
    }

    /// A line to `out`; with a bar showing, the bar steps aside while it is written.
    fn line(&mut self, text: &str) {
        let out = &mut *self.out;
        match &self.bar {
            Some(bar) => bar.suspend(|| {
                let _ = writeln!(out, "{text}");
            }),
            None => {
                let _ = writeln!(out, "{text}");
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn summary(out: &mut dyn Write, report: &Report, direction: Direction) -> std::io::Result<()> {
    for name in &report.changed {
        writeln!(
            out,
            "warning: {name} has changed since it was applied (checksum mismatch); it is not run again"
        )?;
    }
    let n = report.steps.len();
    match (direction, n) {
        (Direction::Up, 0) => writeln!(out, "nothing to upgrade: the database is up to date"),
        (Direction::Down, 0) => writeln!(out, "nothing to downgrade"),
        (Direction::Up, n) => writeln!(out, "applied {n} migration(s)"),
        (Direction::Down, n) => writeln!(out, "reverted {n} migration(s)"),
    }
}

fn write_status(out: &mut dyn Write, status: &super::Status) -> std::io::Result<()> {
    writeln!(out, "backend: {}", status.backend)?;
    if status.owners.is_empty() {
        writeln!(out, "no migration set is registered")?;
    }
    for owner in &status.owners {
        writeln!(out, "{}", owner.owner)?;
        if owner.migrations.is_empty() {
            writeln!(out, "  (no migrations)")?;
        }
        for m in &owner.migrations {
            let irreversible = if m.reversible { "" } else { "  (no down file)" };
            match &m.state {
                MigrationState::Pending => {
                    writeln!(out, "  pending  {}{irreversible}", m.name)?;
                }
                MigrationState::Applied(r) => writeln!(
                    out,
                    "  applied  {:<40} {}{irreversible}",
                    m.name,
                    timestamp(r.applied_at_ms)
                )?,
                MigrationState::Changed(r) => writeln!(
                    out,
                    "  CHANGED  {:<40} {}  ({} differs from the file applied)",
                    m.name,
                    timestamp(r.applied_at_ms),
                    m.file
                )?,
            }
        }
    }
    if !status.unknown.is_empty() {
        writeln!(out, "applied, but not in this binary")?;
        for r in &status.unknown {
            let AppliedRecord { owner, name, .. } = r;
            writeln!(out, "  {owner} {name}")?;
        }
    }
    writeln!(
        out,
        "{} pending, {} changed",
        status.pending(),
        status.changed()
    )
}

/// What `db new` wrote.
struct Created {
    files: Vec<PathBuf>,
    touched: Option<PathBuf>,
}

/// Writes `NNNN_name.up.sql` and `.down.sql` into each backend directory of `dir` that exists,
/// and into `dir` itself unless all three do.
fn new_files(migrator: &Migrator, dir: &Path, name: &str) -> Result<Created, MigrateError> {
    let slug = slug(name).ok_or_else(|| {
        MigrateError::Target(format!(
            "`{name}` is not a migration name: use letters, digits and `_` (add_posts)"
        ))
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MigrateError::Io { path, source }
    };
    let mut dirs: Vec<PathBuf> = BACKEND_DIRS
        .iter()
        .map(|b| dir.join(b))
        .filter(|d| d.is_dir())
        .collect();
    if dirs.len() < BACKEND_DIRS.len() {
        dirs.insert(0, dir.to_path_buf());
    }
    // The next version after every file on disk and every version embedded.
    let mut max = 0i64;
    let mut width = 4usize;
    for d in std::iter::once(dir.to_path_buf()).chain(BACKEND_DIRS.iter().map(|b| dir.join(b))) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some((digits, _)) = file.split_once('_') else {
                continue;
            };
            if let Ok(v) = digits.parse::<i64>()
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                max = max.max(v);
                width = width.max(digits.len());
            }
        }
    }
    if let Some(set) = migrator.set(APP_OWNER) {
        max = max.max(set.versions().into_iter().max().unwrap_or(0));
    }
    let stem = format!("{:0width$}_{slug}", max + 1);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    for d in &dirs {
        for (suffix, comment) in [
            ("up", "the change"),
            ("down", "what reverts it (delete this file if nothing can)"),
        ] {
            let path = d.join(format!("{stem}.{suffix}.sql"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            writeln!(f, "-- {stem}: {comment}").map_err(io(&path))?;
            files.push(path);
        }
    }
    let touched = migrator.set(APP_OWNER).and_then(|set| {
        // Cargo rebuilds the declaring crate when a file it embeds changes: touch one so the
        // macro lists the directory again. The newest embedded file, else the declaring file.
        let embedded = set.source_dir().and_then(|src| {
            let last = migrator.owner(APP_OWNER)?.steps.last()?;
            let rel = last
                .up
                .path
                .strip_prefix(set.label())?
                .trim_start_matches('/');
            Some(src.join(rel))
        });
        [embedded, set.declared_in().map(Path::to_path_buf)]
            .into_iter()
            .flatten()
            .find(|p| touch(p))
    });
    Ok(Created { files, touched })
}

fn touch(path: &Path) -> bool {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .is_ok()
}

/// `Add Posts!` → `add_posts`; `None` when nothing is left.
fn slug(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    (!out.is_empty()).then_some(out)
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// `ms` since the epoch as `2026-12-01 21:40:03 UTC`.
fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(timestamp(1_795_000_000_000), "2026-11-18 11:06:40 UTC");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn names_become_slugs() {
        assert_eq!(slug("Add Posts!").as_deref(), Some("add_posts"));
        assert_eq!(slug("add_posts").as_deref(), Some("add_posts"));
        assert_eq!(slug("  --- "), None);
    }

    #[test]
    fn db_new_touches_an_embedded_file_so_that_cargo_rebuilds() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = dir.path().join("0001_a.up.sql");
        std::fs::write(&embedded, "SELECT 1;").unwrap();
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&embedded)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let src: &'static str = Box::leak(dir.path().to_str().unwrap().to_owned().into_boxed_str());
        let set = super::super::MigrationSet::__embedded(
            "migrations",
            src,
            None,
            &[("0001_a.up.sql", "SELECT 1;")],
        );
        let m = Migrator::new([("app", &set)], crate::Backend::Sqlite).unwrap();
        let created = new_files(&m, dir.path(), "next").unwrap();
        assert_eq!(created.touched.as_deref(), Some(embedded.as_path()));
        let modified = std::fs::metadata(&embedded).unwrap().modified().unwrap();
        assert!(modified > long_ago + Duration::from_secs(86_400));
        assert!(created.files.contains(&dir.path().join("0002_next.up.sql")));
        assert!(
            created
                .files
                .contains(&dir.path().join("0002_next.down.sql"))
        );
    }

    #[test]
    fn a_bar_only_on_a_terminal_and_for_several_migrations() {
        let step = super::super::Step {
            owner: "app".into(),
            version: 1,
            name: "0001_a".into(),
            file: "m/0001_a.up.sql".into(),
            direction: Direction::Up,
        };
        for (interactive, planned, bar) in [(true, 3, true), (true, 1, false), (false, 3, false)] {
            let mut out = Vec::new();
            let mut shown = Shown::new(&mut out, interactive, Direction::Up);
            shown.show(Progress::Planned(planned));
            assert_eq!(shown.bar.is_some(), bar, "{interactive} {planned}");
            shown.show(Progress::Started(&step));
            shown.show(Progress::Finished(&step, Duration::from_millis(7)));
            shown.finish();
            // The lines are the same either way.
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "applied app 0001_a (7 ms)\n"
            );
        }
    }

    #[test]
    fn the_command_tree_is_valid() {
        commands().debug_assert();
    }
}
