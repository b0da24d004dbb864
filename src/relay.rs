//! The cross-instance relay: every event published on this instance reaches the sockets
//! connected to every other instance of the same database, through PostgreSQL's
//! `LISTEN/NOTIFY` and no broker.
//!
//! - The **notifier** subscribes to the local event bus and sends what it receives, in
//!   publish order, as `NOTIFY goim_events` payloads: as many events per notification as
//!   fit under [`db::relay::MAX_PAYLOAD`], after the transactions that caused them
//!   committed (never inside a writer transaction, whose commit would then serialise on
//!   PostgreSQL's notify lock). A message too large to travel inline travels as a
//!   reference (conversation, seq) that each receiving instance reads once.
//! - The **listener** holds one dedicated connection with `LISTEN goim_events`, skips its
//!   own notifications, and hands the others' events to the local hub, which resolves its
//!   own recipients (one notification serves a whole group).
//!
//! - The same connection listens for revoked sessions (`goim_session_revoked`, sent by a
//!   trigger) and keeps the instance's [`Revocations`] cache: once LISTEN succeeds it
//!   reloads the recent revocations over that connection and makes the cache
//!   authoritative; when the connection drops, the cache stops being authoritative
//!   until the next reload, and requests check their session in the database meanwhile.
//!
//! Nothing is lost silently. When the notifier falls behind the bus, or the listener's
//! connection drops (it reconnects with backoff), the affected sockets are told to
//! `resync` (docs/protocol.md §5): the notifier asks every other instance to do so, the
//! listener tells its own sockets after reconnecting. A crash between a commit and its
//! notification leaves the same kind of gap, which the next event (a version jump) or the
//! client's reconnect reveals.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener},
};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    auth::Revocations,
    db,
    domain::{ConversationId, MessageView, SessionId, UserId},
    events::{Event, EventBus, Published},
    hub::Hub,
    metrics::Metrics,
};

/// Longest wait between attempts to re-establish the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Events larger than this travel by reference (a long message, a long announcement).
const MAX_INLINE_EVENT: usize = 4000;

/// One relayed item: an event inline, a message by reference, or a request to resync.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Item {
    Event {
        recipients: Vec<UserId>,
        event: Event,
    },
    /// `message_created` / `message_edited` too large to inline.
    Message {
        recipients: Vec<UserId>,
        edited: bool,
        conversation_id: ConversationId,
        seq: i64,
    },
    /// Any other event too large to inline, stored in `relay_spill`.
    Spilled {
        recipients: Vec<UserId>,
        id: i64,
    },
    /// The sending instance lost events before relaying them.
    Resync,
}

/// How one published event travels.
enum Body {
    Inline(Event),
    Message { edited: bool, conversation_id: ConversationId, seq: i64 },
    Spilled(i64),
}

/// One notification: the sending instance and its items, in publish order.
#[derive(Debug, Deserialize)]
struct Payload {
    origin: Uuid,
    items: Vec<Item>,
}

/// Whether the listener is connected, for `/readyz`.
#[derive(Debug, Clone)]
pub struct RelayStatus {
    listening: Arc<watch::Sender<bool>>,
}

impl Default for RelayStatus {
    fn default() -> Self {
        Self { listening: Arc::new(watch::channel(false).0) }
    }
}

impl RelayStatus {
    pub fn is_listening(&self) -> bool {
        *self.listening.borrow()
    }

    /// Resolves once the listener is connected (at once if it is).
    pub async fn listening(&self) {
        let mut receiver = self.listening.subscribe();
        let _ = receiver.wait_for(|listening| *listening).await;
    }

    fn set(&self, listening: bool, metrics: &Metrics) {
        self.listening.send_replace(listening);
        metrics.relay_listening.set(i64::from(listening));
    }
}

