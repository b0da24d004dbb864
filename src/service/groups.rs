//! Groups: metadata, membership, roles, join requests and invitations.
//!
//! Every change runs in one transaction that first locks the group row, so changes to
//! one group are serialised; the database enforces the member limit (CHECK on the
//! trigger-kept counter) and "exactly one owner" (unique index + deferred trigger) even
//! if this code had a bug. Events go out after commit to the members affected.

use time::{Duration, OffsetDateTime};

use super::page::{self, Page};
use sqlx::{Connection, PgPool};

use crate::{
    db::{
        self,
        groups::{GroupChange, GroupRow, InvitationRow, JoinRequestRow, NewGroup},
    },
    domain::{
        Announcement, AvatarUrl, GroupDescription, GroupId, GroupName, HistoryVisibility, JoinPolicy, Role,
        ShortMessage, UserId,
    },
    error::ApiError,
    events::{Event, Published},
    state::AppState,
};

pub const MUTE_MIN: Duration = Duration::minutes(1);
pub const MUTE_MAX: Duration = Duration::days(30);

/// Settings for a new group.
pub struct NewGroupSettings {
    pub name: GroupName,
    pub avatar_url: Option<AvatarUrl>,
    pub description: GroupDescription,
    pub announcement: Announcement,
    pub join_policy: JoinPolicy,
    pub history_visibility: HistoryVisibility,
    pub member_limit: Option<i32>,
}

/// Changed settings; `None` leaves a field alone.
#[derive(Default)]
pub struct GroupUpdate {
    pub name: Option<GroupName>,
    pub avatar_url: Option<Option<AvatarUrl>>,
    pub description: Option<GroupDescription>,
    pub announcement: Option<Announcement>,
    pub join_policy: Option<JoinPolicy>,
    pub history_visibility: Option<HistoryVisibility>,
    pub member_limit: Option<i32>,
}

pub async fn create(state: &AppState, caller: UserId, settings: NewGroupSettings) -> Result<GroupRow, ApiError> {
    let member_limit = settings.member_limit.unwrap_or(state.config.chat.group_max_members as i32);
    check_member_limit(state, member_limit, 1)?;
    let announcement = settings.announcement.as_str();
    let mut connection = state.pool.acquire().await?;
    let mut tx = connection.begin().await?;
    let group = db::groups::insert(
        &mut *tx,
        &NewGroup {
            name: settings.name.as_str(),
            avatar_url: settings.avatar_url.as_ref().map(AvatarUrl::as_str),
            description: settings.description.as_str(),
            announcement,
            announcement_by: (!announcement.is_empty()).then_some(caller),
            join_policy: settings.join_policy.as_str(),
            history_visibility: settings.history_visibility.as_str(),
            member_limit,
        },
    )
    .await?;
    db::groups::add_member(&mut *tx, group.id, caller, Role::Owner).await?;
    if !announcement.is_empty() {
        db::groups::record_announcement(&mut *tx, group.id, announcement, caller).await?;
    }
    tx.commit().await?;
    Ok(db::groups::find(&mut *connection, group.id).await?.unwrap_or(group))
}

/// A group as `caller` may see it, with the caller's role if a member. Members see
/// everything; others see open and approval groups (to decide whether to join), but
/// not invite-only ones, which answer as if missing.
pub async fn show(pool: &PgPool, caller: UserId, id: GroupId) -> Result<(GroupRow, Option<Role>), ApiError> {
    let mut connection = pool.acquire().await?;
    let group = db::groups::find(&mut *connection, id).await?.ok_or_else(group_not_found)?;
    let role = db::groups::member(&mut *connection, id, caller).await?.map(|m| m.role);
    let invited = role.is_none() && has_pending_invitation(&mut connection, id, caller).await?;
    if role.is_none() && !invited && policy(&group) == JoinPolicy::InviteOnly {
        return Err(group_not_found());
    }
    Ok((group, role))
}

