//! The `ws_tickets` table: single-use tickets that open a WebSocket (a browser cannot set
//! an `Authorization` header on the handshake, and access tokens must not travel in URLs).

use sqlx::PgExecutor;

use crate::domain::{SessionId, UserId};

/// Stores a ticket's hash for `session`, valid for `ttl_secs`.
pub async fn insert(
    db: impl PgExecutor<'_>,
    ticket_hash: &[u8],
    user: UserId,
    session: SessionId,
    ttl_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO ws_tickets (ticket_hash, user_id, session_id, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        ticket_hash,
        user.0,
        session.0,
        ttl_secs
    )
    .execute(db)
    .await
    .map(|_| ())
}

/// Removes tickets that expired over a minute ago. They are few and small; sweeping
/// them when tickets are issued keeps the table bounded without a background job.
pub async fn delete_expired(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    let deleted =
        sqlx::query!("DELETE FROM ws_tickets WHERE expires_at < now() - interval '1 minute'").execute(db).await?;
    Ok(deleted.rows_affected())
}

/// Consumes an unexpired ticket: who it was issued to, or `None` if it is unknown, used or
/// expired.
pub async fn redeem(db: impl PgExecutor<'_>, ticket_hash: &[u8]) -> sqlx::Result<Option<(UserId, SessionId)>> {
    let found = sqlx::query!(
        r#"DELETE FROM ws_tickets WHERE ticket_hash = $1 AND expires_at > now()
           RETURNING user_id AS "user_id: UserId", session_id AS "session_id: SessionId""#,
        ticket_hash
    )
    .fetch_optional(db)
    .await?;
    Ok(found.map(|row| (row.user_id, row.session_id)))
}
