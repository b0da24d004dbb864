//! Keeps the message-search index's pending list short, off the write path.
//!
//! `messages_body_trgm` is a GIN trigram index with `fastupdate`: an insert appends
//! its trigrams to a pending list instead of updating the index proper, and whichever
//! backend finds the list over `gin_pending_list_limit` merges it. Left to that, the
//! merge lands in a writer batch every second or two and stalls it for tens of
//! milliseconds (the ack p99 of the write benchmark went from ~10 ms to ~50 ms). So the
//! limit is set high (migration 0009) and this task merges the list every second on a
//! connection of the application pool (not a writer lane's): writer transactions only
//! append, and searches, which read the pending list linearly, find it short.
//!
//! Several GOIM instances on one database each run it; a merge that finds another in
//! progress waits for it, and then has little left to do.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db;

/// How often the pending list is merged.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Merges the pending list every [`INTERVAL`] until `stop` is cancelled. A merge in
/// progress is abandoned at shutdown rather than waited for.
pub async fn run(pool: PgPool, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let merged = tokio::select! {
            _ = stop.cancelled() => return,
            merged = async {
                ticks.tick().await;
                db::message_search::merge_pending_list(&pool).await
            } => merged,
        };
        match merged {
            Ok(pages) => {
                if failing {
                    tracing::info!("merging the message-search pending list works again");
                    failing = false;
                }
                if pages > 0 {
                    tracing::debug!(pages, "merged the message-search pending list");
                }
            }
            Err(error) if is_permission_denied(&error) => {
                // Only the index's owner (or a superuser) may merge; writers then merge
                // when the list is full, as PostgreSQL does by default.
                tracing::warn!(%error, "cannot merge the message-search pending list; leaving it to PostgreSQL");
                return;
            }
            // Logged once per outage (a restarting database, a full pool), not per second.
            Err(error) if !failing => {
                tracing::warn!(%error, "merging the message-search pending list failed; retrying every second");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

fn is_permission_denied(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("42501"))
}
