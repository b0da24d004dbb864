//! `/api/v1/users*`: public profiles and user search.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::dto::{PublicProfile, UserSummary};
use crate::{auth::Authenticated, domain::UserId, error::ApiError, service::users, state::AppState};

/// Another user's public profile.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = PublicProfile),
        (status = 404, description = "user_not_found", body = crate::dto::ErrorResponse),
    ))]
pub async fn show_user(
    state: web::Data<AppState>,
    _caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let user = users::profile(&state.pool, UserId(path.into_inner())).await?;
    Ok(HttpResponse::Ok().json(PublicProfile::from(user)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// 1–64 characters, matched against usernames and nicknames (prefix and fuzzy).
    #[param(min_length = 1, max_length = 64, pattern = "\\S")]
    pub q: String,
    /// Page size, 1–50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    pub items: Vec<UserSummary>,
    /// Present when more results follow.
    pub next_cursor: Option<String>,
}

/// Search users by username or nickname: exact and prefix matches first, then fuzzy
/// (trigram) matches, best first.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, body = SearchResponse),
        (status = 400, description = "validation_failed, invalid_cursor", body = crate::dto::ErrorResponse),
    ))]
pub async fn search_users(
    state: web::Data<AppState>,
    _caller: Authenticated,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    let page = users::search(&state.pool, &query.q, limit, query.cursor.as_deref()).await?;
    let items = page
        .items
        .into_iter()
        .map(|hit| UserSummary::new(hit.id, hit.username, hit.nickname, hit.avatar_url))
        .collect();
    Ok(HttpResponse::Ok().json(SearchResponse { items, next_cursor: page.next_cursor }))
}
