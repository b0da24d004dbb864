//! The `uploads` and `upload_chunks` tables. Every function is one short statement on
//! whatever executor it is given: an upload in progress never holds a connection while
//! it waits for the client's next bytes.

use sqlx::PgExecutor;
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

/// Appends chunk `n`; also counts its bytes in `size`, so the quota sees an upload in
/// progress.
pub async fn insert_chunk(db: impl PgExecutor<'_>, id: Uuid, n: i32, data: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "WITH chunk AS (INSERT INTO upload_chunks (upload_id, n, data) VALUES ($1, $2, $3))
         UPDATE uploads SET size = size + $4 WHERE id = $1",
        id,
        n,
        data,
        data.len() as i64
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn chunk(db: impl PgExecutor<'_>, id: Uuid, n: i32) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar!("SELECT data FROM upload_chunks WHERE upload_id = $1 AND n = $2", id, n)
        .fetch_optional(db)
        .await
}

/// Every chunk in order: only for decoding an image, whose size the upload limit bounds.
pub async fn all_chunks(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar!("SELECT data FROM upload_chunks WHERE upload_id = $1 ORDER BY n", id).fetch_all(db).await
}

pub async fn complete(db: impl PgExecutor<'_>, id: Uuid, finished: &Finished<'_>) -> sqlx::Result<()> {
    let (width, height) = finished.dimensions.unzip();
    let (thumbnail, thumbnail_mime) = finished.thumbnail.unzip();
    sqlx::query!(
        "UPDATE uploads
            SET mime = $2, size = $3, width = $4, height = $5, thumbnail = $6, thumbnail_mime = $7,
                sha256 = $8, completed_at = now()
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

/// A finished upload of `owner`'s, marked as just named by a send (see `used_at`).
pub async fn use_for_send(db: impl PgExecutor<'_>, id: Uuid, owner: UserId) -> sqlx::Result<Option<UploadRow>> {
    sqlx::query_as!(
        UploadRow,
        r#"UPDATE uploads SET used_at = now()
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

/// The live (not recalled or removed) messages that name the upload, oldest first.
pub async fn naming_messages(
    db: impl PgExecutor<'_>,
    id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<(ConversationId, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT conversation_id AS "conversation_id: ConversationId", seq FROM messages
            WHERE kind IN ('image', 'file') AND content ? 'upload_id' AND content ->> 'upload_id' = $1
              AND deleted_at IS NULL
            ORDER BY created_at LIMIT $2"#,
        id.to_string(),
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
