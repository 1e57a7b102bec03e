//! Running the plan: upgrade and downgrade, holding the lock, writing the tracking table.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Connection};

use super::error::MigrateError;
use super::lock;
use super::plan::{Migrator, OwnerPlan, PlannedStep, Target};
use super::set::SqlFile;
use super::status::{AppliedRecord, read_applied};
use crate::Backend;

/// The table recording applied migrations.
pub const TABLE: &str = "flagon_migrations";

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS flagon_migrations (
    owner VARCHAR(100) NOT NULL,
    version BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    checksum VARCHAR(64) NOT NULL,
    applied_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (owner, version)
)";

/// Which way a migration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Its up file: `upgrade`.
    Up,
    /// Its down file: `downgrade`.
    Down,
}

/// One migration run (or about to run) by `upgrade` or `downgrade`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The set's owner.
    pub owner: String,
    /// The version.
    pub version: i64,
    /// The name (`0001_create_users`).
    pub name: String,
    /// The file run.
    pub file: String,
    /// Up or down.
    pub direction: Direction,
}

/// What `upgrade_with` and `downgrade_with` report as they go.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Another process holds the migration lock: waiting for it (once).
    Waiting,
    /// The lock is held and this many migrations will run.
    Planned(usize),
    /// One starts.
    Started(&'a Step),
    /// One finished, its SQL having taken this long.
    Finished(&'a Step, Duration),
}

/// What `upgrade` or `downgrade` did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The migrations run, in order, each with how long its SQL took.
    pub steps: Vec<(Step, Duration)>,
    /// Whether another process held the lock when we asked for it.
    pub waited: bool,
    /// Applied migrations whose up files changed since (upgrade only; they are not re-run).
    pub changed: Vec<String>,
}

impl Migrator {
    /// Applies the pending migrations `target` selects (see [`Target`]), each in its own
    /// transaction where the backend allows, holding the migration lock.
    pub async fn upgrade(&self, pool: &AnyPool, target: &Target) -> Result<Report, MigrateError> {
        self.upgrade_with(pool, target, &mut |_| {}).await
    }

    /// [`Migrator::upgrade`], telling `progress` what happens.
    pub async fn upgrade_with(
        &self,
        pool: &AnyPool,
        target: &Target,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Report, MigrateError> {
        self.locked(pool, progress, Work::Upgrade(target)).await
    }

    /// Reverts the applied migrations `target` selects (see [`Target`]: by default the most
    /// recently applied one), newest first, with their down files.
    pub async fn downgrade(&self, pool: &AnyPool, target: &Target) -> Result<Report, MigrateError> {
        self.downgrade_with(pool, target, &mut |_| {}).await
    }

    /// [`Migrator::downgrade`], telling `progress` what happens.
    pub async fn downgrade_with(
        &self,
        pool: &AnyPool,
        target: &Target,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
    ) -> Result<Report, MigrateError> {
        self.locked(pool, progress, Work::Downgrade(target)).await
    }

    /// Runs `work` on a connection of its own holding the migration lock, with the tracking
    /// table in place. On PostgreSQL and MySQL the connection is closed afterwards (also when
    /// the future is dropped), so a lock can never go back to the pool with it.
    async fn locked(
        &self,
        pool: &AnyPool,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
        work: Work<'_>,
    ) -> Result<Report, MigrateError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(MigrateError::db("connecting"))?;
        // A server lock belongs to the session: never hand it back to the pool, even when
        // this future is dropped halfway. SQLite's lock is a file handle dropped with us, and
        // its connection goes back to the pool (an in-memory database lives in it).
        let server = self.backend != Backend::Sqlite;
        if server {
            conn.close_on_drop();
        }
        if server {
            clear_statement_timeout(&mut conn, self.backend).await;
        }
        let mut report = Report::default();
        let mut waited = false;
        let mut on_wait = || {
            waited = true;
            progress(Progress::Waiting);
        };
        let held = lock::acquire(&mut conn, self.backend, self.lock_timeout, &mut on_wait).await;
        report.waited = waited;
        let held = match held {
            Ok(held) => held,
            Err(e) => {
                if server {
                    let _ = conn.close().await;
                }
                return Err(e);
            }
        };
        let mut result = sqlx::raw_sql(CREATE_TABLE)
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(MigrateError::db("creating the flagon_migrations table"));
        if result.is_ok() {
            result = match work {
                Work::Upgrade(t) => self.run_upgrade(&mut conn, t, progress, &mut report).await,
                Work::Downgrade(t) => {
                    self.run_downgrade(&mut conn, t, progress, &mut report)
                        .await
                }
            };
        }
        let released = held.release(&mut conn, self.backend).await;
        if server {
            let _ = conn.close().await;
        }
        result?;
        released?;
        Ok(report)
    }

