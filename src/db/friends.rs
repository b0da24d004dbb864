//! The `friendships` and `friend_requests` tables, and the social-graph queries.

use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::UserId;

/// Serialises every change to the relation between two users (request, accept, block)
/// for the rest of the transaction, whichever of them acts. The key is derived from the
/// unordered pair; a collision only costs a little extra waiting.
pub async fn lock_pair(db: impl PgExecutor<'_>, a: UserId, b: UserId) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", pair_lock_key(a, b)).execute(db).await.map(|_| ())
}

fn pair_lock_key(a: UserId, b: UserId) -> i64 {
    let (low, high) = if a.0 <= b.0 { (a.0, b.0) } else { (b.0, a.0) };
    // Namespace tag so these keys do not collide with other advisory-lock users.
    const FRIEND_PAIR_NAMESPACE: i64 = 0x0F12_1E4D_0000_0000;
    low.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as i64).rotate_left(17) ^ high ^ FRIEND_PAIR_NAMESPACE
}

pub async fn are_friends(db: impl PgExecutor<'_>, a: UserId, b: UserId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2) AS "exists!""#,
        a.0,
        b.0
    )
    .fetch_one(db)
    .await
}

/// Every friend of `user`, unordered: who hears of `user`'s presence.
pub async fn ids_of(db: impl PgExecutor<'_>, user: UserId) -> sqlx::Result<Vec<UserId>> {
    sqlx::query_scalar!(r#"SELECT friend_id AS "friend_id: UserId" FROM friendships WHERE user_id = $1"#, user.0)
        .fetch_all(db)
        .await
}

/// A friend's presence: online on any live instance (see `db::presence`), and when they
/// were last connected.
#[derive(Debug)]
pub struct FriendPresence {
    pub id: UserId,
    pub online: bool,
    pub last_seen_at: Option<OffsetDateTime>,
}

/// The presence of those of `candidates` who are friends of `user`.
pub async fn presence_among(
    db: impl PgExecutor<'_>,
    user: UserId,
    candidates: &[i64],
) -> sqlx::Result<Vec<FriendPresence>> {
    sqlx::query_as!(
        FriendPresence,
        r#"SELECT u.id AS "id: UserId", u.last_seen_at,
                  EXISTS (SELECT 1 FROM instance_users iu JOIN instances i ON i.id = iu.instance_id
                           WHERE iu.user_id = u.id AND i.expires_at > now()) AS "online!"
             FROM friendships f JOIN users u ON u.id = f.friend_id
            WHERE f.user_id = $1 AND f.friend_id = ANY($2)"#,
        user.0,
        candidates
    )
    .fetch_all(db)
    .await
}

/// Makes `a` and `b` friends (both directions). Already friends: no change.
pub async fn befriend(db: impl PgExecutor<'_>, a: UserId, b: UserId) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1) ON CONFLICT DO NOTHING",
        a.0,
        b.0
    )
    .execute(db)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

/// Ends the friendship in both directions; returns whether there was one.
pub async fn unfriend(db: impl PgExecutor<'_>, a: UserId, b: UserId) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)",
        a.0,
        b.0
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() > 0)
}

pub async fn set_remark(
    db: impl PgExecutor<'_>,
    user: UserId,
    friend: UserId,
    remark: Option<&str>,
) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE friendships SET remark = $3 WHERE user_id = $1 AND friend_id = $2",
        user.0,
        friend.0,
        remark
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[derive(Debug, Clone)]
pub struct FriendRow {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub remark: Option<String>,
    pub created_at: OffsetDateTime,
}

