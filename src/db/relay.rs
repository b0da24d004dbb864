//! The PostgreSQL side of the cross-instance relay (`crate::relay`): `NOTIFY` on one
//! channel, and a dedicated `LISTEN` connection.

use sqlx::{
    PgExecutor,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};

/// The channel every GOIM instance of one database listens on.
pub const CHANNEL: &str = "goim_events";

/// The channel on which `sessions`' triggers announce every revoked or deleted session
/// (`migrations/20261203000017_session_revocation_notify.sql`); the payload is its id.
pub const SESSION_CHANNEL: &str = "goim_session_revoked";

/// The `application_name` of every instance's listening connection.
pub const LISTENER_APPLICATION_NAME: &str = "goim listener";

/// Largest payload sent in one notification; PostgreSQL refuses payloads of 8000 bytes
/// or more.
pub const MAX_PAYLOAD: usize = 7900;

/// Sends `payload` to every listening instance, outside any transaction (a NOTIFY
/// inside a writer transaction would hold PostgreSQL's notify lock until commit and
/// serialise every committer behind it).
pub async fn notify(db: impl PgExecutor<'_>, payload: &str) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify('goim_events', $1)", payload).execute(db).await.map(|_| ())
}

/// A pool of one connection outside the application pool (opened on first use, and
/// again after it breaks), for work that must not queue behind requests.
pub fn own_connection(options: &PgConnectOptions) -> sqlx::PgPool {
    PgPoolOptions::new().max_connections(1).min_connections(0).connect_lazy_with(options.clone())
}

/// A listener on [`CHANNEL`] and [`SESSION_CHANNEL`] over a connection of its own (a pool of one, outside the
/// application pool): LISTEN holds its connection for as long as it listens, so it needs
/// a direct or session-mode connection, never transaction-mode pooling.
pub async fn listen(options: &PgConnectOptions) -> sqlx::Result<PgListener> {
    // Named, so an operator (and a test) can tell it in pg_stat_activity: its last
    // statement is the revocation load, not LISTEN.
    let options = options.clone().application_name(LISTENER_APPLICATION_NAME);
    let mut listener = PgListener::connect_with(&own_connection(&options)).await?;
    listener.listen_all([CHANNEL, SESSION_CHANNEL]).await?;
    Ok(listener)
}

/// Stores an event too large to notify inline and returns its id; rows older than five
/// minutes go at the same time (every receiver read them long ago).
pub async fn spill(db: &sqlx::PgPool, event_json: &str) -> sqlx::Result<i64> {
    sqlx::query!("DELETE FROM relay_spill WHERE created_at < now() - interval '5 minutes'").execute(db).await?;
    sqlx::query_scalar!("INSERT INTO relay_spill (event) VALUES ($1) RETURNING id", event_json).fetch_one(db).await
}

/// A spilled event's JSON, if it is still there.
pub async fn unspill(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT event FROM relay_spill WHERE id = $1", id).fetch_optional(db).await
}
