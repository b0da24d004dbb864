//! The `groups`, `group_members`, `group_join_requests`, `group_invitations` and
//! `group_announcements` tables. Callers lock the group row ([`lock`]) first in every
//! transaction that changes membership, so those changes are serialised per group.

use sqlx::{FromRow, PgExecutor};
use time::OffsetDateTime;

use crate::domain::{GroupId, Role, UserId};

#[derive(Debug, Clone, FromRow)]
pub struct GroupRow {
    pub id: GroupId,
    pub name: String,
    pub avatar_url: Option<String>,
    pub description: String,
    pub announcement: String,
    pub announcement_updated_at: Option<OffsetDateTime>,
    pub announcement_updated_by: Option<UserId>,
    pub join_policy: String,
    pub history_visibility: String,
    pub member_limit: i32,
    pub member_count: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub disbanded_at: Option<OffsetDateTime>,
}

const GROUP_COLUMNS: &str = "id, name, avatar_url, description, announcement, announcement_updated_at, \
    announcement_updated_by, join_policy, history_visibility, member_limit, member_count, created_at, updated_at, \
    disbanded_at";

pub struct NewGroup<'a> {
    pub name: &'a str,
    pub avatar_url: Option<&'a str>,
    pub description: &'a str,
    pub announcement: &'a str,
    pub announcement_by: Option<UserId>,
    pub join_policy: &'a str,
    pub history_visibility: &'a str,
    pub member_limit: i32,
}