/// The updated group and the caller's role in it.
pub async fn update(
    state: &AppState,
    caller: UserId,
    id: GroupId,
    change: GroupUpdate,
) -> Result<(GroupRow, Role), ApiError> {
    let mut tx = state.pool.begin().await?;
    let (group, role) = acting_member(&mut tx, id, caller).await?;
    require(role.is_admin_or_owner())?;
    let owner_only =
        change.join_policy.is_some() || change.member_limit.is_some() || change.history_visibility.is_some();
    if owner_only && role != Role::Owner {
        return Err(ApiError::forbidden(
            "owner_only",
            "only the owner can change the join policy, member limit or history visibility",
        ));
    }
    if let Some(limit) = change.member_limit {
        check_member_limit(state, limit, group.member_count)?;
    }
    let updated = db::groups::update(
        &mut *tx,
        id,
        caller,
        &GroupChange {
            name: change.name.as_ref().map(GroupName::as_str),
            avatar_url: change.avatar_url.as_ref().map(|url| url.as_ref().map(AvatarUrl::as_str)),
            description: change.description.as_ref().map(GroupDescription::as_str),
            announcement: change.announcement.as_ref().map(Announcement::as_str),
            join_policy: change.join_policy.map(JoinPolicy::as_str),
            history_visibility: change.history_visibility.map(HistoryVisibility::as_str),
            member_limit: change.member_limit,
        },
    )
    .await?;
    if let Some(announcement) = &change.announcement {
        db::groups::record_announcement(&mut *tx, id, announcement.as_str(), caller).await?;
    }
    let members = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    if let Some(announcement) = change.announcement {
        state.events.publish(
            members.clone(),
            Event::GroupAnnouncementUpdated {
                group_id: id,
                announcement: announcement.as_str().to_owned(),
                by_user_id: caller,
            },
        );
    }
    state.events.publish(members, Event::GroupUpdated { group_id: id });
    Ok((updated, role))
}

/// Soft: the group and its member list stay (history remains readable to its
/// members); every change is refused from now on with 410.
pub async fn disband(state: &AppState, caller: UserId, id: GroupId) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let (_, role) = acting_member(&mut tx, id, caller).await?;
    require_owner(role)?;
    db::groups::disband(&mut *tx, id).await?;
    let members = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    state.events.publish(members, Event::GroupDisbanded { group_id: id });
    Ok(())
}

pub enum JoinOutcome {
    Joined,
    Requested(JoinRequestRow),
}

pub async fn join(
    state: &AppState,
    caller: UserId,
    id: GroupId,
    message: ShortMessage,
) -> Result<JoinOutcome, ApiError> {
    let mut tx = state.pool.begin().await?;
    let group = db::groups::lock(&mut *tx, id).await?.ok_or_else(group_not_found)?;
    let member = db::groups::member(&mut *tx, id, caller).await?.is_some();
    if !member && policy(&group) == JoinPolicy::InviteOnly && !has_pending_invitation(&mut tx, id, caller).await? {
        return Err(group_not_found());
    }
    refuse_disbanded(&group)?;
    if member {
        return Err(already_member());
    }
    match policy(&group) {
        JoinPolicy::Open => {
            add_member(&mut tx, id, caller).await?;
            let members = db::groups::member_ids(&mut *tx, id).await?;
            tx.commit().await?;
            state.events.publish(members, Event::GroupMemberJoined { group_id: id, user_id: caller });
            Ok(JoinOutcome::Joined)
        }
        JoinPolicy::Approval => {
            let request =
                db::groups::insert_join_request(&mut *tx, id, caller, message.as_str()).await.map_err(|e| {
                    match db::violated_constraint(&e) {
                        Some("group_join_requests_pending_key") => {
                            ApiError::conflict("join_request_pending", "you have already asked to join this group")
                        }
                        _ => e.into(),
                    }
                })?;
            let admins = admin_ids(&mut tx, id).await?;
            tx.commit().await?;
            state
                .events
                .publish(admins, Event::GroupJoinRequested { group_id: id, request_id: request.id, user_id: caller });
            Ok(JoinOutcome::Requested(request))
        }
        JoinPolicy::InviteOnly => {
            Err(ApiError::forbidden("invitation_required", "this group can only be joined by invitation"))
        }
    }
}

