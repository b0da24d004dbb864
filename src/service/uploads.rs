//! Files and images: taking an upload in, naming it in a message, and deciding who may
//! read it back.
//!
//! An upload is stored in chunks of [`CHUNK_BYTES`] as they arrive, each its own short
//! statement: a request holds one chunk in memory and no pooled connection while it
//! waits for the client. Its type comes from its first bytes. Images are decoded once,
//! a few at a time, for their dimensions and a thumbnail.
//!
//! Who may read an upload follows from the messages that name it: its uploader, and
//! whoever can read one of those messages under the conversation's own rules
//! ([`policy::readable`]). A recalled message stops naming it; an upload no live message
//! names is removed by the retention sweep.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::policy;
use crate::{
    db::{self, uploads::UploadRow},
    domain::{
        Attachment, FileName, NewMessage, UserId,
        image_preview::{self, Preview},
        upload::{self, SNIFF_BYTES},
    },
    error::ApiError,
    state::AppState,
};

/// Bytes per stored chunk: large enough that a 25 MiB file is a hundred statements,
/// small enough that a request holds little memory.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// How long a finished upload waits for its turn to be decoded before the client is
/// told to come back.
const PREVIEW_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// Candidate messages consulted for read access (already narrowed to the caller's
/// conversations, so the first one nearly always decides).
const NAMING_MESSAGES_CHECKED: i64 = 20;
/// Larger images are kept as files: decoding them would hold the whole file in memory.
const PREVIEW_MAX_BYTES: u64 = 64 * 1024 * 1024;

fn not_found() -> ApiError {
    ApiError::not_found("upload_not_found", "no such upload")
}

/// Stores the body as `owner`'s upload named `name`. `declared` is the request's
/// `Content-Length`, if it gave one: a body that announces more than is allowed is
/// refused before it is read.
pub async fn receive<S, B>(
    state: &AppState,
    owner: UserId,
    name: FileName,
    declared: Option<u64>,
    body: S,
) -> Result<UploadRow, ApiError>
where
    S: Stream<Item = Result<B, ApiError>> + Unpin,
    B: AsRef<[u8]>,
{
    let limits = Limits::of(state, owner).await?;
    if let Some(length) = declared {
        limits.check(length)?;
    }
    let id = Uuid::new_v4();
    db::uploads::create(&state.pool, id, owner, name.as_str()).await?;
    let mut unfinished = Unfinished { pool: state.pool.clone(), id: Some(id) };
    let row = store(state, id, &limits, declared, body).await?;
    unfinished.id = None;
    Ok(row)
}

/// Removes an upload that did not finish: on an error, and also when the request is
/// dropped midway (the client went away), so a broken-off upload does not count against
/// its owner's quota until the sweep comes. Best effort: if the database is the
/// trouble, the sweep removes it later.
struct Unfinished {
    pool: sqlx::PgPool,
    id: Option<Uuid>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let (Some(id), Ok(runtime)) = (self.id.take(), tokio::runtime::Handle::try_current()) else { return };
        let pool = self.pool.clone();
        runtime.spawn(async move {
            if let Err(error) = db::uploads::discard(&pool, id).await {
                tracing::warn!(%error, upload = %id, "could not remove an unfinished upload");
            }
        });
    }
}

/// The largest upload `owner` may make: the size limit, and their quota. What is left of
/// the quota is read once to refuse early; each chunk is then checked against it again
/// as it is stored ([`db::uploads::insert_chunk`]), so parallel uploads cannot share
/// the same room.
struct Limits {
    owner: UserId,
    max_bytes: u64,
    quota: Option<u64>,
    quota_left: Option<u64>,
}

impl Limits {
    async fn of(state: &AppState, owner: UserId) -> Result<Self, ApiError> {
        let config = &state.config.uploads;
        let quota = (config.upload_quota_bytes > 0).then_some(config.upload_quota_bytes);
        let quota_left = match quota {
            None => None,
            Some(quota) => {
                let used = db::uploads::stored_bytes(&state.pool, owner).await?;
                Some(quota.saturating_sub(u64::try_from(used).unwrap_or(0)))
            }
        };
        Ok(Self { owner, max_bytes: config.upload_max_bytes, quota, quota_left })
    }

    fn check(&self, size: u64) -> Result<(), ApiError> {
        if size > self.max_bytes {
            return Err(ApiError::PayloadTooLarge { limit: usize::try_from(self.max_bytes).unwrap_or(usize::MAX) });
        }
        match self.quota_left {
            Some(left) if size > left => Err(quota_exceeded()),
            _ => Ok(()),
        }
    }

    /// Stores chunk `n`, within the quota as it stands now.
    async fn put(&self, state: &AppState, id: Uuid, n: i32, data: &[u8]) -> Result<(), ApiError> {
        let quota = self.quota.map(|quota| i64::try_from(quota).unwrap_or(i64::MAX));
        if db::uploads::insert_chunk(&state.pool, id, self.owner, n, data, quota).await? {
            Ok(())
        } else {
            Err(quota_exceeded())
        }
    }
}

fn quota_exceeded() -> ApiError {
    ApiError::QuotaExceeded {
        message: "your uploads are at their storage limit; uploads you did not send are removed after a day".into(),
    }
}

