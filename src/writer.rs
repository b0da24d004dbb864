//! The message writer: the one path by which messages are stored.
//!
//! Senders hand a validated message to [`MessageWriter::submit`] and wait for its ack.
//! Each of a few *lanes* (a task with a bounded queue) takes whatever has queued up —
//! up to [`MAX_BATCH`] messages — and stores it in **one transaction**: one statement
//! reads, for every message, an earlier copy (idempotent retries) and everything the
//! conversation's rules ask (membership, blocks, friendship, group, mute, mentions),
//! which the [`Admission`] decides on; then one locked update of each touched
//! conversation's `last_seq`, one multi-row insert, the senders' read markers. A send
//! costs no query before its batch.
//! Only after that transaction commits does any sender get its ack; so one WAL flush
//! is shared by every message of the batch instead of paid per message, and a busy
//! lane batches more. A conversation always maps to the same lane, so its messages
//! are ordered and its row lock is never contended inside one instance.
//!
//! Backpressure: queues are bounded; a sender waits at most [`ENQUEUE_TIMEOUT`] for
//! room and then gets `Overloaded`. Shutdown: [`MessageWriter::shutdown`] closes the
//! queues, the lanes store what was already queued, and then exit; nothing that was
//! acknowledged is lost, and nothing queued is dropped silently.
//!
//! With webhooks on, the same transaction queues a webhook delivery for every member
//! without a connected socket ([`crate::webhooks::Outbox`]); the worker is nudged after
//! the commit. Search indexing happens after the commit too ([`crate::search_index`]).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use futures_util::FutureExt;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    db::{
        self,
        conversations::{BatchKeys, ConversationContext},
        messages::{MessageRow, NewRows},
    },
    domain::{ConversationId, MessageView, NewMessage, UserId},
    error::ApiError,
    events::{Event, EventBus},
    metrics::Metrics,
    search_index::SearchQueue,
    webhooks::Outbox,
};
use tracing::Instrument;

/// Most messages stored by one transaction.
pub const MAX_BATCH: usize = 256;
/// How long a sender waits for room in a full queue.
pub const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message on its way to the database.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub message: NewMessage,
}

/// The sender's acknowledgement: the message is committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub client_msg_id: Uuid,
    pub created_at: OffsetDateTime,
    /// The message was stored by an earlier attempt with the same `client_msg_id`.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("this client_msg_id was already used for a different message")]
    IdReused,
    /// The conversation's rules refuse the message (see [`Admission`]).
    #[error("{0}")]
    Refused(ApiError),
    #[error("the message queue is full")]
    Overloaded,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The batch's transaction failed; shared by every message of the batch.
    #[error("database error: {0}")]
    Database(#[source] Arc<sqlx::Error>),
    /// The batch committed without an outcome for this message, or storing it panicked
    /// (a bug, never expected).
    #[error("the message was not stored")]
    Lost,
}

/// Whether a message may be stored, decided from the facts the batch read about it in
/// its own transaction ([`db::conversations::batch_contexts`]; `None`: no such
/// conversation). Provided by the service layer, which owns the conversation policy, so
/// that a send costs no query of its own before the batch.
pub trait Admission: Send + Sync {
    fn admit(&self, pending: &PendingMessage, context: Option<&ConversationContext>) -> Result<(), ApiError>;
}

struct Job {
    pending: PendingMessage,
    request_hash: Vec<u8>,
    reply: oneshot::Sender<Result<Ack, WriteError>>,
}

/// A cloneable handle to the writer lanes.
#[derive(Clone)]
pub struct MessageWriter {
    lanes: Vec<mpsc::Sender<Job>>,
    stop: CancellationToken,
    /// The lanes' own connections (one per lane), reported in `/metrics`.
    pool: PgPool,
}

