//! Builds the message-search blocks, off the send path (migration 18).
//!
//! The writer's transactions only insert messages. After a batch commits, the writer
//! marks its conversations in the [`SearchQueue`]; every [`INTERVAL`] this task joins
//! each marked conversation's new bodies into blocks of up to 64 messages, indexes them,
//! and merges the trigram index's pending list, so searches read a short list and no
//! writer ever pays for a merge. Until a message is in a block, search reads it directly
//! (each conversation's messages past its `indexed_seq`), so a late or failed run costs
//! search time, never a result.
//!
//! Several GOIM instances on one database each index what their own writers stored; a
//! conversation one of them is indexing is skipped by the others. What an instance left
//! unindexed (it stopped, or its database calls failed) is found by every instance's
//! look over all conversations at start-up and every [`FULL_LOOK_INTERVAL`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::db;
use crate::domain::ConversationId;

/// How often new messages are indexed. Each run's pending-list merge costs about the
/// same however little the run added, and a longer interval fills the blocks: at 1 s,
/// indexing and merging took 1.5-2 times as long per message (W1 at half rate,
/// docs/benchmarks.md). Search never waits for it: messages not yet in a block are
/// read directly.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How often every conversation is looked at for messages no instance indexed.
pub const FULL_LOOK_INTERVAL: Duration = Duration::from_secs(60);
/// Conversations per indexing transaction.
const CONVERSATIONS_PER_RUN: usize = 64;
/// Messages per conversation per indexing transaction (16 blocks). With the line above,
/// a transaction indexes at most 65,536 messages: about a second of work when catching
/// up, well inside the statement timeout.
const MESSAGES_PER_CONVERSATION: i64 = 16 * 64;
/// Conversations the queue holds at most; past that, the next run looks at all of them.
const QUEUE_CAP: usize = 100_000;

/// Conversations with newly committed messages, waiting for the indexer.
#[derive(Clone, Default)]
pub struct SearchQueue {
    inner: Arc<Mutex<Queued>>,
}

#[derive(Default)]
struct Queued {
    conversations: HashSet<i64>,
    overflowed: bool,
}

impl SearchQueue {
    /// Marks conversations whose new messages have committed.
    pub fn mark(&self, conversations: impl IntoIterator<Item = ConversationId>) {
        let mut queued = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for conversation in conversations {
            if queued.conversations.len() >= QUEUE_CAP {
                queued.overflowed = true;
                return;
            }
            queued.conversations.insert(conversation.0);
        }
    }

    /// Takes what is queued; `true` when some was dropped and every conversation must
    /// be looked at.
    fn take(&self) -> (Vec<i64>, bool) {
        let mut queued = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let overflowed = std::mem::take(&mut queued.overflowed);
        (queued.conversations.drain().collect(), overflowed)
    }

    fn put_back(&self, conversations: &[i64]) {
        self.mark(conversations.iter().map(|&id| ConversationId(id)));
    }
}

/// Indexes what `queue` collects until `stop` is cancelled; an indexing run in progress
/// is abandoned at shutdown (its transaction rolls back, the next start redoes it).
pub async fn run(pool: PgPool, queue: SearchQueue, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_full_look = Instant::now();
    let mut failing = false;
    let mut may_merge = true;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let (mut due, overflowed) = queue.take();
        let look_at_all = overflowed || Instant::now() >= next_full_look;
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = run_once(&pool, &queue, &mut due, look_at_all, &mut may_merge) => outcome,
        };
        if look_at_all && outcome.is_ok() {
            next_full_look = Instant::now() + FULL_LOOK_INTERVAL;
        }
        if let Ok(true) = outcome {
            // A run takes at most MESSAGES_PER_CONVERSATION of a conversation: one
            // busier than that per interval is caught up by running again at once.
            ticks.reset_immediately();
        }
        match outcome {
            Ok(_) if failing => {
                tracing::info!("indexing messages for search works again");
                failing = false;
            }
            Ok(_) => {}
            Err(error) => {
                // The run stopped part-way: what it did not finish is indexed next time,
                // and a look at every conversation it owed is owed still.
                queue.put_back(&due);
                if look_at_all {
                    next_full_look = Instant::now();
                }
                if !failing {
                    // Logged once per outage (a restarting database, a full pool).
                    tracing::warn!(%error, "indexing messages for search failed; retrying at every run");
                    failing = true;
                }
            }
        }
    }
}

/// One indexing run: what the writers marked, and every conversation left behind when
/// `look_at_all`; then the pending list's merge. `true`: some conversations are still
/// behind (back in the queue).
async fn run_once(
    pool: &PgPool,
    queue: &SearchQueue,
    due: &mut Vec<i64>,
    look_at_all: bool,
    may_merge: &mut bool,
) -> sqlx::Result<bool> {
    if look_at_all {
        due.extend(db::message_search::behind(pool, QUEUE_CAP as i64).await?);
        due.sort_unstable();
        due.dedup();
    }
    let still_behind = index(pool, queue, due).await?;
    if *may_merge && !due.is_empty() {
        merge(pool, may_merge).await?;
    }
    Ok(still_behind)
}

/// Indexes `due` a slice at a time; conversations still behind go back in the queue
/// (`true` when there are any).
async fn index(pool: &PgPool, queue: &SearchQueue, due: &[i64]) -> sqlx::Result<bool> {
    let mut still_behind = false;
    for slice in due.chunks(CONVERSATIONS_PER_RUN) {
        let (indexed, behind) = db::message_search::index_blocks(pool, slice, MESSAGES_PER_CONVERSATION).await?;
        if indexed > 0 {
            tracing::debug!(indexed, behind = behind.len(), "indexed messages for search");
        }
        still_behind |= !behind.is_empty();
        queue.put_back(&behind);
    }
    Ok(still_behind)
}

async fn merge(pool: &PgPool, may_merge: &mut bool) -> sqlx::Result<()> {
    match db::message_search::merge_pending_list(pool).await {
        Ok(_) => Ok(()),
        Err(error) if is_permission_denied(&error) => {
            // Only the index's owner (or a superuser) may merge; PostgreSQL then merges
            // when the list is full, in whichever transaction fills it (the indexer's).
            tracing::warn!(%error, "cannot merge the message-search pending list; leaving it to PostgreSQL");
            *may_merge = false;
            Ok(())
        }
        Err(error) => Err(error),
    }
}

fn is_permission_denied(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("42501"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_hands_each_conversation_over_once() {
        let queue = SearchQueue::default();
        queue.mark([ConversationId(3), ConversationId(1), ConversationId(3)]);
        let (mut due, overflowed) = queue.take();
        due.sort_unstable();
        assert_eq!(due, [1, 3]);
        assert!(!overflowed);
        assert!(queue.take().0.is_empty());
    }

    #[test]
    fn a_full_queue_asks_for_a_look_at_every_conversation() {
        let queue = SearchQueue::default();
        queue.mark((0..QUEUE_CAP as i64 + 5).map(ConversationId));
        let (due, overflowed) = queue.take();
        assert_eq!(due.len(), QUEUE_CAP);
        assert!(overflowed);
        assert!(!queue.take().1, "the look is asked for once");
    }
}
