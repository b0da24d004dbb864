//! Sending (through the batching writer), history, edit, recall, reactions, search.

use time::OffsetDateTime;

use super::{
    page::{self, Page},
    policy::{self, Access, Action, Allowed},
    turn::Turn,
    uploads,
};
use sqlx::{Connection, PgPool};

use crate::{
    config::DirectMessagePolicy,
    db::{self, conversations::ConversationContext, messages::Window},
    domain::{ConversationId, Emoji, MessageInput, MessageKind, MessageView, NewMessage, Role, UserId},
    error::ApiError,
    events::Event,
    state::AppState,
    writer::{Ack, Admission, PendingMessage, WriteError},
};

pub const HISTORY_MAX_LIMIT: i64 = 100;
pub const HISTORY_DEFAULT_LIMIT: i64 = 50;

/// Validates and stores a message; the ack comes only after commit. A retry with the
/// same `client_msg_id` returns the original ack.
pub async fn send(state: &AppState, sender: UserId, id: ConversationId, input: MessageInput) -> Result<Ack, ApiError> {
    send_in_turn(state, sender, id, input, Turn::alone()).await
}

/// [`send`] for a client whose state-changing requests take effect in the order it sent
/// them: the message enters the writer's queue in its turn. Every check that needs the
/// database runs inside the writer's batch ([`SendAdmission`]).
pub async fn send_in_turn(
    state: &AppState,
    sender: UserId,
    id: ConversationId,
    input: MessageInput,
    mut turn: Turn,
) -> Result<Ack, ApiError> {
    let mut message = NewMessage::parse(input, state.config.chat.max_message_bytes as usize)?;
    // The one send that reads before the writer: an attachment's facts come from its
    // upload, and they are part of what the request hash identifies.
    uploads::attach(state, sender, &mut message).await?;
    turn.wait().await;
    let ack = state.writer.enqueue(PendingMessage { conversation_id: id, sender_id: sender, message }).await;
    turn.pass();
    ack.map_err(write_error)?.await.map_err(write_error)
}

/// The rules of sending, applied by the message writer to each message of a batch with
/// facts read in the batch's transaction: the conversation policy, then a reply must
/// name a message the sender can see, mentions must name members, and only owners and
/// admins mention everyone.
pub struct SendAdmission {
    direct_messages: DirectMessagePolicy,
}

impl SendAdmission {
    pub fn new(direct_messages: DirectMessagePolicy) -> Self {
        Self { direct_messages }
    }
}

impl Admission for SendAdmission {
    fn admit(&self, pending: &PendingMessage, context: Option<&ConversationContext>) -> Result<(), ApiError> {
        let context = context.ok_or_else(policy::conversation_not_found)?;
        let Allowed { access, role } = policy::check(self.direct_messages, context, pending.sender_id, Action::Send)?;
        let message = &pending.message;
        if let Some(reply) = message.reply_to_seq
            && (reply > access.conversation.last_seq || reply <= access.member.visible_from_seq)
        {
            return Err(ApiError::validation("reply_to_seq", "no such message in this conversation"));
        }
        if context.mentioned_members != message.mentions.len() as i64 {
            return Err(ApiError::validation("mentions", "every mentioned user must be a member of the conversation"));
        }
        if message.mention_all && !role.is_some_and(Role::is_admin_or_owner) {
            return Err(ApiError::forbidden("insufficient_role", "only group owners and admins can mention everyone"));
        }
        Ok(())
    }
}

pub fn write_error(error: WriteError) -> ApiError {
    match error {
        WriteError::IdReused => ApiError::conflict("client_msg_id_reused", error.to_string()),
        WriteError::Refused(refusal) => refusal,
        WriteError::Overloaded | WriteError::ShuttingDown => ApiError::Unavailable(anyhow::anyhow!("{error}")),
        WriteError::Database(cause) => cause.into(),
        WriteError::Lost => ApiError::internal(anyhow::anyhow!("{error}")),
    }
}

/// Which page of history to read; at most one of the three.
#[derive(Debug, Default, Clone, Copy)]
pub struct HistoryQuery {
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub range: Option<(i64, i64)>,
    pub limit: Option<i64>,
}

