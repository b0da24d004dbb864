//! The webhook outbox, `webhook_deliveries` (migration 0015): queued by the message writer
//! inside its batch transaction, claimed and settled by the delivery workers of
//! `crate::webhooks`. A claim is a lease, not an open transaction: it moves the row's
//! `next_attempt_at` past the longest a request may take, so no transaction stays open
//! during HTTP, and a row claimed by an instance that died comes due again on its own.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;

/// The new messages of a writer batch, column-wise, for [`enqueue`].
#[derive(Debug, Default)]
pub struct NewEvents {
    pub conversation_ids: Vec<i64>,
    pub seqs: Vec<i64>,
    pub sender_ids: Vec<i64>,
    pub kinds: Vec<String>,
    /// `None` unless previews are on (or the message has no text).
    pub previews: Vec<Option<String>>,
    pub created_at: Vec<OffsetDateTime>,
}

/// Queues one delivery per (message, endpoint, member who is not the sender and has no
/// socket on any live instance), in the caller's transaction. `with_names` stores the
/// sender's nickname too (previews on). Returns the rows queued.
///
/// "No socket" is read from `instance_users` as committed now: a member connected to an
/// instance that has not yet recorded the socket (a few milliseconds after the handshake)
/// still counts as offline, and one within the presence grace after their last socket
/// closed still counts as online.
pub async fn enqueue(
    db: &mut sqlx::PgConnection,
    events: &NewEvents,
    endpoints: &[String],
    with_names: bool,
) -> sqlx::Result<u64> {
    let queued = sqlx::query!(
        "INSERT INTO webhook_deliveries (endpoint, recipient_id, conversation_id, seq, sender_id, kind, muted, preview,
                                         sender_name, created_at)
         SELECT e.url, cm.user_id, m.conversation_id, m.seq, m.sender_id, m.kind, cm.muted, m.preview,
                CASE WHEN $8 THEN (SELECT u.nickname FROM users u WHERE u.id = m.sender_id) END, m.created_at
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[])
                AS m(conversation_id, seq, sender_id, kind, preview, created_at)
           JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id <> m.sender_id
          CROSS JOIN unnest($7::text[]) AS e(url)
          WHERE NOT EXISTS (SELECT 1 FROM instance_users iu JOIN instances i ON i.id = iu.instance_id
                             WHERE iu.user_id = cm.user_id AND i.expires_at > now())",
        &events.conversation_ids,
        &events.seqs,
        &events.sender_ids,
        &events.kinds,
        &events.previews as _,
        &events.created_at,
        endpoints,
        with_names
    )
    .execute(db)
    .await?;
    Ok(queued.rows_affected())
}

/// A claimed delivery: the event as queued, and which attempt this is.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub endpoint: String,
    pub recipient_id: i64,
    pub conversation_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub kind: String,
    pub muted: bool,
    pub preview: Option<String>,
    pub sender_name: Option<String>,
    pub created_at: OffsetDateTime,
    /// 1 for the first attempt. Also the claim's fence: settling checks it, so a worker
    /// whose lease ran out cannot overwrite the row's newer claim.
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries for `lease`, oldest due first. Rows another
/// worker is claiming at this moment are skipped, not waited for.
pub async fn claim(db: &PgPool, limit: i64, lease: Duration) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"UPDATE webhook_deliveries d
              SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
            WHERE d.id IN (SELECT id FROM webhook_deliveries
                            WHERE dead_at IS NULL AND next_attempt_at <= now()
                            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING d.id, d.endpoint, d.recipient_id, d.conversation_id, d.seq, d.sender_id, d.kind, d.muted,
                  d.preview, d.sender_name, d.created_at, d.attempts"#,
        limit,
        lease.as_secs_f64()
    )
    .fetch_all(db)
    .await
}

/// How one claimed delivery ended, for [`settle`].
#[derive(Debug, Default)]
pub struct Outcomes {
    /// (id, attempts) of deliveries the endpoint accepted: deleted.
    pub delivered: Vec<(i64, i32)>,
    /// (id, attempts, retry in, error) of deliveries to try again.
    pub retry: Vec<(i64, i32, Duration, String)>,
    /// (id, attempts, error) of deliveries given up on: dead letters.
    pub dead: Vec<(i64, i32, String)>,
    /// (id, attempts) of deliveries not finished (shutdown): due again now, and the
    /// attempt does not count.
    pub released: Vec<(i64, i32)>,
}

