//! The `conversations` and `conversation_members` tables.

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{ConversationId, GroupId, UserId};

#[derive(Debug, Clone)]
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

pub async fn find(db: impl PgExecutor<'_>, id: ConversationId) -> sqlx::Result<Option<ConversationRow>> {
    sqlx::query_as!(
        ConversationRow,
        r#"SELECT id AS "id: ConversationId", kind, group_id AS "group_id: GroupId", user_low AS "user_low: UserId", user_high AS "user_high: UserId", last_seq, last_version, last_message_at, created_at
             FROM conversations WHERE id = $1"#,
        id.0
    )
    .fetch_optional(db)
    .await
}

/// The direct conversation of `a` and `b`, created with both as members if missing.
/// Race-free: the pair's unique index decides, and the loser reads the winner's row.
pub async fn get_or_create_direct(db: &mut sqlx::PgConnection, a: UserId, b: UserId) -> sqlx::Result<ConversationId> {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    let created = sqlx::query_scalar!(
        r#"INSERT INTO conversations (kind, user_low, user_high) VALUES ('direct', $1, $2)
           ON CONFLICT (user_low, user_high) WHERE kind = 'direct' DO NOTHING
           RETURNING id AS "id: ConversationId""#,
        low.0,
        high.0
    )
    .fetch_optional(&mut *db)
    .await?;
    let id = match created {
        Some(id) => {
            sqlx::query!(
                "INSERT INTO conversation_members (conversation_id, user_id) VALUES ($1, $2), ($1, $3)
                 ON CONFLICT DO NOTHING",
                id.0,
                low.0,
                high.0
            )
            .execute(&mut *db)
            .await?;
            id
        }
        None => {
            sqlx::query_scalar!(
                r#"SELECT id AS "id: ConversationId" FROM conversations
                    WHERE kind = 'direct' AND user_low = $1 AND user_high = $2"#,
                low.0,
                high.0
            )
            .fetch_one(&mut *db)
            .await?
        }
    };
    Ok(id)
}

pub async fn for_group(db: impl PgExecutor<'_>, group: GroupId) -> sqlx::Result<Option<ConversationId>> {
    sqlx::query_scalar!(r#"SELECT id AS "id: ConversationId" FROM conversations WHERE group_id = $1"#, group.0)
        .fetch_optional(db)
        .await
}

#[derive(Debug, Clone, Copy)]
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
    sqlx::query_as!(
        MemberState,
        "SELECT last_read_seq, visible_from_seq, pinned, muted, archived
           FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
        id.0,
        user.0
    )
    .fetch_optional(db)
    .await
}

pub async fn member_ids(db: impl PgExecutor<'_>, id: ConversationId) -> sqlx::Result<Vec<UserId>> {
    sqlx::query_scalar!(
        r#"SELECT user_id AS "user_id: UserId" FROM conversation_members WHERE conversation_id = $1"#,
        id.0
    )
    .fetch_all(db)
    .await
}

/// The members of each of `ids`, as (conversation, member) pairs.
pub async fn members_of(
    db: impl PgExecutor<'_>,
    ids: &[ConversationId],
) -> sqlx::Result<Vec<(ConversationId, UserId)>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query!(
        r#"SELECT conversation_id AS "conversation_id: ConversationId", user_id AS "user_id: UserId"
             FROM conversation_members WHERE conversation_id = ANY($1)"#,
        &ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.conversation_id, row.user_id)).collect())
}

/// How many of `users` are members of the conversation.
pub async fn count_members_among(db: impl PgExecutor<'_>, id: ConversationId, users: &[UserId]) -> sqlx::Result<i64> {
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM conversation_members WHERE conversation_id = $1 AND user_id = ANY($2)"#,
        id.0,
        &ids
    )
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
    sqlx::query_scalar!(
        "UPDATE conversation_members cm
            SET last_read_seq = GREATEST(cm.last_read_seq, LEAST($3, c.last_seq))
           FROM conversations c
          WHERE c.id = cm.conversation_id AND cm.conversation_id = $1 AND cm.user_id = $2
      RETURNING cm.last_read_seq",
        id.0,
        user.0,
        seq
    )
    .fetch_optional(db)
    .await
}

/// Moves the delivery marker forward to `seq` (never back, never past the last message);
/// returns the marker after the update and whether it moved.
pub async fn mark_delivered(
    db: impl PgExecutor<'_>,
    id: ConversationId,
    user: UserId,
    seq: i64,
) -> sqlx::Result<Option<(i64, bool)>> {
    let moved = sqlx::query!(
        r#"WITH before AS (
              SELECT last_delivered_seq FROM conversation_members WHERE conversation_id = $1 AND user_id = $2
           )
           UPDATE conversation_members cm
              SET last_delivered_seq = GREATEST(cm.last_delivered_seq, LEAST($3, c.last_seq))
             FROM conversations c, before
            WHERE c.id = cm.conversation_id AND cm.conversation_id = $1 AND cm.user_id = $2
        RETURNING cm.last_delivered_seq, cm.last_delivered_seq <> before.last_delivered_seq AS "changed!""#,
        id.0,
        user.0,
        seq
    )
    .fetch_optional(db)
    .await?;
    Ok(moved.map(|row| (row.last_delivered_seq, row.changed)))
}

