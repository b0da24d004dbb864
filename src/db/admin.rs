//! Server administration: the admin flag, deactivation, the user list and statistics
//! operators see, and the audit trail (`admin_audit`).

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{GroupId, UserId};

/// Whether `user` is a server administrator (deleted and deactivated accounts are not).
pub async fn is_admin(db: impl PgExecutor<'_>, user: UserId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users
                           WHERE id = $1 AND is_admin AND deactivated_at IS NULL AND deleted_at IS NULL) AS "admin!""#,
        user.0
    )
    .fetch_one(db)
    .await
}

/// The account named `username` (case-insensitive), unless it was deleted.
pub async fn find_by_username(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<Option<UserId>> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id: UserId" FROM users WHERE lower(username) = lower($1) AND deleted_at IS NULL"#,
        username
    )
    .fetch_optional(db)
    .await
}

/// Sets the admin flag; `false` when no such (undeleted) account exists.
pub async fn set_admin(db: impl PgExecutor<'_>, user: UserId, admin: bool) -> sqlx::Result<bool> {
    let result = sqlx::query!("UPDATE users SET is_admin = $2 WHERE id = $1 AND deleted_at IS NULL", user.0, admin)
        .execute(db)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks the account deactivated (or active again). `None` when no such undeleted
/// account exists, otherwise whether the state changed.
pub async fn set_deactivated(db: impl PgExecutor<'_>, user: UserId, deactivated: bool) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"UPDATE users u
              SET deactivated_at = CASE WHEN $2 THEN coalesce(u.deactivated_at, now()) END
             FROM users before
            WHERE u.id = $1 AND before.id = u.id AND u.deleted_at IS NULL
        RETURNING (before.deactivated_at IS NOT NULL) <> $2 AS "changed!""#,
        user.0,
        deactivated
    )
    .fetch_optional(db)
    .await
}

/// One account as an operator sees it.
#[derive(Debug, Clone)]
pub struct AdminUserRow {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub is_admin: bool,
    pub created_at: OffsetDateTime,
    pub last_seen_at: Option<OffsetDateTime>,
    pub deactivated_at: Option<OffsetDateTime>,
    pub active_sessions: i64,
    pub online: bool,
}

/// Accounts whose username or nickname contains `pattern` (a LIKE pattern, already
/// escaped and lower-cased; `None` lists everyone), newest first, after the cursor id.
pub async fn list_users(
    db: impl PgExecutor<'_>,
    pattern: Option<&str>,
    before: Option<UserId>,
    limit: i64,
) -> sqlx::Result<Vec<AdminUserRow>> {
    sqlx::query_as!(
        AdminUserRow,
        r#"SELECT u.id AS "id: UserId", u.username, u.nickname, u.is_admin, u.created_at, u.last_seen_at,
                  u.deactivated_at,
                  (SELECT count(*) FROM sessions s
                    WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > now()) AS "active_sessions!",
                  EXISTS (SELECT 1 FROM instance_users iu JOIN instances i ON i.id = iu.instance_id
                           WHERE iu.user_id = u.id AND i.expires_at > now()) AS "online!"
             FROM users u
            WHERE u.deleted_at IS NULL
              AND ($1::text IS NULL OR lower(u.username) LIKE $1 OR lower(u.nickname) LIKE $1)
              AND ($2::bigint IS NULL OR u.id < $2)
            ORDER BY u.id DESC
            LIMIT $3"#,
        pattern,
        before.map(|id| id.0),
        limit
    )
    .fetch_all(db)
    .await
}

/// The server at a glance.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub users: i64,
    pub deactivated_users: i64,
    pub online_users: i64,
    pub groups: i64,
    pub messages_today: i64,
    pub database_bytes: i64,
}

/// "Today" is the database server's calendar day (UTC unless its time zone says otherwise).
pub async fn stats(db: impl PgExecutor<'_>) -> sqlx::Result<Stats> {
    sqlx::query_as!(
        Stats,
        r#"SELECT (SELECT count(*) FROM users WHERE deleted_at IS NULL) AS "users!",
                  (SELECT count(*) FROM users WHERE deleted_at IS NULL AND deactivated_at IS NOT NULL)
                      AS "deactivated_users!",
                  (SELECT count(DISTINCT iu.user_id) FROM instance_users iu JOIN instances i ON i.id = iu.instance_id
                    WHERE i.expires_at > now()) AS "online_users!",
                  (SELECT count(*) FROM groups WHERE disbanded_at IS NULL) AS "groups!",
                  (SELECT count(*) FROM messages WHERE created_at >= date_trunc('day', now())) AS "messages_today!",
                  pg_database_size(current_database()) AS "database_bytes!""#
    )
    .fetch_one(db)
    .await
}

/// What an audit entry is about.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditTarget {
    pub user: Option<UserId>,
    pub group: Option<GroupId>,
}

/// Appends to the audit trail; called in the transaction of the action it records.
pub async fn record(
    db: impl PgExecutor<'_>,
    actor: Option<UserId>,
    action: &str,
    target: AuditTarget,
    detail: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_audit (actor_id, action, target_user_id, target_group_id, detail)
         VALUES ($1, $2, $3, $4, $5)",
        actor.map(|id| id.0),
        action,
        target.user.map(|id| id.0),
        target.group.map(|id| id.0),
        detail
    )
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor_id: Option<UserId>,
    pub actor_username: Option<String>,
    pub action: String,
    pub target_user_id: Option<UserId>,
    pub target_group_id: Option<GroupId>,
    pub detail: serde_json::Value,
}

/// The trail, newest first, before the cursor id.
pub async fn audit(db: impl PgExecutor<'_>, before: Option<i64>, limit: i64) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as!(
        AuditRow,
        r#"SELECT a.id, a.at, a.actor_id AS "actor_id: UserId", u.username AS "actor_username?", a.action,
                  a.target_user_id AS "target_user_id: UserId", a.target_group_id AS "target_group_id: GroupId",
                  a.detail
             FROM admin_audit a
             LEFT JOIN users u ON u.id = a.actor_id
            WHERE $1::bigint IS NULL OR a.id < $1
            ORDER BY a.id DESC
            LIMIT $2"#,
        before,
        limit
    )
    .fetch_all(db)
    .await
}
