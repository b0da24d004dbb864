//! The `blocks` table.

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::UserId;

/// Whether either user has blocked the other. The one check every interaction between
/// two users goes through (friend requests here, direct messages later).
pub async fn exists_either_way(db: impl PgExecutor<'_>, a: UserId, b: UserId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM blocks
                           WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)) AS "exists!""#,
        a.0,
        b.0
    )
    .fetch_one(db)
    .await
}

/// Returns whether the block is new.
pub async fn insert(db: impl PgExecutor<'_>, blocker: UserId, blocked: UserId) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        blocker.0,
        blocked.0
    )
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn delete(db: impl PgExecutor<'_>, blocker: UserId, blocked: UserId) -> sqlx::Result<bool> {
    let deleted = sqlx::query!("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2", blocker.0, blocked.0)
        .execute(db)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

#[derive(Debug, Clone)]
pub struct BlockedRow {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub created_at: OffsetDateTime,
}

pub async fn list(
    db: impl PgExecutor<'_>,
    blocker: UserId,
    after: Option<UserId>,
    limit: i64,
) -> sqlx::Result<Vec<BlockedRow>> {
    sqlx::query_as!(
        BlockedRow,
        r#"SELECT u.id AS "id: UserId", u.username, u.nickname, u.avatar_url, b.created_at
             FROM blocks b JOIN users u ON u.id = b.blocked_id
            WHERE b.blocker_id = $1 AND ($2::bigint IS NULL OR b.blocked_id > $2)
            ORDER BY b.blocked_id
            LIMIT $3"#,
        blocker.0,
        after.map(|u| u.0),
        limit
    )
    .fetch_all(db)
    .await
}
