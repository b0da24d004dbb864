//! Conversations: direct get-or-create, the caller's list, read markers, settings.

use time::OffsetDateTime;

use super::{
    page::{self, Page},
    policy,
};
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
    if db::users::find(&state.pool, peer).await?.is_none() {
        return Err(ApiError::not_found("user_not_found", "no such user"));
    }
    policy::check_direct(state, caller, peer).await?;
    let mut tx = state.pool.begin().await?;
    let id = db::conversations::get_or_create_direct(&mut tx, caller, peer).await?;
    tx.commit().await?;
    Ok(id)
}

/// A group's conversation, for its members.
pub async fn of_group(state: &AppState, caller: UserId, group: GroupId) -> Result<ConversationId, ApiError> {
    let id = db::conversations::for_group(&state.pool, group).await?.ok_or_else(policy::conversation_not_found)?;
    policy::readable(state, id, caller).await?;
    Ok(id)
}

pub async fn list(
    state: &AppState,
    caller: UserId,
    archived: bool,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<ListRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let after = cursor.map(decode_cursor).transpose()?;
    let rows = db::conversations::list_for_user(&state.pool, caller, archived, after, limit + 1).await?;
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
    let before = policy::readable(state, id, caller).await?;
    let marker =
        db::conversations::mark_read(&state.pool, id, caller, seq).await?.ok_or_else(policy::conversation_not_found)?;
    if marker != before.member.last_read_seq {
        let members = db::conversations::member_ids(&state.pool, id).await?;
        state
            .events
            .publish(members, Event::ReadMarkerMoved { conversation_id: id, user_id: caller, last_read_seq: marker });
    }
    Ok(marker)
}

pub async fn update_settings(
    state: &AppState,
    caller: UserId,
    id: ConversationId,
    change: SettingsChange,
) -> Result<MemberState, ApiError> {
    db::conversations::update_settings(&state.pool, id, caller, change)
        .await?
        .ok_or_else(policy::conversation_not_found)
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
