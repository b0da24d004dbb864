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
    /// A libpq connection URI without the password (pg_dump and pg_restore take it as
    /// `--dbname`, with everything a `DATABASE_URL` may say, `sslmode` included).
    uri: String,
    /// Decoded, for `PGPASSWORD`: never on a command line, where `ps` would show it.
    password: Option<String>,
    /// The same database for GOIM's own connection (a restore creates it first).
    options: sqlx::postgres::PgConnectOptions,
    bin_dir: PathBuf,
    /// The managed cluster, when it was started for this command (stopped after).
    started: Option<ManagedPostgres>,
}

impl Target {
    fn new(url: &str, bin_dir: PathBuf, started: Option<ManagedPostgres>) -> anyhow::Result<Self> {
        let options = db::parse_url(url)?;
        let mut uri = url::Url::parse(url).context("not a database URL")?;
        let password = uri.password().map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
        uri.set_password(None).map_err(|()| anyhow::anyhow!("this database URL cannot carry a password"))?;
        Ok(Self { uri: uri.into(), password, options, bin_dir, started })
    }
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
    let created = db::ensure_database(&target.options, config.database.db_acquire_timeout).await;
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
    let bin_dir = pg::find_bin_dir(config.managed.pg_bin.as_deref(), &pgdata)?;
    let (url, started) = locate(config, restoring).await?;
    Target::new(&url, bin_dir, started)
}

/// The URL of the configured database: `DATABASE_URL`, or the managed cluster — the
/// running GOIM's (its port and password found in the data directory), or started for
/// this command and returned so the caller stops it. With `exclusive`, a running GOIM is
/// an error. Shared with `goim admin`.
pub async fn locate(config: &Config, exclusive: bool) -> anyhow::Result<(String, Option<ManagedPostgres>)> {
    if let Some(url) = &config.database.database_url {
        return Ok((url.clone(), None));
    }
    let pgdata = pg::cluster_dir(&config.managed.data_dir);
    let bin_dir = pg::find_bin_dir(config.managed.pg_bin.as_deref(), &pgdata)?;
    let options = ClusterOptions {
        data_dir: config.managed.data_dir.clone(),
        bin_dir,
        pg_user: config.managed.pg_user.clone(),
        max_connections: 20,
        unsafe_fast: false,
        guard_exe: std::env::current_exe().ok(),
        remove_on_exit: false,
    };
    let database = &config.managed.db_name;
    match ManagedPostgres::start(options).await {
        Ok(cluster) => {
            let url = cluster.url(database).expose().to_owned();
            Ok((url, Some(cluster)))
        }
        Err(PgError::DataDirInUse { .. }) if exclusive => {
            bail!("GOIM is running on {}: stop it before restoring", config.managed.data_dir.display())
        }
        Err(PgError::DataDirInUse { .. }) => {
            // The running GOIM's cluster: its port is on the postmaster.pid's fourth line.
            let pid_file = std::fs::read_to_string(pgdata.join("postmaster.pid")).context("reading postmaster.pid")?;
            let port: u16 =
                pid_file.lines().nth(3).and_then(|p| p.trim().parse().ok()).context("no port in postmaster.pid")?;
            let password = std::fs::read_to_string(config.managed.data_dir.join("postgres-password"))
                .context("reading the managed cluster's password")?;
            // Alphanumeric, so it needs no escaping in the URL.
            let url = format!("postgres://{}:{}@127.0.0.1:{port}/{database}", pg::SUPERUSER, password.trim());
            Ok((url, None))
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
    command.arg("--dbname").arg(&target.uri).args(args).env_remove("PGPASSWORD");
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
