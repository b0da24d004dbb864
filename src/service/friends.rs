//! Friend requests and friendships. Every change to the relation between two users
//! runs in one transaction holding that pair's lock, so crossing requests, accept
//! racing cancel, and block racing accept all end in one consistent state.

use time::{Duration, OffsetDateTime};

use super::page::{self, Page};
use sqlx::PgPool;

use crate::{
    db::{self, friends::FriendRequestRow, friends::FriendRow, friends::SuggestionRow, friends::UserSummaryRow},
    domain::{Remark, RequestNote, UserId},
    error::ApiError,
    events::Event,
    state::AppState,
};

/// After a decline, the sender may ask the same person again only after this long.
pub const RESEND_AFTER_DECLINE: Duration = Duration::hours(24);
pub const SUGGESTIONS_MAX_LIMIT: i64 = 50;

pub enum SendOutcome {
    /// A new pending request.
    Requested(FriendRequestRow),
    /// The other user had already asked: their request was accepted instead.
    Accepted { request_id: i64, friend: UserId },
}

pub async fn send_request(
    state: &AppState,
    caller: UserId,
    to: UserId,
    note: RequestNote,
) -> Result<SendOutcome, ApiError> {
    if caller == to {
        return Err(ApiError::bad_request("cannot_befriend_self", "you cannot send a friend request to yourself"));
    }
    let mut tx = state.pool.begin().await?;
    if !db::users::reachable(&mut *tx, to).await? {
        return Err(ApiError::not_found("user_not_found", "no such user"));
    }
    db::friends::lock_pair(&mut *tx, caller, to).await?;
    if db::blocks::exists_either_way(&mut *tx, caller, to).await? {
        return Err(not_allowed());
    }
    if db::friends::are_friends(&mut *tx, caller, to).await? {
        return Err(ApiError::conflict("already_friends", "you are already friends"));
    }
    if let Some(theirs) = db::friends::pending_request(&mut *tx, to, caller).await? {
        db::friends::decide_request(&mut *tx, theirs.id, "accepted").await?;
        db::friends::befriend(&mut *tx, caller, to).await?;
        tx.commit().await?;
        publish_accepted(state, theirs.id, to, caller);
        return Ok(SendOutcome::Accepted { request_id: theirs.id, friend: to });
    }
    if db::friends::pending_request(&mut *tx, caller, to).await?.is_some() {
        return Err(ApiError::conflict("request_pending", "you have already sent this user a friend request"));
    }
    if let Some(declined_at) = db::friends::last_decline(&mut *tx, caller, to).await? {
        let allowed_at = declined_at + RESEND_AFTER_DECLINE;
        let now = OffsetDateTime::now_utc();
        if now < allowed_at {
            let wait = (allowed_at - now).unsigned_abs();
            return Err(ApiError::RateLimited { retry_after: wait });
        }
    }
    let request = db::friends::insert_request(&mut *tx, caller, to, note.as_str()).await?;
    tx.commit().await?;
    state.events.publish(
        vec![to, caller],
        Event::FriendRequestReceived { request_id: request.id, from_user_id: caller, note: request.note.clone() },
    );
    Ok(SendOutcome::Requested(request))
}

/// Accepts a request addressed to the caller; returns the new friend.
pub async fn accept(state: &AppState, caller: UserId, request_id: i64) -> Result<UserId, ApiError> {
    let mut tx = state.pool.begin().await?;
    let request = addressed_to(&mut tx, request_id, caller).await?;
    db::friends::lock_pair(&mut *tx, request.from_user, caller).await?;
    // Decided under the pair lock: a concurrent cancel or block either ran before
    // (and this sees the request no longer pending) or runs after.
    if !db::friends::decide_request(&mut *tx, request.id, "accepted").await? {
        return Err(not_pending());
    }
    db::friends::befriend(&mut *tx, caller, request.from_user).await?;
    tx.commit().await?;
    publish_accepted(state, request.id, request.from_user, caller);
    Ok(request.from_user)
}

pub async fn decline(state: &AppState, caller: UserId, request_id: i64) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let request = addressed_to(&mut tx, request_id, caller).await?;
    db::friends::lock_pair(&mut *tx, request.from_user, caller).await?;
    if !db::friends::decide_request(&mut *tx, request.id, "declined").await? {
        return Err(not_pending());
    }
    tx.commit().await?;
    state.events.publish(vec![request.from_user, caller], Event::FriendRequestDeclined { request_id: request.id });
    Ok(())
}

