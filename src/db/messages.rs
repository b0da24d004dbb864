//! The `messages` and `message_reactions` tables (reads and edits; new messages are
//! inserted by the batching writer in `crate::writer`).

use std::collections::HashMap;

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{
    ConversationId, MessageKind, MessageView, UserId,
    message::{Emoji, ReactionCount},
};

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub version: i64,
    pub sender_id: UserId,
    pub client_msg_id: uuid::Uuid,
    pub kind: String,
    pub body: Option<String>,
    pub content: Option<serde_json::Value>,
    pub reply_to_seq: Option<i64>,
    pub mentions: Vec<i64>,
    pub mention_all: bool,
    pub created_at: OffsetDateTime,
    pub edited_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

/// `query_as!` into [`MessageRow`], with the message columns of `m` (the `messages`
/// table under that alias) written once: `message_rows!("SELECT ", " FROM messages m …", args…)`.
/// The `!`/`?` overrides keep the row type independent of what PostgreSQL can infer
/// through CTEs and `RETURNING`.
macro_rules! message_rows {
    ($before:literal, $after:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            $crate::db::messages::MessageRow,
            $before
                + r#"m.conversation_id AS "conversation_id!: ConversationId", m.seq AS "seq!", m.version AS "version!",
                     m.sender_id AS "sender_id!: UserId", m.client_msg_id AS "client_msg_id!", m.kind AS "kind!",
                     m.body AS "body?", m.content AS "content?", m.reply_to_seq AS "reply_to_seq?",
                     m.mentions AS "mentions!", m.mention_all AS "mention_all!", m.created_at AS "created_at!",
                     m.edited_at AS "edited_at?", m.deleted_at AS "deleted_at?""#
                + $after
            $(, $arg)*
        )
    };
}

impl From<MessageRow> for MessageView {
    fn from(row: MessageRow) -> Self {
        let deleted = row.deleted_at.is_some();
        Self {
            conversation_id: row.conversation_id,
            seq: row.seq,
            version: row.version,
            sender_id: row.sender_id.0,
            client_msg_id: row.client_msg_id,
            // The column's CHECK admits only the four kinds.
            kind: MessageKind::parse(&row.kind).unwrap_or(MessageKind::Text),
            body: if deleted { None } else { row.body },
            content: if deleted { None } else { row.content },
            reply_to_seq: row.reply_to_seq,
            mentions: row.mentions,
            mention_all: row.mention_all,
            created_at: row.created_at,
            edited_at: row.edited_at,
            deleted,
            reactions: Vec::new(),
        }
    }
}

/// Which slice of history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The `limit` messages just before `seq` (exclusive), newest last.
    Before(i64),
    /// The `limit` messages just after `seq` (exclusive).
    After(i64),
    /// `from..=to`, at most `limit` of them from the start.
    Range(i64, i64),
}

/// The history statements, one per direction, each one range scan of the primary key.
/// Public so the benchmark can `EXPLAIN` exactly these.
pub const HISTORY_NEWEST_SQL: &str = include_str!("sql/history_newest.sql");
pub const HISTORY_OLDEST_SQL: &str = include_str!("sql/history_oldest.sql");

/// A page of history, oldest first, never showing seq <= `visible_from`.
pub async fn history(
    db: impl PgExecutor<'_>,
    conversation: ConversationId,
    visible_from: i64,
    window: Window,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    let (low, high) = match window {
        Window::Before(seq) => (visible_from, seq),
        Window::After(seq) => (seq.max(visible_from), i64::MAX),
        Window::Range(from, to) => ((from - 1).max(visible_from), to.saturating_add(1)),
    };
    if let Window::Before(_) = window {
        let mut rows =
            sqlx::query_file_as!(MessageRow, "src/db/sql/history_newest.sql", conversation.0, low, high, limit)
                .fetch_all(db)
                .await?;
        rows.reverse();
        Ok(rows)
    } else {
        sqlx::query_file_as!(MessageRow, "src/db/sql/history_oldest.sql", conversation.0, low, high, limit)
            .fetch_all(db)
            .await
    }
}

