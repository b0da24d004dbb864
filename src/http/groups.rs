//! `/api/v1/groups*`, `/api/v1/me/groups`, `/api/v1/me/group-invitations`,
//! `/api/v1/group-invitations*`.

use super::json::{Json, OptionalJson};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::dto::{ErrorResponse, PageQuery, UserSummary, double_option};
use crate::{
    auth::Authenticated,
    db::groups::GroupRow,
    domain::{
        Announcement, AvatarUrl, GroupDescription, GroupId, GroupName, HistoryVisibility, JoinPolicy, Role,
        ShortMessage, UserId,
    },
    error::ApiError,
    service::groups::{self, GroupUpdate, JoinOutcome, NewGroupSettings},
    state::AppState,
};

#[derive(Serialize, ToSchema)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    pub avatar_url: Option<String>,
    pub description: String,
    /// Members only (absent for others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announcement: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub announcement_updated_at: Option<OffsetDateTime>,
    pub announcement_updated_by: Option<i64>,
    pub join_policy: JoinPolicy,
    pub history_visibility: HistoryVisibility,
    pub member_limit: i32,
    pub member_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disbanded_at: Option<OffsetDateTime>,
    /// The caller's role; null when not a member.
    pub my_role: Option<Role>,
}

impl GroupView {
    fn new(group: GroupRow, my_role: Option<Role>) -> Self {
        Self {
            id: group.id.0,
            name: group.name,
            avatar_url: group.avatar_url,
            description: group.description,
            announcement: my_role.map(|_| group.announcement),
            announcement_updated_at: group.announcement_updated_at,
            announcement_updated_by: group.announcement_updated_by.map(|u| u.0),
            join_policy: JoinPolicy::parse(&group.join_policy).unwrap_or(JoinPolicy::InviteOnly),
            history_visibility: HistoryVisibility::parse(&group.history_visibility).unwrap_or(HistoryVisibility::All),
            member_limit: group.member_limit,
            member_count: group.member_count,
            created_at: group.created_at,
            disbanded_at: group.disbanded_at,
            my_role,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// 1–64 characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    pub avatar_url: Option<String>,
    /// Up to 500 characters.
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$")]
    pub description: Option<String>,
    /// Up to 2000 characters.
    #[schema(max_length = 2000, pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$")]
    pub announcement: Option<String>,
    pub join_policy: JoinPolicy,
    /// Default `all`.
    pub history_visibility: Option<HistoryVisibility>,
    /// 2 to the server maximum (`GOIM_GROUP_MAX_MEMBERS`, default 500), which is also
    /// the default.
    #[schema(minimum = 2)]
    pub member_limit: Option<i32>,
}

/// Create a group; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", security(("bearer" = [])),
    request_body = CreateGroupRequest,
    responses((status = 201, body = GroupView), (status = 400, description = "validation_failed, invalid_body", body = ErrorResponse)))]
pub async fn create_group(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<CreateGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let settings = NewGroupSettings {
        name: GroupName::parse(&body.name)?,
        avatar_url: body.avatar_url.as_deref().map(AvatarUrl::parse).transpose()?,
        description: GroupDescription::parse(body.description.as_deref().unwrap_or_default())?,
        announcement: Announcement::parse(body.announcement.as_deref().unwrap_or_default())?,
        join_policy: body.join_policy,
        history_visibility: body.history_visibility.unwrap_or(HistoryVisibility::All),
        member_limit: body.member_limit,
    };
    let group = groups::create(&state, caller.user_id, settings).await?;
    Ok(HttpResponse::Created().json(GroupView::new(group, Some(Role::Owner))))
}

/// A group. Non-members see open and approval groups without the announcement;
/// invite-only groups are visible to members and invitees only.
#[utoipa::path(get, path = "/api/v1/groups/{group_id}", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = GroupView), (status = 404, description = "group_not_found", body = ErrorResponse)))]
pub async fn show_group(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (group, role) = groups::show(&state.pool, caller.user_id, GroupId(path.into_inner())).await?;
    Ok(HttpResponse::Ok().json(GroupView::new(group, role)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: Option<String>,
    /// null removes it.
    #[serde(default, deserialize_with = "double_option")]
    pub avatar_url: Option<Option<String>>,
    #[schema(max_length = 500, pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$")]
    pub description: Option<String>,
    /// Every change is kept in the announcement history.
    #[schema(max_length = 2000, pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$")]
    pub announcement: Option<String>,
    /// Owner only.
    pub join_policy: Option<JoinPolicy>,
    /// Owner only.
    pub history_visibility: Option<HistoryVisibility>,
    /// Owner only; not below the current member count.
    #[schema(minimum = 2)]
    pub member_limit: Option<i32>,
}

/// Update a group (owner and admins; policy, visibility and limit: owner only).
#[utoipa::path(patch, path = "/api/v1/groups/{group_id}", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)), request_body = UpdateGroupRequest,
    responses(
        (status = 200, body = GroupView),
        (status = 403, description = "not_a_member, insufficient_role, owner_only", body = ErrorResponse),
        (status = 410, description = "group_disbanded", body = ErrorResponse),
    ))]
