//! Applying pending migrations when the app starts.

use sqlx::AnyPool;

use super::engine::{Progress, Report};
use super::error::MigrateError;
use super::plan::{Migrator, Target};

/// Applies every pending migration, logging each one (`tracing`, target `flagon_db`): what
/// `[db] auto_upgrade = true` runs at startup. Waiting for another instance's lock is logged
/// as a warning, and so is an applied migration whose file has changed since.
pub async fn auto_upgrade(pool: &AnyPool, migrator: &Migrator) -> Result<Report, MigrateError> {
    let report = migrator
        .upgrade_with(pool, &Target::Default, &mut |p| match p {
            Progress::Waiting => tracing::warn!(
                "waiting for the migration lock: another instance is migrating this database"
            ),
            Progress::Finished(step, took) => tracing::info!(
                owner = %step.owner,
                migration = %step.name,
                ms = took.as_millis() as u64,
                "applied migration"
            ),
            Progress::Planned(_) | Progress::Started(_) => {}
        })
        .await?;
    for name in &report.changed {
        tracing::warn!(
            migration = %name,
            "an applied migration's file has changed since it was applied (checksum mismatch)"
        );
    }
    if report.steps.is_empty() {
        tracing::debug!("migrations: the database is up to date");
    }
    Ok(report)
}