/// One member's read and delivery markers.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub user_id: UserId,
    pub last_read_seq: i64,
    pub last_delivered_seq: i64,
}

/// Every member's read and delivery markers, by user id.
pub async fn receipts(db: impl PgExecutor<'_>, id: ConversationId) -> sqlx::Result<Vec<Receipt>> {
    sqlx::query_as!(
        Receipt,
        r#"SELECT user_id AS "user_id: UserId", last_read_seq, last_delivered_seq FROM conversation_members
            WHERE conversation_id = $1 ORDER BY user_id"#,
        id.0
    )
    .fetch_all(db)
    .await
}

/// Where one of a user's conversations stands, for catch-up.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    pub id: ConversationId,
    pub last_version: i64,
    pub last_seq: i64,
    pub last_read_seq: i64,
    pub visible_from_seq: i64,
}

/// Every conversation of `user` that has had any change, by id.
pub async fn heads(db: impl PgExecutor<'_>, user: UserId) -> sqlx::Result<Vec<Head>> {
    sqlx::query_as!(
        Head,
        r#"SELECT c.id AS "id: ConversationId", c.last_version, c.last_seq, cm.last_read_seq, cm.visible_from_seq
             FROM conversation_members cm JOIN conversations c ON c.id = cm.conversation_id
            WHERE cm.user_id = $1 AND c.last_version > 0
            ORDER BY c.id"#,
        user.0
    )
    .fetch_all(db)
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
    sqlx::query_as!(
        MemberState,
        "UPDATE conversation_members SET
            pinned = COALESCE($3, pinned), muted = COALESCE($4, muted), archived = COALESCE($5, archived)
          WHERE conversation_id = $1 AND user_id = $2
      RETURNING last_read_seq, visible_from_seq, pinned, muted, archived",
        id.0,
        user.0,
        change.pinned,
        change.muted,
        change.archived
    )
    .fetch_optional(db)
    .await
}

/// One row of the conversation list.
#[derive(Debug, Clone)]
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
    pub last_file_name: Option<String>,
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
pub const LIST_SQL: &str = include_str!("sql/conversation_list.sql");

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
    sqlx::query_file_as!(
        ListRow,
        "src/db/sql/conversation_list.sql",
        user.0,
        archived,
        after.map(|c| c.pinned),
        after.map(|c| c.activity_at),
        after.map(|c| c.id.0),
        limit
    )
    .fetch_all(db)
    .await
}

/// Everything the conversation policy needs, read in one round trip: the conversation,
/// the user's membership, for direct conversations whether a block stands either way,
/// whether the two are friends and whether the other deleted their account, for group
/// conversations the group and the user's role in it; for a send, also an earlier
/// message with the same `client_msg_id` and how many of the mentioned users are members.
#[derive(Debug, Clone)]
pub struct ConversationContext {
    pub conversation: ConversationRow,
    pub member_last_read_seq: Option<i64>,
    pub member_visible_from_seq: Option<i64>,
    pub member_pinned: Option<bool>,
    pub member_muted: Option<bool>,
    pub member_archived: Option<bool>,
    pub blocked_either_way: bool,
    pub friends: bool,
    /// A direct conversation whose other side deleted their account.
    pub peer_deleted: bool,
    pub group_exists: bool,
    pub group_disbanded_at: Option<OffsetDateTime>,
    pub group_role: Option<String>,
    pub group_muted_until: Option<OffsetDateTime>,
    pub earlier_seq: Option<i64>,
    pub earlier_created_at: Option<OffsetDateTime>,
    pub earlier_request_hash: Option<Vec<u8>>,
    /// How many of the users a message mentions are members (0 when it mentions nobody).
    pub mentioned_members: i64,
}

