//! Domain events, published after the transaction that caused them commits.
//!
//! Services call [`EventBus::publish`] once their transaction has committed, naming the
//! users who should hear of it. The real-time gateway subscribes and pushes events to
//! those users' devices; the cross-instance fan-out will subscribe the same way. The bus
//! is a bounded broadcast channel: a subscriber that falls behind loses the oldest
//! events (and is told so by `RecvError::Lagged`) instead of growing memory. Losing
//! events is never silent: the gateway then sends every socket [`Event::Resync`], and
//! clients catch up with `sync` (docs/protocol.md §5).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::domain::{ConversationId, GroupId, MessageView, Role, SessionId, UserId};

/// How many events a slow subscriber may fall behind before it loses some, by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// What happened, in the shape clients receive it (and other instances, through the
/// relay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    FriendRequestReceived {
        request_id: i64,
        from_user_id: UserId,
        note: String,
    },
    FriendRequestAccepted {
        request_id: i64,
        by_user_id: UserId,
    },
    FriendRequestDeclined {
        request_id: i64,
    },
    FriendRequestCancelled {
        request_id: i64,
    },
    FriendAdded {
        user_id: UserId,
    },
    FriendRemoved {
        user_id: UserId,
    },
    GroupMemberJoined {
        group_id: GroupId,
        user_id: UserId,
    },
    GroupMemberLeft {
        group_id: GroupId,
        user_id: UserId,
    },
    GroupMemberKicked {
        group_id: GroupId,
        user_id: UserId,
        by_user_id: UserId,
    },
    GroupRoleChanged {
        group_id: GroupId,
        user_id: UserId,
        role: Role,
    },
    GroupMemberMuted {
        group_id: GroupId,
        user_id: UserId,
        muted_until: Option<i64>,
    },
    GroupUpdated {
        group_id: GroupId,
    },
    GroupAnnouncementUpdated {
        group_id: GroupId,
        announcement: String,
        by_user_id: UserId,
    },
    GroupDisbanded {
        group_id: GroupId,
    },
    GroupJoinRequested {
        group_id: GroupId,
        request_id: i64,
        user_id: UserId,
    },
    GroupJoinRequestDecided {
        group_id: GroupId,
        request_id: i64,
        approved: bool,
    },
    GroupInvitationReceived {
        group_id: GroupId,
        invitation_id: i64,
        inviter_id: UserId,
    },
    MessageCreated {
        message: Box<MessageView>,
    },
    MessageEdited {
        message: Box<MessageView>,
    },
    MessageDeleted {
        conversation_id: ConversationId,
        seq: i64,
        version: i64,
        by_user_id: UserId,
    },
    ReactionAdded {
        conversation_id: ConversationId,
        seq: i64,
        version: i64,
        user_id: UserId,
        emoji: String,
    },
    ReactionRemoved {
        conversation_id: ConversationId,
        seq: i64,
        version: i64,
        user_id: UserId,
        emoji: String,
    },
    /// A member's read marker moved (read receipts, and the reader's other devices).
    ReadMarkerMoved {
        conversation_id: ConversationId,
        user_id: UserId,
        last_read_seq: i64,
    },
    /// Devices of a member confirmed receiving messages up to `last_delivered_seq`.
    DeliveryReceipt {
        conversation_id: ConversationId,
        user_id: UserId,
        last_delivered_seq: i64,
    },
    /// Ephemeral; expires after `expires_in_ms` unless renewed. Never stored.
    Typing {
        conversation_id: ConversationId,
        user_id: UserId,
        typing: bool,
        expires_in_ms: u64,
    },
    Presence {
        user_id: UserId,
        online: bool,
        #[serde(with = "time::serde::rfc3339::option")]
        last_seen_at: Option<time::OffsetDateTime>,
    },
    /// The server could not deliver some events to this socket (its fan-out fell
    /// behind); the client must run `sync` from its cursors. Sent by the gateway, never
    /// published on the bus.
    Resync {
        reason: String,
    },
    /// Internal, never sent to a socket: the session was revoked (logout, refresh-token
    /// reuse, password change, revoked by the user), so its sockets close with 4001 on
    /// every instance.
    SessionRevoked {
        user_id: UserId,
        session_id: SessionId,
    },
    /// Internal, published with no recipients: a peer instance died, and events it
    /// committed but never relayed may be missing anywhere, so every socket on every
    /// instance is told to resync.
    InstanceLost {
        instance_id: uuid::Uuid,
    },
}

impl Event {
    /// The resync event for `reason`.
    pub fn resync(reason: &str) -> Self {
        Self::Resync { reason: reason.to_owned() }
    }
}

/// An event and the users it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub recipients: Vec<UserId>,
    pub event: Event,
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Published>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self { sender: broadcast::channel(capacity.max(1)).0 }
    }

    /// Call only after the change is committed. Having no subscriber is fine.
    pub fn publish(&self, recipients: Vec<UserId>, event: Event) {
        let _ = self.sender.send(Arc::new(Published { recipients, event }));
    }

    /// Publishes events an operation collected, in order.
    pub fn publish_all(&self, events: Vec<Published>) {
        for Published { recipients, event } in events {
            self.publish(recipients, event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }
}