/// Leaving as the owner hands ownership to the longest-standing admin (else member);
/// the last member leaving disbands the group.
pub async fn leave(state: &AppState, caller: UserId, id: GroupId) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let (_, role) = acting_member(&mut tx, id, caller).await?;
    let announcements = depart(&mut tx, id, caller, role).await?;
    tx.commit().await?;
    state.events.publish_all(announcements);
    Ok(())
}

/// Takes `user` (whose role is `role`) out of a live group, as leaving does: an owner
/// hands the group to the successor, or disbands it when nobody is left. Returns what
/// to announce after commit.
pub(crate) async fn depart(
    tx: &mut sqlx::PgConnection,
    id: GroupId,
    user: UserId,
    role: Role,
) -> Result<Vec<Published>, ApiError> {
    let mut new_owner = None;
    if role == Role::Owner {
        match db::groups::successor(&mut *tx, id, user).await? {
            Some(successor) => {
                db::groups::set_role(&mut *tx, id, user, Role::Member).await?;
                db::groups::set_role(&mut *tx, id, successor, Role::Owner).await?;
                new_owner = Some(successor);
            }
            None => db::groups::disband(&mut *tx, id).await?,
        }
    }
    db::groups::remove_member(&mut *tx, id, user).await?;
    let members = db::groups::member_ids(&mut *tx, id).await?;
    let mut announcements = Vec::new();
    if let Some(owner) = new_owner {
        let event = Event::GroupRoleChanged { group_id: id, user_id: owner, role: Role::Owner };
        announcements.push(Published { recipients: members.clone(), event });
    }
    let mut told = members;
    told.push(user);
    announcements.push(Published { recipients: told, event: Event::GroupMemberLeft { group_id: id, user_id: user } });
    Ok(announcements)
}

/// Takes a deleted account out of every group it was in (see [`depart`]).
pub(crate) async fn depart_all(tx: &mut sqlx::PgConnection, user: UserId) -> Result<Vec<Published>, ApiError> {
    let mut announcements = Vec::new();
    for id in db::groups::ids_of_member(&mut *tx, user).await? {
        let Some(group) = db::groups::lock(&mut *tx, id).await? else { continue };
        let Some(member) = db::groups::member(&mut *tx, id, user).await? else { continue };
        if group.disbanded_at.is_some() {
            db::groups::remove_member(&mut *tx, id, user).await?;
        } else {
            announcements.extend(depart(tx, id, user, member.role).await?);
        }
    }
    Ok(announcements)
}

pub async fn kick(state: &AppState, caller: UserId, id: GroupId, target: UserId) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let (_, role) = acting_member(&mut tx, id, caller).await?;
    let target_role = target_role(&mut tx, id, target).await?;
    require(role.can_moderate(target_role))?;
    db::groups::remove_member(&mut *tx, id, target).await?;
    let mut told = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    told.push(target);
    state.events.publish(told, Event::GroupMemberKicked { group_id: id, user_id: target, by_user_id: caller });
    Ok(())
}

/// Promote to admin or demote to member; the owner's call alone.
pub async fn set_role(
    state: &AppState,
    caller: UserId,
    id: GroupId,
    target: UserId,
    role: Role,
) -> Result<(), ApiError> {
    if role == Role::Owner {
        return Err(ApiError::validation("role", "use the transfer endpoint to change the owner"));
    }
    let mut tx = state.pool.begin().await?;
    let (_, caller_role) = acting_member(&mut tx, id, caller).await?;
    require_owner(caller_role)?;
    let current = target_role(&mut tx, id, target).await?;
    if current == Role::Owner {
        return Err(ApiError::forbidden("insufficient_role", "the owner's role changes only by transfer"));
    }
    db::groups::set_role(&mut *tx, id, target, role).await?;
    let members = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    state.events.publish(members, Event::GroupRoleChanged { group_id: id, user_id: target, role });
    Ok(())
}