/// One page of `user`'s friends with their profile summary, by friend id.
pub async fn list(
    db: impl PgExecutor<'_>,
    user: UserId,
    after: Option<UserId>,
    limit: i64,
) -> sqlx::Result<Vec<FriendRow>> {
    sqlx::query_as!(
        FriendRow,
        r#"SELECT u.id AS "id: UserId", u.username, u.nickname, u.avatar_url, f.remark, f.created_at
             FROM friendships f
             JOIN users u ON u.id = f.friend_id
            WHERE f.user_id = $1 AND ($2::bigint IS NULL OR f.friend_id > $2)
            ORDER BY f.friend_id
            LIMIT $3"#,
        user.0,
        after.map(|u| u.0),
        limit
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct UserSummaryRow {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
}

/// Friends `a` and `b` have in common, by id. One round trip: an index-only join of
/// the two friend ranges.
pub async fn mutual(
    db: impl PgExecutor<'_>,
    a: UserId,
    b: UserId,
    after: Option<UserId>,
    limit: i64,
) -> sqlx::Result<Vec<UserSummaryRow>> {
    sqlx::query_as!(
        UserSummaryRow,
        r#"SELECT u.id AS "id: UserId", u.username, u.nickname, u.avatar_url
             FROM friendships fa
             JOIN friendships fb ON fb.user_id = $2 AND fb.friend_id = fa.friend_id
             JOIN users u ON u.id = fa.friend_id
            WHERE fa.user_id = $1 AND ($3::bigint IS NULL OR fa.friend_id > $3)
            ORDER BY fa.friend_id
            LIMIT $4"#,
        a.0,
        b.0,
        after.map(|u| u.0),
        limit
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct SuggestionRow {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub mutual_friends: i64,
}

/// Friends of `user`'s friends who are not `user`, not friends already, not blocked
/// either way and without a pending request either way, ranked by how many friends
/// they share with `user`. Keyset-paginated on `(mutual_friends DESC, id ASC)`.
pub async fn suggestions(
    db: impl PgExecutor<'_>,
    user: UserId,
    after: Option<(i64, UserId)>,
    limit: i64,
) -> sqlx::Result<Vec<SuggestionRow>> {
    sqlx::query_as!(
        SuggestionRow,
        r#"WITH candidates AS (
            SELECT f2.friend_id AS id, count(*) AS mutual_friends
              FROM friendships f1
              JOIN friendships f2 ON f2.user_id = f1.friend_id
             WHERE f1.user_id = $1
               AND f2.friend_id <> $1
               AND NOT EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = $1 AND f.friend_id = f2.friend_id)
             GROUP BY f2.friend_id
         )
         SELECT u.id AS "id: UserId", u.username, u.nickname, u.avatar_url, c.mutual_friends AS "mutual_friends!"
           FROM candidates c
           JOIN users u ON u.id = c.id
          WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = c.id)
            AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = c.id AND b.blocked_id = $1)
            AND NOT EXISTS (SELECT 1 FROM friend_requests r
                             WHERE r.status = 'pending'
                               AND ((r.from_user = $1 AND r.to_user = c.id) OR (r.from_user = c.id AND r.to_user = $1)))
            AND ($2::bigint IS NULL OR (c.mutual_friends < $2 OR (c.mutual_friends = $2 AND c.id > $3)))
          ORDER BY c.mutual_friends DESC, c.id
          LIMIT $4"#,
        user.0,
        after.map(|(mutual, _)| mutual),
        after.map(|(_, id)| id.0),
        limit
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct FriendRequestRow {
    pub id: i64,
    pub from_user: UserId,
    pub to_user: UserId,
    pub note: String,
    pub status: String,
    pub created_at: OffsetDateTime,
}

pub async fn insert_request(
    db: impl PgExecutor<'_>,
    from: UserId,
    to: UserId,
    note: &str,
) -> sqlx::Result<FriendRequestRow> {
    sqlx::query_as!(
        FriendRequestRow,
        r#"INSERT INTO friend_requests (from_user, to_user, note) VALUES ($1, $2, $3)
           RETURNING id, from_user AS "from_user: UserId", to_user AS "to_user: UserId", note, status, created_at"#,
        from.0,
        to.0,
        note
    )
    .fetch_one(db)
    .await
}

pub async fn find_request(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<FriendRequestRow>> {
    sqlx::query_as!(
        FriendRequestRow,
        r#"SELECT id, from_user AS "from_user: UserId", to_user AS "to_user: UserId", note, status, created_at
             FROM friend_requests WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// The pending request from `from` to `to`, if any.
pub async fn pending_request(
    db: impl PgExecutor<'_>,
    from: UserId,
    to: UserId,
) -> sqlx::Result<Option<FriendRequestRow>> {
    sqlx::query_as!(
        FriendRequestRow,
        r#"SELECT id, from_user AS "from_user: UserId", to_user AS "to_user: UserId", note, status, created_at
             FROM friend_requests WHERE from_user = $1 AND to_user = $2 AND status = 'pending'"#,
        from.0,
        to.0
    )
    .fetch_optional(db)
    .await
}

/// When `to` last declined a request from `from`.
pub async fn last_decline(db: impl PgExecutor<'_>, from: UserId, to: UserId) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        "SELECT max(decided_at) FROM friend_requests WHERE from_user = $1 AND to_user = $2 AND status = 'declined'",
        from.0,
        to.0
    )
    .fetch_one(db)
    .await
}

/// Moves a pending request to `status`; returns false if it was no longer pending.
pub async fn decide_request(db: impl PgExecutor<'_>, id: i64, status: &str) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE friend_requests SET status = $2, decided_at = now() WHERE id = $1 AND status = 'pending'",
        id,
        status
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Cancels pending requests between `a` and `b` in both directions; returns their ids.
pub async fn cancel_pending_between(db: impl PgExecutor<'_>, a: UserId, b: UserId) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "UPDATE friend_requests SET status = 'cancelled', decided_at = now()
          WHERE status = 'pending'
            AND ((from_user = $1 AND to_user = $2) OR (from_user = $2 AND to_user = $1))
          RETURNING id",
        a.0,
        b.0
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct RequestListRow {
    pub id: i64,
    pub from_user: UserId,
    pub to_user: UserId,
    pub note: String,
    pub created_at: OffsetDateTime,
    /// The other party's profile summary.
    pub other_id: UserId,
    pub other_username: String,
    pub other_nickname: String,
    pub other_avatar_url: Option<String>,
}

/// Pending requests to (`incoming`) or from `user`, newest first, keyset on id.
pub async fn list_pending(
    db: impl PgExecutor<'_>,
    user: UserId,
    incoming: bool,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<RequestListRow>> {
    // Two statements rather than a flag in SQL so each uses its own partial index.
    if incoming {
        sqlx::query_as!(
            RequestListRow,
            r#"SELECT r.id, r.from_user AS "from_user: UserId", r.to_user AS "to_user: UserId", r.note, r.created_at,
                      u.id AS "other_id: UserId", u.username AS other_username, u.nickname AS other_nickname,
                      u.avatar_url AS other_avatar_url
                 FROM friend_requests r JOIN users u ON u.id = r.from_user
                WHERE r.to_user = $1 AND r.status = 'pending' AND ($2::bigint IS NULL OR r.id < $2)
                ORDER BY r.id DESC LIMIT $3"#,
            user.0,
            before,
            limit
        )
        .fetch_all(db)
        .await
    } else {
        sqlx::query_as!(
            RequestListRow,
            r#"SELECT r.id, r.from_user AS "from_user: UserId", r.to_user AS "to_user: UserId", r.note, r.created_at,
                      u.id AS "other_id: UserId", u.username AS other_username, u.nickname AS other_nickname,
                      u.avatar_url AS other_avatar_url
                 FROM friend_requests r JOIN users u ON u.id = r.to_user
                WHERE r.from_user = $1 AND r.status = 'pending' AND ($2::bigint IS NULL OR r.id < $2)
                ORDER BY r.id DESC LIMIT $3"#,
            user.0,
            before,
            limit
        )
        .fetch_all(db)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_lock_key_ignores_order_and_separates_pairs() {
        assert_eq!(pair_lock_key(UserId(3), UserId(9)), pair_lock_key(UserId(9), UserId(3)));
        assert_ne!(pair_lock_key(UserId(3), UserId(9)), pair_lock_key(UserId(3), UserId(10)));
        assert_ne!(pair_lock_key(UserId(1), UserId(2)), pair_lock_key(UserId(2), UserId(3)));
    }
}