pub async fn find(db: impl PgExecutor<'_>, conversation: ConversationId, seq: i64) -> sqlx::Result<Option<MessageRow>> {
    message_rows!(
        "SELECT ",
        " FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2 FOR UPDATE",
        conversation.0,
        seq
    )
    .fetch_optional(db)
    .await
}

/// One message as stored now, without locking it (the relay reads messages too large to
/// travel inside a notification).
pub async fn load(db: impl PgExecutor<'_>, conversation: ConversationId, seq: i64) -> sqlx::Result<Option<MessageRow>> {
    message_rows!("SELECT ", " FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2", conversation.0, seq)
        .fetch_optional(db)
        .await
}

/// Takes the conversation's next version for a change to an existing message, and
/// stamps the message with it. Holds the conversation row lock until commit, so
/// versions commit in order.
pub async fn bump_version(db: &mut sqlx::PgConnection, conversation: ConversationId, seq: i64) -> sqlx::Result<i64> {
    let version = sqlx::query_scalar!(
        "UPDATE conversations SET last_version = last_version + 1 WHERE id = $1 RETURNING last_version",
        conversation.0
    )
    .fetch_one(&mut *db)
    .await?;
    sqlx::query!(
        "UPDATE messages SET version = $3 WHERE conversation_id = $1 AND seq = $2",
        conversation.0,
        seq,
        version
    )
    .execute(&mut *db)
    .await?;
    Ok(version)
}

pub async fn edit(
    db: &mut sqlx::PgConnection,
    conversation: ConversationId,
    seq: i64,
    body: &str,
) -> sqlx::Result<MessageRow> {
    bump_version(db, conversation, seq).await?;
    message_rows!(
        "UPDATE messages m SET body = $3, edited_at = now() WHERE m.conversation_id = $1 AND m.seq = $2 RETURNING ",
        "",
        conversation.0,
        seq,
        body
    )
    .fetch_one(&mut *db)
    .await
}

/// Turns a message into a tombstone: the row and its seq stay, the content goes.
pub async fn tombstone(
    db: &mut sqlx::PgConnection,
    conversation: ConversationId,
    seq: i64,
    by: UserId,
) -> sqlx::Result<MessageRow> {
    bump_version(db, conversation, seq).await?;
    // A recalled message's text must not reach a push notification afterwards.
    sqlx::query!(
        "UPDATE webhook_deliveries SET preview = NULL WHERE conversation_id = $1 AND seq = $2 AND preview IS NOT NULL",
        conversation.0,
        seq
    )
    .execute(&mut *db)
    .await?;
    message_rows!(
        "UPDATE messages m SET body = NULL, content = NULL, deleted_at = now(), deleted_by = $3
          WHERE m.conversation_id = $1 AND m.seq = $2 RETURNING ",
        "",
        conversation.0,
        seq,
        by.0
    )
    .fetch_one(&mut *db)
    .await
}

/// A message whose version moved, and to what.
#[derive(Debug, Clone, Copy)]
pub struct VersionBump {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub version: i64,
}

/// Removes every message `sender` ever sent (content gone, seq kept, as a recall does),
/// in one transaction; for the server's administrators and account deletion.
pub async fn tombstone_all_by(
    db: &mut sqlx::PgConnection,
    sender: UserId,
    by: UserId,
) -> sqlx::Result<Vec<VersionBump>> {
    // Conversations first and in id order, as the writer locks them, so a purge and a
    // batch of new messages queue instead of deadlocking.
    let conversations = sqlx::query_scalar!(
        r#"SELECT id AS "id: ConversationId" FROM conversations
            WHERE id IN (SELECT conversation_id FROM messages WHERE sender_id = $1 AND deleted_at IS NULL)
            ORDER BY id FOR NO KEY UPDATE"#,
        sender.0
    )
    .fetch_all(&mut *db)
    .await?;
    let ids: Vec<i64> = conversations.iter().map(|id| id.0).collect();
    let removed = sqlx::query!(
        "UPDATE messages SET body = NULL, content = NULL, deleted_at = now(), deleted_by = $2
          WHERE sender_id = $1 AND deleted_at IS NULL AND conversation_id = ANY($3)
      RETURNING conversation_id, seq",
        sender.0,
        by.0,
        &ids
    )
    .fetch_all(&mut *db)
    .await?;
    // A removed message's preview must not be pushed later either.
    sqlx::query!("UPDATE webhook_deliveries SET preview = NULL WHERE sender_id = $1 AND preview IS NOT NULL", sender.0)
        .execute(&mut *db)
        .await?;
    let pairs: Vec<(i64, i64)> = removed.into_iter().map(|row| (row.conversation_id, row.seq)).collect();
    bump_versions(db, &pairs).await
}