/// Mutes `target` for `duration` (`None` unmutes). Muted members cannot send.
pub async fn mute(
    state: &AppState,
    caller: UserId,
    id: GroupId,
    target: UserId,
    duration: Option<Duration>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    if let Some(duration) = duration
        && !(MUTE_MIN..=MUTE_MAX).contains(&duration)
    {
        return Err(ApiError::validation("duration_secs", "must be between 60 seconds and 30 days"));
    }
    let mut tx = state.pool.begin().await?;
    let (_, role) = acting_member(&mut tx, id, caller).await?;
    let target_role = target_role(&mut tx, id, target).await?;
    require(role.can_moderate(target_role))?;
    let until = duration.map(|d| OffsetDateTime::now_utc() + d);
    db::groups::set_muted_until(&mut *tx, id, target, until).await?;
    let members = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    state.events.publish(
        members,
        Event::GroupMemberMuted {
            group_id: id,
            user_id: target,
            muted_until: until.map(OffsetDateTime::unix_timestamp),
        },
    );
    Ok(until)
}

/// Makes `new_owner` the owner; the previous owner becomes an admin.
pub async fn transfer(state: &AppState, caller: UserId, id: GroupId, new_owner: UserId) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let (_, role) = acting_member(&mut tx, id, caller).await?;
    require_owner(role)?;
    if new_owner == caller {
        return Err(ApiError::bad_request("already_owner", "you already own this group"));
    }
    // The group in the path exists; the member named in the body does not: a bad
    // request, not a missing resource.
    if db::groups::member(&mut *tx, id, new_owner).await?.is_none() {
        return Err(ApiError::validation("user_id", "must be a member of the group"));
    }
    // Demote first: the unique index allows one owner row at a time.
    db::groups::set_role(&mut *tx, id, caller, Role::Admin).await?;
    db::groups::set_role(&mut *tx, id, new_owner, Role::Owner).await?;
    let members = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    state.events.publish(members.clone(), Event::GroupRoleChanged { group_id: id, user_id: caller, role: Role::Admin });
    state.events.publish(members, Event::GroupRoleChanged { group_id: id, user_id: new_owner, role: Role::Owner });
    Ok(())
}

/// Invitations always need the invitee's consent, whatever the policy, so nobody is
/// put into a group unasked. In open groups any member may invite; otherwise admins.
pub async fn invite(state: &AppState, caller: UserId, id: GroupId, invitee: UserId) -> Result<InvitationRow, ApiError> {
    let mut tx = state.pool.begin().await?;
    let (group, role) = acting_member(&mut tx, id, caller).await?;
    if !policy(&group).can_invite(role) {
        return Err(ApiError::forbidden("insufficient_role", "only admins can invite to this group"));
    }
    if !db::users::reachable(&mut *tx, invitee).await? {
        return Err(ApiError::not_found("user_not_found", "no such user"));
    }
    if db::blocks::exists_either_way(&mut *tx, caller, invitee).await? {
        return Err(super::friends::not_allowed());
    }
    if db::groups::member(&mut *tx, id, invitee).await?.is_some() {
        return Err(already_member());
    }
    let invitation =
        db::groups::insert_invitation(&mut *tx, id, caller, invitee).await.map_err(
            |e| match db::violated_constraint(&e) {
                Some("group_invitations_pending_key") => {
                    ApiError::conflict("invitation_pending", "this user already has a pending invitation")
                }
                _ => e.into(),
            },
        )?;
    tx.commit().await?;
    state.events.publish(
        vec![invitee],
        Event::GroupInvitationReceived { group_id: id, invitation_id: invitation.id, inviter_id: caller },
    );
    Ok(invitation)
}

