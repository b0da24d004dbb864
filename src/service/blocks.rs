//! Blocking: one transaction blocks, ends the friendship and cancels pending requests
//! both ways, under the same pair lock friend requests use.

use super::page::{self, Page};
use sqlx::PgPool;

use crate::{
    db::{self, blocks::BlockedRow},
    domain::UserId,
    error::ApiError,
    events::Event,
    state::AppState,
};

pub async fn block(state: &AppState, caller: UserId, target: UserId) -> Result<(), ApiError> {
    if caller == target {
        return Err(ApiError::bad_request("cannot_block_self", "you cannot block yourself"));
    }
    let mut tx = state.pool.begin().await?;
    if !db::users::reachable(&mut *tx, target).await? {
        return Err(ApiError::not_found("user_not_found", "no such user"));
    }
    db::friends::lock_pair(&mut *tx, caller, target).await?;
    db::blocks::insert(&mut *tx, caller, target).await?;
    let were_friends = db::friends::unfriend(&mut *tx, caller, target).await?;
    let cancelled = db::friends::cancel_pending_between(&mut *tx, caller, target).await?;
    tx.commit().await?;
    // The blocked user is told only what any unfriending or withdrawal would tell them.
    if were_friends {
        state.events.publish(vec![caller], Event::FriendRemoved { user_id: target });
        state.events.publish(vec![target], Event::FriendRemoved { user_id: caller });
    }
    for request_id in cancelled {
        state.events.publish(vec![caller, target], Event::FriendRequestCancelled { request_id });
    }
    Ok(())
}

pub async fn unblock(pool: &PgPool, caller: UserId, target: UserId) -> Result<(), ApiError> {
    if db::blocks::delete(pool, caller, target).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("not_blocked", "you have not blocked this user"))
    }
}

pub async fn list(
    pool: &PgPool,
    caller: UserId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<BlockedRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let after = page::decode_i64(cursor)?.map(UserId);
    let rows = db::blocks::list(pool, caller, after, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}