pub struct HistoryPage {
    pub messages: Vec<MessageView>,
    pub last_seq: i64,
    pub version: i64,
    /// Older messages exist before the first one returned (visible to the caller).
    pub has_older: bool,
    /// Newer messages exist after the last one returned.
    pub has_newer: bool,
}

pub async fn history(
    pool: &PgPool,
    caller: UserId,
    id: ConversationId,
    query: HistoryQuery,
) -> Result<HistoryPage, ApiError> {
    let limit = page::limit(Some(query.limit.unwrap_or(HISTORY_DEFAULT_LIMIT)), HISTORY_MAX_LIMIT)?;
    let window = match (query.before, query.after, query.range) {
        (Some(before), None, None) => Window::Before(before),
        (None, Some(after), None) => Window::After(after),
        (None, None, Some((from, to))) => {
            if from < 1 || to < from {
                return Err(ApiError::validation("from", "from must be ≥ 1 and ≤ to"));
            }
            Window::Range(from, to)
        }
        (None, None, None) => Window::Before(i64::MAX),
        _ => return Err(ApiError::validation("before", "give at most one of before, after, or from/to")),
    };
    let mut connection = pool.acquire().await?;
    let access = policy::readable(&mut connection, id, caller).await?;
    let rows = db::messages::history(&mut *connection, id, access.member.visible_from_seq, window, limit).await?;
    let mut messages: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
    let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    let mut reactions = db::messages::reactions_for(&mut *connection, id, &seqs, caller).await?;
    drop(connection);
    for message in &mut messages {
        message.reactions = reactions.remove(&message.seq).unwrap_or_default();
    }
    let last_seq = access.conversation.last_seq;
    let visible_from = access.member.visible_from_seq;
    Ok(HistoryPage {
        has_older: messages.first().is_some_and(|m| m.seq > visible_from + 1),
        has_newer: messages.last().is_some_and(|m| m.seq < last_seq),
        messages,
        last_seq,
        version: access.conversation.last_version,
    })
}

/// Edits the caller's own message within the edit window.
pub async fn edit(
    state: &AppState,
    caller: UserId,
    id: ConversationId,
    seq: i64,
    body: String,
) -> Result<MessageView, ApiError> {
    let body = crate::domain::message_body(&body, state.config.chat.max_message_bytes as usize)?
        .ok_or_else(|| ApiError::validation("body", "must not be empty"))?;
    let mut connection = state.pool.acquire().await?;
    let access =
        policy::authorize(&mut connection, state.config.chat.direct_messages, caller, id, Action::Edit).await?.access;
    let mut tx = connection.begin().await?;
    let message = visible_message(&mut tx, &access, id, seq).await?;
    if message.sender_id != caller {
        return Err(ApiError::forbidden("not_your_message", "you can only edit your own messages"));
    }
    if message.deleted_at.is_some() {
        return Err(ApiError::conflict("message_deleted", "this message was recalled or removed"));
    }
    if MessageKind::parse(&message.kind) != Some(MessageKind::Text) && message.body.is_none() {
        return Err(ApiError::conflict("not_editable", "this message has no text to edit"));
    }
    if OffsetDateTime::now_utc() - message.created_at > state.config.chat.edit_window {
        return Err(ApiError::forbidden("edit_window_passed", "this message is too old to edit"));
    }
    let edited = db::messages::edit(&mut tx, id, seq, &body).await?;
    let members = db::conversations::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    let view = MessageView::from(edited);
    state.events.publish(members, Event::MessageEdited { message: Box::new(view.clone()) });
    Ok(view)
}

