//! The `goim` subcommands: what `main` runs once the command line is parsed.

use std::{future::Future, path::Path, process::ExitCode};

use anyhow::Context;
use clap::{CommandFactory, error::ContextKind, error::ErrorKind};
use rand::{Rng, distributions::Alphanumeric};
use sqlx::PgPool;

use crate::{
    config::{Cli, Command, Config, Secret},
    db,
    pg::{self, ClusterOptions, ManagedPostgres},
    readiness, shutdown,
    startup::Application,
    telemetry,
};

/// Exit status for a configuration error (as clap uses).
const EXIT_CONFIG: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    let Cli { config, command } = cli;
    if let Some(Command::PgGuard(args)) = &command {
        return match pg::guard::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("goim pg-guard: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Openapi) = &command {
        return print_openapi();
    }
    if let Err(message) = config.validate() {
        eprintln!("goim: invalid configuration: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Err(message) = telemetry::init(&config.server.log, config.server.log_format) {
        eprintln!("goim: invalid configuration: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("goim: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config, shutdown::signal(), readiness::ready).await,
            Command::Migrate => migrate(config).await,
            Command::Backup(args) => crate::backup::backup(&config, &args.file).await,
            Command::Restore(args) => crate::backup::restore(&config, &args.file).await,
            Command::Admin(admin) => crate::admin_cli::run(&config, admin).await,
            // Dispatched before this point (by `main`, or above).
            Command::PgGuard(_) | Command::Openapi | Command::Service(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "goim stopped with an error");
            eprintln!("goim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Needs no configuration or database: client authors and CI validate the contract
/// without running a server.
fn print_openapi() -> ExitCode {
    match serde_json::to_string_pretty(&crate::openapi::json()) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("goim openapi: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One line naming the setting, instead of clap's multi-line report, for invalid values.
pub fn report_parse_error(error: clap::Error) -> ExitCode {
    report_parse_error_of("goim", &Cli::command(), error)
}

/// [`report_parse_error`] for `program`, whose command line is `command`: `goim-bench`
/// (which flattens [`Config`] into its own) reports its errors with it.
pub fn report_parse_error_of(program: &str, command: &clap::Command, error: clap::Error) -> ExitCode {
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // Run with no arguments at all where a subcommand is required (`goim-bench`):
        // the help is the answer, but still a failed invocation.
        let _ = error.print();
        return ExitCode::from(EXIT_CONFIG);
    }
    let arg = error.get(ContextKind::InvalidArg).map(ToString::to_string);
    let value = error.get(ContextKind::InvalidValue).map(ToString::to_string);
    match (arg, value) {
        (Some(arg), Some(value)) => {
            let setting = setting_name(command, &arg);
            let reason = std::error::Error::source(&error)
                .map(ToString::to_string)
                .or_else(|| error.get(ContextKind::ValidValue).map(|v| format!("expected one of {v}")))
                .unwrap_or_else(|| "invalid value".into());
            eprintln!("{program}: invalid configuration: {setting} = {value:?}: {reason}");
        }
        _ => {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid command line");
            eprintln!("{program}: {}", first.trim_start_matches("error: "));
        }
    }
    ExitCode::from(EXIT_CONFIG)
}

/// `--bind <BIND>` → `GOIM_BIND (--bind)`, so the message names what the user set.
fn setting_name(command: &clap::Command, arg: &str) -> String {
    let long = arg.split_whitespace().next().unwrap_or(arg).trim_start_matches("--");
    let env = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match env {
        Some(env) => format!("{env} (--{long})"),
        None => format!("--{long}"),
    }
}

/// `goim serve`: runs until `stop_requested` resolves (the stop signals, or the Windows
/// service control manager), calling `on_ready` once the server accepts connections.
/// The signal handlers are installed by the caller before this starts, so none is
/// missed while PostgreSQL starts.
pub async fn serve(
    mut config: Config,
    stop_requested: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    if let Some(limit) = crate::startup::raise_open_file_limit() {
        tracing::debug!(limit, "open-file limit");
    }
    config.auth.jwt_secret = Some(jwt_secret(&config)?);
    let (pool, managed) = open_database(&config).await?;
    let result = serve_with(config, pool, stop_requested, on_ready).await;
    stop_managed(managed).await;
    result
}

async fn serve_with(
    config: Config,
    pool: PgPool,
    stop_requested: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let app = Application::build(config, pool)?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        stop_requested.await;
        readiness::stopping();
        token.cancel();
    });
    on_ready();
    app.run_until_stopped().await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let (pool, managed) = open_database(&config).await?;
    pool.close().await;
    stop_managed(managed).await;
    tracing::info!("migrations are up to date");
    Ok(())
}

/// Connects to `DATABASE_URL`, or starts the managed cluster; then migrates. Public
/// because `goim-bench` opens its database exactly as `serve` does; the caller passes the
/// cluster to [`stop_managed`] when done.
pub async fn open_database(config: &Config) -> anyhow::Result<(PgPool, Option<ManagedPostgres>)> {
    let (options, managed) = match &config.database.database_url {
        Some(url) => (db::parse_url(url)?, None),
        None => {
            let pgdata = pg::cluster_dir(&config.managed.data_dir);
            let bin_dir = pg::find_bin_dir(config.managed.pg_bin.as_deref(), &pgdata)?;
            let managed = ManagedPostgres::start(ClusterOptions {
                data_dir: config.managed.data_dir.clone(),
                bin_dir,
                pg_user: config.managed.pg_user.clone(),
                max_connections: 100,
                unsafe_fast: config.managed.pg_unsafe_fast,
                guard_exe: std::env::current_exe().ok(),
                remove_on_exit: false,
            })
            .await?;
            (managed.connect_options(&config.managed.db_name), Some(managed))
        }
    };
    let opened = async {
        db::ensure_database(&options, config.database.db_acquire_timeout).await?;
        let pool = db::connect(config, options).await.context("cannot connect to PostgreSQL")?;
        db::migrate(&pool).await?;
        anyhow::Ok(pool)
    }
    .await;
    match opened {
        Ok(pool) => Ok((pool, managed)),
        Err(error) => {
            stop_managed(managed).await;
            Err(error)
        }
    }
}

/// Stops the managed cluster [`open_database`] started, if any, logging the outcome.
/// Public for `goim-bench`.
pub async fn stop_managed(managed: Option<ManagedPostgres>) {
    if let Some(managed) = managed {
        match managed.stop().await {
            Ok(()) => tracing::info!("managed PostgreSQL stopped"),
            Err(error) => tracing::error!(%error, "managed PostgreSQL did not stop cleanly"),
        }
    }
}

/// The configured JWT secret, or one generated on first start and kept in the data
/// directory, so tokens stay valid across restarts. Public for `goim-bench`, whose
/// in-process server signs tokens as `serve` would.
pub fn jwt_secret(config: &Config) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.clone());
    }
    if config.database.database_url.is_some() {
        tracing::warn!(
            "GOIM_JWT_SECRET is not set; using a secret generated in the data dir. \
             Instances that share a database must share GOIM_JWT_SECRET"
        );
    }
    load_or_create_secret(&config.managed.data_dir.join("jwt-secret"))
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Secret> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let secret = Secret::new(existing.trim().to_owned());
        secret.check_jwt_strength().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(secret);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let generated: String = rand::thread_rng().sample_iter(&Alphanumeric).take(64).map(char::from).collect();
    pg::write_private(path, &generated).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Secret::new(generated))
}
