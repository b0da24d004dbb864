//! The PostgreSQL side of the cross-instance relay (`crate::relay`): `NOTIFY` on one
//! channel, and a dedicated `LISTEN` connection.

use sqlx::{
    PgExecutor,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};

/// The channel every GOIM instance of one database listens on.
pub const CHANNEL: &str = "goim_events";

/// Largest payload sent in one notification; PostgreSQL refuses payloads of 8000 bytes
/// or more.
pub const MAX_PAYLOAD: usize = 7900;

/// Sends `payload` to every listening instance, outside any transaction (a NOTIFY
/// inside a writer transaction would hold PostgreSQL's notify lock until commit and
/// serialise every committer behind it).
pub async fn notify(db: impl PgExecutor<'_>, payload: &str) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify('goim_events', $1)", payload).execute(db).await.map(|_| ())
}

/// A listener on [`CHANNEL`] over a connection of its own (a pool of one, outside the
/// application pool): LISTEN holds its connection for as long as it listens, so it needs
/// a direct or session-mode connection, never transaction-mode pooling.
pub async fn listen(options: &PgConnectOptions) -> sqlx::Result<PgListener> {
    let pool = PgPoolOptions::new().max_connections(1).min_connections(0).connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
