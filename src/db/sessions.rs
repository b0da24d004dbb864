//! The `sessions` and `refresh_tokens` tables.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{SessionId, UserId};

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: SessionId,
    pub device_name: String,
    pub user_agent: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

pub struct NewSession<'a> {
    pub user_id: UserId,
    pub device_name: &'a str,
    pub user_agent: &'a str,
    pub expires_at: OffsetDateTime,
}

pub async fn insert(db: impl PgExecutor<'_>, new: &NewSession<'_>) -> sqlx::Result<SessionId> {
    sqlx::query_scalar!(
        r#"INSERT INTO sessions (id, user_id, device_name, user_agent, expires_at)
           VALUES ($1, $2, $3, $4, $5) RETURNING id AS "id: SessionId""#,
        Uuid::new_v4(),
        new.user_id.0,
        new.device_name,
        new.user_agent,
        new.expires_at
    )
    .fetch_one(db)
    .await
}

pub async fn insert_refresh_token(db: impl PgExecutor<'_>, session: SessionId, hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", hash, session.0)
        .execute(db)
        .await
        .map(|_| ())
}

/// A refresh token's state, locked for the rest of the transaction so two refreshes
/// with the same token are decided one after the other.
#[derive(Debug)]
pub struct RefreshTokenState {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub used: bool,
    pub session_active: bool,
}

pub async fn lock_refresh_token(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<Option<RefreshTokenState>> {
    sqlx::query_as!(
        RefreshTokenState,
        r#"SELECT s.id AS "session_id: SessionId", s.user_id AS "user_id: UserId", rt.used_at IS NOT NULL AS "used!",
                  (s.revoked_at IS NULL AND s.expires_at > now()) AS "session_active!"
             FROM refresh_tokens rt
             JOIN sessions s ON s.id = rt.session_id
            WHERE rt.token_hash = $1
              FOR UPDATE OF rt, s"#,
        hash
    )
    .fetch_optional(db)
    .await
}

pub async fn mark_refresh_token_used(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", hash).execute(db).await.map(|_| ())
}

/// Slides the session's expiry forward on use.
pub async fn touch(db: impl PgExecutor<'_>, session: SessionId, expires_at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!("UPDATE sessions SET last_used_at = now(), expires_at = $2 WHERE id = $1", session.0, expires_at)
        .execute(db)
        .await
        .map(|_| ())
}

/// Revokes `session` if it belongs to `user`; returns whether it did (an already
/// revoked or foreign session gives `false`).
pub async fn revoke(db: impl PgExecutor<'_>, user: UserId, session: SessionId, reason: &str) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
          WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        session.0,
        user.0,
        reason
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Revokes every active session of `user` except `keep`; returns the ones it revoked.
pub async fn revoke_others(
    db: impl PgExecutor<'_>,
    user: UserId,
    keep: SessionId,
    reason: &str,
) -> sqlx::Result<Vec<SessionId>> {
    sqlx::query_scalar!(
        r#"UPDATE sessions SET revoked_at = now(), revoked_reason = $3
            WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL
        RETURNING id AS "id: SessionId""#,
        user.0,
        keep.0,
        reason
    )
    .fetch_all(db)
    .await
}

/// Revokes every active session of `user`; returns the ones it revoked.
pub async fn revoke_all(db: impl PgExecutor<'_>, user: UserId, reason: &str) -> sqlx::Result<Vec<SessionId>> {
    sqlx::query_scalar!(
        r#"UPDATE sessions SET revoked_at = now(), revoked_reason = $2
            WHERE user_id = $1 AND revoked_at IS NULL
        RETURNING id AS "id: SessionId""#,
        user.0,
        reason
    )
    .fetch_all(db)
    .await
}

/// Whether `session` of `user` may still be used: not revoked, not expired, and the
/// account not deactivated (deactivation also revokes every session; checking the
/// account too closes the race with a login that was already past its checks).
pub async fn is_active(db: impl PgExecutor<'_>, user: UserId, session: SessionId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                           WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
                             AND u.deactivated_at IS NULL AND u.deleted_at IS NULL) AS "active!""#,
        session.0,
        user.0
    )
    .fetch_one(db)
    .await
}

/// Until when `session` of `user` may be used (it slides forward on refresh); `None`
/// when [`is_active`] would say `false`.
pub async fn active_until(
    db: impl PgExecutor<'_>,
    user: UserId,
    session: SessionId,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        "SELECT s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
            AND u.deactivated_at IS NULL AND u.deleted_at IS NULL",
        session.0,
        user.0
    )
    .fetch_optional(db)
    .await
}

pub async fn list_active(db: impl PgExecutor<'_>, user: UserId) -> sqlx::Result<Vec<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        r#"SELECT id AS "id: SessionId", device_name, user_agent, created_at, last_used_at, expires_at
             FROM sessions
            WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
            ORDER BY last_used_at DESC"#,
        user.0
    )
    .fetch_all(db)
    .await
}

/// Sessions revoked within the last `within`: what an instance's revocation cache
/// (`crate::auth::revocations`) reloads when it starts listening, since notifications
/// sent while it was not listening are lost.
pub async fn recently_revoked(db: impl PgExecutor<'_>, within: std::time::Duration) -> sqlx::Result<Vec<SessionId>> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id: SessionId" FROM sessions WHERE revoked_at > now() - make_interval(secs => $1)"#,
        within.as_secs_f64()
    )
    .fetch_all(db)
    .await
}

/// Accounts deleted within the last `within`: their sessions rows are gone, so for the
/// revocation cache the account stands for them.
pub async fn recently_deleted_users(db: impl PgExecutor<'_>, within: std::time::Duration) -> sqlx::Result<Vec<UserId>> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id: UserId" FROM users WHERE deleted_at > now() - make_interval(secs => $1)"#,
        within.as_secs_f64()
    )
    .fetch_all(db)
    .await
}
