//! `goim admin …`: server administration from the command line, against the database
//! the configuration names (the running GOIM's managed cluster included), for a box with
//! no admin account yet. The operations are the API's (`crate::service::admin`), audited
//! with no actor; what live sockets must hear is relayed to every running instance.

use anyhow::Context;
use rand::{Rng, distributions::Alphanumeric};
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;

use crate::{
    auth::PasswordHasher,
    backup,
    config::{AdminCommand, Config},
    db,
    domain::{GroupId, Password},
    relay,
    service::admin::{self, Actor},
};

pub async fn run(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let (url, started) = backup::locate(config, false).await?;
    let result = async {
        let pool = db::connect(config, db::parse_url(&url)?).await.context("cannot connect to PostgreSQL")?;
        db::migrate(&pool).await?;
        let result = execute(&pool, command).await;
        pool.close().await;
        result
    }
    .await;
    if let Some(cluster) = started
        && let Err(error) = cluster.stop().await
    {
        tracing::warn!(%error, "cannot stop the managed cluster after the admin command");
    }
    result
}

async fn execute(pool: &PgPool, command: AdminCommand) -> anyhow::Result<()> {
    let actor = Actor::CommandLine;
    let events = match command {
        AdminCommand::Grant { username } => {
            admin::set_admin(pool, admin::user_named(pool, &username).await?, true).await?;
            println!("{username} is now a server administrator");
            Vec::new()
        }
        AdminCommand::Revoke { username } => {
            admin::set_admin(pool, admin::user_named(pool, &username).await?, false).await?;
            println!("{username} is no longer a server administrator");
            Vec::new()
        }
        AdminCommand::Users { query } => {
            print_users(pool, query.as_deref()).await?;
            Vec::new()
        }
        AdminCommand::Deactivate { username } => {
            let events = admin::deactivate(pool, actor, admin::user_named(pool, &username).await?).await?;
            println!("{username} is deactivated; {} session(s) signed out", events.len());
            events
        }
        AdminCommand::Reactivate { username } => {
            admin::reactivate(pool, actor, admin::user_named(pool, &username).await?).await?;
            println!("{username} may sign in again");
            Vec::new()
        }
        AdminCommand::ResetPassword { username } => {
            let user = admin::user_named(pool, &username).await?;
            let generated: String = rand::thread_rng().sample_iter(&Alphanumeric).take(20).map(char::from).collect();
            let password = Password::parse(generated.clone(), "password")?;
            let events = admin::reset_password(pool, &PasswordHasher::new(1), actor, user, password).await?;
            println!("new password for {username}: {generated}");
            events
        }
        AdminCommand::DeleteMessages { username } => {
            let user = admin::user_named(pool, &username).await?;
            let (count, events) = admin::delete_messages(pool, actor, user).await?;
            println!("removed {count} message(s) of {username}");
            events
        }
        AdminCommand::Disband { group_id } => {
            let events = admin::disband_group(pool, actor, GroupId(group_id)).await?;
            println!("group {group_id} is disbanded");
            events
        }
        AdminCommand::Stats => {
            let stats = admin::stats(pool).await?;
            println!("users:             {}", stats.users);
            println!("deactivated users: {}", stats.deactivated_users);
            println!("online now:        {}", stats.online_users);
            println!("groups:            {}", stats.groups);
            println!("messages today:    {}", stats.messages_today);
            println!("database size:     {} bytes", stats.database_bytes);
            Vec::new()
        }
        AdminCommand::Audit { limit } => {
            for entry in admin::audit(pool, None, Some(limit.min(100))).await?.items {
                let actor = entry.actor_username.unwrap_or_else(|| "(command line)".into());
                let target = match (entry.target_user_id, entry.target_group_id) {
                    (Some(user), _) => format!("user {user}"),
                    (None, Some(group)) => format!("group {group}"),
                    (None, None) => String::new(),
                };
                println!("{}  {}  {actor}  {}  {target}  {}", entry.id, time(entry.at), entry.action, entry.detail);
            }
            Vec::new()
        }
    };
    relay::announce(pool, &events).await.context("the change is made, but running servers were not told")?;
    Ok(())
}

async fn print_users(pool: &PgPool, query: Option<&str>) -> anyhow::Result<()> {
    println!(
        "{:>8}  {:<32}  {:<24}  admin  sessions  online  last seen             deactivated",
        "id", "username", "nickname"
    );
    let mut cursor = None;
    loop {
        let page = admin::list_users(pool, query, cursor.as_deref(), Some(100)).await?;
        for user in page.items {
            println!(
                "{:>8}  {:<32}  {:<24}  {:<5}  {:>8}  {:<6}  {:<20}  {}",
                user.id,
                user.username,
                user.nickname,
                if user.is_admin { "yes" } else { "" },
                user.active_sessions,
                if user.online { "yes" } else { "" },
                user.last_seen_at.map(time).unwrap_or_default(),
                user.deactivated_at.map(time).unwrap_or_default(),
            );
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

fn time(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0).unwrap_or(at).format(&Rfc3339).unwrap_or_default()
}
