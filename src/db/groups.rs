//! The `groups`, `group_members`, `group_join_requests`, `group_invitations` and
//! `group_announcements` tables. Callers lock the group row ([`lock`]) first in every
//! transaction that changes membership, so those changes are serialised per group.

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{GroupId, Role, UserId};

#[derive(Debug, Clone)]
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

/// `query_as!` into [`GroupRow`], with the group columns of `g` (the `groups` table under
/// that alias) written once: `group_rows!("SELECT ", " FROM groups g …", args…)`.
macro_rules! group_rows {
    ($before:literal, $after:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            GroupRow,
            $before
                + r#"g.id AS "id!: GroupId", g.name AS "name!", g.avatar_url AS "avatar_url?", g.description AS "description!",
                     g.announcement AS "announcement!", g.announcement_updated_at AS "announcement_updated_at?",
                     g.announcement_updated_by AS "announcement_updated_by?: UserId", g.join_policy AS "join_policy!",
                     g.history_visibility AS "history_visibility!", g.member_limit AS "member_limit!",
                     g.member_count AS "member_count!", g.created_at AS "created_at!", g.updated_at AS "updated_at!",
                     g.disbanded_at AS "disbanded_at?""#
                + $after
            $(, $arg)*
        )
    };
}

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
    group_rows!(
        "INSERT INTO groups AS g (name, avatar_url, description, announcement, announcement_updated_at,
                                  announcement_updated_by, join_policy, history_visibility, member_limit)
         VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint IS NULL THEN NULL ELSE now() END, $5, $6, $7, $8)
         RETURNING ",
        "",
        new.name,
        new.avatar_url,
        new.description,
        new.announcement,
        new.announcement_by.map(|u| u.0),
        new.join_policy,
        new.history_visibility,
        new.member_limit
    )
    .fetch_one(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: GroupId) -> sqlx::Result<Option<GroupRow>> {
    group_rows!("SELECT ", " FROM groups g WHERE g.id = $1", id.0).fetch_optional(db).await
}

/// The group, locked until the transaction ends.
pub async fn lock(db: impl PgExecutor<'_>, id: GroupId) -> sqlx::Result<Option<GroupRow>> {
    group_rows!("SELECT ", " FROM groups g WHERE g.id = $1 FOR UPDATE", id.0).fetch_optional(db).await
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
    group_rows!(
        "UPDATE groups g SET
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
         RETURNING ",
        "",
        id.0,
        change.name,
        change.avatar_url.is_some(),
        change.avatar_url.flatten(),
        change.description,
        change.announcement,
        by.0,
        change.join_policy,
        change.history_visibility,
        change.member_limit
    )
    .fetch_one(db)
    .await
}

pub async fn record_announcement(db: impl PgExecutor<'_>, group: GroupId, text: &str, by: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO group_announcements (group_id, text, updated_by) VALUES ($1, $2, $3)",
        group.0,
        text,
        by.0
    )
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone)]
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
    sqlx::query_as!(
        AnnouncementRow,
        r#"SELECT id, text, updated_by AS "updated_by: UserId", created_at FROM group_announcements
            WHERE group_id = $1 AND ($2::bigint IS NULL OR id < $2)
            ORDER BY id DESC LIMIT $3"#,
        group.0,
        before,
        limit
    )
    .fetch_all(db)
    .await
}

pub async fn disband(db: impl PgExecutor<'_>, id: GroupId) -> sqlx::Result<()> {
    sqlx::query!("UPDATE groups SET disbanded_at = now(), updated_at = now() WHERE id = $1", id.0)
        .execute(db)
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, Copy)]
pub struct MemberRow {
    pub role: Role,
    pub joined_at: OffsetDateTime,
    pub muted_until: Option<OffsetDateTime>,
}

/// `role` as stored; the CHECK constraint guarantees one of the three names.
/// A role as stored; the column's CHECK admits only the known roles.
fn role_column(text: &str) -> sqlx::Result<Role> {
    Role::parse(text).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {text:?}").into()))
}

pub async fn member(db: impl PgExecutor<'_>, group: GroupId, user: UserId) -> sqlx::Result<Option<MemberRow>> {
    let row = sqlx::query!(
        "SELECT role, joined_at, muted_until FROM group_members WHERE group_id = $1 AND user_id = $2",
        group.0,
        user.0
    )
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(MemberRow { role: role_column(&row.role)?, joined_at: row.joined_at, muted_until: row.muted_until })
    })
    .transpose()
}