/// Removes every reaction `user` gave; returns the messages whose versions moved.
pub async fn remove_reactions_by(db: &mut sqlx::PgConnection, user: UserId) -> sqlx::Result<Vec<VersionBump>> {
    let removed =
        sqlx::query!("DELETE FROM message_reactions WHERE user_id = $1 RETURNING conversation_id, seq", user.0)
            .fetch_all(&mut *db)
            .await?;
    let mut pairs: Vec<(i64, i64)> = removed.into_iter().map(|row| (row.conversation_id, row.seq)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    bump_versions(db, &pairs).await
}

/// [`bump_version`] for many distinct messages at once: each conversation's version
/// moves by its number of messages, and each message gets one of the new versions.
async fn bump_versions(db: &mut sqlx::PgConnection, pairs: &[(i64, i64)]) -> sqlx::Result<Vec<VersionBump>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let (conversations, seqs): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
    sqlx::query!("SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", &conversations)
        .fetch_all(&mut *db)
        .await?;
    sqlx::query_as!(
        VersionBump,
        r#"WITH t AS (
               SELECT conversation_id, seq, row_number() OVER (PARTITION BY conversation_id ORDER BY seq) AS n
                 FROM unnest($1::bigint[], $2::bigint[]) AS x (conversation_id, seq)),
           counts AS (SELECT conversation_id, max(n) AS n FROM t GROUP BY conversation_id),
           bumped AS (
               UPDATE conversations c SET last_version = c.last_version + counts.n
                 FROM counts WHERE c.id = counts.conversation_id
             RETURNING c.id, c.last_version - counts.n AS base)
           UPDATE messages m SET version = b.base + t.n
             FROM t JOIN bumped b ON b.id = t.conversation_id
            WHERE m.conversation_id = t.conversation_id AND m.seq = t.seq
        RETURNING m.conversation_id AS "conversation_id: ConversationId", m.seq, m.version"#,
        &conversations,
        &seqs
    )
    .fetch_all(&mut *db)
    .await
}

/// Messages of a conversation changed after `version`, in version order.
pub async fn changed_since(
    db: impl PgExecutor<'_>,
    conversation: ConversationId,
    version: i64,
    visible_from: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    message_rows!(
        "SELECT ",
        " FROM messages m WHERE m.conversation_id = $1 AND m.version > $2 AND m.seq > $3 ORDER BY m.version LIMIT $4",
        conversation.0,
        version,
        visible_from,
        limit
    )
    .fetch_all(db)
    .await
}