impl ConversationContext {
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

/// What both context queries return, one row per (conversation, user) asked about; the
/// conversation's columns are NULL when it does not exist.
struct ContextRow {
    ord: i64,
    id: Option<ConversationId>,
    kind: Option<String>,
    group_id: Option<GroupId>,
    user_low: Option<UserId>,
    user_high: Option<UserId>,
    last_seq: Option<i64>,
    last_version: Option<i64>,
    last_message_at: Option<OffsetDateTime>,
    created_at: Option<OffsetDateTime>,
    member_last_read_seq: Option<i64>,
    member_visible_from_seq: Option<i64>,
    member_pinned: Option<bool>,
    member_muted: Option<bool>,
    member_archived: Option<bool>,
    blocked_either_way: bool,
    friends: bool,
    peer_deleted: bool,
    group_exists: bool,
    group_disbanded_at: Option<OffsetDateTime>,
    group_role: Option<String>,
    group_muted_until: Option<OffsetDateTime>,
    earlier_seq: Option<i64>,
    earlier_created_at: Option<OffsetDateTime>,
    earlier_request_hash: Option<Vec<u8>>,
    mentioned_members: i64,
}

impl ContextRow {
    fn into_context(self) -> Option<ConversationContext> {
        Some(ConversationContext {
            conversation: ConversationRow {
                id: self.id?,
                kind: self.kind?,
                group_id: self.group_id,
                user_low: self.user_low,
                user_high: self.user_high,
                last_seq: self.last_seq?,
                last_version: self.last_version?,
                last_message_at: self.last_message_at,
                created_at: self.created_at?,
            },
            member_last_read_seq: self.member_last_read_seq,
            member_visible_from_seq: self.member_visible_from_seq,
            member_pinned: self.member_pinned,
            member_muted: self.member_muted,
            member_archived: self.member_archived,
            blocked_either_way: self.blocked_either_way,
            friends: self.friends,
            peer_deleted: self.peer_deleted,
            group_exists: self.group_exists,
            group_disbanded_at: self.group_disbanded_at,
            group_role: self.group_role,
            group_muted_until: self.group_muted_until,
            earlier_seq: self.earlier_seq,
            earlier_created_at: self.earlier_created_at,
            earlier_request_hash: self.earlier_request_hash,
            mentioned_members: self.mentioned_members,
        })
    }
}

/// The context query over a source `k` (`ord`, `conversation_id`, `sender_id`,
/// `client_msg_id`, `mentioned`) already joined to the sender's membership `cm`: the
/// single lookup and the writer's batch differ only there.
///
/// Blocks, friendship and the peer's deletion are lateral lookups by key rather than
/// `EXISTS`: PostgreSQL may run an `EXISTS` as one hashed pass over the whole table, the
/// cheapest plan while the table is small, and the writer keeps its first plan (see
/// `crate::writer`) while the table grows.
macro_rules! context_rows {
    ($source:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            ContextRow,
            r#"SELECT k.ord AS "ord!", c.id AS "id?: ConversationId", c.kind AS "kind?",
                      c.group_id AS "group_id?: GroupId", c.user_low AS "user_low?: UserId",
                      c.user_high AS "user_high?: UserId", c.last_seq AS "last_seq?", c.last_version AS "last_version?",
                      c.last_message_at AS "last_message_at?", c.created_at AS "created_at?",
                      cm.last_read_seq AS "member_last_read_seq?", cm.visible_from_seq AS "member_visible_from_seq?",
                      cm.pinned AS "member_pinned?", cm.muted AS "member_muted?", cm.archived AS "member_archived?",
                      (blocked.yes IS NOT NULL) AS "blocked_either_way!", (friends.yes IS NOT NULL) AS "friends!",
                      COALESCE(peer.deleted, false) AS "peer_deleted!",
                      (g.id IS NOT NULL) AS "group_exists!", g.disbanded_at AS "group_disbanded_at?",
                      gm.role AS "group_role?", gm.muted_until AS "group_muted_until?",
                      m.seq AS "earlier_seq?", m.created_at AS "earlier_created_at?",
                      m.request_hash AS "earlier_request_hash?", k.mentioned AS "mentioned_members!"
                 FROM "# + $source + r#"
                 LEFT JOIN conversations c ON c.id = k.conversation_id
                 LEFT JOIN LATERAL (
                     SELECT true AS yes FROM blocks b WHERE b.blocker_id = c.user_low AND b.blocked_id = c.user_high
                     UNION ALL
                     SELECT true FROM blocks b WHERE b.blocker_id = c.user_high AND b.blocked_id = c.user_low
                     LIMIT 1) blocked ON true
                 LEFT JOIN LATERAL (
                     SELECT true AS yes FROM friendships f WHERE f.user_id = c.user_low AND f.friend_id = c.user_high
                     ) friends ON true
                 LEFT JOIN LATERAL (
                     SELECT pu.deleted_at IS NOT NULL AS deleted FROM users pu
                      WHERE pu.id = CASE WHEN c.user_low = k.sender_id THEN c.user_high ELSE c.user_low END
                     ) peer ON true
                 LEFT JOIN groups g ON g.id = c.group_id
                 LEFT JOIN group_members gm ON gm.group_id = c.group_id AND gm.user_id = k.sender_id
                 LEFT JOIN messages m ON m.conversation_id = k.conversation_id AND m.sender_id = k.sender_id
                                     AND m.client_msg_id = k.client_msg_id
                ORDER BY k.ord"#
            $(, $arg)*
        )
    };
}

