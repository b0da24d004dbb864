//! `/api/v1/blocks*`.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::dto::{ErrorResponse, PageQuery, UserSummary};
use crate::{auth::Authenticated, domain::UserId, error::ApiError, service::blocks, state::AppState};

/// Block a user: ends any friendship and cancels pending requests both ways. The
/// blocked user can no longer send you requests or direct messages and does not see
/// your presence. Blocking twice is fine.
#[utoipa::path(put, path = "/api/v1/blocks/{user_id}", tag = "blocks", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 204),
        (status = 400, description = "cannot_block_self", body = ErrorResponse),
        (status = 404, description = "user_not_found", body = ErrorResponse),
    ))]
pub async fn block_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    blocks::block(&state, caller.user_id, UserId(path.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Unblock a user. Friendship is not restored.
#[utoipa::path(delete, path = "/api/v1/blocks/{user_id}", tag = "blocks", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 404, description = "not_blocked", body = ErrorResponse)))]
pub async fn unblock_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    blocks::unblock(&state.pool, caller.user_id, UserId(path.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct BlockedView {
    pub user: UserSummary,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct BlockPage {
    pub items: Vec<BlockedView>,
    pub next_cursor: Option<String>,
}

/// Users the caller has blocked, by user id.
#[utoipa::path(get, path = "/api/v1/blocks", tag = "blocks", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = BlockPage)))]
pub async fn list_blocks(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = blocks::list(&state.pool, caller.user_id, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| BlockedView {
            user: UserSummary::new(row.id, row.username, row.nickname, row.avatar_url),
            since: row.created_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(BlockPage { items, next_cursor: page.next_cursor }))
}