impl MessageWriter {
    /// Starts `lanes` writer tasks, each with a queue of `queue_capacity` messages.
    /// `admission` decides each message; `webhooks`: where offline members' events are
    /// queued (`None`: webhooks off).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        pool: PgPool,
        events: EventBus,
        metrics: Arc<Metrics>,
        tasks: &TaskTracker,
        lanes: usize,
        queue_capacity: usize,
        admission: Arc<dyn Admission>,
        webhooks: Option<Outbox>,
    ) -> Self {
        let stop = CancellationToken::new();
        // Committed messages are indexed for search here, off the writers' transactions.
        let search = SearchQueue::default();
        tasks.spawn(crate::search_index::run(pool.clone(), search.clone(), stop.clone()));
        // The writer's statements take arrays, and PostgreSQL would otherwise re-plan
        // them for every batch (custom plans): planning cost more than the work. Their
        // shape never changes, so one generic plan per connection serves every batch.
        //
        // That plan is made on the connection's first batch, from the statistics of
        // that moment (on a new server: empty tables), and kept until the statistics
        // change. With empty tables a scan of the whole table looks free, and a plan
        // that reads all of `friendships` or a conversation's every message per batch
        // was kept while the tables grew (found in W1). Every statement of the writer
        // looks rows up by key, so its sessions rule out the plan shapes that read a
        // whole table: sequential and bitmap scans, hash joins.
        let options = (*pool.connect_options()).clone().options([
            ("plan_cache_mode", "force_generic_plan"),
            ("enable_seqscan", "off"),
            ("enable_bitmapscan", "off"),
            ("enable_hashjoin", "off"),
        ]);
        // Otherwise configured like the main pool: same session settings (statement
        // timeout, planner costs), acquire timeout (a database that cannot give a lane
        // its connection is a 503 after the configured wait, as on every other path),
        // idle timeout and connection lifetime.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(lanes.max(1)).unwrap_or(1))
            .min_connections(0)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .idle_timeout(pool.options().get_idle_timeout())
            .max_lifetime(pool.options().get_max_lifetime())
            .connect_lazy_with(options);
        let senders = (0..lanes.max(1))
            .map(|lane| {
                let (sender, receiver) = mpsc::channel(queue_capacity.max(1));
                let sinks = Sinks {
                    admission: admission.clone(),
                    events: events.clone(),
                    metrics: metrics.clone(),
                    webhooks: webhooks.clone(),
                    search: search.clone(),
                };
                let lane_task = run_lane(lane, pool.clone(), sinks, receiver, stop.clone());
                tasks.spawn(lane_task.instrument(tracing::info_span!("writer_lane", lane)));
                sender
            })
            .collect();
        Self { lanes: senders, stop, pool }
    }

    /// Stores `pending` and returns its ack once committed.
    pub async fn submit(&self, pending: PendingMessage) -> Result<Ack, WriteError> {
        self.enqueue(pending).await?.await
    }

    /// Queues `pending` and returns at once; the returned future resolves to its ack
    /// once committed. Messages queued one after another for one conversation are
    /// stored in that order (one lane per conversation, first in, first out).
    pub async fn enqueue(
        &self,
        pending: PendingMessage,
    ) -> Result<impl Future<Output = Result<Ack, WriteError>> + use<>, WriteError> {
        if self.stop.is_cancelled() {
            return Err(WriteError::ShuttingDown);
        }
        let lane = (pending.conversation_id.0.unsigned_abs() % self.lanes.len() as u64) as usize;
        let (reply, ack) = oneshot::channel();
        let request_hash = pending.message.request_hash();
        let job = Job { pending, request_hash, reply };
        match tokio::time::timeout(ENQUEUE_TIMEOUT, self.lanes[lane].send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(WriteError::ShuttingDown),
            Err(_) => return Err(WriteError::Overloaded),
        }
        // A lane answers every message it takes, shutdown included: a reply dropped
        // unanswered means storing its batch failed.
        Ok(async move { ack.await.unwrap_or(Err(WriteError::Lost)) })
    }

    /// The lanes' connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stops taking messages; the lanes store what is queued, then end.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

/// What decides a lane's messages, and where its committed batches go besides the acks.
struct Sinks {
    admission: Arc<dyn Admission>,
    events: EventBus,
    metrics: Arc<Metrics>,
    webhooks: Option<Outbox>,
    search: SearchQueue,
}

