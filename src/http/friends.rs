//! `/api/v1/friend-requests*`, `/api/v1/friends*` and mutual friends.

use super::json::Json;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::dto::{ErrorResponse, PageQuery, UserSummary, double_option};
use crate::{
    auth::Authenticated,
    domain::{Remark, RequestNote, UserId},
    error::ApiError,
    service::friends::{self, SendOutcome},
    state::AppState,
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendFriendRequest {
    #[schema(minimum = 1)]
    pub to_user_id: i64,
    /// Up to 200 characters.
    #[schema(max_length = 200, pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$")]
    pub note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FriendRequestView {
    pub id: i64,
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub note: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The other party: the sender for incoming requests, the recipient for outgoing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserSummary>,
}

#[derive(Serialize, ToSchema)]
pub struct SendFriendRequestResponse {
    /// `pending`: a new request; `accepted`: the other user had already asked you, so
    /// you are now friends.
    #[schema(example = "pending")]
    pub status: &'static str,
    pub request: Option<FriendRequestView>,
    /// Set when `status` is `accepted`.
    pub friend_user_id: Option<i64>,
}

/// Send a friend request. If the other user already sent you one, it is accepted
/// instead (no crossed duplicates).
#[utoipa::path(post, path = "/api/v1/friend-requests", tag = "friends", security(("bearer" = [])),
    request_body = SendFriendRequest,
    responses(
        (status = 201, description = "request sent", body = SendFriendRequestResponse),
        (status = 200, description = "their pending request was accepted", body = SendFriendRequestResponse),
        (status = 400, description = "cannot_befriend_self, validation_failed", body = ErrorResponse),
        (status = 403, description = "not_allowed (a block exists either way)", body = ErrorResponse),
        (status = 404, description = "user_not_found", body = ErrorResponse),
        (status = 409, description = "already_friends, request_pending", body = ErrorResponse),
        (status = 429, description = "rate_limited: re-sending within 24 h of a decline (Retry-After)", body = ErrorResponse),
    ))]
pub async fn send_friend_request(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<SendFriendRequest>,
) -> Result<HttpResponse, ApiError> {
    let note = RequestNote::parse(body.note.as_deref().unwrap_or_default())?;
    match friends::send_request(&state, caller.user_id, UserId(body.to_user_id), note).await? {
        SendOutcome::Requested(request) => Ok(HttpResponse::Created().json(SendFriendRequestResponse {
            status: "pending",
            request: Some(FriendRequestView {
                id: request.id,
                from_user_id: request.from_user.0,
                to_user_id: request.to_user.0,
                note: request.note,
                created_at: request.created_at,
                user: None,
            }),
            friend_user_id: None,
        })),
        SendOutcome::Accepted { friend, .. } => Ok(HttpResponse::Ok().json(SendFriendRequestResponse {
            status: "accepted",
            request: None,
            friend_user_id: Some(friend.0),
        })),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RequestListQuery {
    /// `incoming` (default) or `outgoing`.
    #[param(inline)]
    pub direction: Option<Direction>,
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Incoming,
    Outgoing,
}

#[derive(Serialize, ToSchema)]
pub struct FriendRequestPage {
    pub items: Vec<FriendRequestView>,
    pub next_cursor: Option<String>,
}

/// Pending friend requests to or from the caller, newest first.
#[utoipa::path(get, path = "/api/v1/friend-requests", tag = "friends", security(("bearer" = [])),
    params(RequestListQuery),
    responses((status = 200, body = FriendRequestPage), (status = 400, body = ErrorResponse)))]
pub async fn list_friend_requests(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<RequestListQuery>,
) -> Result<HttpResponse, ApiError> {
    let incoming = query.direction.unwrap_or(Direction::Incoming) == Direction::Incoming;
    let page =
        friends::list_requests(&state.pool, caller.user_id, incoming, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| FriendRequestView {
            id: row.id,
            from_user_id: row.from_user.0,
            to_user_id: row.to_user.0,
            note: row.note,
            created_at: row.created_at,
            user: Some(UserSummary::new(row.other_id, row.other_username, row.other_nickname, row.other_avatar_url)),
        })
        .collect();
    Ok(HttpResponse::Ok().json(FriendRequestPage { items, next_cursor: page.next_cursor }))
}