/// Adds a member. Fails with `groups_member_limit` when the group is full and with
/// `group_members_pkey` when already a member.
pub async fn add_member(db: impl PgExecutor<'_>, group: GroupId, user: UserId, role: Role) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, $3)",
        group.0,
        user.0,
        role.as_str()
    )
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn remove_member(db: impl PgExecutor<'_>, group: GroupId, user: UserId) -> sqlx::Result<bool> {
    let deleted = sqlx::query!("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2", group.0, user.0)
        .execute(db)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

pub async fn set_role(db: impl PgExecutor<'_>, group: GroupId, user: UserId, role: Role) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE group_members SET role = $3 WHERE group_id = $1 AND user_id = $2",
        group.0,
        user.0,
        role.as_str()
    )
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
    sqlx::query!(
        "UPDATE group_members SET muted_until = $3 WHERE group_id = $1 AND user_id = $2",
        group.0,
        user.0,
        until
    )
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn member_ids(db: impl PgExecutor<'_>, group: GroupId) -> sqlx::Result<Vec<UserId>> {
    sqlx::query_scalar!(r#"SELECT user_id AS "user_id: UserId" FROM group_members WHERE group_id = $1"#, group.0)
        .fetch_all(db)
        .await
}

/// The groups `user` is a member of, in id order (the order groups are locked in).
pub async fn ids_of_member(db: impl PgExecutor<'_>, user: UserId) -> sqlx::Result<Vec<GroupId>> {
    sqlx::query_scalar!(
        r#"SELECT group_id AS "group_id: GroupId" FROM group_members WHERE user_id = $1 ORDER BY group_id"#,
        user.0
    )
    .fetch_all(db)
    .await
}

/// The group's owner and admins.
pub async fn admin_ids(db: impl PgExecutor<'_>, group: GroupId) -> sqlx::Result<Vec<UserId>> {
    sqlx::query_scalar!(
        r#"SELECT user_id AS "user_id: UserId" FROM group_members WHERE group_id = $1 AND role IN ('owner', 'admin')"#,
        group.0
    )
    .fetch_all(db)
    .await
}

pub async fn has_pending_invitation(db: impl PgExecutor<'_>, group: GroupId, user: UserId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM group_invitations
                           WHERE group_id = $1 AND invitee_id = $2 AND status = 'pending') AS "exists!""#,
        group.0,
        user.0
    )
    .fetch_one(db)
    .await
}

/// Who inherits ownership when the owner leaves: the longest-standing admin, else the
/// longest-standing member.
pub async fn successor(db: impl PgExecutor<'_>, group: GroupId, leaving: UserId) -> sqlx::Result<Option<UserId>> {
    sqlx::query_scalar!(
        r#"SELECT user_id AS "user_id: UserId" FROM group_members
            WHERE group_id = $1 AND user_id <> $2
            ORDER BY (role = 'admin') DESC, joined_at, user_id
            LIMIT 1"#,
        group.0,
        leaving.0
    )
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone)]
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
    sqlx::query_as!(
        MemberListRow,
        r#"SELECT m.user_id AS "user_id: UserId", u.username, u.nickname, u.avatar_url, m.role, m.joined_at, m.muted_until
             FROM group_members m JOIN users u ON u.id = m.user_id
            WHERE m.group_id = $1 AND ($2::bigint IS NULL OR m.user_id > $2)
            ORDER BY m.user_id
            LIMIT $3"#,
        group.0,
        after.map(|u| u.0),
        limit
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct MyGroupRow {
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
    let rows = sqlx::query!(
        r#"SELECT g.id AS "id!: GroupId", g.name AS "name!", g.avatar_url AS "avatar_url?", g.description AS "description!",
                  g.announcement AS "announcement!", g.announcement_updated_at AS "announcement_updated_at?",
                  g.announcement_updated_by AS "announcement_updated_by?: UserId", g.join_policy AS "join_policy!",
                  g.history_visibility AS "history_visibility!", g.member_limit AS "member_limit!",
                  g.member_count AS "member_count!", g.created_at AS "created_at!", g.updated_at AS "updated_at!",
                  g.disbanded_at AS "disbanded_at?", m.role
             FROM group_members m JOIN groups g ON g.id = m.group_id
            WHERE m.user_id = $1 AND g.disbanded_at IS NULL AND ($2::bigint IS NULL OR m.group_id > $2)
            ORDER BY m.group_id
            LIMIT $3"#,
        user.0,
        after.map(|g| g.0),
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| MyGroupRow {
            group: GroupRow {
                id: row.id,
                name: row.name,
                avatar_url: row.avatar_url,
                description: row.description,
                announcement: row.announcement,
                announcement_updated_at: row.announcement_updated_at,
                announcement_updated_by: row.announcement_updated_by,
                join_policy: row.join_policy,
                history_visibility: row.history_visibility,
                member_limit: row.member_limit,
                member_count: row.member_count,
                created_at: row.created_at,
                updated_at: row.updated_at,
                disbanded_at: row.disbanded_at,
            },
            role: row.role,
        })
        .collect())
}

