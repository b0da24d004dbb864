//! The `conversations` and `conversation_members` tables.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

use crate::domain::{ConversationId, GroupId, UserId};

#[derive(Debug, Clone, FromRow)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub kind: String,
    pub group_id: Option<GroupId>,
    pub user_low: Option<UserId>,
    pub user_high: Option<UserId>,
    pub last_seq: i64,
    /// The conversation's change counter (catch-up cursor).
    pub last_version: i64,
    pub last_message_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl ConversationRow {
    /// In a direct conversation, the user who is not `me`.
    pub fn peer_of(&self, me: UserId) -> Option<UserId> {
        match (self.user_low, self.user_high) {
            (Some(low), Some(high)) => Some(if low == me { high } else { low }),
            _ => None,
        }
    }
}

const CONVERSATION_COLUMNS: &str =
    "id, kind, group_id, user_low, user_high, last_seq, last_version, last_message_at, created_at";

pub async fn find(db: impl PgExecutor<'_>, id: ConversationId) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as(&format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The direct conversation of `a` and `b`, created with both as members if missing.
/// Race-free: the pair's unique index decides, and the loser reads the winner's row.
pub async fn get_or_create_direct(db: &mut sqlx::PgConnection, a: UserId, b: UserId) -> sqlx::Result<ConversationId> {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    let created: Option<ConversationId> = sqlx::query_scalar(
        "INSERT INTO conversations (kind, user_low, user_high) VALUES ('direct', $1, $2)
         ON CONFLICT (user_low, user_high) WHERE kind = 'direct' DO NOTHING
         RETURNING id",
    )
    .bind(low)
    .bind(high)
    .fetch_optional(&mut *db)
    .await?;
    let id = match created {
        Some(id) => {
            sqlx::query(
                "INSERT INTO conversation_members (conversation_id, user_id) VALUES ($1, $2), ($1, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(low)
            .bind(high)
            .execute(&mut *db)
            .await?;
            id
        }
        None => {
            sqlx::query_scalar(
                "SELECT id FROM conversations WHERE kind = 'direct' AND user_low = $1 AND user_high = $2",
            )
            .bind(low)
            .bind(high)
            .fetch_one(&mut *db)
            .await?
        }
    };
    Ok(id)
}

pub async fn for_group(db: impl PgExecutor<'_>, group: GroupId) -> sqlx::Result<Option<ConversationId>> {
    sqlx::query_scalar("SELECT id FROM conversations WHERE group_id = $1").bind(group).fetch_optional(db).await
}

#[derive(Debug, Clone, Copy, FromRow)]
pub struct MemberState {
    pub last_read_seq: i64,
    pub visible_from_seq: i64,
    pub pinned: bool,
    pub muted: bool,
    pub archived: bool,
}

pub async fn member_state(
    db: impl PgExecutor<'_>,
    id: ConversationId,
    user: UserId,
) -> sqlx::Result<Option<MemberState>> {
    sqlx::query_as(
        "SELECT last_read_seq, visible_from_seq, pinned, muted, archived
           FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(db)
    .await
}

pub async fn member_ids(db: impl PgExecutor<'_>, id: ConversationId) -> sqlx::Result<Vec<UserId>> {
    sqlx::query_scalar("SELECT user_id FROM conversation_members WHERE conversation_id = $1")
        .bind(id)
        .fetch_all(db)
        .await
}

/// How many of `users` are members of the conversation.
pub async fn count_members_among(db: impl PgExecutor<'_>, id: ConversationId, users: &[UserId]) -> sqlx::Result<i64> {
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    sqlx::query_scalar("SELECT count(*) FROM conversation_members WHERE conversation_id = $1 AND user_id = ANY($2)")
        .bind(id)
        .bind(ids)
        .fetch_one(db)
        .await
}

/// Moves the read marker forward to `seq` (never back, never past the last message);
/// returns the marker after the update.
pub async fn mark_read(
    db: impl PgExecutor<'_>,
    id: ConversationId,
    user: UserId,
    seq: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "UPDATE conversation_members cm
            SET last_read_seq = GREATEST(cm.last_read_seq, LEAST($3, c.last_seq))
           FROM conversations c
          WHERE c.id = cm.conversation_id AND cm.conversation_id = $1 AND cm.user_id = $2
      RETURNING cm.last_read_seq",
    )
    .bind(id)
    .bind(user)
    .bind(seq)
    .fetch_optional(db)
    .await
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SettingsChange {
    pub pinned: Option<bool>,
    pub muted: Option<bool>,
    pub archived: Option<bool>,
}

pub async fn update_settings(
    db: impl PgExecutor<'_>,
    id: ConversationId,
    user: UserId,
    change: SettingsChange,
) -> sqlx::Result<Option<MemberState>> {
    sqlx::query_as(
        "UPDATE conversation_members SET
            pinned = COALESCE($3, pinned), muted = COALESCE($4, muted), archived = COALESCE($5, archived)
          WHERE conversation_id = $1 AND user_id = $2
      RETURNING last_read_seq, visible_from_seq, pinned, muted, archived",
    )
    .bind(id)
    .bind(user)
    .bind(change.pinned)
    .bind(change.muted)
    .bind(change.archived)
    .fetch_optional(db)
    .await
}

/// One row of the conversation list.
#[derive(Debug, Clone, FromRow)]
pub struct ListRow {
    pub id: ConversationId,
    pub kind: String,
    pub group_id: Option<GroupId>,
    pub group_name: Option<String>,
    pub group_avatar_url: Option<String>,
    pub peer_id: Option<UserId>,
    pub peer_username: Option<String>,
    pub peer_nickname: Option<String>,
    pub peer_avatar_url: Option<String>,
    pub last_seq: i64,
    pub last_version: i64,
    pub last_read_seq: i64,
    pub pinned: bool,
    pub muted: bool,
    pub archived: bool,
    pub activity_at: OffsetDateTime,
    pub last_sender_id: Option<UserId>,
    pub last_kind: Option<String>,
    pub last_body: Option<String>,
    pub last_deleted: Option<bool>,
    pub last_created_at: Option<OffsetDateTime>,
}

/// Where the next page of the conversation list starts.
#[derive(Debug, Clone, Copy)]
pub struct ListCursor {
    pub pinned: bool,
    pub activity_at: OffsetDateTime,
    pub id: ConversationId,
}

/// The conversation-list statement: $1 the user, $2 archived or not, $3–$5 the keyset
/// cursor or NULLs, $6 the page size. Public so the benchmark can `EXPLAIN` exactly this.
pub const LIST_SQL: &str = "WITH mine AS (
            SELECT c.id, c.kind, c.group_id, c.user_low, c.user_high, c.last_seq, c.last_version,
                   cm.last_read_seq, cm.pinned, cm.muted, cm.archived,
                   COALESCE(c.last_message_at, c.created_at) AS activity_at
              FROM conversation_members cm
              JOIN conversations c ON c.id = cm.conversation_id
             WHERE cm.user_id = $1 AND cm.archived = $2
         ), page AS (
            SELECT * FROM mine
             WHERE $3::boolean IS NULL
                OR (pinned, activity_at, id) < ($3, $4, $5)
             ORDER BY pinned DESC, activity_at DESC, id DESC
             LIMIT $6
         )
         SELECT p.id, p.kind, p.group_id, g.name AS group_name, g.avatar_url AS group_avatar_url,
                u.id AS peer_id, u.username AS peer_username, u.nickname AS peer_nickname,
                u.avatar_url AS peer_avatar_url,
                p.last_seq, p.last_version, p.last_read_seq, p.pinned, p.muted, p.archived, p.activity_at,
                m.sender_id AS last_sender_id, m.kind AS last_kind,
                left(m.body, 200) AS last_body, (m.deleted_at IS NOT NULL) AS last_deleted,
                m.created_at AS last_created_at
           FROM page p
           LEFT JOIN groups g ON g.id = p.group_id
           LEFT JOIN users u ON u.id = CASE WHEN p.user_low = $1 THEN p.user_high ELSE p.user_low END
           LEFT JOIN messages m ON m.conversation_id = p.id AND m.seq = p.last_seq
          ORDER BY p.pinned DESC, p.activity_at DESC, p.id DESC";

/// The user's conversations, pinned first, then by latest activity. The sort runs over
/// the user's own membership rows only (an index range), and the last message is
/// fetched by primary key for the rows of the page alone.
pub async fn list_for_user(
    db: impl PgExecutor<'_>,
    user: UserId,
    archived: bool,
    after: Option<ListCursor>,
    limit: i64,
) -> sqlx::Result<Vec<ListRow>> {
    sqlx::query_as(LIST_SQL)
        .bind(user)
        .bind(archived)
        .bind(after.map(|c| c.pinned))
        .bind(after.map(|c| c.activity_at))
        .bind(after.map(|c| c.id))
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Everything the send policy and the retry check need, read in one round trip: the
/// conversation, the sender's membership, for direct conversations whether a block
/// stands either way and whether the two are friends, for group conversations the group
/// and the sender's role in it, and an earlier message with the same `client_msg_id`.
#[derive(Debug, Clone, FromRow)]
pub struct SendContext {
    #[sqlx(flatten)]
    pub conversation: ConversationRow,
    pub member_last_read_seq: Option<i64>,
    pub member_visible_from_seq: Option<i64>,
    pub member_pinned: Option<bool>,
    pub member_muted: Option<bool>,
    pub member_archived: Option<bool>,
    pub blocked_either_way: bool,
    pub friends: bool,
    pub group_exists: bool,
    pub group_disbanded_at: Option<OffsetDateTime>,
    pub group_role: Option<String>,
    pub group_muted_until: Option<OffsetDateTime>,
    pub earlier_seq: Option<i64>,
    pub earlier_created_at: Option<OffsetDateTime>,
    pub earlier_request_hash: Option<Vec<u8>>,
}

impl SendContext {
    /// The sender's membership, if they are a member.
    pub fn member(&self) -> Option<MemberState> {
        Some(MemberState {
            last_read_seq: self.member_last_read_seq?,
            visible_from_seq: self.member_visible_from_seq?,
            pinned: self.member_pinned?,
            muted: self.member_muted?,
            archived: self.member_archived?,
        })
    }
}

pub async fn send_context(
    db: impl PgExecutor<'_>,
    id: ConversationId,
    sender: UserId,
    client_msg_id: uuid::Uuid,
) -> sqlx::Result<Option<SendContext>> {
    sqlx::query_as(
        "SELECT c.id, c.kind, c.group_id, c.user_low, c.user_high, c.last_seq, c.last_version, c.last_message_at,
                c.created_at,
                cm.last_read_seq AS member_last_read_seq, cm.visible_from_seq AS member_visible_from_seq,
                cm.pinned AS member_pinned, cm.muted AS member_muted, cm.archived AS member_archived,
                (c.user_low IS NOT NULL AND EXISTS (
                    SELECT 1 FROM blocks b
                     WHERE (b.blocker_id = c.user_low AND b.blocked_id = c.user_high)
                        OR (b.blocker_id = c.user_high AND b.blocked_id = c.user_low))) AS blocked_either_way,
                (c.user_low IS NOT NULL AND EXISTS (
                    SELECT 1 FROM friendships f WHERE f.user_id = c.user_low AND f.friend_id = c.user_high)) AS friends,
                (g.id IS NOT NULL) AS group_exists, g.disbanded_at AS group_disbanded_at,
                gm.role AS group_role, gm.muted_until AS group_muted_until,
                m.seq AS earlier_seq, m.created_at AS earlier_created_at, m.request_hash AS earlier_request_hash
           FROM conversations c
           LEFT JOIN conversation_members cm ON cm.conversation_id = c.id AND cm.user_id = $2
           LEFT JOIN groups g ON g.id = c.group_id
           LEFT JOIN group_members gm ON gm.group_id = c.group_id AND gm.user_id = $2
           LEFT JOIN messages m ON m.conversation_id = c.id AND m.sender_id = $2 AND m.client_msg_id = $3
          WHERE c.id = $1",
    )
    .bind(id)
    .bind(sender)
    .bind(client_msg_id)
    .fetch_optional(db)
    .await
}
