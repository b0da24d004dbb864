//! The `messages` and `message_reactions` tables (reads and edits; new messages are
//! inserted by the batching writer in `crate::writer`).

use std::collections::HashMap;

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

use crate::domain::{
    ConversationId, MessageKind, MessageView, UserId,
    message::{Emoji, ReactionCount},
};

#[derive(Debug, Clone, FromRow)]
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

pub const MESSAGE_COLUMNS: &str = "conversation_id, seq, version, sender_id, client_msg_id, kind, body, content, reply_to_seq, \
    mentions, mention_all, created_at, edited_at, deleted_at";

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

/// The history statement: $1 conversation, seq strictly between $2 and $3, $4 rows
/// from the newest end or the oldest. Both directions are one range scan of the primary
/// key. Public so the benchmark can `EXPLAIN` exactly this.
pub fn history_sql(newest_first: bool) -> String {
    let order = if newest_first { "DESC" } else { "ASC" };
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
          WHERE conversation_id = $1 AND seq > $2 AND seq < $3
          ORDER BY seq {order} LIMIT $4"
    )
}

/// A page of history, oldest first, never showing seq <= `visible_from`.
pub async fn history(
    db: impl PgExecutor<'_>,
    conversation: ConversationId,
    visible_from: i64,
    window: Window,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    let (low, high, newest_first) = match window {
        Window::Before(seq) => (visible_from, seq, true),
        Window::After(seq) => (seq.max(visible_from), i64::MAX, false),
        Window::Range(from, to) => ((from - 1).max(visible_from), to.saturating_add(1), false),
    };
    let mut rows: Vec<MessageRow> = sqlx::query_as(&history_sql(newest_first))
        .bind(conversation)
        .bind(low)
        .bind(high)
        .bind(limit)
        .fetch_all(db)
        .await?;
    if newest_first {
        rows.reverse();
    }
    Ok(rows)
}

pub async fn find(db: impl PgExecutor<'_>, conversation: ConversationId, seq: i64) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq = $2 FOR UPDATE"
    ))
    .bind(conversation)
    .bind(seq)
    .fetch_optional(db)
    .await
}

/// Takes the conversation's next version for a change to an existing message, and
/// stamps the message with it. Holds the conversation row lock until commit, so
/// versions commit in order.
pub async fn bump_version(db: &mut sqlx::PgConnection, conversation: ConversationId, seq: i64) -> sqlx::Result<i64> {
    let version: i64 = sqlx::query_scalar(
        "UPDATE conversations SET last_version = last_version + 1 WHERE id = $1 RETURNING last_version",
    )
    .bind(conversation)
    .fetch_one(&mut *db)
    .await?;
    sqlx::query("UPDATE messages SET version = $3 WHERE conversation_id = $1 AND seq = $2")
        .bind(conversation)
        .bind(seq)
        .bind(version)
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
    sqlx::query_as(&format!(
        "UPDATE messages SET body = $3, edited_at = now() WHERE conversation_id = $1 AND seq = $2 RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(conversation)
    .bind(seq)
    .bind(body)
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
    sqlx::query_as(&format!(
        "UPDATE messages SET body = NULL, content = NULL, deleted_at = now(), deleted_by = $3
          WHERE conversation_id = $1 AND seq = $2 RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(conversation)
    .bind(seq)
    .bind(by)
    .fetch_one(&mut *db)
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
    sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
          WHERE conversation_id = $1 AND version > $2 AND seq > $3
          ORDER BY version LIMIT $4"
    ))
    .bind(conversation)
    .bind(version)
    .bind(visible_from)
    .bind(limit)
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
    let inserted = sqlx::query(
        "INSERT INTO message_reactions (conversation_id, seq, user_id, emoji) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(conversation)
    .bind(seq)
    .bind(user)
    .bind(emoji.as_str())
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
    let deleted = sqlx::query(
        "DELETE FROM message_reactions WHERE conversation_id = $1 AND seq = $2 AND user_id = $3 AND emoji = $4",
    )
    .bind(conversation)
    .bind(seq)
    .bind(user)
    .bind(emoji.as_str())
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
    let rows: Vec<(i64, String, i64, bool)> = sqlx::query_as(
        "SELECT seq, emoji, count(*), bool_or(user_id = $3)
           FROM message_reactions
          WHERE conversation_id = $1 AND seq = ANY($2)
          GROUP BY seq, emoji
          ORDER BY seq, min(created_at)",
    )
    .bind(conversation)
    .bind(seqs)
    .bind(viewer)
    .fetch_all(db)
    .await?;
    let mut by_seq: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
    for (seq, emoji, count, me) in rows {
        by_seq.entry(seq).or_default().push(ReactionCount { emoji, count, me });
    }
    Ok(by_seq)
}