    async fn run_upgrade(
        &self,
        conn: &mut AnyConnection,
        target: &Target,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
        report: &mut Report,
    ) -> Result<(), MigrateError> {
        let applied = read_applied(conn).await?;
        let applied: HashMap<(&str, i64), &AppliedRecord> = applied
            .iter()
            .map(|r| ((r.owner.as_str(), r.version), r))
            .collect();
        let (owners, limit): (Vec<&OwnerPlan>, Option<(&str, i64)>) = match target {
            Target::Default => (self.owners.iter().collect(), None),
            Target::Owner(o) => {
                self.known_owner(o)?;
                (self.with_requirements(o), None)
            }
            Target::Version(o, v) => {
                let plan = self.known_owner(o)?;
                if *v != 0 && !plan.steps.iter().any(|s| s.version == *v) {
                    return Err(no_version(plan, *v));
                }
                (self.with_requirements(o), Some((o.as_str(), *v)))
            }
        };
        let mut todo = Vec::new();
        for plan in owners {
            for step in &plan.steps {
                if let Some((o, v)) = limit
                    && plan.owner == o
                    && step.version > v
                {
                    continue;
                }
                match applied.get(&(plan.owner.as_str(), step.version)) {
                    Some(rec) if rec.checksum != step.checksum => {
                        report.changed.push(format!("{} {}", plan.owner, step.name));
                    }
                    Some(_) => {}
                    None => todo.push((plan, step)),
                }
            }
        }
        progress(Progress::Planned(todo.len()));
        for (plan, step) in todo {
            let info = Step {
                owner: plan.owner.clone(),
                version: step.version,
                name: step.name.clone(),
                file: step.up.path.clone(),
                direction: Direction::Up,
            };
            progress(Progress::Started(&info));
            let took = self.apply(conn, plan, step).await?;
            progress(Progress::Finished(&info, took));
            report.steps.push((info, took));
        }
        Ok(())
    }

