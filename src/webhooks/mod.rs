//! Webhooks for offline delivery: when a message is stored for a member with no socket
//! on any live instance, each configured endpoint gets a signed POST about it
//! (docs/operations.md, "Webhooks").
//!
//! Two halves meet in the `webhook_deliveries` outbox ([`crate::db::webhooks`]):
//! - [`Outbox`], held by the message writer, queues the events of a batch **in the
//!   batch's own transaction**: an event exists exactly when its message does, and a
//!   restart between commit and delivery loses nothing.
//! - [`worker::Worker::run`], one per instance, claims due rows with a lease (`SKIP LOCKED`, so
//!   instances share the work without waiting on each other), posts them, and deletes,
//!   reschedules (exponential backoff with jitter) or dead-letters each.
//!
//! Delivery is at least once: a crash after a POST and before its row is deleted sends
//! it again, with the same event id. With no URLs configured nothing here runs, and
//! the writer's transaction has no extra statement.

pub mod payload;
pub mod signature;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{
    config::{WebhookConfig, WebhookPreview},
    db::{self, messages::MessageRow, webhooks::NewEvents},
};

/// The writer's side: which endpoints to queue for, what to put in a preview, and the
/// worker to wake after a commit that queued something.
#[derive(Clone)]
pub struct Outbox {
    endpoints: Arc<[String]>,
    preview: WebhookPreview,
    wake: Arc<Notify>,
}

impl Outbox {
    /// `None` when no URL is configured: webhooks are off.
    pub fn from_config(config: &WebhookConfig) -> Option<Self> {
        if config.webhook_urls.is_empty() {
            return None;
        }
        Some(Self {
            endpoints: config.webhook_urls.iter().map(|url| url.as_str().to_owned()).collect(),
            preview: config.webhook_preview,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Queues the events of newly stored `messages` in the writer's transaction;
    /// returns how many deliveries were queued.
    pub async fn enqueue(&self, tx: &mut sqlx::PgConnection, messages: &[MessageRow]) -> sqlx::Result<u64> {
        let with_text = self.preview == WebhookPreview::Text;
        let mut events = NewEvents::default();
        for message in messages {
            events.conversation_ids.push(message.conversation_id.0);
            events.seqs.push(message.seq);
            events.sender_ids.push(message.sender_id.0);
            events.kinds.push(message.kind.clone());
            events.previews.push(message.body.as_deref().filter(|_| with_text).map(payload::preview));
            events.created_at.push(message.created_at);
        }
        db::webhooks::enqueue(tx, &events, &self.endpoints, with_text).await
    }

    /// Tells the worker that deliveries were committed, so it need not wait for its
    /// next poll. A wake-up with nobody waiting is kept for the next wait.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