pub async fn insert(db: impl PgExecutor<'_>, new: &NewGroup<'_>) -> sqlx::Result<GroupRow> {
    sqlx::query_as(&format!(
        "INSERT INTO groups (name, avatar_url, description, announcement, announcement_updated_at,
                             announcement_updated_by, join_policy, history_visibility, member_limit)
         VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint IS NULL THEN NULL ELSE now() END, $5, $6, $7, $8)
         RETURNING {GROUP_COLUMNS}"
    ))
    .bind(new.name)
    .bind(new.avatar_url)
    .bind(new.description)
    .bind(new.announcement)
    .bind(new.announcement_by)
    .bind(new.join_policy)
    .bind(new.history_visibility)
    .bind(new.member_limit)
    .fetch_one(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: GroupId) -> sqlx::Result<Option<GroupRow>> {
    sqlx::query_as(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = $1")).bind(id).fetch_optional(db).await
}

/// The group, locked until the transaction ends.
pub async fn lock(db: impl PgExecutor<'_>, id: GroupId) -> sqlx::Result<Option<GroupRow>> {
    sqlx::query_as(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// New values for some fields; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct GroupChange<'a> {
    pub name: Option<&'a str>,
    pub avatar_url: Option<Option<&'a str>>,
    pub description: Option<&'a str>,
    pub announcement: Option<&'a str>,
    pub join_policy: Option<&'a str>,
    pub history_visibility: Option<&'a str>,
    pub member_limit: Option<i32>,
}

pub async fn update(
    db: impl PgExecutor<'_>,
    id: GroupId,
    by: UserId,
    change: &GroupChange<'_>,
) -> sqlx::Result<GroupRow> {
    sqlx::query_as(&format!(
        "UPDATE groups SET
            name = COALESCE($2, name),
            avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END,
            description = COALESCE($5, description),
            announcement = COALESCE($6, announcement),
            announcement_updated_at = CASE WHEN $6 IS NULL THEN announcement_updated_at ELSE now() END,
            announcement_updated_by = CASE WHEN $6 IS NULL THEN announcement_updated_by ELSE $7 END,
            join_policy = COALESCE($8, join_policy),
            history_visibility = COALESCE($9, history_visibility),
            member_limit = COALESCE($10, member_limit),
            updated_at = now()
         WHERE id = $1
         RETURNING {GROUP_COLUMNS}"
    ))
    .bind(id)
    .bind(change.name)
    .bind(change.avatar_url.is_some())
    .bind(change.avatar_url.flatten())
    .bind(change.description)
    .bind(change.announcement)
    .bind(by)
    .bind(change.join_policy)
    .bind(change.history_visibility)
    .bind(change.member_limit)
    .fetch_one(db)
    .await
}

pub async fn record_announcement(db: impl PgExecutor<'_>, group: GroupId, text: &str, by: UserId) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO group_announcements (group_id, text, updated_by) VALUES ($1, $2, $3)")
        .bind(group)
        .bind(text)
        .bind(by)
        .execute(db)
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct AnnouncementRow {
    pub id: i64,
    pub text: String,
    pub updated_by: Option<UserId>,
    pub created_at: OffsetDateTime,
}

pub async fn announcements(
    db: impl PgExecutor<'_>,
    group: GroupId,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AnnouncementRow>> {
    sqlx::query_as(
        "SELECT id, text, updated_by, created_at FROM group_announcements
          WHERE group_id = $1 AND ($2::bigint IS NULL OR id < $2)
          ORDER BY id DESC LIMIT $3",
    )
    .bind(group)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn disband(db: impl PgExecutor<'_>, id: GroupId) -> sqlx::Result<()> {
    sqlx::query("UPDATE groups SET disbanded_at = now(), updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, Copy, FromRow)]
pub struct MemberRow {
    #[sqlx(try_from = "String")]
    pub role: RoleColumn,
    pub joined_at: OffsetDateTime,
    pub muted_until: Option<OffsetDateTime>,
}

/// `role` as stored; the CHECK constraint guarantees one of the three names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleColumn(pub Role);

impl TryFrom<String> for RoleColumn {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Role::parse(&text).map(RoleColumn).ok_or_else(|| format!("unknown role {text:?}"))
    }
}

pub async fn member(db: impl PgExecutor<'_>, group: GroupId, user: UserId) -> sqlx::Result<Option<MemberRow>> {
    sqlx::query_as("SELECT role, joined_at, muted_until FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .fetch_optional(db)
        .await
}

/// Adds a member. Fails with `groups_member_limit` when the group is full and with
/// `group_members_pkey` when already a member.
pub async fn add_member(db: impl PgExecutor<'_>, group: GroupId, user: UserId, role: Role) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(group)
        .bind(user)
        .bind(role.as_str())
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn remove_member(db: impl PgExecutor<'_>, group: GroupId, user: UserId) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .execute(db)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

pub async fn set_role(db: impl PgExecutor<'_>, group: GroupId, user: UserId, role: Role) -> sqlx::Result<()> {
    sqlx::query("UPDATE group_members SET role = $3 WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .bind(role.as_str())
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_muted_until(
    db: impl PgExecutor<'_>,
    group: GroupId,
    user: UserId,
    until: Option<OffsetDateTime>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE group_members SET muted_until = $3 WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .bind(until)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn member_ids(db: impl PgExecutor<'_>, group: GroupId) -> sqlx::Result<Vec<UserId>> {
    sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = $1").bind(group).fetch_all(db).await
}

/// Who inherits ownership when the owner leaves: the longest-standing admin, else the
/// longest-standing member.
pub async fn successor(db: impl PgExecutor<'_>, group: GroupId, leaving: UserId) -> sqlx::Result<Option<UserId>> {
    sqlx::query_scalar(
        "SELECT user_id FROM group_members
          WHERE group_id = $1 AND user_id <> $2
          ORDER BY (role = 'admin') DESC, joined_at, user_id
          LIMIT 1",
    )
    .bind(group)
    .bind(leaving)
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberListRow {
    pub user_id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub role: String,
    pub joined_at: OffsetDateTime,
    pub muted_until: Option<OffsetDateTime>,
}

pub async fn list_members(
    db: impl PgExecutor<'_>,
    group: GroupId,
    after: Option<UserId>,
    limit: i64,
) -> sqlx::Result<Vec<MemberListRow>> {
    sqlx::query_as(
        "SELECT m.user_id, u.username, u.nickname, u.avatar_url, m.role, m.joined_at, m.muted_until
           FROM group_members m JOIN users u ON u.id = m.user_id
          WHERE m.group_id = $1 AND ($2::bigint IS NULL OR m.user_id > $2)
          ORDER BY m.user_id
          LIMIT $3",
    )
    .bind(group)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct MyGroupRow {
    #[sqlx(flatten)]
    pub group: GroupRow,
    pub role: String,
}

/// Groups `user` belongs to (disbanded ones excluded), by group id.
pub async fn list_for_user(
    db: impl PgExecutor<'_>,
    user: UserId,
    after: Option<GroupId>,
    limit: i64,
) -> sqlx::Result<Vec<MyGroupRow>> {
    sqlx::query_as(&format!(
        "SELECT {cols}, m.role
           FROM group_members m JOIN groups g ON g.id = m.group_id
          WHERE m.user_id = $1 AND g.disbanded_at IS NULL AND ($2::bigint IS NULL OR m.group_id > $2)
          ORDER BY m.group_id
          LIMIT $3",
        cols = GROUP_COLUMNS.split(", ").map(|c| format!("g.{}", c.trim())).collect::<Vec<_>>().join(", ")
    ))
    .bind(user)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct JoinRequestRow {
    pub id: i64,
    pub group_id: GroupId,
    pub user_id: UserId,
    pub message: String,
    pub status: String,
    pub created_at: OffsetDateTime,
}

pub async fn insert_join_request(
    db: impl PgExecutor<'_>,
    group: GroupId,
    user: UserId,
    message: &str,
) -> sqlx::Result<JoinRequestRow> {
    sqlx::query_as(
        "INSERT INTO group_join_requests (group_id, user_id, message) VALUES ($1, $2, $3)
         RETURNING id, group_id, user_id, message, status, created_at",
    )
    .bind(group)
    .bind(user)
    .bind(message)
    .fetch_one(db)
    .await
}

pub async fn find_join_request(
    db: impl PgExecutor<'_>,
    group: GroupId,
    id: i64,
) -> sqlx::Result<Option<JoinRequestRow>> {
    sqlx::query_as(
        "SELECT id, group_id, user_id, message, status, created_at FROM group_join_requests
          WHERE id = $1 AND group_id = $2",
    )
    .bind(id)
    .bind(group)
    .fetch_optional(db)
    .await
}

pub async fn decide_join_request(db: impl PgExecutor<'_>, id: i64, status: &str, by: UserId) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE group_join_requests SET status = $2, decided_by = $3, decided_at = now()
          WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .bind(by)
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct JoinRequestListRow {
    pub id: i64,
    pub user_id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub message: String,
    pub created_at: OffsetDateTime,
}

pub async fn list_join_requests(
    db: impl PgExecutor<'_>,
    group: GroupId,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<JoinRequestListRow>> {
    sqlx::query_as(
        "SELECT r.id, r.user_id, u.username, u.nickname, u.avatar_url, r.message, r.created_at
           FROM group_join_requests r JOIN users u ON u.id = r.user_id
          WHERE r.group_id = $1 AND r.status = 'pending' AND ($2::bigint IS NULL OR r.id > $2)
          ORDER BY r.id LIMIT $3",
    )
    .bind(group)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Closes pending join requests and invitations of `user` for `group` (they joined
/// another way, or were removed).
pub async fn close_pending_for(db: &mut sqlx::PgConnection, group: GroupId, user: UserId) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE group_join_requests SET status = 'cancelled', decided_at = now()
          WHERE group_id = $1 AND user_id = $2 AND status = 'pending'",
    )
    .bind(group)
    .bind(user)
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "UPDATE group_invitations SET status = 'cancelled', decided_at = now()
          WHERE group_id = $1 AND invitee_id = $2 AND status = 'pending'",
    )
    .bind(group)
    .bind(user)
    .execute(&mut *db)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: i64,
    pub group_id: GroupId,
    pub inviter_id: UserId,
    pub invitee_id: UserId,
    pub status: String,
    pub created_at: OffsetDateTime,
}

pub async fn insert_invitation(
    db: impl PgExecutor<'_>,
    group: GroupId,
    inviter: UserId,
    invitee: UserId,
) -> sqlx::Result<InvitationRow> {
    sqlx::query_as(
        "INSERT INTO group_invitations (group_id, inviter_id, invitee_id) VALUES ($1, $2, $3)
         RETURNING id, group_id, inviter_id, invitee_id, status, created_at",
    )
    .bind(group)
    .bind(inviter)
    .bind(invitee)
    .fetch_one(db)
    .await
}

pub async fn find_invitation(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<InvitationRow>> {
    sqlx::query_as(
        "SELECT id, group_id, inviter_id, invitee_id, status, created_at FROM group_invitations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn decide_invitation(db: impl PgExecutor<'_>, id: i64, status: &str) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE group_invitations SET status = $2, decided_at = now() WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct InvitationListRow {
    pub id: i64,
    pub group_id: GroupId,
    pub group_name: String,
    pub inviter_id: UserId,
    pub inviter_nickname: String,
    pub created_at: OffsetDateTime,
}

pub async fn list_invitations_for(
    db: impl PgExecutor<'_>,
    invitee: UserId,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<InvitationListRow>> {
    sqlx::query_as(
        "SELECT i.id, i.group_id, g.name AS group_name, i.inviter_id, u.nickname AS inviter_nickname, i.created_at
           FROM group_invitations i
           JOIN groups g ON g.id = i.group_id
           JOIN users u ON u.id = i.inviter_id
          WHERE i.invitee_id = $1 AND i.status = 'pending' AND g.disbanded_at IS NULL
            AND ($2::bigint IS NULL OR i.id > $2)
          ORDER BY i.id LIMIT $3",
    )
    .bind(invitee)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}
