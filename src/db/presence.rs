//! Presence across instances (migration 0011): which live instances hold sockets of
//! which users. A user is online while any instance whose `expires_at` lies ahead has a
//! row for them.
//!
//! Every change takes the users' rows `FOR NO KEY UPDATE` first (in id order), so two
//! instances settling the same user one after the other agree on whether it was a
//! transition; `NO KEY` keeps message inserts (which take `KEY SHARE` on the sender
//! through the foreign key) from waiting on it.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::UserId;

/// One user's presence change, decided under the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub user: UserId,
    pub online: bool,
    /// Set when the user went offline.
    pub last_seen_at: Option<OffsetDateTime>,
}

fn seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

/// Marks `instance` alive for `ttl` more. Returns `false` when it had no row (first
/// start, or peers reaped it while it could not reach the database): the caller must
/// register its users again.
pub async fn heartbeat(db: &PgPool, instance: Uuid, ttl: Duration) -> sqlx::Result<bool> {
    let extended = sqlx::query!(
        "UPDATE instances SET alive_at = now(), expires_at = now() + make_interval(secs => $2) WHERE id = $1",
        instance,
        seconds(ttl)
    )
    .execute(db)
    .await?
    .rows_affected();
    if extended == 1 {
        return Ok(true);
    }
    sqlx::query!(
        "INSERT INTO instances (id, expires_at) VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (id) DO UPDATE SET alive_at = now(), expires_at = EXCLUDED.expires_at",
        instance,
        seconds(ttl)
    )
    .execute(db)
    .await?;
    Ok(false)
}

/// A graceful stop: the instance's row expires `grace` from now, so peers announce its
/// users offline unless they reconnected elsewhere by then, and `last_seen_at` is now.
pub async fn hand_off(db: impl PgExecutor<'_>, instance: Uuid, grace: Duration) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE instances SET alive_at = now(), expires_at = now() + make_interval(secs => $2), stopped = true
          WHERE id = $1",
        instance,
        seconds(grace)
    )
    .execute(db)
    .await
    .map(|_| ())
}