    async fn run_downgrade(
        &self,
        conn: &mut AnyConnection,
        target: &Target,
        progress: &mut (dyn FnMut(Progress<'_>) + Send),
        report: &mut Report,
    ) -> Result<(), MigrateError> {
        let applied = read_applied(conn).await?;
        let positions = self.positions();
        // Newest first: by time applied, then by plan position (ties within a millisecond).
        let mut newest: Vec<&AppliedRecord> = applied.iter().collect();
        newest.sort_by_key(|r| {
            std::cmp::Reverse((
                r.applied_at_ms,
                positions.get(&(r.owner.as_str(), r.version)).copied(),
            ))
        });
        let chosen: Vec<&AppliedRecord> = match target {
            Target::Default => newest.first().copied().into_iter().collect(),
            Target::Owner(o) => {
                self.known_owner(o)?;
                let mut mine: Vec<_> = applied.iter().filter(|r| &r.owner == o).collect();
                mine.sort_by_key(|r| std::cmp::Reverse(r.version));
                mine.into_iter().take(1).collect()
            }
            Target::Version(o, v) => {
                let plan = self.known_owner(o)?;
                if *v != 0 && !plan.steps.iter().any(|s| s.version == *v) {
                    return Err(no_version(plan, *v));
                }
                let mut mine: Vec<_> = applied
                    .iter()
                    .filter(|r| &r.owner == o && r.version > *v)
                    .collect();
                mine.sort_by_key(|r| std::cmp::Reverse(r.version));
                mine
            }
        };
        // Check everything before reverting anything.
        let mut todo = Vec::with_capacity(chosen.len());
        for rec in &chosen {
            let found = self
                .owner(&rec.owner)
                .and_then(|p| Some((p, p.steps.iter().find(|s| s.version == rec.version)?)));
            let Some((plan, step)) = found else {
                return Err(MigrateError::Target(format!(
                    "cannot downgrade {} {}: it is applied but this binary has no migration for it",
                    rec.owner, rec.name
                )));
            };
            let Some(down) = &step.down else {
                return Err(MigrateError::Irreversible {
                    owner: plan.owner.clone(),
                    name: step.name.clone(),
                    file: step.down_path.clone(),
                });
            };
            todo.push((plan, step, down));
        }
        for plan in todo.iter().map(|t| t.0) {
            let left = applied
                .iter()
                .filter(|r| r.owner == plan.owner)
                .filter(|r| {
                    !chosen
                        .iter()
                        .any(|c| c.owner == r.owner && c.version == r.version)
                })
                .count();
            if left > 0 {
                continue;
            }
            for dependent in &self.owners {
                let requires_it = dependent.requires.contains(&plan.owner);
                let has_applied = applied.iter().any(|r| r.owner == dependent.owner);
                if requires_it && has_applied {
                    return Err(MigrateError::Required {
                        owner: plan.owner.clone(),
                        dependent: dependent.owner.clone(),
                    });
                }
            }
        }
        progress(Progress::Planned(todo.len()));
        for (plan, step, down) in todo {
            let info = Step {
                owner: plan.owner.clone(),
                version: step.version,
                name: step.name.clone(),
                file: down.path.clone(),
                direction: Direction::Down,
            };
            progress(Progress::Started(&info));
            let took = self.revert(conn, plan, step, down).await?;
            progress(Progress::Finished(&info, took));
            report.steps.push((info, took));
        }
        Ok(())
    }

    /// Runs `step`'s up file and records it, in one transaction where the backend has
    /// transactional DDL.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        plan: &OwnerPlan,
        step: &PlannedStep,
    ) -> Result<Duration, MigrateError> {
        let record = |took: Duration| Record::Insert {
            owner: &plan.owner,
            version: step.version,
            name: &step.name,
            checksum: &step.checksum,
            duration_ms: took.as_millis().min(i64::MAX as u128) as i64,
        };
        self.run_file(conn, plan, step, &step.up, record).await
    }

    /// Runs `step`'s down file and deletes its record, in one transaction where the backend
    /// has transactional DDL.
    async fn revert(
        &self,
        conn: &mut AnyConnection,
        plan: &OwnerPlan,
        step: &PlannedStep,
        down: &SqlFile,
    ) -> Result<Duration, MigrateError> {
        let record = |_took: Duration| Record::Delete {
            owner: &plan.owner,
            version: step.version,
        };
        self.run_file(conn, plan, step, down, record).await
    }

    async fn run_file<'r>(
        &self,
        conn: &mut AnyConnection,
        plan: &OwnerPlan,
        step: &PlannedStep,
        file: &SqlFile,
        record: impl FnOnce(Duration) -> Record<'r>,
    ) -> Result<Duration, MigrateError> {
        let failed = |source| MigrateError::Failed {
            owner: plan.owner.clone(),
            name: step.name.clone(),
            file: file.path.clone(),
            source,
        };
        let transactional = self.backend != Backend::MySql && !no_transaction(&file.sql);
        let blank = is_blank(&file.sql);
        let sql = sqlx::raw_sql(AssertSqlSafe(file.sql.clone()));
        if !transactional {
            // MySQL/MariaDB commit DDL implicitly, so a transaction would promise what it
            // cannot keep: run the file, then record it only once it has succeeded.
            let start = Instant::now();
            if !blank {
                sql.execute(&mut *conn).await.map_err(failed)?;
            }
            let took = start.elapsed();
            record(took)
                .run(conn, self.backend)
                .await
                .map_err(MigrateError::db("recording the migration"))?;
            return Ok(took);
        }
        let mut tx = match self.backend {
            // Take the write lock at once rather than failing to upgrade a read lock later.
            Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await,
            _ => conn.begin().await,
        }
        .map_err(MigrateError::db("beginning a transaction"))?;
        let start = Instant::now();
        if !blank && let Err(e) = sql.execute(&mut *tx).await {
            let _ = tx.rollback().await;
            return Err(failed(e));
        }
        let took = start.elapsed();
        if let Err(e) = record(took).run(&mut tx, self.backend).await {
            let _ = tx.rollback().await;
            return Err(MigrateError::db("recording the migration")(e));
        }
        tx.commit().await.map_err(failed)?;
        Ok(took)
    }

