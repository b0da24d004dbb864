//! Account deletion: what an account leaves behind is its id under a placeholder name
//! (so the messages it sent, when kept, still name an author) and nothing personal.

use sqlx::PgConnection;

use crate::domain::{SessionId, UserId};

/// What deleting an account cut, for the announcements after commit.
#[derive(Debug, Default)]
pub struct Forgotten {
    pub former_friends: Vec<UserId>,
    pub sessions: Vec<SessionId>,
}

/// Removes every relation and credential of `user`: friendships, friend requests,
/// blocks either way, group join requests and invitations, tickets, webhook events for
/// it, sessions (their refresh tokens go with them). Group memberships are left to the caller, which hands
/// groups on as leaving does.
pub async fn forget(db: &mut PgConnection, user: UserId) -> sqlx::Result<Forgotten> {
    let former_friends = sqlx::query_scalar!(
        r#"DELETE FROM friendships WHERE user_id = $1 OR friend_id = $1
           RETURNING (CASE WHEN user_id = $1 THEN friend_id ELSE user_id END) AS "other!: UserId""#,
        user.0
    )
    .fetch_all(&mut *db)
    .await?;
    let mut former_friends = former_friends;
    former_friends.sort_unstable_by_key(|id| id.0);
    former_friends.dedup();
    sqlx::query!("DELETE FROM friend_requests WHERE from_user = $1 OR to_user = $1", user.0).execute(&mut *db).await?;
    sqlx::query!("DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1", user.0).execute(&mut *db).await?;
    sqlx::query!("DELETE FROM group_join_requests WHERE user_id = $1", user.0).execute(&mut *db).await?;
    sqlx::query!("DELETE FROM group_invitations WHERE inviter_id = $1 OR invitee_id = $1", user.0)
        .execute(&mut *db)
        .await?;
    sqlx::query!("DELETE FROM ws_tickets WHERE user_id = $1", user.0).execute(&mut *db).await?;
    // Webhook events still on their way: none for the account, and its name out of others'.
    sqlx::query!("DELETE FROM webhook_deliveries WHERE recipient_id = $1", user.0).execute(&mut *db).await?;
    sqlx::query!(
        "UPDATE webhook_deliveries SET sender_name = 'Deleted user' WHERE sender_id = $1 AND sender_name IS NOT NULL",
        user.0
    )
    .execute(&mut *db)
    .await?;
    let sessions =
        sqlx::query_scalar!(r#"DELETE FROM sessions WHERE user_id = $1 RETURNING id AS "id: SessionId""#, user.0)
            .fetch_all(&mut *db)
            .await?;
    Ok(Forgotten { former_friends, sessions })
}

/// Erases a deleted account's profile, keeping only its id under a placeholder name,
/// and holds the old name back from registration for `reuse_after_days`.
pub async fn erase(db: &mut sqlx::PgConnection, id: UserId, reuse_after_days: u32) -> sqlx::Result<()> {
    let days = i32::try_from(reuse_after_days).unwrap_or(i32::MAX);
    sqlx::query!(
        "INSERT INTO retired_usernames (username_hash, available_at)
         SELECT sha256(convert_to(lower(username), 'UTF8')), now() + make_interval(days => $2)
           FROM users WHERE id = $1
         ON CONFLICT (username_hash) DO UPDATE SET available_at = EXCLUDED.available_at",
        id.0,
        days
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        "UPDATE users SET username = '#deleted-' || id, nickname = 'Deleted user', avatar_url = NULL, birthday = NULL,
                          bio = '', password_hash = '', last_seen_at = NULL, is_admin = false, deactivated_at = NULL,
                          deleted_at = now(), updated_at = now()
          WHERE id = $1",
        id.0
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}