/// Withdraws a request the caller sent.
pub async fn cancel(state: &AppState, caller: UserId, request_id: i64) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let request = db::friends::find_request(&mut *tx, request_id)
        .await?
        .filter(|r| r.from_user == caller)
        .ok_or_else(request_not_found)?;
    db::friends::lock_pair(&mut *tx, caller, request.to_user).await?;
    if !db::friends::decide_request(&mut *tx, request.id, "cancelled").await? {
        return Err(not_pending());
    }
    tx.commit().await?;
    state.events.publish(vec![request.to_user, caller], Event::FriendRequestCancelled { request_id: request.id });
    Ok(())
}

pub async fn remove_friend(state: &AppState, caller: UserId, friend: UserId) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    db::friends::lock_pair(&mut *tx, caller, friend).await?;
    if !db::friends::unfriend(&mut *tx, caller, friend).await? {
        return Err(not_friends());
    }
    tx.commit().await?;
    state.events.publish(vec![caller], Event::FriendRemoved { user_id: friend });
    state.events.publish(vec![friend], Event::FriendRemoved { user_id: caller });
    Ok(())
}

pub async fn set_remark(pool: &PgPool, caller: UserId, friend: UserId, remark: Option<Remark>) -> Result<(), ApiError> {
    if db::friends::set_remark(pool, caller, friend, remark.as_ref().map(Remark::as_str)).await? {
        Ok(())
    } else {
        Err(not_friends())
    }
}

pub async fn list_friends(
    pool: &PgPool,
    caller: UserId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<FriendRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let after = page::decode_i64(cursor)?.map(UserId);
    let rows = db::friends::list(pool, caller, after, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}

pub async fn mutual_friends(
    pool: &PgPool,
    caller: UserId,
    other: UserId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<UserSummaryRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let mut connection = pool.acquire().await?;
    if db::users::find(&mut *connection, other).await?.is_none() {
        return Err(ApiError::not_found("user_not_found", "no such user"));
    }
    let after = page::decode_i64(cursor)?.map(UserId);
    let rows = db::friends::mutual(&mut *connection, caller, other, after, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}

pub async fn suggestions(
    pool: &PgPool,
    caller: UserId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<SuggestionRow>, ApiError> {
    let limit = page::limit(limit, SUGGESTIONS_MAX_LIMIT)?;
    let after = cursor
        .map(|c| {
            let text = page::decode(c)?;
            let (mutual, id) = text.split_once(':').ok_or_else(page::invalid_cursor)?;
            let mutual = mutual.parse::<i64>().map_err(|_| page::invalid_cursor())?;
            let id = id.parse::<i64>().map_err(|_| page::invalid_cursor())?;
            Ok::<_, ApiError>((mutual, UserId(id)))
        })
        .transpose()?;
    let rows = db::friends::suggestions(pool, caller, after, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| format!("{}:{}", row.mutual_friends, row.id)))
}

pub async fn list_requests(
    pool: &PgPool,
    caller: UserId,
    incoming: bool,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<db::friends::RequestListRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let before = page::decode_i64(cursor)?;
    let rows = db::friends::list_pending(pool, caller, incoming, before, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}

/// The request, if it exists and is addressed to `caller`. Anyone else's request looks
/// exactly like a missing one.
async fn addressed_to(
    tx: &mut sqlx::PgConnection,
    request_id: i64,
    caller: UserId,
) -> Result<FriendRequestRow, ApiError> {
    db::friends::find_request(&mut *tx, request_id).await?.filter(|r| r.to_user == caller).ok_or_else(request_not_found)
}

fn publish_accepted(state: &AppState, request_id: i64, requester: UserId, accepter: UserId) {
    state.events.publish(vec![requester, accepter], Event::FriendRequestAccepted { request_id, by_user_id: accepter });
    state.events.publish(vec![requester], Event::FriendAdded { user_id: accepter });
    state.events.publish(vec![accepter], Event::FriendAdded { user_id: requester });
}

/// The one answer for any interaction a block prevents, whoever blocked whom.
pub fn not_allowed() -> ApiError {
    ApiError::forbidden("not_allowed", "this action is not possible with this user")
}

fn request_not_found() -> ApiError {
    ApiError::not_found("friend_request_not_found", "no such friend request")
}

fn not_pending() -> ApiError {
    ApiError::conflict("request_not_pending", "this friend request was already accepted, declined or cancelled")
}

fn not_friends() -> ApiError {
    ApiError::not_found("not_friends", "this user is not your friend")
}