pub async fn answer_invitation(
    state: &AppState,
    caller: UserId,
    invitation_id: i64,
    accept: bool,
) -> Result<GroupId, ApiError> {
    let not_found = || ApiError::not_found("invitation_not_found", "no such invitation");
    let mut connection = state.pool.acquire().await?;
    let invitation = db::groups::find_invitation(&mut *connection, invitation_id)
        .await?
        .filter(|i| i.invitee_id == caller)
        .ok_or_else(not_found)?;
    let id = invitation.group_id;
    let mut tx = connection.begin().await?;
    refuse_disbanded(&db::groups::lock(&mut *tx, id).await?.ok_or_else(group_not_found)?)?;
    let status = if accept { "accepted" } else { "declined" };
    if !db::groups::decide_invitation(&mut *tx, invitation.id, status).await? {
        return Err(ApiError::conflict("invitation_not_pending", "this invitation was already answered or withdrawn"));
    }
    if !accept {
        tx.commit().await?;
        return Ok(id);
    }
    if db::groups::member(&mut *tx, id, caller).await?.is_some() {
        return Err(already_member());
    }
    add_member(&mut tx, id, caller).await?;
    let members = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    state.events.publish(members, Event::GroupMemberJoined { group_id: id, user_id: caller });
    Ok(id)
}

pub async fn decide_join_request(
    state: &AppState,
    caller: UserId,
    id: GroupId,
    request_id: i64,
    approve: bool,
) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let (_, role) = acting_member(&mut tx, id, caller).await?;
    require(role.is_admin_or_owner())?;
    let request = db::groups::find_join_request(&mut *tx, id, request_id)
        .await?
        .ok_or_else(|| ApiError::not_found("join_request_not_found", "no such join request"))?;
    let status = if approve { "approved" } else { "rejected" };
    if !db::groups::decide_join_request(&mut *tx, request.id, status, caller).await? {
        return Err(ApiError::conflict("join_request_not_pending", "this join request was already decided"));
    }
    if approve {
        add_member(&mut tx, id, request.user_id).await?;
    }
    let members = db::groups::member_ids(&mut *tx, id).await?;
    tx.commit().await?;
    state.events.publish(
        vec![request.user_id],
        Event::GroupJoinRequestDecided { group_id: id, request_id: request.id, approved: approve },
    );
    if approve {
        state.events.publish(members, Event::GroupMemberJoined { group_id: id, user_id: request.user_id });
    }
    Ok(())
}

pub async fn list_join_requests(
    pool: &PgPool,
    caller: UserId,
    id: GroupId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<db::groups::JoinRequestListRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let mut connection = pool.acquire().await?;
    let role = reading_member(&mut connection, id, caller).await?;
    require(role.is_admin_or_owner())?;
    let rows = db::groups::list_join_requests(&mut *connection, id, page::decode_i64(cursor)?, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}

pub async fn list_members(
    pool: &PgPool,
    caller: UserId,
    id: GroupId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<db::groups::MemberListRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let mut connection = pool.acquire().await?;
    reading_member(&mut connection, id, caller).await?;
    let after = page::decode_i64(cursor)?.map(UserId);
    let rows = db::groups::list_members(&mut *connection, id, after, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.user_id.to_string()))
}

pub async fn announcements(
    pool: &PgPool,
    caller: UserId,
    id: GroupId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<db::groups::AnnouncementRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let mut connection = pool.acquire().await?;
    reading_member(&mut connection, id, caller).await?;
    let rows = db::groups::announcements(&mut *connection, id, page::decode_i64(cursor)?, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}

pub async fn my_groups(
    pool: &PgPool,
    caller: UserId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<db::groups::MyGroupRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let after = page::decode_i64(cursor)?.map(GroupId);
    let rows = db::groups::list_for_user(pool, caller, after, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.group.id.to_string()))
}

