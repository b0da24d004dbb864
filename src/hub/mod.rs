//! Who is connected where, and fan-out of events to their sockets.
//!
//! The hub knows nothing of actix: a connection is a bounded queue of ready-to-send
//! text frames plus a kill switch. [`Hub::register`] returns a [`Registration`] that
//! unregisters itself on drop. [`run_fanout`] subscribes to the domain event bus,
//! serialises each event **once**, and offers the frame to every connection of every
//! recipient with `try_send`: a full queue means the client stopped reading, and that
//! connection is killed (closed 1013) instead of being waited for — one slow socket
//! never delays anyone else. The cross-instance fan-out plugs in as another publisher
//! into the same event bus.

pub mod presence;

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{SessionId, UserId},
    events::{Event, EventBus, Published},
    metrics::Metrics,
};

/// A frame ready to be written to a socket.
pub type Frame = Arc<str>;

struct Connection {
    id: u64,
    session: SessionId,
    outbound: mpsc::Sender<Frame>,
    kill: KillSwitch,
}

/// Why a connection was told to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// Its outbound queue was full: the client stopped reading.
    SlowConsumer,
    /// Its login session was revoked (logout, theft, password change).
    SessionRevoked,
    /// A newer socket of the same login session took its place at the per-user limit
    /// (most often this one's network died without a reset).
    Replaced,
    /// Its connection broke under a write: the peer is gone.
    ConnectionLost,
}

/// Tells a connection to go, and why. The first reason given is the one that counts.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch {
    token: CancellationToken,
    reason: Arc<OnceLock<KillReason>>,
}