pub async fn update_group(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<UpdateGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let change = GroupUpdate {
        name: body.name.as_deref().map(GroupName::parse).transpose()?,
        avatar_url: body.avatar_url.map(|url| url.as_deref().map(AvatarUrl::parse).transpose()).transpose()?,
        description: body.description.as_deref().map(GroupDescription::parse).transpose()?,
        announcement: body.announcement.as_deref().map(Announcement::parse).transpose()?,
        join_policy: body.join_policy,
        history_visibility: body.history_visibility,
        member_limit: body.member_limit,
    };
    let id = GroupId(path.into_inner());
    let (group, role) = groups::update(&state, caller.user_id, id, change).await?;
    Ok(HttpResponse::Ok().json(GroupView::new(group, Some(role))))
}

/// Disband the group (owner). Members keep read access to its history; every change
/// is refused afterwards with 410.
#[utoipa::path(delete, path = "/api/v1/groups/{group_id}", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, description = "owner_only", body = ErrorResponse)))]
pub async fn disband_group(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    groups::disband(&state, caller.user_id, GroupId(path.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct JoinGroupRequest {
    /// For approval groups: a note to the admins, up to 200 characters.
    #[schema(max_length = 200, pattern = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$")]
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JoinGroupResponse {
    /// `joined` (open group) or `requested` (approval group: wait for an admin).
    pub status: &'static str,
    pub request_id: Option<i64>,
}

/// Join an open group, or ask to join an approval group.
#[utoipa::path(post, path = "/api/v1/groups/{group_id}/join", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)), request_body(content = Option<JoinGroupRequest>),
    responses(
        (status = 200, description = "joined", body = JoinGroupResponse),
        (status = 202, description = "join request created", body = JoinGroupResponse),
        (status = 403, description = "invitation_required", body = ErrorResponse),
        (status = 409, description = "already_member, group_full, join_request_pending", body = ErrorResponse),
    ))]
pub async fn join_group(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: OptionalJson<JoinGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let message = body.0.unwrap_or_default().message;
    let message = ShortMessage::parse(message.as_deref().unwrap_or_default())?;
    match groups::join(&state, caller.user_id, GroupId(path.into_inner()), message).await? {
        JoinOutcome::Joined => Ok(HttpResponse::Ok().json(JoinGroupResponse { status: "joined", request_id: None })),
        JoinOutcome::Requested(request) => {
            Ok(HttpResponse::Accepted().json(JoinGroupResponse { status: "requested", request_id: Some(request.id) }))
        }
    }
}

/// Leave a group. The owner's leaving hands ownership to the longest-standing admin
/// (else member); the last member leaving disbands the group.
#[utoipa::path(post, path = "/api/v1/groups/{group_id}/leave", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, description = "not_a_member", body = ErrorResponse)))]
pub async fn leave_group(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    groups::leave(&state, caller.user_id, GroupId(path.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user: UserSummary,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub muted_until: Option<OffsetDateTime>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<MemberView>,
    pub next_cursor: Option<String>,
}

/// Members with role and join time, by user id (members only).
#[utoipa::path(get, path = "/api/v1/groups/{group_id}/members", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), PageQuery),
    responses((status = 200, body = MemberPage), (status = 403, description = "not_a_member", body = ErrorResponse)))]
pub async fn list_members(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = groups::list_members(
        &state.pool,
        caller.user_id,
        GroupId(path.into_inner()),
        query.cursor.as_deref(),
        query.limit,
    )
    .await?;
    let items = page
        .items
        .into_iter()
        .map(|row| MemberView {
            user: UserSummary::new(row.user_id, row.username, row.nickname, row.avatar_url),
            role: Role::parse(&row.role).unwrap_or(Role::Member),
            joined_at: row.joined_at,
            muted_until: row.muted_until,
        })
        .collect();
    Ok(HttpResponse::Ok().json(MemberPage { items, next_cursor: page.next_cursor }))
}

/// Remove a member. Owners remove admins and members; admins remove members only.
#[utoipa::path(delete, path = "/api/v1/groups/{group_id}/members/{user_id}", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), ("user_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, description = "insufficient_role", body = ErrorResponse), (status = 404, description = "member_not_found", body = ErrorResponse)))]
pub async fn kick_member(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (group, user) = path.into_inner();
    groups::kick(&state, caller.user_id, GroupId(group), UserId(user)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    pub role: AssignableRole,
}

/// The roles an owner hands out; ownership moves only by transfer.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignableRole {
    Admin,
    Member,
}

impl From<AssignableRole> for Role {
    fn from(role: AssignableRole) -> Self {
        match role {
            AssignableRole::Admin => Role::Admin,
            AssignableRole::Member => Role::Member,
        }
    }
}

/// Promote to admin or demote to member (owner only).
#[utoipa::path(put, path = "/api/v1/groups/{group_id}/members/{user_id}/role", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), ("user_id" = i64, Path, minimum = 1)), request_body = SetRoleRequest,
    responses((status = 204), (status = 403, description = "owner_only", body = ErrorResponse)))]
