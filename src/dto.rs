//! Request and reply shapes shared by the REST handlers (`crate::http`) and the WebSocket
//! protocol (`crate::gateway`), so neither imports the other.

pub mod strict_json;

use serde::{Deserialize, Deserializer, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

use crate::{
    db::{conversations::ListRow, sessions::SessionRow, users::UserRow},
    domain::{MessageKind, MessageView, UserId},
    service::accounts::IssuedTokens,
    writer::Ack,
};

/// The standard error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorObject,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    /// Stable, machine-readable, snake_case.
    #[schema(example = "validation_failed")]
    pub code: String,
    pub message: String,
    /// The offending input field, on validation errors.
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// A user as anyone signed in may see them.
#[derive(Serialize, ToSchema)]
pub struct PublicProfile {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub bio: String,
}

impl From<UserRow> for PublicProfile {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id.0,
            username: user.username,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            bio: user.bio,
        }
    }
}

/// Enough of a user to show them in a list.
#[derive(Serialize, ToSchema)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
}

impl UserSummary {
    pub fn new(id: UserId, username: String, nickname: String, avatar_url: Option<String>) -> Self {
        Self { id: id.0, username, nickname, avatar_url }
    }
}

/// `?cursor=…&limit=…` of every keyset-paginated list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The caller's own profile: the public one plus private fields.
#[derive(Serialize, ToSchema)]
pub struct OwnProfile {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub bio: String,
    /// Private: only the user sees it.
    pub birthday: Option<Date>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<UserRow> for OwnProfile {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id.0,
            username: user.username,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            bio: user.bio,
            birthday: user.birthday,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub user_id: i64,
    pub session_id: uuid::Uuid,
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one. Presenting a used one signs the
    /// session out.
    pub refresh_token: String,
}

impl From<IssuedTokens> for TokenResponse {
    fn from(tokens: IssuedTokens) -> Self {
        Self {
            user_id: tokens.user_id.0,
            session_id: tokens.session_id.0,
            access_token: tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.access_expires_in,
            refresh_token: tokens.refresh_token,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    pub id: uuid::Uuid,
    pub device_name: String,
    pub user_agent: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The session this request was made with.
    pub current: bool,
}

impl SessionResponse {
    pub fn new(row: SessionRow, current: bool) -> Self {
        Self {
            id: row.id.0,
            device_name: row.device_name,
            user_agent: row.user_agent,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            current,
        }
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in
/// partial updates; use with `#[serde(default, deserialize_with = "double_option")]`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

// Conversation and message replies, shared by REST and the WebSocket protocol.

#[derive(Serialize, ToSchema)]
pub struct AckView {
    pub conversation_id: i64,
    pub seq: i64,
    pub client_msg_id: uuid::Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// True when this is the ack of an earlier attempt with the same client_msg_id.
    pub duplicate: bool,
}

impl From<Ack> for AckView {
    fn from(ack: Ack) -> Self {
        Self {
            conversation_id: ack.conversation_id.0,
            seq: ack.seq,
            client_msg_id: ack.client_msg_id,
            created_at: ack.created_at,
            duplicate: ack.duplicate,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LastMessagePreview {
    pub sender_id: i64,
    pub kind: MessageKind,
    /// Up to 200 characters; null for tombstones and media without caption.
    pub body: Option<String>,
    /// `image` and `file`: the upload's file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub deleted: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    pub id: i64,
    /// `direct` or `group`.
    pub kind: String,
    /// Direct conversations: the other user.
    pub peer: Option<UserSummary>,
    pub group_id: Option<i64>,
    pub group_name: Option<String>,
    pub group_avatar_url: Option<String>,
    pub last_seq: i64,
    /// The conversation's current version: a fresh client's `sync` cursor.
    pub version: i64,
    pub last_read_seq: i64,
    /// `last_seq - last_read_seq`: sending moves your marker to your message, so your
    /// own messages never count; tombstones do.
    pub unread: i64,
    pub pinned: bool,
    pub muted: bool,
    pub archived: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub activity_at: OffsetDateTime,
    pub last_message: Option<LastMessagePreview>,
}

impl From<ListRow> for ConversationView {
    fn from(row: ListRow) -> Self {
        let peer = match (row.peer_id, row.peer_username, row.peer_nickname) {
            (Some(id), Some(username), Some(nickname)) => {
                Some(UserSummary::new(id, username, nickname, row.peer_avatar_url))
            }
            _ => None,
        };
        let last_message = match (row.last_sender_id, row.last_kind, row.last_created_at) {
            (Some(sender), Some(kind), Some(created_at)) => Some(LastMessagePreview {
                sender_id: sender.0,
                kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
                body: row.last_body,
                name: row.last_file_name,
                deleted: row.last_deleted.unwrap_or(false),
                created_at,
            }),
            _ => None,
        };
        Self {
            id: row.id.0,
            kind: row.kind,
            peer,
            group_id: row.group_id.map(|g| g.0),
            group_name: row.group_name,
            group_avatar_url: row.group_avatar_url,
            last_seq: row.last_seq,
            version: row.last_version,
            last_read_seq: row.last_read_seq,
            unread: (row.last_seq - row.last_read_seq).max(0),
            pinned: row.pinned,
            muted: row.muted,
            archived: row.archived,
            activity_at: row.activity_at,
            last_message,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConversationPage {
    pub items: Vec<ConversationView>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    /// Oldest first. Recalled/removed messages are tombstones (`deleted: true`), so the
    /// sequence has no gaps.
    pub items: Vec<MessageView>,
    pub last_seq: i64,
    /// The conversation's version when the page was read: a `sync` cursor.
    pub version: i64,
    pub has_older: bool,
    pub has_newer: bool,
}

/// A stored upload. Send it with a message of kind `image` (when `width` is present) or
/// `file`, whose content is `{"upload_id": id}`.
#[derive(Serialize, ToSchema)]
pub struct UploadResponse {
    pub id: uuid::Uuid,
    /// The file's name without any directory part.
    pub name: String,
    /// Sniffed from the bytes; the type the client claimed is ignored.
    pub mime: String,
    pub size: i64,
    /// Present when the bytes decoded as an image (which can then be sent as `image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i32>,
    /// `GET /api/v1/uploads/{id}/thumbnail` answers.
    pub has_thumbnail: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<crate::db::uploads::UploadRow> for UploadResponse {
    fn from(row: crate::db::uploads::UploadRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            mime: row.mime,
            size: row.size,
            width: row.width,
            height: row.height,
            has_thumbnail: row.has_thumbnail,
            created_at: row.created_at,
        }
    }
}