#[derive(Debug, Clone)]
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
    sqlx::query_as!(
        JoinRequestRow,
        r#"INSERT INTO group_join_requests (group_id, user_id, message) VALUES ($1, $2, $3)
           RETURNING id, group_id AS "group_id: GroupId", user_id AS "user_id: UserId", message, status, created_at"#,
        group.0,
        user.0,
        message
    )
    .fetch_one(db)
    .await
}

pub async fn find_join_request(
    db: impl PgExecutor<'_>,
    group: GroupId,
    id: i64,
) -> sqlx::Result<Option<JoinRequestRow>> {
    sqlx::query_as!(
        JoinRequestRow,
        r#"SELECT id, group_id AS "group_id: GroupId", user_id AS "user_id: UserId", message, status, created_at
             FROM group_join_requests
            WHERE id = $1 AND group_id = $2"#,
        id,
        group.0
    )
    .fetch_optional(db)
    .await
}

pub async fn decide_join_request(db: impl PgExecutor<'_>, id: i64, status: &str, by: UserId) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE group_join_requests SET status = $2, decided_by = $3, decided_at = now()
          WHERE id = $1 AND status = 'pending'",
        id,
        status,
        by.0
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[derive(Debug, Clone)]
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
    sqlx::query_as!(
        JoinRequestListRow,
        r#"SELECT r.id, r.user_id AS "user_id: UserId", u.username, u.nickname, u.avatar_url, r.message, r.created_at
             FROM group_join_requests r JOIN users u ON u.id = r.user_id
            WHERE r.group_id = $1 AND r.status = 'pending' AND ($2::bigint IS NULL OR r.id > $2)
            ORDER BY r.id LIMIT $3"#,
        group.0,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// Closes pending join requests and invitations of `user` for `group` (they joined
/// another way, or were removed).
pub async fn close_pending_for(db: &mut sqlx::PgConnection, group: GroupId, user: UserId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE group_join_requests SET status = 'cancelled', decided_at = now()
          WHERE group_id = $1 AND user_id = $2 AND status = 'pending'",
        group.0,
        user.0
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        "UPDATE group_invitations SET status = 'cancelled', decided_at = now()
          WHERE group_id = $1 AND invitee_id = $2 AND status = 'pending'",
        group.0,
        user.0
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
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
    sqlx::query_as!(
        InvitationRow,
        r#"INSERT INTO group_invitations (group_id, inviter_id, invitee_id) VALUES ($1, $2, $3)
           RETURNING id, group_id AS "group_id: GroupId", inviter_id AS "inviter_id: UserId",
                     invitee_id AS "invitee_id: UserId", status, created_at"#,
        group.0,
        inviter.0,
        invitee.0
    )
    .fetch_one(db)
    .await
}

pub async fn find_invitation(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<InvitationRow>> {
    sqlx::query_as!(
        InvitationRow,
        r#"SELECT id, group_id AS "group_id: GroupId", inviter_id AS "inviter_id: UserId",
                  invitee_id AS "invitee_id: UserId", status, created_at
             FROM group_invitations WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

pub async fn decide_invitation(db: impl PgExecutor<'_>, id: i64, status: &str) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE group_invitations SET status = $2, decided_at = now() WHERE id = $1 AND status = 'pending'",
        id,
        status
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[derive(Debug, Clone)]
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
    sqlx::query_as!(
        InvitationListRow,
        r#"SELECT i.id, i.group_id AS "group_id: GroupId", g.name AS group_name, i.inviter_id AS "inviter_id: UserId",
                  u.nickname AS inviter_nickname, i.created_at
           FROM group_invitations i
           JOIN groups g ON g.id = i.group_id
           JOIN users u ON u.id = i.inviter_id
          WHERE i.invitee_id = $1 AND i.status = 'pending' AND g.disbanded_at IS NULL
            AND ($2::bigint IS NULL OR i.id > $2)
          ORDER BY i.id LIMIT $3"#,
        invitee.0,
        after,
        limit
    )
    .fetch_all(db)
    .await
}
