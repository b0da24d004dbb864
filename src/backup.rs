//! `goim backup FILE` and `goim restore FILE`: the whole database in one file, written
//! and read by PostgreSQL's own `pg_dump` and `pg_restore` (custom format) from the
//! installation GOIM uses. With `DATABASE_URL` they work on that database; otherwise on
//! the managed cluster — while GOIM runs (backup only), or started for the occasion.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::{
    config::Config,
    db,
    pg::{self, ClusterOptions, ManagedPostgres, PgError},
};

/// Where the database is and the tools that reach it.
struct Target {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: String,
    bin_dir: PathBuf,
    /// The managed cluster, when it was started for this command (stopped after).
    started: Option<ManagedPostgres>,
}

/// Writes every table, row, sequence and the schema history to `file`.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    let target = target(config, false).await?;
    let result = run_tool(&target, "pg_dump", &["--format=custom".as_ref(), "--file".as_ref(), file.as_os_str()]);
    finish(target, result).await?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    tracing::info!(file = %file.display(), bytes = size, "backup written");
    Ok(())
}

/// Replaces the database's contents with `file`'s, in one transaction: on any error
/// nothing changes. GOIM must not be running on the database meanwhile.
pub async fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(file.is_file(), "{} is not a backup file", file.display());
    let target = target(config, true).await?;
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(&target.host)
        .port(target.port)
        .username(&target.user)
        .database(&target.database);
    let options = match &target.password {
        Some(password) => options.password(password),
        None => options,
    };
    let created = db::ensure_database(&options, config.database.db_acquire_timeout).await;
    let result = created.and_then(|()| {
        run_tool(
            &target,
            "pg_restore",
            &[
                "--clean".as_ref(),
                "--if-exists".as_ref(),
                "--no-owner".as_ref(),
                "--exit-on-error".as_ref(),
                "--single-transaction".as_ref(),
                file.as_os_str(),
            ],
        )
    });
    finish(target, result).await?;
    tracing::info!(file = %file.display(), "backup restored");
    Ok(())
}

async fn target(config: &Config, restoring: bool) -> anyhow::Result<Target> {
    let pgdata = pg::cluster_dir(&config.managed.data_dir);
    if let Some(url) = &config.database.database_url {
        let url = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
        return Ok(Target {
            host: url.host_str().unwrap_or("localhost").to_owned(),
            port: url.port().unwrap_or(5432),
            user: if url.username().is_empty() { "postgres".into() } else { url.username().to_owned() },
            password: url.password().map(str::to_owned),
            database: url.path().trim_start_matches('/').to_owned(),
            bin_dir: pg::find_bin_dir(config.managed.pg_bin.as_deref(), &pgdata)?,
            started: None,
        });
    }
    let bin_dir = pg::find_bin_dir(config.managed.pg_bin.as_deref(), &pgdata)?;
    let options = ClusterOptions {
        data_dir: config.managed.data_dir.clone(),
        bin_dir: bin_dir.clone(),
        pg_user: config.managed.pg_user.clone(),
        max_connections: 20,
        unsafe_fast: false,
        guard_exe: std::env::current_exe().ok(),
        remove_on_exit: false,
    };
    let database = config.managed.db_name.clone();
    match ManagedPostgres::start(options).await {
        Ok(cluster) => {
            let url = url::Url::parse(cluster.url(&database).expose()).context("the managed cluster's URL")?;
            Ok(Target {
                host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
                port: cluster.port(),
                user: url.username().to_owned(),
                password: url.password().map(str::to_owned),
                database,
                bin_dir,
                started: Some(cluster),
            })
        }
        Err(PgError::DataDirInUse { .. }) if restoring => {
            bail!("GOIM is running on {}: stop it before restoring", config.managed.data_dir.display())
        }
        Err(PgError::DataDirInUse { .. }) => {
            // The running GOIM's cluster: its port is on the postmaster.pid's fourth line.
            let pid_file = std::fs::read_to_string(pgdata.join("postmaster.pid")).context("reading postmaster.pid")?;
            let port =
                pid_file.lines().nth(3).and_then(|p| p.trim().parse().ok()).context("no port in postmaster.pid")?;
            let password = std::fs::read_to_string(config.managed.data_dir.join("postgres-password"))
                .context("reading the managed cluster's password")?;
            Ok(Target {
                host: "127.0.0.1".into(),
                port,
                user: pg::SUPERUSER.into(),
                password: Some(password.trim().to_owned()),
                database,
                bin_dir,
                started: None,
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// Runs `tool` from the PostgreSQL installation against the target; the password goes
/// through the environment, never the command line (visible in the process list).
fn run_tool(target: &Target, tool: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let program = pg::binaries::executable(&target.bin_dir, tool);
    anyhow::ensure!(program.is_file(), "{tool} not found next to the server binaries in {}", target.bin_dir.display());
    let mut command = Command::new(&program);
    command
        .args(["--host", &target.host, "--port", &target.port.to_string(), "--username", &target.user])
        .args(["--dbname", &target.database])
        .args(args)
        .env_remove("PGPASSWORD");
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{tool} failed ({}): {}", output.status, stderr.trim());
    }
    Ok(())
}

async fn finish(target: Target, result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Some(cluster) = target.started
        && let Err(error) = cluster.stop().await
    {
        tracing::warn!(%error, "cannot stop the managed cluster after the backup tool ran");
    }
    result
}
