//! Reading the tracking table: what `status`, `check` and `history` show.

use std::collections::HashMap;

use sqlx::{AnyConnection, AnyPool, Row};

use super::error::MigrateError;
use super::plan::Migrator;
use crate::Backend;

/// One row of the tracking table: a migration applied to this database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedRecord {
    /// The set's owner.
    pub owner: String,
    /// The version.
    pub version: i64,
    /// The migration's name as applied (`0001_create_users`).
    pub name: String,
    /// SHA-256 of the up file as applied, hex.
    pub checksum: String,
    /// When it was applied, in milliseconds since the Unix epoch (UTC).
    pub applied_at_ms: i64,
    /// How long its SQL took, in milliseconds.
    pub duration_ms: i64,
}

/// Where one migration stands on this database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationState {
    /// Not applied.
    Pending,
    /// Applied, and its up file is the one applied.
    Applied(AppliedRecord),
    /// Applied, but its up file has changed since (the checksum differs).
    Changed(AppliedRecord),
}

/// One migration in [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The version.
    pub version: i64,
    /// The name (`0001_create_users`).
    pub name: String,
    /// The up file this backend runs.
    pub file: String,
    /// Whether it has a down file.
    pub reversible: bool,
    /// Applied, changed or pending.
    pub state: MigrationState,
}

/// One owner's migrations in [`Status`], by version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerStatus {
    /// The owner (`app`, `login`, …).
    pub owner: String,
    /// Its migrations, ascending.
    pub migrations: Vec<MigrationStatus>,
}

/// What `db status` shows: every owner's applied and pending migrations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The backend.
    pub backend: Backend,
    /// Owners in plan order.
    pub owners: Vec<OwnerStatus>,
    /// Rows of the tracking table this binary has no migration for (a removed file or an
    /// unregistered extension).
    pub unknown: Vec<AppliedRecord>,
}

impl Status {
    /// How many migrations are pending.
    pub fn pending(&self) -> usize {
        self.count(|s| matches!(s, MigrationState::Pending))
    }

    /// How many applied migrations' up files have changed since.
    pub fn changed(&self) -> usize {
        self.count(|s| matches!(s, MigrationState::Changed(_)))
    }

    /// No pending migration and no changed file: what `db check` requires.
    pub fn is_up_to_date(&self) -> bool {
        self.pending() == 0 && self.changed() == 0
    }

    fn count(&self, f: impl Fn(&MigrationState) -> bool) -> usize {
        self.owners
            .iter()
            .flat_map(|o| &o.migrations)
            .filter(|m| f(&m.state))
            .count()
    }
}

impl Migrator {
    /// Every owner's applied and pending migrations. Takes no lock and creates nothing: a
    /// database never migrated shows everything pending.
    pub async fn status(&self, pool: &AnyPool) -> Result<Status, MigrateError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(MigrateError::db("connecting"))?;
        let applied = if table_exists(&mut conn, self.backend).await? {
            read_applied(&mut conn).await?
        } else {
            Vec::new()
        };
        Ok(self.status_of(applied))
    }

    /// The tracking table's rows, in the order applied (empty when there is no table).
    pub async fn history(&self, pool: &AnyPool) -> Result<Vec<AppliedRecord>, MigrateError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(MigrateError::db("connecting"))?;
        if !table_exists(&mut conn, self.backend).await? {
            return Ok(Vec::new());
        }
        let mut rows = read_applied(&mut conn).await?;
        let position = self.positions();
        rows.sort_by_key(|r| {
            (
                r.applied_at_ms,
                position.get(&(r.owner.as_str(), r.version)).copied(),
            )
        });
        Ok(rows)
    }

    fn status_of(&self, applied: Vec<AppliedRecord>) -> Status {
        let mut by_key: HashMap<(String, i64), AppliedRecord> = applied
            .into_iter()
            .map(|r| ((r.owner.clone(), r.version), r))
            .collect();
        let owners = self
            .owners
            .iter()
            .map(|plan| OwnerStatus {
                owner: plan.owner.clone(),
                migrations: plan
                    .steps
                    .iter()
                    .map(|step| {
                        let state = match by_key.remove(&(plan.owner.clone(), step.version)) {
                            None => MigrationState::Pending,
                            Some(r) if r.checksum == step.checksum => MigrationState::Applied(r),
                            Some(r) => MigrationState::Changed(r),
                        };
                        MigrationStatus {
                            version: step.version,
                            name: step.name.clone(),
                            file: step.up.path.clone(),
                            reversible: step.down.is_some(),
                            state,
                        }
                    })
                    .collect(),
            })
            .collect();
        let mut unknown: Vec<AppliedRecord> = by_key.into_values().collect();
        unknown.sort_by(|a, b| (&a.owner, a.version).cmp(&(&b.owner, b.version)));
        Status {
            backend: self.backend,
            owners,
            unknown,
        }
    }
}

async fn table_exists(conn: &mut AnyConnection, backend: Backend) -> Result<bool, MigrateError> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'flagon_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'flagon_migrations'"
        }
        Backend::MySql => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'flagon_migrations'"
        }
    };
    let n: i64 = sqlx::query(sql)
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(MigrateError::db("looking for the flagon_migrations table"))?;
    Ok(n > 0)
}

pub(super) async fn read_applied(
    conn: &mut AnyConnection,
) -> Result<Vec<AppliedRecord>, MigrateError> {
    let rows = sqlx::query(
        "SELECT owner, version, name, checksum, applied_at, duration_ms FROM flagon_migrations",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(MigrateError::db("reading the flagon_migrations table"))?;
    rows.iter()
        .map(|row| {
            Ok(AppliedRecord {
                owner: row.try_get(0)?,
                version: row.try_get(1)?,
                name: row.try_get(2)?,
                checksum: row.try_get(3)?,
                applied_at_ms: row.try_get(4)?,
                duration_ms: row.try_get(5)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(MigrateError::db("reading the flagon_migrations table"))
}
