//! Server administration: what `/api/v1/admin/*` and `goim admin …` do. Each operation
//! takes the pool rather than the whole state, because the command line runs them with
//! no server around them; what live sockets must hear comes back as [`Published`]
//! events, which the API publishes on its bus and the command line relays to the
//! running instances. Every change is written to the audit trail in its own transaction.

use serde_json::json;
use sqlx::{Acquire, Connection, PgExecutor, PgPool, Postgres};

use crate::{
    auth::PasswordHasher,
    db::{
        self,
        admin::{AdminUserRow, AuditRow, AuditTarget, Stats},
    },
    domain::{ConversationId, GroupId, Password, SessionId, UserId},
    error::ApiError,
    events::{Event, Published},
    service::page::{self, Page},
};

/// Above this many removed messages, members get one `resync` instead of one
/// `message_deleted` each.
const MAX_DELETE_EVENTS: usize = 500;

/// Who acts: a server administrator through the API, or the operator at the command
/// line (recorded with no actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Admin(UserId),
    CommandLine,
}

impl Actor {
    fn user(self) -> Option<UserId> {
        match self {
            Actor::Admin(id) => Some(id),
            Actor::CommandLine => None,
        }
    }
}

/// The caller as a server administrator, or 403 `not_admin`.
pub async fn require_admin(db: impl PgExecutor<'_>, caller: UserId) -> Result<Actor, ApiError> {
    if db::admin::is_admin(db, caller).await? {
        Ok(Actor::Admin(caller))
    } else {
        Err(ApiError::forbidden("not_admin", "this needs a server administrator"))
    }
}

/// The account named `username`, for the command line.
pub async fn user_named(pool: &PgPool, username: &str) -> Result<UserId, ApiError> {
    db::admin::find_by_username(pool, username).await?.ok_or_else(user_not_found)
}

/// Grants or takes away the server-administrator flag: the command line's alone.
pub async fn set_admin(pool: &PgPool, target: UserId, admin: bool) -> Result<(), ApiError> {
    let mut tx = pool.begin().await?;
    if !db::admin::set_admin(&mut *tx, target, admin).await? {
        return Err(user_not_found());
    }
    let action = if admin { "grant_admin" } else { "revoke_admin" };
    db::admin::record(&mut *tx, None, action, for_user(target), &json!({})).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_users(
    db: impl PgExecutor<'_>,
    query: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<AdminUserRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let before = page::decode_i64(cursor)?.map(UserId);
    let pattern = query
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| format!("%{}%", db::users::escape_like(&q.to_lowercase())));
    let rows = db::admin::list_users(db, pattern.as_deref(), before, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.0.to_string()))
}

/// Signs the account out everywhere (its sockets close at once, on every instance) and
/// refuses its logins until it is reactivated. Doing it twice changes nothing.
pub async fn deactivate<'a>(
    db: impl Acquire<'a, Database = Postgres>,
    actor: Actor,
    target: UserId,
) -> Result<Vec<Published>, ApiError> {
    if actor == Actor::Admin(target) {
        return Err(ApiError::bad_request("cannot_deactivate_self", "an administrator cannot deactivate themselves"));
    }
    let mut tx = db.begin().await?;
    let changed = db::admin::set_deactivated(&mut *tx, target, true).await?.ok_or_else(user_not_found)?;
    let revoked = db::sessions::revoke_all(&mut *tx, target, "deactivated").await?;
    if changed {
        let detail = json!({ "sessions_revoked": revoked.len() });
        db::admin::record(&mut *tx, actor.user(), "deactivate_user", for_user(target), &detail).await?;
    }
    tx.commit().await?;
    Ok(revocations(target, &revoked))
}

pub async fn reactivate<'a>(
    db: impl Acquire<'a, Database = Postgres>,
    actor: Actor,
    target: UserId,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let changed = db::admin::set_deactivated(&mut *tx, target, false).await?.ok_or_else(user_not_found)?;
    if changed {
        db::admin::record(&mut *tx, actor.user(), "reactivate_user", for_user(target), &json!({})).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sets a new password and signs the account out everywhere.
pub async fn reset_password(
    pool: &PgPool,
    hasher: &PasswordHasher,
    actor: Actor,
    target: UserId,
    password: Password,
) -> Result<Vec<Published>, ApiError> {
    if !db::users::reachable(pool, target).await? {
        return Err(user_not_found());
    }
    let hash = hasher.hash(&password).await?;
    let mut tx = pool.begin().await?;
    db::users::set_password_hash(&mut *tx, target, &hash).await?;
    let revoked = db::sessions::revoke_all(&mut *tx, target, "password_reset").await?;
    let detail = json!({ "sessions_revoked": revoked.len() });
    db::admin::record(&mut *tx, actor.user(), "reset_password", for_user(target), &detail).await?;
    tx.commit().await?;
    Ok(revocations(target, &revoked))
}

/// Removes every message the account has sent, as recalls; returns how many.
pub async fn delete_messages<'a>(
    db: impl Acquire<'a, Database = Postgres>,
    actor: Actor,
    target: UserId,
) -> Result<(u64, Vec<Published>), ApiError> {
    let mut connection = db.acquire().await?;
    if !db::users::reachable(&mut *connection, target).await? {
        return Err(user_not_found());
    }
    let mut tx = Connection::begin(&mut *connection).await?;
    let by = actor.user().unwrap_or(target);
    let removed = db::messages::tombstone_all_by(&mut tx, target, by).await?;
    let events = removal_events(&mut tx, &removed, by).await?;
    let count = removed.len() as u64;
    db::admin::record(&mut *tx, actor.user(), "delete_messages", for_user(target), &json!({ "messages": count }))
        .await?;
    tx.commit().await?;
    Ok((count, events))
}