pub async fn set_member_role(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
    body: Json<SetRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let (group, user) = path.into_inner();
    groups::set_role(&state, caller.user_id, GroupId(group), UserId(user), body.role.into()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// 60 seconds to 30 days.
    #[schema(minimum = 60, maximum = 2592000)]
    pub duration_secs: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MuteResponse {
    #[serde(with = "time::serde::rfc3339::option")]
    pub muted_until: Option<OffsetDateTime>,
}

/// Mute a member for a while: they cannot send messages to the group. Same role rule
/// as removing.
#[utoipa::path(put, path = "/api/v1/groups/{group_id}/members/{user_id}/mute", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), ("user_id" = i64, Path, minimum = 1)), request_body = MuteRequest,
    responses((status = 200, body = MuteResponse), (status = 403, body = ErrorResponse)))]
pub async fn mute_member(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
    body: Json<MuteRequest>,
) -> Result<HttpResponse, ApiError> {
    let (group, user) = path.into_inner();
    let duration = time::Duration::seconds(body.duration_secs);
    let until = groups::mute(&state, caller.user_id, GroupId(group), UserId(user), Some(duration)).await?;
    Ok(HttpResponse::Ok().json(MuteResponse { muted_until: until }))
}

/// Lift a mute.
#[utoipa::path(delete, path = "/api/v1/groups/{group_id}/members/{user_id}/mute", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), ("user_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, body = ErrorResponse)))]
pub async fn unmute_member(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (group, user) = path.into_inner();
    groups::mute(&state, caller.user_id, GroupId(group), UserId(user), None).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(minimum = 1)]
    pub user_id: i64,
}

/// Hand ownership to another member (owner only); the previous owner becomes an admin.
#[utoipa::path(post, path = "/api/v1/groups/{group_id}/transfer", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)), request_body = TransferRequest,
    responses((status = 204),
        (status = 400, description = "already_owner (yourself), validation_failed (user_id is not a member)", body = ErrorResponse),
        (status = 403, description = "owner_only", body = ErrorResponse), (status = 404, description = "group_not_found", body = ErrorResponse)))]
pub async fn transfer_ownership(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<TransferRequest>,
) -> Result<HttpResponse, ApiError> {
    groups::transfer(&state, caller.user_id, GroupId(path.into_inner()), UserId(body.user_id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(minimum = 1)]
    pub user_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    pub id: i64,
    pub group_id: i64,
    pub inviter_id: i64,
    pub invitee_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Invite a user. The invitee must accept (nobody is added unasked). Open groups: any
/// member invites; approval and invite-only groups: admins.
#[utoipa::path(post, path = "/api/v1/groups/{group_id}/invitations", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)), request_body = InviteRequest,
    responses(
        (status = 201, body = InvitationView),
        (status = 403, description = "insufficient_role, not_allowed (block)", body = ErrorResponse),
        (status = 409, description = "already_member, invitation_pending", body = ErrorResponse),
    ))]
pub async fn invite_member(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<InviteRequest>,
) -> Result<HttpResponse, ApiError> {
    let invitation = groups::invite(&state, caller.user_id, GroupId(path.into_inner()), UserId(body.user_id)).await?;
    Ok(HttpResponse::Created().json(InvitationView {
        id: invitation.id,
        group_id: invitation.group_id.0,
        inviter_id: invitation.inviter_id.0,
        invitee_id: invitation.invitee_id.0,
        created_at: invitation.created_at,
    }))
}