/// Starts the notifier and the listener (on connections of their own, with the pool's
/// settings); both end when `stop` is cancelled.
pub fn start(
    pool: PgPool,
    events: &EventBus,
    hub: Hub,
    revocations: Revocations,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> RelayStatus {
    let origin = Uuid::new_v4();
    let status = RelayStatus::default();
    let options = (*pool.connect_options()).clone();
    // The notifier has a connection of its own: behind the request path's queries in the
    // shared pool it fell seconds behind the bus under load (measured with W5).
    let notifier_pool = db::relay::own_connection(&options);
    let notifier = notify_loop(origin, notifier_pool, events.subscribe(), metrics.clone(), stop.clone());
    tasks.spawn(tracing::Instrument::instrument(notifier, tracing::info_span!("relay_notifier")));
    let listener = listen_loop(origin, pool, options, hub, revocations, metrics, status.clone(), stop);
    tasks.spawn(tracing::Instrument::instrument(listener, tracing::info_span!("relay_listener")));
    status
}

async fn notify_loop(
    origin: Uuid,
    pool: PgPool,
    mut bus: broadcast::Receiver<Arc<Published>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            received = bus.recv() => received,
        };
        let mut items = Vec::new();
        let mut received = vec![first];
        // Everything already queued goes out with it, a notification's worth at a time.
        while received.len() < 64 {
            match bus.try_recv() {
                Ok(published) => received.push(Ok(published)),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    received.push(Err(broadcast::error::RecvError::Lagged(missed)))
                }
                Err(_) => break,
            }
        }
        for next in received {
            match next {
                Ok(published) => match body_of(&pool, &published.event).await {
                    Ok((body, bytes)) => items.extend(items_of(&published.recipients, body, bytes)),
                    Err(error) => {
                        tracing::warn!(%error, "cannot store a large event for the relay; other instances told to resync");
                        metrics.relay_failures.inc();
                        items.push(Item::Resync);
                    }
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the relay fell behind the event bus; other instances told to resync");
                    items.push(Item::Resync);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
        for payload in payloads(origin, &items) {
            if let Err(error) = db::relay::notify(&pool, &payload).await {
                // The other instances' sockets miss these events; tell them once it works.
                tracing::warn!(%error, "relaying events failed");
                metrics.relay_failures.inc();
                if let Some(resync) = payloads(origin, &[Item::Resync]).first() {
                    let _ = db::relay::notify(&pool, resync).await;
                }
            } else {
                metrics.relay_notifications_sent.inc();
            }
        }
    }
}

/// Sends `events` to every running instance from a process that has no relay of its own
/// (`goim admin` on the command line), under an origin no instance has, so all of them
/// deliver. Each event must be small enough to travel inline (it goes as a `resync`
/// otherwise, which is still correct, only coarser).
pub async fn announce(pool: &PgPool, events: &[Published]) -> sqlx::Result<()> {
    let mut items = Vec::new();
    for published in events {
        let inline = serde_json::to_string(&published.event).is_ok_and(|json| json.len() <= MAX_INLINE_EVENT);
        if inline {
            items.extend(items_of(&published.recipients, Body::Inline(published.event.clone()), MAX_INLINE_EVENT));
        } else {
            items.push(Item::Resync);
        }
    }
    for payload in payloads(Uuid::new_v4(), &items) {
        db::relay::notify(pool, &payload).await?;
    }
    Ok(())
}

/// How `event` travels, and the bytes it takes in an item: inline when small; a large
/// message by reference to its row; anything else large through `relay_spill`.
async fn body_of(pool: &PgPool, event: &Event) -> sqlx::Result<(Body, usize)> {
    let json = serde_json::to_string(event).unwrap_or_default();
    if json.len() <= MAX_INLINE_EVENT {
        return Ok((Body::Inline(event.clone()), json.len()));
    }
    let body = match event {
        Event::MessageCreated { message } | Event::MessageEdited { message } => Body::Message {
            edited: matches!(event, Event::MessageEdited { .. }),
            conversation_id: message.conversation_id,
            seq: message.seq,
        },
        _ => Body::Spilled(db::relay::spill(pool, &json).await?),
    };
    Ok((body, 100))
}

/// The items that carry one published event, split by recipients when a huge group's
/// list would not fit one notification.
fn items_of(recipients: &[UserId], body: Body, event_bytes: usize) -> Vec<Item> {
    let make = |recipients: Vec<UserId>| match &body {
        Body::Inline(event) => Item::Event { recipients, event: event.clone() },
        Body::Message { edited, conversation_id, seq } => {
            Item::Message { recipients, edited: *edited, conversation_id: *conversation_id, seq: *seq }
        }
        Body::Spilled(id) => Item::Spilled { recipients, id: *id },
    };
    let budget = db::relay::MAX_PAYLOAD.saturating_sub(event_bytes.min(MAX_INLINE_EVENT) + 200);
    let mut items = Vec::new();
    let mut chunk = Vec::new();
    let mut chunk_bytes = 0;
    for &recipient in recipients {
        let bytes = recipient.0.to_string().len() + 1;
        if chunk_bytes + bytes > budget && !chunk.is_empty() {
            items.push(make(std::mem::take(&mut chunk)));
            chunk_bytes = 0;
        }
        chunk.push(recipient);
        chunk_bytes += bytes;
    }
    if !chunk.is_empty() || items.is_empty() {
        items.push(make(chunk));
    }
    items
}

/// Packs items, in order, into as few payloads as fit under the limit.
fn payloads(origin: Uuid, items: &[Item]) -> Vec<String> {
    let head = format!(r#"{{"origin":"{origin}","items":["#);
    let mut out = Vec::new();
    let mut current = head.clone();
    let mut count = 0;
    for item in items {
        let Ok(json) = serde_json::to_string(item) else { continue };
        if count > 0 && current.len() + json.len() + 3 > db::relay::MAX_PAYLOAD {
            current.push_str("]}");
            out.push(std::mem::replace(&mut current, head.clone()));
            count = 0;
        }
        if count > 0 {
            current.push(',');
        }
        current.push_str(&json);
        count += 1;
    }
    if count > 0 {
        current.push_str("]}");
        out.push(current);
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn listen_loop(
    origin: Uuid,
    pool: PgPool,
    options: PgConnectOptions,
    hub: Hub,
    revocations: Revocations,
    metrics: Arc<Metrics>,
    status: RelayStatus,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        let listener = tokio::select! {
            _ = stop.cancelled() => return,
            listener = listen_and_load(&options, &revocations) => listener,
        };
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, ?backoff, "cannot listen for other instances' events; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        listener.eager_reconnect(false);
        status.set(true, &metrics);
        backoff = Duration::from_millis(100);
        if connected_before {
            // Whatever was notified while we were away is gone: local sockets catch up.
            tracing::info!("listening for other instances' events again; local sockets told to resync");
            hub.deliver_to_all(&crate::hub::event_frame(&Event::resync("relay_reconnected")));
        }
        connected_before = true;
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) if notification.channel() == db::relay::SESSION_CHANNEL => {
                    match notification.payload().parse::<Uuid>() {
                        Ok(session) => revocations.record([SessionId(session)], OffsetDateTime::now_utc()),
                        Err(error) => tracing::warn!(%error, "ignoring a session revocation that does not parse"),
                    }
                }
                Ok(Some(notification)) => {
                    metrics.relay_notifications_received.inc();
                    receive(origin, &pool, &hub, notification.payload()).await;
                }
                Ok(None) | Err(_) => {
                    revocations.lost();
                    tracing::warn!("lost the connection that listens for other instances' events; reconnecting");
                    metrics.relay_reconnects.inc();
                    status.set(false, &metrics);
                    break;
                }
            }
        }
    }
}