/// Brings `instance`'s rows for `users` in line with `is_here` (whether this instance
/// holds a socket of the user, read after the lock so that the last settle of a user
/// sees its latest state), and returns the users whose presence changed for everyone.
/// An offline transition stores `last_seen_at`.
pub async fn settle(
    db: &PgPool,
    instance: Uuid,
    users: &[UserId],
    is_here: impl Fn(UserId) -> bool,
) -> sqlx::Result<Vec<Transition>> {
    let ids: Vec<i64> = users.iter().map(|user| user.0).collect();
    let mut tx = db.begin().await?;
    let before = sqlx::query!(
        r#"SELECT u.id AS "id: UserId",
                  EXISTS (SELECT 1 FROM instance_users iu JOIN instances i ON i.id = iu.instance_id
                           WHERE iu.user_id = u.id AND i.expires_at > now()) AS "online!"
             FROM users u WHERE u.id = ANY($1) ORDER BY u.id FOR NO KEY UPDATE OF u"#,
        &ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let (here, gone): (Vec<_>, Vec<_>) = before.iter().partition(|row| is_here(row.id));
    let here_ids: Vec<i64> = here.iter().map(|row| row.id.0).collect();
    let gone_ids: Vec<i64> = gone.iter().map(|row| row.id.0).collect();
    sqlx::query!(
        "INSERT INTO instance_users (user_id, instance_id) SELECT unnest($1::bigint[]), $2 ON CONFLICT DO NOTHING",
        &here_ids,
        instance
    )
    .execute(&mut *tx)
    .await?;
    let offline = sqlx::query!(
        r#"WITH removed AS (DELETE FROM instance_users WHERE instance_id = $2 AND user_id = ANY($1))
           UPDATE users u SET last_seen_at = now()
            WHERE u.id = ANY($1)
              AND NOT EXISTS (SELECT 1 FROM instance_users iu JOIN instances i ON i.id = iu.instance_id
                               WHERE iu.user_id = u.id AND iu.instance_id <> $2 AND i.expires_at > now())
           RETURNING u.id AS "id: UserId", u.last_seen_at AS "last_seen_at!""#,
        &gone_ids,
        instance
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    let mut transitions: Vec<Transition> = here
        .iter()
        .filter(|row| !row.online)
        .map(|row| Transition { user: row.id, online: true, last_seen_at: None })
        .collect();
    // Users who were not online for the others (say this instance had expired) went
    // nowhere; only their `last_seen_at` moved.
    let were_online: HashSet<UserId> = gone.iter().filter(|row| row.online).map(|row| row.id).collect();
    transitions.extend(offline.into_iter().filter(|row| were_online.contains(&row.id)).map(|row| Transition {
        user: row.id,
        online: false,
        last_seen_at: Some(row.last_seen_at),
    }));
    Ok(transitions)
}

/// What [`reap`] removed.
#[derive(Debug, Default)]
pub struct Reaped {
    /// Users now offline everywhere.
    pub offline: Vec<Transition>,
    /// Instances that expired without a graceful stop.
    pub crashed: Vec<Uuid>,
}

/// Removes every instance whose row expired (it died, or stopped and handed off), with
/// its users, and reports the users who are now offline everywhere; their `last_seen_at`
/// is the last moment their instance was known alive. Any instance may run this; the
/// `DELETE` hands each dead row to exactly one of them.
pub async fn reap(db: &PgPool) -> sqlx::Result<Reaped> {
    let mut tx = db.begin().await?;
    let dead = sqlx::query!("DELETE FROM instances WHERE expires_at <= now() RETURNING id, alive_at, stopped")
        .fetch_all(&mut *tx)
        .await?;
    // Also rows whose instance is gone altogether (registered while it was being reaped).
    let removed = sqlx::query!(
        r#"DELETE FROM instance_users iu
            WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = iu.instance_id AND i.expires_at > now())
           RETURNING iu.user_id AS "user_id: UserId", iu.instance_id, now() AS "now!""#
    )
    .fetch_all(&mut *tx)
    .await?;
    let crashed = dead.iter().filter(|instance| !instance.stopped).map(|instance| instance.id).collect();
    if removed.is_empty() {
        tx.commit().await?;
        return Ok(Reaped { offline: Vec::new(), crashed });
    }
    let alive_at: HashMap<Uuid, OffsetDateTime> =
        dead.iter().map(|instance| (instance.id, instance.alive_at)).collect();
    // A user may have been on several dead instances: the latest of them counts.
    let mut last_alive: HashMap<i64, OffsetDateTime> = HashMap::with_capacity(removed.len());
    for row in removed {
        let at = alive_at.get(&row.instance_id).copied().unwrap_or(row.now);
        let latest = last_alive.entry(row.user_id.0).or_insert(at);
        *latest = (*latest).max(at);
    }
    let (ids, times): (Vec<i64>, Vec<OffsetDateTime>) = last_alive.into_iter().unzip();
    sqlx::query!("SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", &ids)
        .fetch_all(&mut *tx)
        .await?;
    let offline = sqlx::query!(
        r#"UPDATE users u SET last_seen_at = g.at
             FROM unnest($1::bigint[], $2::timestamptz[]) AS g(id, at)
            WHERE u.id = g.id
              AND NOT EXISTS (SELECT 1 FROM instance_users iu JOIN instances i ON i.id = iu.instance_id
                               WHERE iu.user_id = u.id AND i.expires_at > now())
           RETURNING u.id AS "id: UserId", g.at AS "last_seen_at!""#,
        &ids,
        &times
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let offline = offline
        .into_iter()
        .map(|row| Transition { user: row.id, online: false, last_seen_at: Some(row.last_seen_at) })
        .collect();
    Ok(Reaped { offline, crashed })
}
