//! `/api/v1/uploads*`: files and images in, and back out in a way no browser will run.
//!
//! Every answer that carries an upload's bytes says their sniffed type with
//! `X-Content-Type-Options: nosniff`, a `Content-Security-Policy` that runs nothing,
//! and `Content-Disposition: attachment` unless the upload is an image that decoded as
//! one. They are fetched with the token like every other call (the web client turns
//! them into `blob:` URLs), so there is no cookie for another site to ride on.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderValue},
    web::{self, Bytes},
};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::body_deadline::is_body_timeout;
use crate::{
    auth::Authenticated,
    db::uploads::UploadRow,
    domain::{
        FileName,
        upload::{content_disposition, is_inline_image, served_type},
    },
    dto::UploadResponse,
    error::ApiError,
    service::uploads,
    state::AppState,
};

/// Nothing in an upload may run: no scripts, no plugins, no forms, not even as a frame.
const UPLOAD_CSP: &str = "default-src 'none'; sandbox";

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The file's name, up to 255 characters without control, direction or zero-width
    /// characters; only its last path component is kept (it must have a character other
    /// than spaces and dots).
    #[param(
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2069\\ufeff]*[^/\\\\\\s.\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2069\\ufeff][^/\\\\\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2069\\ufeff]*$"
    )]
    name: String,
}

/// Upload a file or an image (the raw bytes as the body, any `Content-Type`). Up to
/// `GOIM_UPLOAD_MAX_BYTES`, within the caller's `GOIM_UPLOAD_QUOTA_BYTES`, arriving
/// within `GOIM_UPLOAD_TIMEOUT_SECS`. Then send it in a message of kind `image` or
/// `file` with content `{"upload_id": id}`; an upload no message names is removed after
/// a day.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", security(("bearer" = [])),
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes"),
    responses(
        (status = 201, body = UploadResponse),
        (status = 400, description = "validation_failed (name; body: empty), invalid_query, invalid_body (the body broke off)", body = crate::dto::ErrorResponse),
        (status = 408, description = "request_timeout: the body did not arrive within GOIM_UPLOAD_TIMEOUT_SECS", body = crate::dto::ErrorResponse),
        (status = 413, description = "payload_too_large (GOIM_UPLOAD_MAX_BYTES), upload_quota_exceeded", body = crate::dto::ErrorResponse),
    ))]
pub async fn upload(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<UploadQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let name = FileName::parse(&query.name)?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let timeout = state.config.uploads.upload_timeout;
    let body = body.map(|piece| {
        piece.map_err(|error| {
            if is_body_timeout(&error) {
                ApiError::BodyTimeout { limit: timeout }
            } else {
                ApiError::bad_request("invalid_body", format!("the body could not be read: {error}"))
            }
        })
    });
    let row = uploads::receive(&state, caller.user_id, name, declared, body).await?;
    Ok(HttpResponse::Created().json(UploadResponse::from(row)))
}

/// An upload's bytes, for its uploader and for whoever can read a message that names
/// it (404 for everyone else). Images are served inline, everything else as an
/// attachment, never as a type a browser runs.
#[utoipa::path(get, path = "/api/v1/uploads/{upload_id}", tag = "uploads", security(("bearer" = [])),
    params(("upload_id" = Uuid, Path)),
    responses(
        (status = 200, description = "the bytes, with their sniffed Content-Type (docs/protocol.md §9): an image type, text/plain; charset=utf-8, application/pdf, …, or application/octet-stream", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "If-None-Match named the current ETag"),
        (status = 404, description = "upload_not_found", body = crate::dto::ErrorResponse),
    ))]
pub async fn download(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let row = uploads::readable(&state, caller.user_id, path.into_inner()).await?;
    let inline = is_inline_image(&row.mime) && row.width.is_some();
    let mut response = protected(&row, &served_type(&row.mime), inline);
    if let Some(etag) = etag(&row) {
        if req.headers().get(header::IF_NONE_MATCH).is_some_and(|value| value.as_bytes() == etag.as_bytes()) {
            return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
        }
        response.insert_header((header::ETAG, etag));
    }
    let size = u64::try_from(row.size).unwrap_or(0);
    // Chunk by chunk, each read on its own: a slow reader holds no database connection.
    let chunks = stream::unfold(Some(0), move |next| {
        let state = state.clone();
        async move {
            let n = next?;
            match uploads::chunk(&state, row.id, n).await {
                Ok(Some(bytes)) => Some((Ok(Bytes::from(bytes)), Some(n + 1))),
                Ok(None) => None,
                Err(error) => Some((Err(actix_web::error::ErrorServiceUnavailable(error)), None)),
            }
        }
    });
    Ok(response.no_chunking(size).streaming(chunks))
}

/// The small preview of an image upload (JPEG, or PNG when it has transparency), for
/// the same readers as the upload.
#[utoipa::path(get, path = "/api/v1/uploads/{upload_id}/thumbnail", tag = "uploads", security(("bearer" = [])),
    params(("upload_id" = Uuid, Path)),
    responses(
        (status = 200, description = "image/jpeg, or image/png for an image with transparency; at most 320 × 320", content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"))),
        (status = 404, description = "upload_not_found, thumbnail_not_found (not an image)", body = crate::dto::ErrorResponse),
    ))]
pub async fn thumbnail(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (row, bytes, mime) = uploads::thumbnail(&state, caller.user_id, path.into_inner()).await?;
    Ok(protected(&row, &mime, true).body(bytes))
}

/// The headers every answer carrying upload bytes has.
fn protected(row: &UploadRow, content_type: &str, inline: bool) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    let name =
        FileName::parse(&row.name).map_or_else(|_| "attachment".to_owned(), |name| content_disposition(&name, inline));
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_DISPOSITION, name))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, UPLOAD_CSP))
        .insert_header(("Cross-Origin-Resource-Policy", "same-origin"))
        // Access can end (a recall): a cached copy is checked again before each use.
        .insert_header((header::CACHE_CONTROL, "private, no-cache"));
    response
}

fn etag(row: &UploadRow) -> Option<HeaderValue> {
    let digest = row.sha256.as_ref()?;
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).ok()
}
