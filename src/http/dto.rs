//! JSON shapes shared by several handlers.

use serde::{Deserialize, Deserializer, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

use crate::{
    db::{sessions::SessionRow, users::UserRow},
    domain::UserId,
    service::accounts::IssuedTokens,
};

/// The standard error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorObject,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    /// Stable, machine-readable, snake_case.
    #[schema(example = "validation_failed")]
    pub code: String,
    pub message: String,
    /// The offending input field, on validation errors.
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// A user as anyone signed in may see them.
#[derive(Serialize, ToSchema)]
pub struct PublicProfile {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub bio: String,
}

impl From<UserRow> for PublicProfile {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id.0,
            username: user.username,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            bio: user.bio,
        }
    }
}

/// Enough of a user to show them in a list.
#[derive(Serialize, ToSchema)]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
}

impl UserSummary {
    pub fn new(id: UserId, username: String, nickname: String, avatar_url: Option<String>) -> Self {
        Self { id: id.0, username, nickname, avatar_url }
    }
}

/// `?cursor=…&limit=…` of every keyset-paginated list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<i64>,
}

/// The caller's own profile: the public one plus private fields.
#[derive(Serialize, ToSchema)]
pub struct OwnProfile {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub bio: String,
    /// Private: only the user sees it.
    pub birthday: Option<Date>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<UserRow> for OwnProfile {
    fn from(user: UserRow) -> Self {
        Self {
            id: user.id.0,
            username: user.username,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            bio: user.bio,
            birthday: user.birthday,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub user_id: i64,
    pub session_id: uuid::Uuid,
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one. Presenting a used one signs the
    /// session out.
    pub refresh_token: String,
}

impl From<IssuedTokens> for TokenResponse {
    fn from(tokens: IssuedTokens) -> Self {
        Self {
            user_id: tokens.user_id.0,
            session_id: tokens.session_id.0,
            access_token: tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.access_expires_in,
            refresh_token: tokens.refresh_token,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    pub id: uuid::Uuid,
    pub device_name: String,
    pub user_agent: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The session this request was made with.
    pub current: bool,
}

impl SessionResponse {
    pub fn new(row: SessionRow, current: bool) -> Self {
        Self {
            id: row.id.0,
            device_name: row.device_name,
            user_agent: row.user_agent,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            current,
        }
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in
/// partial updates; use with `#[serde(default, deserialize_with = "double_option")]`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
