//! Database access: the pool, database creation, migrations. One module per table group
//! below this one, each a set of free functions taking an executor.

pub mod account_deletion;
pub mod admin;
pub mod blocks;
pub mod conversations;
pub mod friends;
pub mod groups;
pub mod message_search;
pub mod messages;
pub mod presence;
pub mod relay;
pub mod retention;
pub mod sessions;
pub mod uploads;
pub mod users;
pub mod webhooks;
pub mod ws_tickets;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    ConnectOptions, Connection, Executor, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::Config;

/// Every migration under `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Parses a `DATABASE_URL`.
pub fn parse_url(url: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))
}

/// Opens the application pool with the configured sizes and timeouts.
pub async fn connect(config: &Config, options: PgConnectOptions) -> sqlx::Result<PgPool> {
    // PostgreSQL's default random_page_cost (4) prices a random read like a spinning
    // disk's, and then prefers a sequential scan of 100k conversations to 1,000 primary
    // key lookups for one user's conversation list (31 ms against 2 ms at W4 scale).
    // GOIM's hot data is cached or on SSD; 1.1 is the usual setting for that, and it
    // applies to GOIM's own sessions only.
    let mut options = options
        .application_name("goim")
        .log_statements(tracing::log::LevelFilter::Trace)
        .options([("random_page_cost", "1.1")]);
    if !config.database.db_statement_timeout.is_zero() {
        let millis = config.database.db_statement_timeout.as_millis().to_string();
        options = options.options([("statement_timeout", millis.as_str())]);
    }
    PgPoolOptions::new()
        .max_connections(config.database.db_max_connections)
        .min_connections(config.database.db_min_connections)
        .acquire_timeout(config.database.db_acquire_timeout)
        .idle_timeout(Some(config.database.db_idle_timeout))
        .connect_with(options)
        .await
}

/// One connection, given up after `timeout` (the outer error): a host that accepts TCP
/// and never answers would otherwise hold the start-up forever, silently.
async fn connect_within(
    options: &PgConnectOptions,
    timeout: Duration,
) -> anyhow::Result<Result<PgConnection, sqlx::Error>> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Ok(connection) => Ok(connection),
        Err(_) => anyhow::bail!(
            "PostgreSQL at {}:{} did not answer within {} s (is DATABASE_URL pointing at a PostgreSQL server?)",
            options.get_host(),
            options.get_port(),
            timeout.as_secs()
        ),
    }
}

/// Creates the target database when it is missing and the role may create databases.
/// A role that may not, but whose database exists, is fine. Every connection attempt
/// gives up after `timeout`.
pub async fn ensure_database(target: &PgConnectOptions, timeout: Duration) -> anyhow::Result<()> {
    let Some(name) = target.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if connect_within(target, timeout).await?.is_ok() {
        return Ok(());
    }
    let mut admin = connect_within(&target.clone().database("postgres"), timeout)
        .await?
        .with_context(|| format!("cannot connect to database {name:?} nor to \"postgres\" to create it"))?;
    let exists =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // CREATE DATABASE takes no bind parameters; quote the identifier.
        admin
            .execute(format!("CREATE DATABASE {}", quote_identifier(&name)).as_str())
            .await
            .with_context(|| format!("cannot create database {name:?}"))?;
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// One round trip to the database: is it there and answering?
pub async fn ping(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query!("SELECT 1 AS one").fetch_one(db).await.map(|_| ())
}

/// Applies pending migrations; applied ones are skipped, so this is idempotent.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    // A migration may rewrite a large table, minutes on a big database: it runs on a
    // connection of its own, without the pool's statement timeout, which is closed after.
    // The setting goes in the start-up packet (a later `-c` wins over the pool's), so no
    // statement ever runs under the pool's timeout, not even a `SET`.
    let options = pool.connect_options().as_ref().clone().options([("statement_timeout", "0")]);
    let mut connection = PgConnection::connect_with(&options).await.context("database migration failed")?;
    let migrated = MIGRATOR.run(&mut connection).await.context("database migration failed");
    let _ = connection.close().await;
    migrated
}

/// The name of the constraint a statement violated, if any, for mapping to API errors.
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db_error) => db_error.constraint(),
        _ => None,
    }
}

/// Whether `error` means the database is unavailable or overloaded right now (the pool
/// exhausted or closed, the connection lost, a statement timeout, the server shutting
/// down or out of connections) rather than that the statement is wrong: such errors are
/// retriable, and clients get 503 for them, never a 500.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db_error) => db_error.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources; 57: operator
            // intervention (57014 statement timeout or cancel, 57P01-57P03 shutdown and
            // start-up); 40001/40P01: serialization failure and deadlock, retriable.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    }
}

/// Whether PostgreSQL refused a value as text it cannot hold: NUL in `text` (22021,
/// invalid byte sequence) or in `jsonb` (22P05, untranslatable character).
pub fn is_unstorable_text(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db_error) => db_error.code().is_some_and(|code| code == "22021" || code == "22P05"),
        _ => false,
    }
}

/// `"name"` with embedded quotes doubled, for the few statements that cannot bind.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_quotes_are_escaped() {
        assert_eq!(quote_identifier("goim"), "\"goim\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