pub async fn my_invitations(
    pool: &PgPool,
    caller: UserId,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<Page<db::groups::InvitationListRow>, ApiError> {
    let limit = page::limit(limit, page::MAX_LIMIT)?;
    let rows = db::groups::list_invitations_for(pool, caller, page::decode_i64(cursor)?, limit + 1).await?;
    Ok(page::paginate(rows, limit, |row| row.id.to_string()))
}

/// The caller's role in a group, for reads. Disbanded groups stay readable.
async fn reading_member(db: &mut sqlx::PgConnection, id: GroupId, caller: UserId) -> Result<Role, ApiError> {
    let group = db::groups::find(&mut *db, id).await?.ok_or_else(group_not_found)?;
    db::groups::member(&mut *db, id, caller).await?.map(|m| m.role).ok_or_else(|| outsider(&group))
}

/// Locks the group and returns it with the caller's role; the caller must be a member
/// and the group must not be disbanded.
async fn acting_member(tx: &mut sqlx::PgConnection, id: GroupId, caller: UserId) -> Result<(GroupRow, Role), ApiError> {
    let group = db::groups::lock(&mut *tx, id).await?.ok_or_else(group_not_found)?;
    let member = db::groups::member(&mut *tx, id, caller).await?.ok_or_else(|| outsider(&group))?;
    refuse_disbanded(&group)?;
    Ok((group, member.role))
}

fn refuse_disbanded(group: &GroupRow) -> Result<(), ApiError> {
    if group.disbanded_at.is_some() {
        return Err(ApiError::Gone { code: "group_disbanded", message: "this group has been disbanded".into() });
    }
    Ok(())
}

/// How a group answers someone who is not in it: an invite-only group as if missing
/// (as `show` does), so its id reveals nothing; any other with 403.
fn outsider(group: &GroupRow) -> ApiError {
    if policy(group) == JoinPolicy::InviteOnly { group_not_found() } else { not_a_member() }
}

async fn target_role(tx: &mut sqlx::PgConnection, id: GroupId, target: UserId) -> Result<Role, ApiError> {
    db::groups::member(&mut *tx, id, target)
        .await?
        .map(|m| m.role)
        .ok_or_else(|| ApiError::not_found("member_not_found", "this user is not a member of the group"))
}

/// Adds a member, closing their pending requests and invitations for the group. A
/// full group is the database's verdict (the member-limit CHECK), not a prior count.
async fn add_member(tx: &mut sqlx::PgConnection, id: GroupId, user: UserId) -> Result<(), ApiError> {
    db::groups::add_member(&mut *tx, id, user, Role::Member).await.map_err(|e| match db::violated_constraint(&e) {
        Some("groups_member_limit") => ApiError::conflict("group_full", "the group has reached its member limit"),
        Some("group_members_pkey") => already_member(),
        _ => e.into(),
    })?;
    db::groups::close_pending_for(tx, id, user).await?;
    Ok(())
}

async fn admin_ids(tx: &mut sqlx::PgConnection, id: GroupId) -> Result<Vec<UserId>, ApiError> {
    Ok(db::groups::admin_ids(&mut *tx, id).await?)
}

async fn has_pending_invitation(db: &mut sqlx::PgConnection, id: GroupId, user: UserId) -> Result<bool, ApiError> {
    Ok(db::groups::has_pending_invitation(db, id, user).await?)
}

fn check_member_limit(state: &AppState, limit: i32, current_members: i32) -> Result<(), ApiError> {
    let max = state.config.chat.group_max_members as i32;
    if limit < 2 || limit > max {
        return Err(ApiError::validation("member_limit", format!("must be 2–{max}")));
    }
    if limit < current_members {
        return Err(ApiError::validation("member_limit", format!("the group already has {current_members} members")));
    }
    Ok(())
}

fn policy(group: &GroupRow) -> JoinPolicy {
    // The column's CHECK constraint admits only the three names.
    JoinPolicy::parse(&group.join_policy).unwrap_or(JoinPolicy::InviteOnly)
}

fn require(allowed: bool) -> Result<(), ApiError> {
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden("insufficient_role", "your role in this group does not allow this"))
    }
}

fn require_owner(role: Role) -> Result<(), ApiError> {
    if role == Role::Owner {
        Ok(())
    } else {
        Err(ApiError::forbidden("owner_only", "only the group owner can do this"))
    }
}

fn group_not_found() -> ApiError {
    ApiError::not_found("group_not_found", "no such group")
}

fn not_a_member() -> ApiError {
    ApiError::forbidden("not_a_member", "you are not a member of this group")
}

fn already_member() -> ApiError {
    ApiError::conflict("already_member", "already a member of this group")
}
