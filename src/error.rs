//! The one error type every HTTP handler returns, and its JSON shape:
//! `{"error":{"code":"snake_case_code","message":"human text"}}` (plus `field` on
//! validation errors). Codes are stable API; messages are for people.
//!
//! A 5xx never carries its cause to the client: the cause is logged once, here, with the
//! request's span (and so its request id).

use std::time::Duration;

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Validation { field: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("the request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    QuotaExceeded { message: String },
    #[error("the request body did not arrive within {} s", .limit.as_secs())]
    BodyTimeout { limit: Duration },
    #[error("the request target (path and query) exceeds {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooMany { code: &'static str, message: String },
    #[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized { code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden { code, message: message.into() }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Gone { code, .. }
            | Self::TooMany { code, .. } => code,
            Self::Validation { .. } => "validation_failed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::QuotaExceeded { .. } => "upload_quota_exceeded",
            Self::BodyTimeout { .. } => "request_timeout",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_unstorable_text(&error) {
            return unstorable_text();
        }
        Self::database(crate::db::is_unavailable(&error), error.into())
    }
}

/// A database failure shared by every message of a failed writer batch.
impl From<std::sync::Arc<sqlx::Error>> for ApiError {
    fn from(error: std::sync::Arc<sqlx::Error>) -> Self {
        if crate::db::is_unstorable_text(&error) {
            return unstorable_text();
        }
        Self::database(crate::db::is_unavailable(&error), anyhow::anyhow!("{error}"))
    }
}

/// Text PostgreSQL refuses to store or compare: a NUL character (in `text` or `jsonb`).
/// Its statement failed, so nothing changed; the client sent something no field allows.
fn unstorable_text() -> ApiError {
    ApiError::bad_request("invalid_text", "text must not contain NUL (\\u0000) characters")
}

impl ApiError {
    /// An exhausted pool, a lost connection or a timeout is trouble to wait out, not a
    /// bug: 503 tells the client to come back. Anything else is a 500.
    fn database(unavailable: bool, cause: anyhow::Error) -> Self {
        if unavailable { Self::Unavailable(cause) } else { Self::Internal(cause) }
    }
}

impl From<crate::domain::Invalid> for ApiError {
    fn from(invalid: crate::domain::Invalid) -> Self {
        Self::validation(invalid.field, invalid.message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// The standard error body, for errors built outside [`ApiError`] (default handlers).
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone { .. } => StatusCode::GONE,
            Self::PayloadTooLarge { .. } | Self::QuotaExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } | Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "request refused: unavailable"),
            _ => {}
        }
        let message = self.to_string();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: &message,
                field: match self {
                    Self::Validation { field, .. } => Some(field),
                    _ => None,
                },
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::RateLimited { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.as_secs().max(1).to_string()));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(error: &ApiError) -> serde_json::Value {
        let bytes = error.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn an_internal_error_hides_its_cause() {
        let error = ApiError::internal(anyhow::anyhow!("password=hunter2 leaked"));
        let body = body_of(&error);
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn a_validation_error_names_its_field() {
        let body = body_of(&ApiError::validation("nickname", "too long"));
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["field"], "nickname");
    }

    #[test]
    fn rate_limited_responses_carry_retry_after() {
        let response = ApiError::RateLimited { retry_after: Duration::from_millis(2500) }.error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }
}
