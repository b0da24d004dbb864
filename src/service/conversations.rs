//! Conversations: direct get-or-create, the caller's list, read markers, settings.

use time::OffsetDateTime;

use super::{
    page::{self, Page},
    policy::{self, Action},
};
use sqlx::{Connection, PgPool};

use crate::{
    db::{
        self,
        conversations::{ListCursor, ListRow, MemberState, SettingsChange},
    },
    domain::{ConversationId, GroupId, UserId},
    error::ApiError,
    events::Event,
    state::AppState,
};

/// The direct conversation with `peer`, created on first use.
pub async fn open_direct(state: &AppState, caller: UserId, peer: UserId) -> Result<ConversationId, ApiError> {
    if caller == peer {
        return Err(ApiError::bad_request("cannot_message_self", "a direct conversation needs another user"));
    }
    let mut connection = state.pool.acquire().await?;
    if !db::users::reachable(&mut *connection, peer).await? {
        return Err(ApiError::not_found("user_not_found", "no such user"));
    }
    policy::check_direct(&mut connection, state.config.chat.direct_messages, caller, peer).await?;
    let mut tx = connection.begin().await?;
    let id = db::conversations::get_or_create_direct(&mut tx, caller, peer).await?;
    tx.commit().await?;
    Ok(id)
}

/// A group's conversation, for its members.
pub async fn of_group(pool: &PgPool, caller: UserId, group: GroupId) -> Result<ConversationId, ApiError> {
    let mut connection = pool.acquire().await?;
    let id = db::conversations::for_group(&mut *connection, group).await?.ok_or_else(policy::conversation_not_found)?;
    policy::readable(&mut connection, id, caller).await?;
    Ok(id)
}

pub async fn list(
    pool: &PgPool,
    caller: UserId,
    archived: bool,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<ListRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let after = cursor.map(decode_cursor).transpose()?;
    let rows = db::conversations::list_for_user(pool, caller, archived, after, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| {
        format!("{}:{}:{}", u8::from(row.pinned), row.activity_at.unix_timestamp_nanos(), row.id)
    }))
}

fn decode_cursor(cursor: &str) -> Result<ListCursor, ApiError> {
    let text = page::decode(cursor)?;
    let mut parts = text.splitn(3, ':');
    let (Some(pinned), Some(nanos), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(page::invalid_cursor());
    };
    let pinned = match pinned {
        "1" => true,
        "0" => false,
        _ => return Err(page::invalid_cursor()),
    };
    let nanos: i128 = nanos.parse().map_err(|_| page::invalid_cursor())?;
    let activity_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| page::invalid_cursor())?;
    let id = id.parse().map_err(|_| page::invalid_cursor())?;
    Ok(ListCursor { pinned, activity_at, id: ConversationId(id) })
}

/// Moves the caller's read marker forward (never back) and tells the members.
pub async fn mark_read(state: &AppState, caller: UserId, id: ConversationId, seq: i64) -> Result<i64, ApiError> {
    if seq < 0 {
        return Err(ApiError::validation("seq", "must not be negative"));
    }
    let mut connection = state.pool.acquire().await?;
    let direct_messages = state.config.chat.direct_messages;
    let before = policy::authorize(&mut connection, direct_messages, caller, id, Action::Read).await?.access;
    let marker = db::conversations::mark_read(&mut *connection, id, caller, seq)
        .await?
        .ok_or_else(policy::conversation_not_found)?;
    if marker != before.member.last_read_seq {
        let members = db::conversations::member_ids(&mut *connection, id).await?;
        drop(connection);
        state
            .events
            .publish(members, Event::ReadMarkerMoved { conversation_id: id, user_id: caller, last_read_seq: marker });
    }
    Ok(marker)
}

/// Moves the caller's delivery marker forward (a device received messages up to
/// `seq`) and tells the members.
pub async fn mark_delivered(state: &AppState, caller: UserId, id: ConversationId, seq: i64) -> Result<i64, ApiError> {
    if seq < 0 {
        return Err(ApiError::validation("seq", "must not be negative"));
    }
    let mut connection = state.pool.acquire().await?;
    policy::authorize(&mut connection, state.config.chat.direct_messages, caller, id, Action::Delivered).await?;
    let moved = db::conversations::mark_delivered(&mut *connection, id, caller, seq).await?;
    let (marker, changed) = moved.ok_or_else(policy::conversation_not_found)?;
    if changed {
        let members = db::conversations::member_ids(&mut *connection, id).await?;
        drop(connection);
        state.events.publish(
            members,
            Event::DeliveryReceipt { conversation_id: id, user_id: caller, last_delivered_seq: marker },
        );
    }
    Ok(marker)
}

