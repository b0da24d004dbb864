//! The retention sweep's deletes (see `crate::retention`).

use sqlx::PgPool;

/// Deletes up to `batch` rows of `kind` that are `days` past due, in a transaction that
/// first takes the sweep's advisory lock; `None` when another instance holds it.
pub async fn delete_batch(pool: &PgPool, kind: &str, days: u32, batch: i64) -> sqlx::Result<Option<u64>> {
    let mut tx = pool.begin().await?;
    let locked: bool =
        sqlx::query_scalar!(r#"SELECT pg_try_advisory_xact_lock(hashtext('goim.retention')) AS "locked!""#)
            .fetch_one(&mut *tx)
            .await?;
    if !locked {
        return Ok(None);
    }
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let deleted = match kind {
        "messages" => sqlx::query!(
            "DELETE FROM messages WHERE (conversation_id, seq) IN (
                 SELECT conversation_id, seq FROM messages
                  WHERE created_at < now() - make_interval(days => $1) LIMIT $2)",
            days,
            batch
        )
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        "sessions" => sqlx::query!(
            "DELETE FROM sessions WHERE id IN (
                 SELECT id FROM sessions WHERE expires_at < now() - make_interval(days => $1) LIMIT $2)",
            days,
            batch
        )
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        "webhook_dead_letters" => sqlx::query!(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries WHERE dead_at < now() - make_interval(days => $1) LIMIT $2)",
            days,
            batch
        )
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        "retired_usernames" => sqlx::query!(
            "DELETE FROM retired_usernames WHERE username_hash IN (
                 SELECT username_hash FROM retired_usernames
                  WHERE available_at < now() - make_interval(days => $1) LIMIT $2)",
            days,
            batch
        )
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        // Uploads that are due (`sweep_after`, migration 16): unfinished ones, and
        // finished ones no live message names. The due ones still named are looked at
        // again a day later.
        "orphan_uploads" => {
            let deleted = sqlx::query!(
                "DELETE FROM uploads WHERE id IN (
                     SELECT id FROM uploads
                      WHERE sweep_after < now() AND (completed_at IS NULL OR NOT upload_is_named(id))
                      ORDER BY sweep_after LIMIT $1)",
                batch
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query!(
                "UPDATE uploads SET sweep_after = now() + interval '1 day' WHERE id IN (
                     SELECT id FROM uploads WHERE sweep_after < now() ORDER BY sweep_after LIMIT $1)",
                batch
            )
            .execute(&mut *tx)
            .await?;
            deleted
        }
        _ => sqlx::query!(
            "DELETE FROM ws_tickets WHERE ticket_hash IN (
                 SELECT ticket_hash FROM ws_tickets WHERE expires_at < now() - make_interval(days => $1) LIMIT $2)",
            days,
            batch
        )
        .execute(&mut *tx)
        .await?
        .rows_affected(),
    };
    tx.commit().await?;
    Ok(Some(deleted))
}
