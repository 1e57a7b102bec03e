//! The readiness check: one per pool, in `/readyz`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flagon::Setup;
use flagon::health::CheckOutcome;
use sqlx::Connection as _;

use crate::db::PoolInner;

/// Extra time core gives a check beyond its own bound, so the check reports its detail itself.
const MARGIN: Duration = Duration::from_millis(250);

/// Registers the check `db` (the main pool) or `db.NAME` (a bind).
pub(crate) fn register(app: &mut Setup<'_>, pool: Arc<PoolInner>) {
    let name = match &pool.name {
        None => "db".to_owned(),
        Some(n) => format!("db.{n}"),
    };
    let bound = pool.settings.health_timeout;
    app.health_check(&name, bound + MARGIN, move |_app| {
        let pool = pool.clone();
        async move { check(&pool, bound).await }
    });
}

/// Takes a connection and pings it within `bound`; the detail shows the pool's counters.
pub(crate) async fn check(pool: &PoolInner, bound: Duration) -> CheckOutcome {
    // The counters as the app uses the pool, before the check takes a connection of its own.
    let stats = pool.counters.snapshot(pool.pool());
    let started = Instant::now();
    let pinged = tokio::time::timeout(bound, async {
        let mut conn = pool.pool().acquire().await?;
        conn.ping().await
    })
    .await;
    let took = started.elapsed();
    let outcome = match pinged {
        Ok(Ok(())) => CheckOutcome::healthy(),
        Ok(Err(e)) => CheckOutcome::unhealthy(format!("{} database: {e}", pool.settings.backend)),
        Err(_) => CheckOutcome::unhealthy(format!(
            "{} database: no answer within {}ms",
            pool.settings.backend,
            bound.as_millis()
        )),
    };
    outcome
        .detail("backend", pool.settings.backend.name())
        .detail("size", stats.size)
        .detail("idle", stats.idle)
        .detail("in_use", stats.in_use)
        .detail("max", stats.max)
        .detail("ping_ms", took.as_millis() as u64)
}