/// Records a round of deliveries in one transaction (a statement per kind of outcome
/// the round had). Each row is touched only if its `attempts` still matches the claim.
pub async fn settle(db: &PgPool, outcomes: &Outcomes) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    if !outcomes.delivered.is_empty() {
        delete_delivered(&mut tx, &outcomes.delivered).await?;
    }
    if !outcomes.retry.is_empty() {
        reschedule(&mut tx, &outcomes.retry).await?;
    }
    if !outcomes.dead.is_empty() {
        bury(&mut tx, &outcomes.dead).await?;
    }
    if !outcomes.released.is_empty() {
        release(&mut tx, &outcomes.released).await?;
    }
    tx.commit().await
}

async fn delete_delivered(db: &mut sqlx::PgConnection, delivered: &[(i64, i32)]) -> sqlx::Result<()> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = delivered.iter().copied().unzip();
    sqlx::query!(
        "DELETE FROM webhook_deliveries d USING unnest($1::bigint[], $2::int[]) AS o(id, attempts)
          WHERE d.id = o.id AND d.attempts = o.attempts",
        &ids,
        &attempts
    )
    .execute(db)
    .await
    .map(|_| ())
}

async fn reschedule(db: &mut sqlx::PgConnection, retry: &[(i64, i32, Duration, String)]) -> sqlx::Result<()> {
    let ids: Vec<i64> = retry.iter().map(|r| r.0).collect();
    let attempts: Vec<i32> = retry.iter().map(|r| r.1).collect();
    let delays: Vec<f64> = retry.iter().map(|r| r.2.as_secs_f64()).collect();
    let errors: Vec<&str> = retry.iter().map(|r| r.3.as_str()).collect();
    sqlx::query!(
        "UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => o.delay), last_error = o.error
           FROM unnest($1::bigint[], $2::int[], $3::float8[], $4::text[]) AS o(id, attempts, delay, error)
          WHERE d.id = o.id AND d.attempts = o.attempts",
        &ids,
        &attempts,
        &delays,
        &errors as _
    )
    .execute(db)
    .await
    .map(|_| ())
}

async fn bury(db: &mut sqlx::PgConnection, dead: &[(i64, i32, String)]) -> sqlx::Result<()> {
    let ids: Vec<i64> = dead.iter().map(|r| r.0).collect();
    let attempts: Vec<i32> = dead.iter().map(|r| r.1).collect();
    let errors: Vec<&str> = dead.iter().map(|r| r.2.as_str()).collect();
    sqlx::query!(
        "UPDATE webhook_deliveries d SET dead_at = now(), last_error = o.error
           FROM unnest($1::bigint[], $2::int[], $3::text[]) AS o(id, attempts, error)
          WHERE d.id = o.id AND d.attempts = o.attempts",
        &ids,
        &attempts,
        &errors as _
    )
    .execute(db)
    .await
    .map(|_| ())
}

async fn release(db: &mut sqlx::PgConnection, released: &[(i64, i32)]) -> sqlx::Result<()> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = released.iter().copied().unzip();
    sqlx::query!(
        "UPDATE webhook_deliveries d SET next_attempt_at = now(), attempts = d.attempts - 1
           FROM unnest($1::bigint[], $2::int[]) AS o(id, attempts)
          WHERE d.id = o.id AND d.attempts = o.attempts",
        &ids,
        &attempts
    )
    .execute(db)
    .await
    .map(|_| ())
}

/// Rows waiting for delivery and dead letters, over all instances.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    pub pending: i64,
    pub dead: i64,
}

pub async fn backlog(db: impl PgExecutor<'_>) -> sqlx::Result<Backlog> {
    sqlx::query_as!(
        Backlog,
        r#"SELECT count(*) FILTER (WHERE dead_at IS NULL) AS "pending!", count(*) FILTER (WHERE dead_at IS NOT NULL) AS "dead!"
             FROM webhook_deliveries"#
    )
    .fetch_one(db)
    .await
}
