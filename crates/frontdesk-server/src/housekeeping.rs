//! Background upkeep run by `frontdesk serve`: every `SWEEP_EVERY`, deleting idempotency
//! keys past their retention and releasing expired limit reservations (the queries are
//! `frontdesk_core::housekeeping`). Safe to run in every server process at once.

use std::time::Duration;

use frontdesk_pg::Db;

/// How often the sweep runs. Expired reservations already hold nothing (a refusal
/// discounts them); the sweep only gives their amounts back to the limit state.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Sweep once now and then every `SWEEP_EVERY`, until the runtime stops.
pub fn spawn(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            metrics::counter!("background_job_runs_total", "job" => "housekeeping").increment(1);
            match sweep(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "expired idempotency keys and reservations swept"
                ),
                Err(error) => {
                    metrics::counter!("background_job_failures_total", "job" => "housekeeping")
                        .increment(1);
                    tracing::warn!(%error, "sweeping failed")
                }
            }
        }
    })
}

/// Delete expired idempotency keys and release expired reservations, of every tenant,
/// as the operator (`frontdesk_core::housekeeping::sweep`).
pub async fn sweep(db: &Db) -> anyhow::Result<u64> {
    frontdesk_core::housekeeping::sweep(db)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