pub async fn add_reaction(
    db: impl PgExecutor<'_>,
    conversation: ConversationId,
    seq: i64,
    user: UserId,
    emoji: &Emoji,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "INSERT INTO message_reactions (conversation_id, seq, user_id, emoji) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        conversation.0,
        seq,
        user.0,
        emoji.as_str()
    )
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn remove_reaction(
    db: impl PgExecutor<'_>,
    conversation: ConversationId,
    seq: i64,
    user: UserId,
    emoji: &Emoji,
) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        "DELETE FROM message_reactions WHERE conversation_id = $1 AND seq = $2 AND user_id = $3 AND emoji = $4",
        conversation.0,
        seq,
        user.0,
        emoji.as_str()
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Reaction counts for the given messages of a conversation, per seq.
pub async fn reactions_for(
    db: impl PgExecutor<'_>,
    conversation: ConversationId,
    seqs: &[i64],
    viewer: UserId,
) -> sqlx::Result<HashMap<i64, Vec<ReactionCount>>> {
    if seqs.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query!(
        r#"SELECT seq, emoji, count(*) AS "count!", bool_or(user_id = $3) AS "me!"
             FROM message_reactions
            WHERE conversation_id = $1 AND seq = ANY($2)
            GROUP BY seq, emoji
            ORDER BY seq, min(created_at)"#,
        conversation.0,
        seqs,
        viewer.0
    )
    .fetch_all(db)
    .await?;
    let mut by_seq: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
    for row in rows {
        by_seq.entry(row.seq).or_default().push(ReactionCount { emoji: row.emoji, count: row.count, me: row.me });
    }
    Ok(by_seq)
}

/// New messages for [`insert_batch`], one array element per message (column-wise, as
/// `unnest` takes them).
#[derive(Debug, Default)]
pub struct NewRows {
    pub conversation_ids: Vec<i64>,
    pub seqs: Vec<i64>,
    pub versions: Vec<i64>,
    pub sender_ids: Vec<i64>,
    pub client_msg_ids: Vec<uuid::Uuid>,
    pub request_hashes: Vec<Vec<u8>>,
    pub kinds: Vec<String>,
    pub bodies: Vec<Option<String>>,
    pub contents: Vec<Option<serde_json::Value>>,
    pub reply_to_seqs: Vec<Option<i64>>,
    /// Each a JSON array of user ids (PostgreSQL has no arrays of arrays of varying length).
    pub mentions: Vec<serde_json::Value>,
    pub mention_all: Vec<bool>,
    /// `None` takes the transaction's time.
    pub created_at: Vec<Option<OffsetDateTime>>,
}

/// Inserts a writer batch with one statement; sending implies having read everything up
/// to one's own message, so the senders' read markers move in the same statement.
pub async fn insert_batch(db: &mut sqlx::PgConnection, rows: &NewRows) -> sqlx::Result<Vec<MessageRow>> {
    message_rows!(
        "WITH inserted AS (
            INSERT INTO messages AS m (conversation_id, seq, version, sender_id, client_msg_id, request_hash, kind,
                                       body, content, reply_to_seq, mentions, mention_all, created_at)
            SELECT v.conversation_id, v.seq, v.version, v.sender_id, v.client_msg_id, v.request_hash, v.kind, v.body,
                   v.content, v.reply_to_seq, ARRAY(SELECT jsonb_array_elements_text(v.mentions)::bigint),
                   v.mention_all, COALESCE(v.created_at, now())
              FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::uuid[], $6::bytea[],
                          $7::text[], $8::text[], $9::jsonb[], $10::bigint[], $11::jsonb[], $12::boolean[],
                          $13::timestamptz[])
                   AS v(conversation_id, seq, version, sender_id, client_msg_id, request_hash, kind, body, content,
                        reply_to_seq, mentions, mention_all, created_at)
            RETURNING m.*
         ), markers AS (
            UPDATE conversation_members cm SET last_read_seq = GREATEST(cm.last_read_seq, i.seq)
              FROM (SELECT conversation_id, sender_id, max(seq) AS seq FROM inserted GROUP BY 1, 2) AS i
             WHERE cm.conversation_id = i.conversation_id AND cm.user_id = i.sender_id
         )
         SELECT ",
        " FROM inserted m",
        &rows.conversation_ids,
        &rows.seqs,
        &rows.versions,
        &rows.sender_ids,
        &rows.client_msg_ids,
        &rows.request_hashes,
        &rows.kinds,
        &rows.bodies as _,
        &rows.contents as _,
        &rows.reply_to_seqs as _,
        &rows.mentions,
        &rows.mention_all,
        &rows.created_at as _
    )
    .fetch_all(db)
    .await
}