/// Accept an invitation addressed to you: you join the group.
#[utoipa::path(post, path = "/api/v1/group-invitations/{invitation_id}/accept", tag = "groups", security(("bearer" = [])),
    params(("invitation_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 404, description = "invitation_not_found", body = ErrorResponse), (status = 409, description = "invitation_not_pending, group_full", body = ErrorResponse)))]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    groups::answer_invitation(&state, caller.user_id, path.into_inner(), true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Decline an invitation addressed to you.
#[utoipa::path(post, path = "/api/v1/group-invitations/{invitation_id}/decline", tag = "groups", security(("bearer" = [])),
    params(("invitation_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 404, body = ErrorResponse)))]
pub async fn decline_invitation(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    groups::answer_invitation(&state, caller.user_id, path.into_inner(), false).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct InvitationListItem {
    pub id: i64,
    pub group_id: i64,
    pub group_name: String,
    pub inviter_id: i64,
    pub inviter_nickname: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationPage {
    pub items: Vec<InvitationListItem>,
    pub next_cursor: Option<String>,
}

/// Pending invitations addressed to the caller.
#[utoipa::path(get, path = "/api/v1/me/group-invitations", tag = "groups", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = InvitationPage)))]
pub async fn list_my_invitations(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = groups::my_invitations(&state.pool, caller.user_id, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| InvitationListItem {
            id: row.id,
            group_id: row.group_id.0,
            group_name: row.group_name,
            inviter_id: row.inviter_id.0,
            inviter_nickname: row.inviter_nickname,
            created_at: row.created_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(InvitationPage { items, next_cursor: page.next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub struct GroupPage {
    pub items: Vec<GroupView>,
    pub next_cursor: Option<String>,
}

/// The caller's groups (not disbanded), by group id.
#[utoipa::path(get, path = "/api/v1/me/groups", tag = "groups", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = GroupPage)))]
pub async fn list_my_groups(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = groups::my_groups(&state.pool, caller.user_id, query.cursor.as_deref(), query.limit).await?;
    let items = page.items.into_iter().map(|row| GroupView::new(row.group, Role::parse(&row.role))).collect();
    Ok(HttpResponse::Ok().json(GroupPage { items, next_cursor: page.next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub struct JoinRequestView {
    pub id: i64,
    pub user: UserSummary,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct JoinRequestPage {
    pub items: Vec<JoinRequestView>,
    pub next_cursor: Option<String>,
}

/// Pending join requests (owner and admins).
#[utoipa::path(get, path = "/api/v1/groups/{group_id}/join-requests", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), PageQuery),
    responses((status = 200, body = JoinRequestPage), (status = 403, body = ErrorResponse)))]
pub async fn list_join_requests(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = GroupId(path.into_inner());
    let page =
        groups::list_join_requests(&state.pool, caller.user_id, id, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| JoinRequestView {
            id: row.id,
            user: UserSummary::new(row.user_id, row.username, row.nickname, row.avatar_url),
            message: row.message,
            created_at: row.created_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(JoinRequestPage { items, next_cursor: page.next_cursor }))
}

/// Approve a join request (owner and admins): the requester becomes a member.
#[utoipa::path(post, path = "/api/v1/groups/{group_id}/join-requests/{request_id}/approve", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), ("request_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, description = "join_request_not_pending, group_full", body = ErrorResponse)))]
pub async fn approve_join_request(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (group, request) = path.into_inner();
    groups::decide_join_request(&state, caller.user_id, GroupId(group), request, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reject a join request (owner and admins).
#[utoipa::path(post, path = "/api/v1/groups/{group_id}/join-requests/{request_id}/reject", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), ("request_id" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn reject_join_request(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (group, request) = path.into_inner();
    groups::decide_join_request(&state, caller.user_id, GroupId(group), request, false).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct AnnouncementView {
    pub id: i64,
    pub text: String,
    pub updated_by: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct AnnouncementPage {
    pub items: Vec<AnnouncementView>,
    pub next_cursor: Option<String>,
}

/// Announcement history, newest first (members only).
#[utoipa::path(get, path = "/api/v1/groups/{group_id}/announcements", tag = "groups", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1), PageQuery),
    responses((status = 200, body = AnnouncementPage), (status = 403, body = ErrorResponse)))]
pub async fn list_announcements(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = GroupId(path.into_inner());
    let page = groups::announcements(&state.pool, caller.user_id, id, query.cursor.as_deref(), query.limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|row| AnnouncementView {
            id: row.id,
            text: row.text,
            updated_by: row.updated_by.map(|u| u.0),
            created_at: row.created_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(AnnouncementPage { items, next_cursor: page.next_cursor }))
}