/// Recalls the caller's own message within the recall window, or removes any message
/// as a group owner or admin. The message becomes a tombstone; its seq stays.
pub async fn delete(state: &AppState, caller: UserId, id: ConversationId, seq: i64) -> Result<(), ApiError> {
    let mut connection = state.pool.acquire().await?;
    let Allowed { access, role } =
        policy::authorize(&mut connection, state.config.chat.direct_messages, caller, id, Action::Recall).await?;
    let moderator = role.is_some_and(Role::is_admin_or_owner);
    let mut tx = connection.begin().await?;
    let message = visible_message(&mut tx, &access, id, seq).await?;
    if message.deleted_at.is_some() {
        return Ok(());
    }
    if !moderator {
        if message.sender_id != caller {
            return Err(ApiError::forbidden("not_your_message", "you can only recall your own messages"));
        }
        if OffsetDateTime::now_utc() - message.created_at > state.config.chat.recall_window {
            return Err(ApiError::forbidden("recall_window_passed", "this message is too old to recall"));
        }
    }
    let row = db::messages::tombstone(&mut tx, id, seq, caller).await?;
    let members = db::conversations::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    state
        .events
        .publish(members, Event::MessageDeleted { conversation_id: id, seq, version: row.version, by_user_id: caller });
    Ok(())
}

pub async fn react(
    state: &AppState,
    caller: UserId,
    id: ConversationId,
    seq: i64,
    emoji: Emoji,
    add: bool,
) -> Result<(), ApiError> {
    let mut connection = state.pool.acquire().await?;
    let access =
        policy::authorize(&mut connection, state.config.chat.direct_messages, caller, id, Action::React).await?.access;
    let mut tx = connection.begin().await?;
    let message = visible_message(&mut tx, &access, id, seq).await?;
    if message.deleted_at.is_some() {
        return Err(ApiError::conflict("message_deleted", "this message was recalled or removed"));
    }
    let changed = if add {
        db::messages::add_reaction(&mut *tx, id, seq, caller, &emoji).await?
    } else {
        db::messages::remove_reaction(&mut *tx, id, seq, caller, &emoji).await?
    };
    if !add && !changed {
        return Err(ApiError::not_found("reaction_not_found", "you have not reacted with this emoji"));
    }
    if !changed {
        return Ok(());
    }
    let version = db::messages::bump_version(&mut tx, id, seq).await?;
    let members = db::conversations::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    let emoji = emoji.as_str().to_owned();
    let event = if add {
        Event::ReactionAdded { conversation_id: id, seq, version, user_id: caller, emoji }
    } else {
        Event::ReactionRemoved { conversation_id: id, seq, version, user_id: caller, emoji }
    };
    state.events.publish(members, event);
    Ok(())
}

pub const SEARCH_MIN_CHARS: usize = 2;
pub const SEARCH_MAX_CHARS: usize = 100;

/// Messages containing `query` in the caller's conversations, newest first.
pub async fn search(
    pool: &PgPool,
    caller: UserId,
    query: &str,
    conversation: Option<ConversationId>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<MessageView>, ApiError> {
    let query = query.trim();
    let chars = query.chars().count();
    if !(SEARCH_MIN_CHARS..=SEARCH_MAX_CHARS).contains(&chars) {
        return Err(ApiError::validation("q", format!("must be {SEARCH_MIN_CHARS}–{SEARCH_MAX_CHARS} characters")));
    }
    let limit = page::limit(limit, 50)?;
    let after = cursor
        .map(|c| {
            let text = page::decode(c)?;
            let mut parts = text.splitn(3, ':');
            let parsed = (|| {
                let nanos: i128 = parts.next()?.parse().ok()?;
                let conversation: i64 = parts.next()?.parse().ok()?;
                let seq: i64 = parts.next()?.parse().ok()?;
                Some((OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?, ConversationId(conversation), seq))
            })();
            parsed.ok_or_else(page::invalid_cursor)
        })
        .transpose()?;
    let rows = db::message_search::search(pool, caller, query, conversation, after, limit + 1).await?.0;
    let page = page::paginate(rows, limit, |row| {
        format!("{}:{}:{}", row.created_at.unix_timestamp_nanos(), row.conversation_id, row.seq)
    });
    Ok(Page { items: page.items.into_iter().map(MessageView::from).collect(), next_cursor: page.next_cursor })
}

async fn visible_message(
    tx: &mut sqlx::PgConnection,
    access: &Access,
    id: ConversationId,
    seq: i64,
) -> Result<db::messages::MessageRow, ApiError> {
    let not_found = || ApiError::not_found("message_not_found", "no such message");
    if seq <= access.member.visible_from_seq {
        return Err(not_found());
    }
    db::messages::find(&mut *tx, id, seq).await?.ok_or_else(not_found)
}