/// Accept a request addressed to you.
#[utoipa::path(post, path = "/api/v1/friend-requests/{request_id}/accept", tag = "friends", security(("bearer" = [])),
    params(("request_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = SendFriendRequestResponse),
        (status = 404, description = "friend_request_not_found (also for requests addressed to someone else)", body = ErrorResponse),
        (status = 409, description = "request_not_pending", body = ErrorResponse),
    ))]
pub async fn accept_friend_request(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let friend = friends::accept(&state, caller.user_id, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(SendFriendRequestResponse {
        status: "accepted",
        request: None,
        friend_user_id: Some(friend.0),
    }))
}

/// Decline a request addressed to you. The sender may ask again after 24 hours.
#[utoipa::path(post, path = "/api/v1/friend-requests/{request_id}/decline", tag = "friends", security(("bearer" = [])),
    params(("request_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn decline_friend_request(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    friends::decline(&state, caller.user_id, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Withdraw a request you sent.
#[utoipa::path(post, path = "/api/v1/friend-requests/{request_id}/cancel", tag = "friends", security(("bearer" = [])),
    params(("request_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn cancel_friend_request(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    friends::cancel(&state, caller.user_id, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct FriendView {
    pub user: UserSummary,
    /// Your private name for this friend.
    pub remark: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct FriendPage {
    pub items: Vec<FriendView>,
    pub next_cursor: Option<String>,
}

/// The caller's friends with their profile summary, by user id.
#[utoipa::path(get, path = "/api/v1/friends", tag = "friends", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = FriendPage), (status = 400, body = ErrorResponse)))]
pub async fn list_friends(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = friends::list_friends(&state.pool, caller.user_id, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| FriendView {
            user: UserSummary::new(row.id, row.username, row.nickname, row.avatar_url),
            remark: row.remark,
            since: row.created_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(FriendPage { items, next_cursor: page.next_cursor }))
}

/// End a friendship (both sides).
#[utoipa::path(delete, path = "/api/v1/friends/{user_id}", tag = "friends", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 404, description = "not_friends", body = ErrorResponse)))]
pub async fn remove_friend(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    friends::remove_friend(&state, caller.user_id, UserId(path.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFriendRequest {
    /// 1–64 characters, or null to remove. Required.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(
        required = true,
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub remark: Option<Option<String>>,
}

/// Set or clear your private remark (alias) for a friend.
#[utoipa::path(patch, path = "/api/v1/friends/{user_id}", tag = "friends", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)), request_body = UpdateFriendRequest,
    responses((status = 204), (status = 400, body = ErrorResponse), (status = 404, description = "not_friends", body = ErrorResponse)))]
pub async fn update_friend(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<UpdateFriendRequest>,
) -> Result<HttpResponse, ApiError> {
    let Some(remark) = &body.remark else {
        return Err(ApiError::validation("remark", "is required (null removes it)"));
    };
    let remark = remark.as_deref().map(Remark::parse).transpose()?;
    friends::set_remark(&state.pool, caller.user_id, UserId(path.into_inner()), remark).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserSummary>,
    pub next_cursor: Option<String>,
}

/// Friends the caller and another user have in common, by user id.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/mutual-friends", tag = "friends", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1), PageQuery),
    responses((status = 200, body = UserPage), (status = 404, description = "user_not_found", body = ErrorResponse)))]
pub async fn list_mutual_friends(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let other = UserId(path.into_inner());
    let page =
        friends::mutual_friends(&state.pool, caller.user_id, other, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| UserSummary::new(row.id, row.username, row.nickname, row.avatar_url))
        .collect();
    Ok(HttpResponse::Ok().json(UserPage { items, next_cursor: page.next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub struct SuggestionView {
    pub user: UserSummary,
    pub mutual_friends: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SuggestionPage {
    pub items: Vec<SuggestionView>,
    pub next_cursor: Option<String>,
}

/// Friends of friends you are not connected with, most mutual friends first. Excludes
/// blocked users (either way) and users with a pending request either way.
#[utoipa::path(get, path = "/api/v1/friends/suggestions", tag = "friends", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = SuggestionPage), (status = 400, body = ErrorResponse)))]
pub async fn list_suggestions(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = friends::suggestions(&state.pool, caller.user_id, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| SuggestionView {
            user: UserSummary::new(row.id, row.username, row.nickname, row.avatar_url),
            mutual_friends: row.mutual_friends,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SuggestionPage { items, next_cursor: page.next_cursor }))
}