async fn run_lane(lane: usize, pool: PgPool, sinks: Sinks, mut queue: mpsc::Receiver<Job>, stop: CancellationToken) {
    loop {
        let first = tokio::select! {
            job = queue.recv() => job,
            _ = stop.cancelled() => {
                // No new messages; what is already queued is still stored below.
                queue.close();
                queue.recv().await
            }
        };
        let Some(first) = first else {
            tracing::debug!(lane, "message writer lane drained");
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A bug that panics while storing must cost that batch, not the lane: a lane
        // that ended would leave its conversations unable to send until a restart.
        let stored = std::panic::AssertUnwindSafe(write_batch(&pool, &sinks, batch)).catch_unwind().await;
        if let Err(panic) = stored {
            let what = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
            tracing::error!(
                lane,
                panic = what.unwrap_or("?"),
                "storing a message batch panicked; its senders get an error"
            );
        }
    }
}

/// Stores a batch in one transaction. If it fails on a constraint, one bad message may
/// be the cause, so each message is retried alone and cannot fail its neighbours; any
/// other failure (the database unreachable, a timeout) would fail each retry the same way,
/// so the whole batch gets the error at once.
async fn write_batch(pool: &PgPool, sinks: &Sinks, batch: Vec<Job>) {
    let pendings: Vec<(&PendingMessage, &[u8])> =
        batch.iter().map(|j| (&j.pending, j.request_hash.as_slice())).collect();
    match store(pool, &pendings, sinks).await {
        Ok(stored) => deliver(sinks, batch, stored),
        Err(error) if batch.len() > 1 && db::violated_constraint(&error).is_some() => {
            tracing::warn!(%error, size = batch.len(), "message batch failed; retrying its messages one by one");
            for job in batch {
                let one = [(&job.pending, job.request_hash.as_slice())];
                match store(pool, &one, sinks).await {
                    Ok(stored) => deliver(sinks, vec![job], stored),
                    Err(error) => {
                        let _ = job.reply.send(Err(WriteError::Database(Arc::new(error))));
                    }
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, size = batch.len(), "storing a message batch failed");
            let error = Arc::new(error);
            for job in batch {
                let _ = job.reply.send(Err(WriteError::Database(error.clone())));
            }
        }
    }
}

/// The outcome of a committed batch, in the batch's order.
struct Stored {
    results: Vec<Result<Ack, WriteError>>,
    /// Newly stored messages and who should hear of them.
    created: Vec<(MessageRow, Vec<UserId>)>,
    /// Webhook deliveries queued with them.
    webhooks_queued: u64,
}

fn deliver(sinks: &Sinks, batch: Vec<Job>, stored: Stored) {
    let Sinks { events, metrics, webhooks, search, .. } = sinks;
    metrics.messages_stored.inc_by(stored.created.len() as u64);
    search.mark(stored.created.iter().map(|(row, _)| row.conversation_id));
    if let Some(outbox) = webhooks
        && stored.webhooks_queued > 0
    {
        metrics.webhook_queued.inc_by(stored.webhooks_queued);
        outbox.nudge();
    }
    for (job, result) in batch.into_iter().zip(stored.results) {
        let _ = job.reply.send(result);
    }
    for (row, members) in stored.created {
        events.publish(members, Event::MessageCreated { message: Box::new(MessageView::from(row)) });
    }
}

type IdKey = (i64, i64, Uuid);

/// Stores a batch with three statements in one transaction — the round trips, not the
/// rows, are what a message costs, so each statement handles the whole batch.
async fn store(pool: &PgPool, batch: &[(&PendingMessage, &[u8])], sinks: &Sinks) -> sqlx::Result<Stored> {
    let webhooks = sinks.webhooks.as_ref();
    let mut tx = pool.begin().await?;
    let mut results: Vec<Option<Result<Ack, WriteError>>> = (0..batch.len()).map(|_| None).collect();
    let keys: Vec<IdKey> =
        batch.iter().map(|(p, _)| (p.conversation_id.0, p.sender_id.0, p.message.client_msg_id)).collect();

    // 1. Per message, in one statement: was it stored before (a retry answers with the
    //    original ack), and everything the conversation's rules ask about the sender.
    let mut mention_ords = Vec::new();
    let mut mention_users = Vec::new();
    for (ord, (pending, _)) in (1_i64..).zip(batch) {
        for user in &pending.message.mentions {
            mention_ords.push(ord);
            mention_users.push(user.0);
        }
    }
    let conversations: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let senders: Vec<i64> = keys.iter().map(|k| k.1).collect();
    let client_msg_ids: Vec<Uuid> = keys.iter().map(|k| k.2).collect();
    let batch_keys = BatchKeys {
        conversations: &conversations,
        senders: &senders,
        client_msg_ids: &client_msg_ids,
        mention_ords: &mention_ords,
        mention_users: &mention_users,
    };
    let mut contexts: Vec<Option<Option<ConversationContext>>> = vec![None; batch.len()];
    for (ord, context) in db::conversations::batch_contexts(&mut tx, &batch_keys).await? {
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| contexts.get_mut(i)) {
            *slot = Some(context);
        }
    }

    // The same id twice in one batch (a client retrying fast) is stored once.
    let mut first_of_key: HashMap<IdKey, usize> = HashMap::new();
    let mut fresh: Vec<usize> = Vec::new();
    for (index, (((pending, hash), key), looked_up)) in batch.iter().zip(&keys).zip(contexts).enumerate() {
        let Some(context) = looked_up else {
            results[index] = Some(Err(WriteError::Lost));
            continue;
        };
        let earlier = context
            .as_ref()
            .and_then(|c| Some((c.earlier_seq?, c.earlier_created_at?, c.earlier_request_hash.as_ref()?)));
        if let Some((seq, at, stored_hash)) = earlier {
            results[index] = Some(if stored_hash.as_slice() == *hash {
                Ok(Ack {
                    conversation_id: pending.conversation_id,
                    seq,
                    client_msg_id: key.2,
                    created_at: at,
                    duplicate: true,
                })
            } else {
                Err(WriteError::IdReused)
            });
        } else if first_of_key.contains_key(key) {
            // Resolved after the insert, from the first occurrence.
        } else if let Err(refusal) = sinks.admission.admit(pending, context.as_ref()) {
            // Not remembered as the first of its id: a later copy is decided on its own.
            results[index] = Some(Err(WriteError::Refused(refusal)));
        } else {
            first_of_key.insert(*key, index);
            fresh.push(index);
        }
    }

    let mut created = Vec::new();
    let mut webhooks_queued = 0;
    if !fresh.is_empty() {
        // 2. Numbering: each new message takes its conversation's next seq and version.
        let mut per_conversation: BTreeMap<i64, i64> = BTreeMap::new();
        for &i in &fresh {
            *per_conversation.entry(batch[i].0.conversation_id.0).or_default() += 1;
        }
        let reservations = db::conversations::reserve_numbers(
            &mut tx,
            &per_conversation.keys().copied().collect::<Vec<_>>(),
            &per_conversation.values().copied().collect::<Vec<_>>(),
        )
        .await?;
        let mut next: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut stamp_of: HashMap<i64, OffsetDateTime> = HashMap::new();
        let mut audience_of: HashMap<i64, Vec<UserId>> = HashMap::new();
        for reserved in reservations {
            let id = reserved.id.0;
            next.insert(id, (reserved.seq_before, reserved.version_before));
            stamp_of.insert(id, reserved.stamp);
            audience_of.insert(id, reserved.audience.into_iter().map(UserId).collect());
        }
        let mut rows = NewRows::default();
        for &i in &fresh {
            let (pending, hash) = batch[i];
            let conversation = pending.conversation_id.0;
            let counter = next.entry(conversation).or_default();
            counter.0 += 1;
            counter.1 += 1;
            let message = &pending.message;
            rows.conversation_ids.push(conversation);
            rows.seqs.push(counter.0);
            rows.versions.push(counter.1);
            rows.sender_ids.push(pending.sender_id.0);
            rows.client_msg_ids.push(message.client_msg_id);
            rows.request_hashes.push(hash.to_vec());
            rows.kinds.push(message.kind.as_str().to_owned());
            rows.bodies.push(message.body.clone());
            rows.contents.push(message.content.clone());
            rows.reply_to_seqs.push(message.reply_to_seq);
            rows.mentions.push(serde_json::json!(message.mentions.iter().map(|u| u.0).collect::<Vec<_>>()));
            rows.mention_all.push(message.mention_all);
            rows.created_at.push(stamp_of.get(&conversation).copied());
        }

        // 3. One insert for the whole batch, read markers included.
        let rows = db::messages::insert_batch(&mut tx, &rows).await?;
        // 4. Webhooks (when on): offline members' events, committed with the messages.
        if let Some(outbox) = webhooks {
            webhooks_queued = outbox.enqueue(&mut tx, &rows).await?;
        }

        let by_key: HashMap<IdKey, &MessageRow> =
            rows.iter().map(|r| ((r.conversation_id.0, r.sender_id.0, r.client_msg_id), r)).collect();
        for &i in &fresh {
            let (pending, _) = batch[i];
            if let Some(row) = by_key.get(&keys[i]) {
                results[i] = Some(Ok(Ack {
                    conversation_id: pending.conversation_id,
                    seq: row.seq,
                    client_msg_id: row.client_msg_id,
                    created_at: row.created_at,
                    duplicate: false,
                }));
            }
        }
        created = rows
            .into_iter()
            .map(|row| {
                let audience = audience_of.get(&row.conversation_id.0).cloned().unwrap_or_default();
                (row, audience)
            })
            .collect();
    }
    tx.commit().await?;

    // Later occurrences of an id within the batch share the first one's outcome.
    for (index, key) in keys.iter().enumerate() {
        if results[index].is_none()
            && let Some(&first) = first_of_key.get(key)
        {
            results[index] = Some(match &results[first] {
                Some(Ok(ack)) if batch[first].1 == batch[index].1 => Ok(Ack { duplicate: true, ..ack.clone() }),
                Some(Ok(_)) => Err(WriteError::IdReused),
                Some(Err(WriteError::Database(error))) => Err(WriteError::Database(error.clone())),
                _ => Err(WriteError::Lost),
            });
        }
    }
    let results = results.into_iter().map(|r| r.unwrap_or(Err(WriteError::Lost))).collect();
    Ok(Stored { results, created, webhooks_queued })
}