/// The context of `user` in one conversation (for a send, with the earlier message
/// under `client_msg_id`); `None` when the conversation does not exist.
pub async fn context(
    db: impl PgExecutor<'_>,
    id: ConversationId,
    user: UserId,
    client_msg_id: Option<uuid::Uuid>,
) -> sqlx::Result<Option<ConversationContext>> {
    let row = context_rows!(
        r#"(SELECT 1::bigint AS ord, $1::bigint AS conversation_id, $2::bigint AS sender_id,
                   $3::uuid AS client_msg_id, 0::bigint AS mentioned) k
           LEFT JOIN conversation_members cm ON cm.conversation_id = k.conversation_id AND cm.user_id = k.sender_id"#,
        id.0,
        user.0,
        client_msg_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(ContextRow::into_context))
}

/// What the message writer asks about each message of a batch.
pub struct BatchKeys<'a> {
    pub conversations: &'a [i64],
    pub senders: &'a [i64],
    pub client_msg_ids: &'a [uuid::Uuid],
    /// (message's 1-based position, mentioned user) pairs.
    pub mention_ords: &'a [i64],
    pub mention_users: &'a [i64],
}

/// [`context`] for every message of a writer batch, in batch order, read in the batch's
/// transaction. Each sender's membership row is locked (`FOR KEY SHARE`): a removal that
/// commits after this read would otherwise still let the message in; now the removal
/// waits for the batch, or the batch sees it gone. Key-share locks do not block each
/// other, so concurrent batches (other instances) are unaffected.
pub async fn batch_contexts(
    db: &mut sqlx::PgConnection,
    keys: &BatchKeys<'_>,
) -> sqlx::Result<Vec<(i64, Option<ConversationContext>)>> {
    let rows = context_rows!(
        r#"(SELECT u.ord, u.conversation_id, u.sender_id, u.client_msg_id,
                   (SELECT count(*) FROM unnest($4::bigint[], $5::bigint[]) AS mm (ord, user_id)
                      JOIN conversation_members x ON x.conversation_id = u.conversation_id AND x.user_id = mm.user_id
                     WHERE mm.ord = u.ord) AS mentioned
              FROM unnest($1::bigint[], $2::bigint[], $3::uuid[]) WITH ORDINALITY
                   AS u (conversation_id, sender_id, client_msg_id, ord)) k
           LEFT JOIN LATERAL (
               SELECT * FROM conversation_members cm
                WHERE cm.conversation_id = k.conversation_id AND cm.user_id = k.sender_id
                  FOR KEY SHARE) cm ON true"#,
        keys.conversations,
        keys.senders,
        keys.client_msg_ids,
        keys.mention_ords,
        keys.mention_users
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.ord, row.into_context())).collect())
}

/// Numbers reserved for a writer batch in one conversation: its messages take the seqs
/// and versions after these, and `stamp` as their time; `audience` is its members.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub id: ConversationId,
    pub seq_before: i64,
    pub version_before: i64,
    pub stamp: OffsetDateTime,
    pub audience: Vec<i64>,
}

/// Locks the conversations in id order (no deadlock with another instance's writer) and
/// advances each one's seq and version counters by its count. The lock is the one the
/// update takes anyway (`FOR NO KEY UPDATE`), not `FOR UPDATE`: that would also wait for
/// every transaction holding a foreign-key lock on the conversation, such as the search
/// indexer inserting a block, and a batch stalled behind it for the indexer's whole
/// transaction (W1's p99 at half rate). The batch's timestamp
/// never goes below the conversation's last one: another instance's transaction may
/// have started later and committed first, and history and search rely on created_at
/// following seq.
pub async fn reserve_numbers(
    db: &mut sqlx::PgConnection,
    ids: &[i64],
    counts: &[i64],
) -> sqlx::Result<Vec<Reservation>> {
    sqlx::query_as!(
        Reservation,
        r#"WITH wanted AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS w(id, n)),
                locked AS (SELECT c.id FROM conversations c JOIN wanted w ON w.id = c.id ORDER BY c.id FOR NO KEY UPDATE OF c)
           UPDATE conversations c
              SET last_seq = c.last_seq + w.n, last_version = c.last_version + w.n,
                  last_message_at = GREATEST(now(), c.last_message_at)
             FROM wanted w, locked l
            WHERE c.id = w.id AND l.id = c.id
        RETURNING c.id AS "id!: ConversationId", c.last_seq - w.n AS "seq_before!", c.last_version - w.n AS "version_before!",
                  c.last_message_at AS "stamp!",
                  ARRAY(SELECT cm.user_id FROM conversation_members cm WHERE cm.conversation_id = c.id) AS "audience!""#,
        ids,
        counts
    )
    .fetch_all(db)
    .await
}