/// What members hear about removed messages: one `message_deleted` each, or one
/// `resync` per member when there are too many to send one by one.
pub async fn removal_events(
    tx: &mut sqlx::PgConnection,
    removed: &[db::messages::VersionBump],
    by: UserId,
) -> Result<Vec<Published>, ApiError> {
    let members = members_touched(tx, removed).await?;
    if removed.len() > MAX_DELETE_EVENTS {
        return Ok(vec![resync_for(&members, "messages_removed")]);
    }
    Ok(removed
        .iter()
        .map(|bump| Published {
            recipients: members.iter().filter(|(c, _)| *c == bump.conversation_id).map(|(_, user)| *user).collect(),
            event: Event::MessageDeleted {
                conversation_id: bump.conversation_id,
                seq: bump.seq,
                version: bump.version,
                by_user_id: by,
            },
        })
        .collect())
}

/// The (conversation, member) pairs of every conversation a bulk change touched.
async fn members_touched(
    tx: &mut sqlx::PgConnection,
    bumps: &[db::messages::VersionBump],
) -> Result<Vec<(ConversationId, UserId)>, ApiError> {
    let mut conversations: Vec<_> = bumps.iter().map(|bump| bump.conversation_id).collect();
    conversations.sort_unstable_by_key(|id| id.0);
    conversations.dedup();
    Ok(db::conversations::members_of(&mut *tx, &conversations).await?)
}

/// One `resync` for each member, once, of the conversations a bulk change touched.
fn resync_for(members: &[(ConversationId, UserId)], reason: &str) -> Published {
    let mut everyone: Vec<UserId> = members.iter().map(|&(_, user)| user).collect();
    everyone.sort_unstable_by_key(|id| id.0);
    everyone.dedup();
    Published { recipients: everyone, event: Event::resync(reason) }
}

/// What members hear when a deleted account's reactions go: reactions have no removal
/// event without the emoji, so members re-read instead.
pub async fn unreaction_events(
    tx: &mut sqlx::PgConnection,
    unreacted: &[db::messages::VersionBump],
) -> Result<Option<Published>, ApiError> {
    if unreacted.is_empty() {
        return Ok(None);
    }
    Ok(Some(resync_for(&members_touched(tx, unreacted).await?, "reactions_removed")))
}

/// Disbands any group, as its owner could.
pub async fn disband_group<'a>(
    db: impl Acquire<'a, Database = Postgres>,
    actor: Actor,
    group: GroupId,
) -> Result<Vec<Published>, ApiError> {
    let mut tx = db.begin().await?;
    let row = db::groups::lock(&mut *tx, group)
        .await?
        .ok_or_else(|| ApiError::not_found("group_not_found", "no such group"))?;
    if row.disbanded_at.is_some() {
        return Err(ApiError::Gone { code: "group_disbanded", message: "this group has been disbanded".into() });
    }
    db::groups::disband(&mut *tx, group).await?;
    let members = db::groups::member_ids(&mut *tx, group).await?;
    let target = AuditTarget { user: None, group: Some(group) };
    db::admin::record(&mut *tx, actor.user(), "disband_group", target, &json!({ "name": row.name })).await?;
    tx.commit().await?;
    Ok(vec![Published { recipients: members, event: Event::GroupDisbanded { group_id: group } }])
}

pub async fn stats(db: impl PgExecutor<'_>) -> Result<Stats, ApiError> {
    Ok(db::admin::stats(db).await?)
}

pub async fn audit(
    db: impl PgExecutor<'_>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<AuditRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let before = page::decode_i64(cursor)?;
    let rows = db::admin::audit(db, before, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}

/// Closes the sockets of revoked sessions on every instance (4001).
pub fn revocations(user: UserId, sessions: &[SessionId]) -> Vec<Published> {
    sessions
        .iter()
        .map(|&session_id| Published {
            recipients: Vec::new(),
            event: Event::SessionRevoked { user_id: user, session_id },
        })
        .collect()
}

fn for_user(user: UserId) -> AuditTarget {
    AuditTarget { user: Some(user), group: None }
}

fn user_not_found() -> ApiError {
    ApiError::not_found("user_not_found", "no such user")
}