    /// Each known migration's position in the plan.
    pub(super) fn positions(&self) -> HashMap<(&str, i64), usize> {
        self.owners
            .iter()
            .flat_map(|o| o.steps.iter().map(move |s| (o.owner.as_str(), s.version)))
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect()
    }
}

enum Work<'a> {
    Upgrade(&'a Target),
    Downgrade(&'a Target),
}

enum Record<'a> {
    Insert {
        owner: &'a str,
        version: i64,
        name: &'a str,
        checksum: &'a str,
        duration_ms: i64,
    },
    Delete {
        owner: &'a str,
        version: i64,
    },
}

impl Record<'_> {
    async fn run(self, conn: &mut AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
        match self {
            Record::Insert {
                owner,
                version,
                name,
                checksum,
                duration_ms,
            } => {
                let sql = backend.sql(
                    "INSERT INTO flagon_migrations \
                     (owner, version, name, checksum, applied_at, duration_ms) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                );
                sqlx::query(AssertSqlSafe(sql.into_owned()))
                    .bind(owner)
                    .bind(version)
                    .bind(name)
                    .bind(checksum)
                    .bind(now_ms())
                    .bind(duration_ms)
                    .execute(&mut *conn)
                    .await?;
            }
            Record::Delete { owner, version } => {
                let sql =
                    backend.sql("DELETE FROM flagon_migrations WHERE owner = ? AND version = ?");
                sqlx::query(AssertSqlSafe(sql.into_owned()))
                    .bind(owner)
                    .bind(version)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }
}

fn no_version(plan: &OwnerPlan, v: i64) -> MigrateError {
    let versions: Vec<String> = plan.steps.iter().map(|s| s.version.to_string()).collect();
    MigrateError::Target(format!(
        "`{}` has no migration {v} (its versions: {})",
        plan.owner,
        if versions.is_empty() {
            "none".to_owned()
        } else {
            versions.join(", ")
        }
    ))
}

/// Lifts a statement timeout the pool may set on its connections (`[db] statement_timeout`):
/// building an index may rightly take longer. The connection is closed afterwards, so the
/// setting goes nowhere else. A server without the variable (MariaDB has
/// `max_statement_time`, MySQL `max_execution_time`) rejects it, which changes nothing.
async fn clear_statement_timeout(conn: &mut AnyConnection, backend: Backend) {
    let statements: &[&'static str] = match backend {
        Backend::Postgres => &["SET statement_timeout = 0"],
        Backend::MySql => &[
            "SET SESSION max_statement_time = 0",
            "SET SESSION max_execution_time = 0",
        ],
        Backend::Sqlite => &[],
    };
    for &sql in statements {
        let _ = sqlx::raw_sql(sql).execute(&mut *conn).await;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Whether the file opts out of the transaction with a first line `-- no-transaction`
/// (PostgreSQL's `CREATE INDEX CONCURRENTLY` needs that).
fn no_transaction(sql: &str) -> bool {
    sql.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| l == "-- no-transaction")
}

/// Whether `sql` holds nothing but whitespace and comments (MySQL rejects an empty query).
pub(crate) fn is_blank(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_sql_is_comments_and_whitespace_only() {
        assert!(is_blank(""));
        assert!(is_blank("  -- a comment\n/* and\nanother */\n"));
        assert!(!is_blank("-- c\nSELECT 1"));
        assert!(!is_blank("/* c */ SELECT 1"));
    }

    #[test]
    fn the_no_transaction_directive_is_the_first_line() {
        assert!(no_transaction(
            "\n-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);"
        ));
        assert!(!no_transaction(
            "CREATE TABLE t (a INT);\n-- no-transaction"
        ));
    }
}
