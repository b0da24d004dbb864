//! Request targets longer than [`MAX_URI_BYTES`] get 414 `uri_too_long` in the JSON error
//! shape before any route sees them. (Heads beyond actix-http's own parser limit, about
//! 128 KiB, are refused by actix-http itself, with an empty 400 or 431: no hook reaches
//! those.)

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};

use crate::error::ApiError;

/// What common servers and proxies accept by default (nginx's 8 KiB header buffers);
/// no GOIM route needs more (a search query is at most 100 characters).
pub const MAX_URI_BYTES: usize = 8 * 1024;

pub async fn limit_uri(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let length = req.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if length > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong { limit: MAX_URI_BYTES }.into());
    }
    next.call(req).await
}
