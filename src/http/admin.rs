//! `/api/v1/admin/*`: server administration, for accounts with the server-admin flag
//! (granted only by `goim admin grant` on the command line). Anyone else gets 403
//! `not_admin` on every route, before any parameter is looked at.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::json::Json;
use crate::{
    auth::Authenticated,
    db::admin::{AdminUserRow, AuditRow},
    domain::{GroupId, Password, UserId},
    error::ApiError,
    service::{accounts, admin},
    state::AppState,
};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserListQuery {
    /// Only accounts whose username or nickname contains this (case-insensitive).
    #[param(min_length = 1, max_length = 64)]
    pub q: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// One account as administrators see it.
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub is_admin: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the account last had a socket open; null if never (or connected now).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    /// Set while the account is deactivated.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deactivated_at: Option<OffsetDateTime>,
    /// Signed-in devices (sessions not revoked or expired).
    pub active_sessions: i64,
    /// Has a WebSocket open on some instance now.
    pub online: bool,
}

impl From<AdminUserRow> for AdminUser {
    fn from(row: AdminUserRow) -> Self {
        Self {
            id: row.id.0,
            username: row.username,
            nickname: row.nickname,
            is_admin: row.is_admin,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            deactivated_at: row.deactivated_at,
            active_sessions: row.active_sessions,
            online: row.online,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserPage {
    pub items: Vec<AdminUser>,
    /// Present when more accounts follow.
    pub next_cursor: Option<String>,
}

/// List and search accounts, newest first, with last seen and signed-in devices.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(UserListQuery),
    responses(
        (status = 200, body = AdminUserPage),
        (status = 400, description = "validation_failed, invalid_cursor", body = crate::dto::ErrorResponse),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_list_users(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<UserListQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut connection = state.pool.acquire().await?;
    admin::require_admin(&mut *connection, caller.user_id).await?;
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 64) {
        return Err(ApiError::validation("q", "at most 64 characters"));
    }
    let page = admin::list_users(&mut *connection, query.q.as_deref(), query.cursor.as_deref(), query.limit).await?;
    let items = page.items.into_iter().map(AdminUser::from).collect();
    Ok(HttpResponse::Ok().json(AdminUserPage { items, next_cursor: page.next_cursor }))
}

/// Deactivate an account: every session is revoked, its sockets close at once (4001) on
/// every instance, and logins are refused with 403 `account_deactivated` until it is
/// reactivated. Deactivating a deactivated account changes nothing.
#[utoipa::path(post, path = "/api/v1/admin/users/{user_id}/deactivate", tag = "admin", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 204),
        (status = 400, description = "cannot_deactivate_self", body = crate::dto::ErrorResponse),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
        (status = 404, description = "user_not_found", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_deactivate_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let mut connection = state.pool.acquire().await?;
    let actor = admin::require_admin(&mut *connection, caller.user_id).await?;
    let events = admin::deactivate(&mut *connection, actor, UserId(path.into_inner())).await?;
    drop(connection);
    accounts::announce(&state, events);
    Ok(HttpResponse::NoContent().finish())
}

/// Let a deactivated account sign in again (its old sessions stay revoked).
#[utoipa::path(post, path = "/api/v1/admin/users/{user_id}/reactivate", tag = "admin", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 204),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
        (status = 404, description = "user_not_found", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_reactivate_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let mut connection = state.pool.acquire().await?;
    let actor = admin::require_admin(&mut *connection, caller.user_id).await?;
    admin::reactivate(&mut *connection, actor, UserId(path.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The account's new password, 8–256 characters.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

/// Set an account's password; every session of the account is signed out.
#[utoipa::path(post, path = "/api/v1/admin/users/{user_id}/password", tag = "admin", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    request_body = ResetPasswordRequest,
    responses(
        (status = 204),
        (status = 400, description = "validation_failed", body = crate::dto::ErrorResponse),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
        (status = 404, description = "user_not_found", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_reset_password(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin::require_admin(&state.pool, caller.user_id).await?;
    let password = Password::parse(body.into_inner().password, "password")?;
    let events = admin::reset_password(&state.pool, &state.hasher, actor, UserId(path.into_inner()), password).await?;
    accounts::announce(&state, events);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct DeletedMessages {
    /// How many messages were removed.
    pub deleted: u64,
}

/// Remove every message an account has sent, in every conversation, as recalls (content
/// gone, each message's place in history kept). Members hear `message_deleted` for each,
/// or one `resync` when there are more than 500.
#[utoipa::path(delete, path = "/api/v1/admin/users/{user_id}/messages", tag = "admin", security(("bearer" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, body = DeletedMessages),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
        (status = 404, description = "user_not_found", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_delete_user_messages(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let mut connection = state.pool.acquire().await?;
    let actor = admin::require_admin(&mut *connection, caller.user_id).await?;
    let (deleted, events) = admin::delete_messages(&mut *connection, actor, UserId(path.into_inner())).await?;
    drop(connection);
    accounts::announce(&state, events);
    Ok(HttpResponse::Ok().json(DeletedMessages { deleted }))
}

/// Disband any group, as its owner could.
#[utoipa::path(delete, path = "/api/v1/admin/groups/{group_id}", tag = "admin", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)),
    responses(
        (status = 204),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
        (status = 404, description = "group_not_found", body = crate::dto::ErrorResponse),
        (status = 410, description = "group_disbanded", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_disband_group(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let mut connection = state.pool.acquire().await?;
    let actor = admin::require_admin(&mut *connection, caller.user_id).await?;
    let events = admin::disband_group(&mut *connection, actor, GroupId(path.into_inner())).await?;
    drop(connection);
    accounts::announce(&state, events);
    Ok(HttpResponse::NoContent().finish())
}

/// The server at a glance.
#[derive(Serialize, ToSchema)]
pub struct ServerStats {
    /// Accounts, deactivated ones included, deleted ones not.
    pub users: i64,
    pub deactivated_users: i64,
    /// Accounts with a WebSocket open on some instance.
    pub online_users: i64,
    /// Groups not disbanded.
    pub groups: i64,
    /// Messages stored since midnight (the database server's time zone).
    pub messages_today: i64,
    /// The database's size on disk.
    pub database_bytes: i64,
}

/// Users, online now, messages today, database size.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = ServerStats),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_stats(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let mut connection = state.pool.acquire().await?;
    admin::require_admin(&mut *connection, caller.user_id).await?;
    let stats = admin::stats(&mut *connection).await?;
    drop(connection);
    Ok(HttpResponse::Ok().json(ServerStats {
        users: stats.users,
        deactivated_users: stats.deactivated_users,
        online_users: stats.online_users,
        groups: stats.groups,
        messages_today: stats.messages_today,
        database_bytes: stats.database_bytes,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// One administrative action.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The administrator; null when the action came from the command line (`goim admin`).
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
    /// `grant_admin`, `revoke_admin`, `deactivate_user`, `reactivate_user`, `reset_password`,
    /// `delete_messages` or `disband_group`.
    pub action: String,
    pub target_user_id: Option<i64>,
    pub target_group_id: Option<i64>,
    /// Facts about the action (e.g. how many messages or sessions it touched).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            at: row.at,
            actor_id: row.actor_id.map(|id| id.0),
            actor_username: row.actor_username,
            action: row.action,
            target_user_id: row.target_user_id.map(|id| id.0),
            target_group_id: row.target_group_id.map(|id| id.0),
            detail: row.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Present when older entries follow.
    pub next_cursor: Option<String>,
}

/// The audit trail of administrative actions, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "validation_failed, invalid_cursor", body = crate::dto::ErrorResponse),
        (status = 403, description = "not_admin", body = crate::dto::ErrorResponse),
    ))]
pub async fn admin_audit(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut connection = state.pool.acquire().await?;
    admin::require_admin(&mut *connection, caller.user_id).await?;
    let page = admin::audit(&mut *connection, query.cursor.as_deref(), query.limit).await?;
    let items = page.items.into_iter().map(AuditEntry::from).collect();
    Ok(HttpResponse::Ok().json(AuditPage { items, next_cursor: page.next_cursor }))
}
