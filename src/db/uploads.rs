//! The `uploads` and `upload_chunks` tables. Every function is one short statement on
//! whatever executor it is given: an upload in progress never holds a connection while
//! it waits for the client's next bytes.

use futures_util::TryStreamExt;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{ConversationId, UserId};

/// A finished upload.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: Uuid,
    pub owner_id: UserId,
    pub name: String,
    pub mime: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub has_thumbnail: bool,
    pub sha256: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
}

/// What is known once the last chunk is in.
pub struct Finished<'a> {
    pub mime: &'a str,
    pub size: i64,
    pub dimensions: Option<(i32, i32)>,
    pub thumbnail: Option<(&'a [u8], &'a str)>,
    pub sha256: &'a [u8],
}

pub async fn create(db: impl PgExecutor<'_>, id: Uuid, owner: UserId, name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO uploads (id, owner_id, name, mime) VALUES ($1, $2, $3, 'application/octet-stream')",
        id,
        owner.0,
        name
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Bytes the user's uploads take, finished or not (the quota counts both).
pub async fn stored_bytes(db: impl PgExecutor<'_>, owner: UserId) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(sum(size), 0)::bigint AS "bytes!" FROM uploads WHERE owner_id = $1"#,
        owner.0
    )
    .fetch_one(db)
    .await
}

/// Appends chunk `n` and counts its bytes in `size` (so the quota sees an upload in
/// progress) unless that would take `owner`'s uploads past `quota` bytes: `false` then,
/// and nothing is stored. Uploads of one owner take turns here (an advisory lock), so
/// parallel uploads cannot each see the same room left.
pub async fn insert_chunk(
    pool: &PgPool,
    id: Uuid,
    owner: UserId,
    n: i32,
    data: &[u8],
    quota: Option<i64>,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    if let Some(quota) = quota {
        sqlx::query!(
            r#"SELECT 1 AS "locked!" FROM pg_advisory_xact_lock(hashtextextended('goim.upload_quota:' || $1::bigint, 0))"#,
            owner.0
        )
        .fetch_one(&mut *tx)
        .await?;
        if stored_bytes(&mut *tx, owner).await?.saturating_add(data.len() as i64) > quota {
            return Ok(false);
        }
    }
    sqlx::query!(
        "WITH chunk AS (INSERT INTO upload_chunks (upload_id, n, data) VALUES ($1, $2, $3))
         UPDATE uploads SET size = size + $4 WHERE id = $1",
        id,
        n,
        data,
        data.len() as i64
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn chunk(db: impl PgExecutor<'_>, id: Uuid, n: i32) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar!("SELECT data FROM upload_chunks WHERE upload_id = $1 AND n = $2", id, n)
        .fetch_optional(db)
        .await
}

/// Appends every chunk to `bytes`, in order, one row at a time: only for decoding an
/// image, whose size the caller bounds.
pub async fn read_all(db: impl PgExecutor<'_>, id: Uuid, bytes: &mut Vec<u8>) -> sqlx::Result<()> {
    let mut rows = sqlx::query_scalar!("SELECT data FROM upload_chunks WHERE upload_id = $1 ORDER BY n", id).fetch(db);
    while let Some(chunk) = rows.try_next().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(())
}

pub async fn complete(db: impl PgExecutor<'_>, id: Uuid, finished: &Finished<'_>) -> sqlx::Result<()> {
    let (width, height) = finished.dimensions.unzip();
    let (thumbnail, thumbnail_mime) = finished.thumbnail.unzip();
    sqlx::query!(
        "UPDATE uploads
            SET mime = $2, size = $3, width = $4, height = $5, thumbnail = $6, thumbnail_mime = $7,
                sha256 = $8, completed_at = now(), sweep_after = now() + interval '1 day'
          WHERE id = $1",
        id,
        finished.mime,
        finished.size,
        width,
        height,
        thumbnail,
        thumbnail_mime,
        finished.sha256
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Removes an upload and its chunks (a failed or refused upload, or the orphan sweep).
pub async fn discard(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM uploads WHERE id = $1", id).execute(db).await?;
    Ok(())
}

/// A finished upload.
pub async fn find(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"SELECT id, owner_id AS "owner_id: UserId", name, mime, size, width, height,
                  thumbnail IS NOT NULL AS "has_thumbnail!", sha256, created_at
             FROM uploads WHERE id = $1 AND completed_at IS NOT NULL"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// A finished upload of `owner`'s, kept from the orphan sweep for an hour at least: a
/// send names it (see `sweep_after`).
pub async fn use_for_send(db: impl PgExecutor<'_>, id: Uuid, owner: UserId) -> sqlx::Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"UPDATE uploads SET sweep_after = greatest(sweep_after, now() + interval '1 hour')
            WHERE id = $1 AND owner_id = $2 AND completed_at IS NOT NULL
        RETURNING id, owner_id AS "owner_id: UserId", name, mime, size, width, height,
                  thumbnail IS NOT NULL AS "has_thumbnail!", sha256, created_at"#,
        id,
        owner.0
    )
    .fetch_optional(db)
    .await
}

pub async fn thumbnail(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<(Vec<u8>, String)>> {
    let row = sqlx::query!(
        r#"SELECT thumbnail AS "thumbnail!", thumbnail_mime AS "thumbnail_mime!" FROM uploads
            WHERE id = $1 AND thumbnail IS NOT NULL AND thumbnail_mime IS NOT NULL"#,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| (row.thumbnail, row.thumbnail_mime)))
}

/// The live (not recalled or removed) messages that name the upload in conversations
/// `member` belongs to, after the point from which they see its history, oldest first:
/// the candidates whose conversation's read rule then decides.
pub async fn naming_messages_seen_by(
    db: impl PgExecutor<'_>,
    id: Uuid,
    member: UserId,
    limit: i64,
) -> sqlx::Result<Vec<(ConversationId, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT m.conversation_id AS "conversation_id: ConversationId", m.seq FROM messages m
             JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id = $2
            WHERE m.kind IN ('image', 'file') AND m.content ? 'upload_id' AND m.content ->> 'upload_id' = $1
              AND m.deleted_at IS NULL AND m.seq > cm.visible_from_seq
            ORDER BY m.created_at LIMIT $3"#,
        id.to_string(),
        member.0,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.conversation_id, row.seq)).collect())
}

/// Removes `owner`'s uploads that no live message names (a deleted account's unsent or
/// recalled files, which nobody else can read anyway).
pub async fn discard_unsent_of(db: impl PgExecutor<'_>, owner: UserId) -> sqlx::Result<u64> {
    let deleted = sqlx::query!("DELETE FROM uploads u WHERE u.owner_id = $1 AND NOT upload_is_named(u.id)", owner.0)
        .execute(db)
        .await?;
    Ok(deleted.rows_affected())
}
