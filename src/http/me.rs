//! `/api/v1/me*`: the caller's own profile and sessions.

use super::json::Json;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use time::Date;
use utoipa::ToSchema;

use crate::dto::{OwnProfile, SessionResponse, double_option};
use crate::{
    auth::Authenticated,
    db::{self, users::ProfileChange},
    domain::{AvatarUrl, Bio, Birthday, Nickname, Password, SessionId},
    error::ApiError,
    service::{accounts, users},
    state::AppState,
};

/// A partial update: omitted fields stay as they are; `null` clears a clearable field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    /// 1–64 characters; cannot be cleared.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub nickname: Option<Option<String>>,
    /// http(s) URL up to 2048 bytes, or null to remove.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(max_length = 2048, pattern = "^https?://[^\\s@/]+(/\\S*)?$")]
    pub avatar_url: Option<Option<String>>,
    /// `YYYY-MM-DD`, not in the future, or null to remove.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub birthday: Option<Option<Date>>,
    /// Up to 500 characters; null empties it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$")]
    pub bio: Option<Option<String>>,
}

/// The caller's own profile (includes private fields such as the birthday).
#[utoipa::path(get, path = "/api/v1/me", tag = "profile", security(("bearer" = [])),
    responses((status = 200, body = OwnProfile), (status = 401, body = crate::dto::ErrorResponse)))]
pub async fn show_me(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let user = users::profile(&state.pool, caller.user_id).await?;
    Ok(HttpResponse::Ok().json(OwnProfile::from(user)))
}

/// Update some profile fields.
#[utoipa::path(patch, path = "/api/v1/me", tag = "profile", security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, body = OwnProfile),
        (status = 400, description = "validation_failed (with field), invalid_body (unknown field, wrong type)", body = crate::dto::ErrorResponse),
    ))]
pub async fn update_me(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<UpdateProfileRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let change = ProfileChange {
        nickname: match body.nickname {
            None => None,
            Some(None) => return Err(ApiError::validation("nickname", "cannot be removed")),
            Some(Some(raw)) => Some(Nickname::parse(&raw)?),
        },
        avatar_url: body.avatar_url.map(|url| url.as_deref().map(AvatarUrl::parse).transpose()).transpose()?,
        birthday: body.birthday.map(|date| date.map(Birthday::parse_now).transpose()).transpose()?,
        bio: body.bio.map(|bio| Bio::parse(bio.as_deref().unwrap_or_default())).transpose()?,
    };
    let user = users::update_profile(&state.pool, caller.user_id, &change).await?;
    Ok(HttpResponse::Ok().json(OwnProfile::from(user)))
}

/// The caller's active sessions (devices), most recently used first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "profile", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionResponse>)))]
pub async fn list_sessions(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let sessions = db::sessions::list_active(&state.pool, caller.user_id).await?;
    let body: Vec<SessionResponse> = sessions
        .into_iter()
        .map(|row| {
            let current = row.id == caller.session_id;
            SessionResponse::new(row, current)
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

/// Sign out one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{session_id}", tag = "profile", security(("bearer" = [])),
    params(("session_id" = uuid::Uuid, Path)),
    responses(
        (status = 204),
        (status = 404, description = "session_not_found (also for other users' sessions)", body = crate::dto::ErrorResponse),
    ))]
pub async fn revoke_session(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    accounts::revoke_session(&state, caller, SessionId(path.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's current password.
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
}

/// Delete the caller's account, for good. Groups are handed on as when leaving (or
/// disbanded when nobody is left); friendships, requests, blocks, sessions and the profile
/// are erased; messages stay under the author "Deleted user" or are removed, as the
/// server's `GOIM_DELETED_ACCOUNT_MESSAGES` says. The username cannot be registered
/// again for `GOIM_USERNAME_REUSE_DAYS` days (30 by default).
#[utoipa::path(delete, path = "/api/v1/me", tag = "profile", security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204),
        (status = 400, description = "validation_failed, invalid_body", body = crate::dto::ErrorResponse),
        (status = 403, description = "wrong_password", body = crate::dto::ErrorResponse),
        (status = 429, description = "rate_limited: the account's login budget is spent (Retry-After header)", body = crate::dto::ErrorResponse),
    ))]
pub async fn delete_me(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<DeleteAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    super::auth::limit_password_guesses(&state, caller)?;
    let password = Password::parse_any(body.into_inner().password, "password")?;
    accounts::delete_account(&state, caller, password).await?;
    Ok(HttpResponse::NoContent().finish())
}