impl KillSwitch {
    pub fn kill(&self, reason: KillReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn is_killed(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why the connection was killed, if it was.
    pub fn reason(&self) -> Option<KillReason> {
        self.reason.get().copied()
    }

    /// Resolves once the connection is killed, with the reason.
    pub async fn killed(&self) -> KillReason {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or(KillReason::SlowConsumer)
    }
}

struct Inner {
    connections: RwLock<HashMap<UserId, Vec<Connection>>>,
    next_id: AtomicU64,
    presence: presence::Presence,
    metrics: Arc<Metrics>,
}

/// A cloneable front to the connection registry.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// The user has reached the per-user connection limit.
#[derive(Debug, thiserror::Error)]
#[error("too many connections for this user")]
pub struct TooManyConnections;

/// A connection's place in the hub; dropping it unregisters the connection.
pub struct Registration {
    hub: Hub,
    user: UserId,
    id: u64,
    pub kill: KillSwitch,
    pub outbound: mpsc::Sender<Frame>,
}

impl Registration {
    /// The connection's id, unique within this instance (for logs).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.user, self.id);
    }
}

impl Hub {
    pub fn new(presence: presence::Presence, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                connections: RwLock::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                presence,
                metrics,
            }),
        }
    }

    /// Adds a connection of `user`; returns its registration and the queue to drain.
    pub fn register(
        &self,
        user: UserId,
        session: SessionId,
        max_per_user: usize,
        queue: usize,
    ) -> Result<(Registration, mpsc::Receiver<Frame>), TooManyConnections> {
        let (outbound, receiver) = mpsc::channel(queue.max(1));
        let kill = KillSwitch::default();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut connections = self.inner.connections.write().unwrap_or_else(|p| p.into_inner());
            let mine = connections.entry(user).or_default();
            // Connections already told to go are on their way out and do not count.
            if mine.iter().filter(|c| !c.kill.is_killed()).count() >= max_per_user {
                // At the limit, a new socket of a session that has one replaces the
                // oldest: the client is reconnecting, so that one is most likely dead.
                // Another session's socket is refused.
                let oldest = mine.iter().find(|c| c.session == session && !c.kill.is_killed());
                match oldest {
                    Some(oldest) => oldest.kill.kill(KillReason::Replaced),
                    None => return Err(TooManyConnections),
                }
            }
            mine.push(Connection { id, session, outbound: outbound.clone(), kill: kill.clone() });
            mine.len() == 1
        };
        self.inner.metrics.ws_connections.inc();
        if first {
            self.inner.presence.connected(user);
        }
        Ok((Registration { hub: self.clone(), user, id, kill, outbound }, receiver))
    }

    fn unregister(&self, user: UserId, id: u64) {
        let last = {
            let mut connections = self.inner.connections.write().unwrap_or_else(|p| p.into_inner());
            let Some(mine) = connections.get_mut(&user) else {
                return;
            };
            mine.retain(|c| c.id != id);
            let empty = mine.is_empty();
            if empty {
                connections.remove(&user);
            }
            empty
        };
        self.inner.metrics.ws_connections.dec();
        if last {
            self.inner.presence.disconnected(user);
        }
    }

    /// Closes every socket of a revoked session (4001 is sent by the session loop).
    pub fn kill_session(&self, user: UserId, session: SessionId) {
        let connections = self.inner.connections.read().unwrap_or_else(|p| p.into_inner());
        for connection in connections.get(&user).into_iter().flatten().filter(|c| c.session == session) {
            connection.kill.kill(KillReason::SessionRevoked);
        }
    }

    /// Offers `frame` to every socket of every recipient without waiting.
    pub fn deliver(&self, recipients: &[UserId], frame: &Frame) {
        let connections = self.inner.connections.read().unwrap_or_else(|p| p.into_inner());
        for user in recipients {
            for connection in connections.get(user).into_iter().flatten() {
                self.offer(connection, frame);
            }
        }
    }

    /// Offers `frame` to every socket on this instance.
    pub fn deliver_to_all(&self, frame: &Frame) {
        let connections = self.inner.connections.read().unwrap_or_else(|p| p.into_inner());
        for connection in connections.values().flatten() {
            self.offer(connection, frame);
        }
    }

    fn offer(&self, connection: &Connection, frame: &Frame) {
        match connection.outbound.try_send(frame.clone()) {
            Ok(()) => {
                self.inner.metrics.ws_frames_out.inc();
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The client stopped reading: drop it rather than buffer more (it
                // catches up with `sync` when it reconnects). The session counts the
                // disconnect, once.
                connection.kill.kill(KillReason::SlowConsumer);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Serialises an event as the frame clients receive.
/// Written straight from the event: through a `Value` it would be a tree of maps,
/// allocated and sorted only to be written out.
pub fn event_frame(event: &Event) -> Frame {
    #[derive(serde::Serialize)]
    struct EventFrame<'a> {
        r#type: &'static str,
        event: &'a Event,
    }
    Arc::from(serde_json::to_string(&EventFrame { r#type: "event", event }).unwrap_or_default())
}

/// Pushes every published event to the connected recipients until `stop`.
pub async fn run_fanout(hub: Hub, events: EventBus, stop: CancellationToken) {
    let mut receiver = events.subscribe();
    loop {
        let published: Arc<Published> = tokio::select! {
            _ = stop.cancelled() => return,
            received = receiver.recv() => match received {
                Ok(published) => published,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Whose events were lost is unknown, so every socket is told to
                    // catch up with `sync`; a log line alone would leave gaps forever.
                    tracing::warn!(missed, "event fan-out fell behind; every socket told to resync");
                    hub.inner.metrics.fanout_dropped.inc_by(missed);
                    hub.deliver_to_all(&event_frame(&Event::resync("events_dropped")));
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        hub.dispatch(&published.recipients, &published.event);
    }
}

impl Hub {
    /// Acts on one event for this instance's sockets: a revoked session's sockets are
    /// closed; anything else is serialised once and offered to the recipients' sockets.
    /// Local events and those relayed from other instances both come through here.
    pub fn dispatch(&self, recipients: &[UserId], event: &Event) {
        match event {
            Event::SessionRevoked { user_id, session_id } => self.kill_session(*user_id, *session_id),
            Event::InstanceLost { .. } => self.deliver_to_all(&event_frame(&Event::resync("instance_lost"))),
            Event::MessageCreated { message } => {
                let age = time::OffsetDateTime::now_utc() - message.created_at;
                self.inner.metrics.delivery_latency.observe(age.as_seconds_f64().max(0.0));
                self.deliver(recipients, &event_frame(event));
            }
            _ => self.deliver(recipients, &event_frame(event)),
        }
    }
}