/// Listens, then fills the revocation cache with what was revoked within its window and
/// makes it authoritative. The load runs over the listening connection itself, after
/// LISTEN: a revocation committed before it is in it, one committed after is notified,
/// and a busy application pool cannot delay it.
async fn listen_and_load(options: &PgConnectOptions, revocations: &Revocations) -> sqlx::Result<PgListener> {
    let mut listener = db::relay::listen(options).await?;
    let sessions = db::sessions::recently_revoked(&mut listener, revocations.window()).await?;
    let deleted_users = db::sessions::recently_deleted_users(&mut listener, revocations.window()).await?;
    revocations.loaded(&sessions, &deleted_users, OffsetDateTime::now_utc());
    Ok(listener)
}

async fn receive(origin: Uuid, pool: &PgPool, hub: &Hub, payload: &str) {
    let payload: Payload = match serde_json::from_str(payload) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::warn!(%error, "ignoring a relayed notification that does not parse");
            return;
        }
    };
    if payload.origin == origin {
        return;
    }
    for item in payload.items {
        match item {
            Item::Event { recipients, event } => hub.dispatch(&recipients, &event),
            Item::Message { recipients, edited, conversation_id, seq } => {
                match db::messages::load(pool, conversation_id, seq).await {
                    Ok(Some(row)) => {
                        let message = Box::new(MessageView::from(row));
                        let event =
                            if edited { Event::MessageEdited { message } } else { Event::MessageCreated { message } };
                        hub.dispatch(&recipients, &event);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "cannot read a relayed message; its recipients told to resync");
                        hub.deliver(&recipients, &crate::hub::event_frame(&Event::resync("relay_read_failed")));
                    }
                }
            }
            Item::Spilled { recipients, id } => match db::relay::unspill(pool, id).await {
                Ok(Some(json)) => match serde_json::from_str::<Event>(&json) {
                    Ok(event) => hub.dispatch(&recipients, &event),
                    Err(error) => tracing::warn!(%error, "ignoring a spilled event that does not parse"),
                },
                Ok(None) => {
                    tracing::warn!(id, "a spilled event is gone; its recipients told to resync");
                    hub.deliver(&recipients, &crate::hub::event_frame(&Event::resync("relay_read_failed")));
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read a spilled event; its recipients told to resync");
                    hub.deliver(&recipients, &crate::hub::event_frame(&Event::resync("relay_read_failed")));
                }
            },
            Item::Resync => hub.deliver_to_all(&crate::hub::event_frame(&Event::resync("events_dropped"))),
        }
    }
}