/// Every member's read and delivery markers: group read receipts ("read by 7 of 9").
pub async fn receipts(pool: &PgPool, caller: UserId, id: ConversationId) -> Result<Vec<(UserId, i64, i64)>, ApiError> {
    let mut connection = pool.acquire().await?;
    policy::readable(&mut connection, id, caller).await?;
    let receipts = db::conversations::receipts(&mut *connection, id).await?;
    Ok(receipts.into_iter().map(|r| (r.user_id, r.last_read_seq, r.last_delivered_seq)).collect())
}

/// Tells the other members that the caller is (or stopped) typing. Never stored.
pub async fn typing(state: &AppState, caller: UserId, id: ConversationId, typing: bool) -> Result<(), ApiError> {
    let mut connection = state.pool.acquire().await?;
    policy::authorize(&mut connection, state.config.chat.direct_messages, caller, id, Action::Typing).await?;
    let mut members = db::conversations::member_ids(&mut *connection, id).await?;
    drop(connection);
    members.retain(|member| *member != caller);
    state.events.publish(
        members,
        Event::Typing { conversation_id: id, user_id: caller, typing, expires_in_ms: TYPING_EXPIRES_MS },
    );
    Ok(())
}

pub const TYPING_EXPIRES_MS: u64 = 5000;

/// What changed in one conversation since a client's cursor.
pub struct ConversationChanges {
    pub conversation_id: ConversationId,
    pub version: i64,
    pub last_seq: i64,
    pub last_read_seq: i64,
    pub changes: Vec<crate::domain::MessageView>,
    pub has_more: bool,
}

pub const SYNC_MAX_LIMIT: i64 = 500;

/// Catch-up: for every conversation of the caller whose version is above the client's
/// cursor (missing = 0), the changed messages in version order, at most `limit` in
/// all. Reads only changed rows.
pub async fn sync(
    pool: &PgPool,
    caller: UserId,
    cursors: &std::collections::HashMap<ConversationId, i64>,
    limit: i64,
) -> Result<(Vec<ConversationChanges>, bool), ApiError> {
    if !(1..=SYNC_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation("limit", format!("must be 1–{SYNC_MAX_LIMIT}")));
    }
    let mut connection = pool.acquire().await?;
    let heads = db::conversations::heads(&mut *connection, caller).await?;
    let mut budget = limit;
    let mut result = Vec::new();
    let mut has_more = false;
    for db::conversations::Head {
        id,
        last_version: version,
        last_seq,
        last_read_seq,
        visible_from_seq: visible_from,
    } in heads
    {
        let cursor = cursors.get(&id).copied().unwrap_or(0);
        if version <= cursor {
            continue;
        }
        if budget == 0 {
            has_more = true;
            break;
        }
        let rows = db::messages::changed_since(&mut *connection, id, cursor, visible_from, budget + 1).await?;
        let more = rows.len() as i64 > budget;
        let rows: Vec<_> = rows.into_iter().take(budget as usize).collect();
        budget -= rows.len() as i64;
        has_more |= more;
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let mut reactions = db::messages::reactions_for(&mut *connection, id, &seqs, caller).await?;
        let changes = rows
            .into_iter()
            .map(|row| {
                let mut view = crate::domain::MessageView::from(row);
                view.reactions = reactions.remove(&view.seq).unwrap_or_default();
                view
            })
            .collect::<Vec<_>>();
        // With more pending, report the version reached so the next cursor is right.
        let reached = if more { changes.last().map_or(cursor, |m| m.version) } else { version };
        result.push(ConversationChanges {
            conversation_id: id,
            version: reached,
            last_seq,
            last_read_seq,
            changes,
            has_more: more,
        });
    }
    Ok((result, has_more))
}

pub async fn update_settings(
    pool: &PgPool,
    caller: UserId,
    id: ConversationId,
    change: SettingsChange,
) -> Result<MemberState, ApiError> {
    db::conversations::update_settings(pool, id, caller, change).await?.ok_or_else(policy::conversation_not_found)
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn a_list_cursor_round_trips() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let cursor = URL_SAFE_NO_PAD.encode(format!("1:{}:42", at.unix_timestamp_nanos()));
        let decoded = decode_cursor(&cursor).unwrap();
        assert!(decoded.pinned);
        assert_eq!(decoded.activity_at, at);
        assert_eq!(decoded.id, ConversationId(42));
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("2:1:1")).is_err());
    }
}