async fn store<S, B>(
    state: &AppState,
    id: Uuid,
    limits: &Limits,
    declared: Option<u64>,
    mut body: S,
) -> Result<UploadRow, ApiError>
where
    S: Stream<Item = Result<B, ApiError>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut pending = Vec::with_capacity(CHUNK_BYTES);
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut chunks = 0i32;
    while let Some(piece) = body.next().await {
        let piece = piece?;
        let mut bytes = piece.as_ref();
        size += bytes.len() as u64;
        limits.check(size)?;
        hasher.update(bytes);
        head.extend_from_slice(&bytes[..bytes.len().min(SNIFF_BYTES - head.len())]);
        while !bytes.is_empty() {
            let take = bytes.len().min(CHUNK_BYTES - pending.len());
            pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if pending.len() == CHUNK_BYTES {
                limits.put(state, id, chunks, &pending).await?;
                chunks += 1;
                pending.clear();
            }
        }
    }
    // A peer that goes away can end the body early without an error: never store a
    // truncated file as a whole one.
    if declared.is_some_and(|declared| declared != size) {
        return Err(ApiError::bad_request("invalid_body", "the body ended before its declared length"));
    }
    if size == 0 {
        return Err(ApiError::validation("body", "the file is empty"));
    }
    if !pending.is_empty() {
        limits.put(state, id, chunks, &pending).await?;
    }
    drop(pending);
    let mime = upload::sniff(&head);
    let preview =
        if upload::is_inline_image(mime) && size <= PREVIEW_MAX_BYTES { preview(state, id, size).await? } else { None };
    let thumbnail = preview.as_ref().map(|p| (p.thumbnail.as_slice(), p.thumbnail_mime));
    let finished = db::uploads::Finished {
        mime,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        dimensions: preview.as_ref().map(|p| (dimension(p.width), dimension(p.height))),
        thumbnail,
        sha256: &hasher.finalize(),
    };
    db::uploads::complete(&state.pool, id, &finished).await?;
    db::uploads::find(&state.pool, id).await?.ok_or_else(not_found)
}

fn dimension(pixels: u32) -> i32 {
    i32::try_from(pixels).unwrap_or(i32::MAX)
}

/// Decodes a stored image for its preview; `None` when the bytes are not an image this
/// server can decode within its limits (it is then served as a file).
async fn preview(state: &AppState, id: Uuid, size: u64) -> Result<Option<Preview>, ApiError> {
    let _permit = tokio::time::timeout(PREVIEW_QUEUE_TIMEOUT, state.previews.acquire())
        .await
        .map_err(|_| ApiError::Unavailable(anyhow::anyhow!("every image decoder stayed busy")))?
        .map_err(|_| ApiError::Unavailable(anyhow::anyhow!("shutting down")))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    db::uploads::read_all(&state.pool, id, &mut bytes).await?;
    let decoded = tokio::task::spawn_blocking(move || image_preview::preview(&bytes))
        .await
        .map_err(|error| ApiError::internal(anyhow::anyhow!("image decoding panicked: {error}")))?;
    match decoded {
        Ok(preview) => Ok(Some(preview)),
        Err(error) => {
            tracing::debug!(%error, upload = %id, "an upload that looks like an image does not decode");
            Ok(None)
        }
    }
}

/// Fills in an `image` or `file` message's content from the sender's own upload, and
/// marks the upload as used so the orphan sweep leaves it alone while the message is on
/// its way. Messages of other kinds pass unchanged.
pub async fn attach(state: &AppState, sender: UserId, message: &mut NewMessage) -> Result<(), ApiError> {
    let Some(upload_id) = message.upload_id() else { return Ok(()) };
    let row = db::uploads::use_for_send(&state.pool, upload_id, sender)
        .await?
        .ok_or_else(|| ApiError::validation("content", "upload_id must name a finished upload of yours"))?;
    message.attach(&Attachment {
        upload_id,
        name: row.name,
        mime: row.mime,
        size: row.size,
        dimensions: row.width.zip(row.height),
    })?;
    Ok(())
}

/// The upload, if `caller` may read it (404 otherwise, also when it exists).
pub async fn readable(state: &AppState, caller: UserId, id: Uuid) -> Result<UploadRow, ApiError> {
    let mut connection = state.pool.acquire().await?;
    readable_on(&mut connection, caller, id).await
}

/// [`readable`] on the caller's connection.
async fn readable_on(db: &mut PgConnection, caller: UserId, id: Uuid) -> Result<UploadRow, ApiError> {
    let row = db::uploads::find(&mut *db, id).await?.ok_or_else(not_found)?;
    if row.owner_id == caller {
        return Ok(row);
    }
    for (conversation, seq) in
        db::uploads::naming_messages_seen_by(&mut *db, id, caller, NAMING_MESSAGES_CHECKED).await?
    {
        match policy::readable(&mut *db, conversation, caller).await {
            Ok(access) if seq > access.member.visible_from_seq => return Ok(row),
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Err(not_found())
}

/// Chunk `n` of an upload already found [`readable`]; `None` past the last one.
pub async fn chunk(state: &AppState, id: Uuid, n: i32) -> Result<Option<Vec<u8>>, ApiError> {
    Ok(db::uploads::chunk(&state.pool, id, n).await?)
}

/// The thumbnail of a readable image upload and its type.
pub async fn thumbnail(state: &AppState, caller: UserId, id: Uuid) -> Result<(UploadRow, Vec<u8>, String), ApiError> {
    let mut connection = state.pool.acquire().await?;
    let row = readable_on(&mut connection, caller, id).await?;
    let (bytes, mime) = db::uploads::thumbnail(&mut *connection, id)
        .await?
        .ok_or_else(|| ApiError::not_found("thumbnail_not_found", "this upload has no thumbnail"))?;
    Ok((row, bytes, mime))
}
