//! Deletes what GOIM no longer keeps: messages older than `GOIM_RETENTION_DAYS` (when
//! set), sessions that expired a day ago, expired WebSocket tickets, and uploads that no
//! live message names (`db::retention`, "orphan_uploads"). In batches of
//! [`BATCH`] rows, each its own short transaction on the application pool, so a sweep
//! never holds locks the writer waits for and never blocks a send for long.
//!
//! Every instance runs it; a transaction-level advisory lock lets one sweep at a time
//! do the work and the others skip that round.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    db,
    metrics::{KindLabels, Metrics},
};

/// How often a sweep runs.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Rows per delete statement.
pub const BATCH: i64 = 1000;

/// Days a webhook delivery stays as a dead letter before the sweep deletes it.
pub const DEAD_LETTER_DAYS: u32 = 30;

pub async fn run(pool: PgPool, metrics: std::sync::Arc<Metrics>, retention_days: u32, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let swept = tokio::select! {
            _ = stop.cancelled() => return,
            swept = sweep(&pool, &metrics, retention_days, &stop) => swept,
        };
        if let Err(error) = swept {
            tracing::warn!(%error, "retention sweep failed; the next one retries");
        }
    }
}

/// One sweep: deletes batch after batch until nothing is due.
pub async fn sweep(
    pool: &PgPool,
    metrics: &Metrics,
    retention_days: u32,
    stop: &CancellationToken,
) -> sqlx::Result<()> {
    let kinds: [(&'static str, Option<u32>); 6] = [
        ("messages", (retention_days > 0).then_some(retention_days)),
        ("sessions", Some(1)),
        ("tickets", Some(0)),
        ("retired_usernames", Some(0)),
        // Long enough for an operator to notice a failing endpoint and requeue.
        ("webhook_dead_letters", Some(DEAD_LETTER_DAYS)),
        // Each upload carries its own due time (`sweep_after`); the days are unused.
        ("orphan_uploads", Some(0)),
    ];
    for (kind, older_than_days) in kinds {
        let Some(days) = older_than_days else { continue };
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            let Some(deleted) = db::retention::delete_batch(pool, kind, days, BATCH).await? else {
                // Another instance is sweeping.
                return Ok(());
            };
            metrics.retention_deleted.get_or_create(&KindLabels { kind }).inc_by(deleted);
            if deleted < BATCH as u64 {
                break;
            }
        }
    }
    Ok(())
}
