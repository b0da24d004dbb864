//! Keeps actix's own errors (unknown route, wrong method, bad JSON, oversize body,
//! malformed path or query) in the standard JSON error shape.

use actix_web::{
    HttpRequest, HttpResponse,
    dev::ServiceResponse,
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::header,
    middleware::{ErrorHandlerResponse, ErrorHandlers},
    web,
};

use crate::error::{ApiError, error_body};

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(|error, _req: &HttpRequest| {
        let api_error = match &error {
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                ApiError::PayloadTooLarge { limit: *limit }
            }
            JsonPayloadError::ContentType => {
                ApiError::UnsupportedMediaType("the body must be JSON (Content-Type: application/json)".into())
            }
            JsonPayloadError::Deserialize(cause) if cause.is_data() => invalid_body(cause),
            JsonPayloadError::Deserialize(cause) => {
                ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {cause}"))
            }
            JsonPayloadError::Payload(payload) if super::body_deadline::is_body_timeout(payload) => {
                ApiError::BodyTimeout { limit: body_timeout(_req) }
            }
            other => ApiError::bad_request("invalid_body", other.to_string()),
        };
        api_error.into()
    })
}

/// A well-formed JSON body that is not this request (a wrong type, a missing or unknown
/// field, a repeated key).
pub fn invalid_body(cause: &serde_json::Error) -> ApiError {
    ApiError::bad_request("invalid_body", format!("the JSON body does not fit this request: {cause}"))
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error: QueryPayloadError, _req: &HttpRequest| {
        ApiError::bad_request("invalid_query", format!("invalid query string: {error}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error: PathError, _req: &HttpRequest| {
        ApiError::bad_request("invalid_path", format!("invalid path parameter: {error}")).into()
    })
}

/// Rewrites any error response that is not already JSON (actix's 404/405/413 and
/// friends come as plain text or empty bodies) into the standard shape.
fn body_timeout(req: &HttpRequest) -> std::time::Duration {
    req.app_data::<web::Data<crate::state::AppState>>()
        .map_or(std::time::Duration::ZERO, |state| state.config.server.body_timeout)
}

pub fn json_error_handlers<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(rewrite_as_json)
}

fn rewrite_as_json<B: 'static>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = match status.as_u16() {
        404 => ("not_found", "no resource at this path".to_owned()),
        405 => ("method_not_allowed", "this method is not allowed on this resource".to_owned()),
        413 => ("payload_too_large", "the request body is too large".to_owned()),
        _ => (
            snake_case_reason(status.canonical_reason().unwrap_or("error")),
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
    };
    let (req, original) = res.into_parts();
    let mut response = HttpResponse::build(status);
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.append_header((name.clone(), value.clone()));
        }
    }
    let response = response.json(error_body(code, &message));
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_into_right_body()))
}

/// `"Request Timeout"` → `request_timeout`. Leaked to keep codes `&'static`; the set of
/// HTTP reason phrases is small and fixed.
fn snake_case_reason(reason: &'static str) -> &'static str {
    match reason {
        "Bad Request" => "bad_request",
        "Unauthorized" => "unauthorized",
        "Forbidden" => "forbidden",
        "Request Timeout" => "request_timeout",
        "Conflict" => "conflict",
        "Length Required" => "length_required",
        "Unsupported Media Type" => "unsupported_media_type",
        "URI Too Long" => "uri_too_long",
        "Request Header Fields Too Large" => "headers_too_large",
        "Service Unavailable" => "service_unavailable",
        "Internal Server Error" => "internal_error",
        _ => "http_error",
    }
}
