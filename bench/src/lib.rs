//! `goim-bench`: the load generator, a separate binary so that the server ships without
//! it. Each workload (one module per workload) seeds what it needs, runs the real
//! application in-process on a loopback port and drives it over real HTTP, and reports
//! one summary line per figure plus a JSON file.
//!
//! Rules every workload keeps, because the machines are small, shared and noisy:
//! every measurement is repeated and the figure is the median across runs; every figure
//! sits next to a reference measured in the same run (the same SQL without HTTP, the
//! same hash without the request); and CPU time per operation (GOIM's process plus
//! PostgreSQL's) is reported beside latency.
//!
//! It uses `goim` through its public API only: the command line flattens
//! [`goim::config::Config`], [`run`] opens the database with [`goim::cli::open_database`]
//! exactly as `serve` does, and the server under test is [`goim::startup::Application`].

pub mod args;

mod accounts;
mod chat;
mod client;
mod cpu;
mod fanout;
mod history;
mod phase;
mod social;
mod stats;
mod text;
mod writes;

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use goim::{cli, config::Config, db, pg, startup::Application, telemetry};
use serde::Serialize;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::args::{BenchArgs, BenchCommand, BenchWorkload};

/// Every request the bench makes is bounded by this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Exit status for a configuration error (as clap and `goim` use).
const EXIT_CONFIG: u8 = 2;

/// Runs the parsed command line: checks the configuration as `goim` does, opens the
/// database as `serve` does (managed cluster or `DATABASE_URL`, then migrations; no
/// migrations when driving separate servers on `DATABASE_URL`), runs the workload, and
/// stops the managed cluster again.
pub fn run(args: BenchArgs) -> ExitCode {
    let BenchArgs { mut config, command } = args;
    let workload = match command {
        BenchCommand::Workload(workload) => workload,
        BenchCommand::PgGuard(args) => {
            return match pg::guard::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("goim-bench pg-guard: {error}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    if let Err(message) = config.validate() {
        eprintln!("goim-bench: invalid configuration: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Err(message) = telemetry::init(&config.server.log, config.server.log_format) {
        eprintln!("goim-bench: invalid configuration: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("goim-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        config.auth.jwt_secret = Some(cli::jwt_secret(&config)?);
        let (pool, managed) = match &config.database.database_url {
            // The server under test owns the schema: a bench must not migrate the
            // database of a `goim` older (or newer) than itself.
            Some(url) if workload.drives_separate_servers() => {
                (db::connect(&config, db::parse_url(url)?).await.context("cannot connect to PostgreSQL")?, None)
            }
            _ => cli::open_database(&config).await?,
        };
        let result = run_workload(config, pool, workload).await;
        cli::stop_managed(managed).await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "goim-bench stopped with an error");
            eprintln!("goim-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen workload against `pool`.
async fn run_workload(config: Config, pool: PgPool, workload: BenchWorkload) -> anyhow::Result<()> {
    match workload {
        BenchWorkload::Accounts(args) => accounts::run(config, pool, &args).await,
        BenchWorkload::Writes(args) => writes::run(config, pool, &args).await,
        BenchWorkload::Chat(args) => chat::run(config, pool, &args).await,
        BenchWorkload::Fanout(args) => fanout::run(config, pool, &args).await,
        BenchWorkload::Social(args) => social::run(pool, &args).await,
        BenchWorkload::History(args) => history::run(config, pool, &args).await,
    }
}

/// The application under test, served in-process on 127.0.0.1 and a free port.
struct BenchServer {
    base_url: String,
    shutdown: CancellationToken,
    serving: JoinHandle<anyhow::Result<()>>,
}

impl BenchServer {
    fn start(mut config: Config, pool: PgPool) -> anyhow::Result<Self> {
        config.server.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        // The bench logs in hundreds of times from one address; the login limits would
        // otherwise measure the limiter's 429s instead of logins.
        config.auth.auth_rate_burst = 1_000_000;
        config.auth.auth_rate_per_minute = 1_000_000;
        let app = Application::build(config, pool)?;
        let base_url = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        let serving = tokio::spawn(app.run_until_stopped());
        Ok(Self { base_url, shutdown, serving })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Graceful shutdown; the application closes the pool on its way out.
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.serving.await.context("the bench server task failed")?
    }
}

/// A client for loopback only: no proxy from the environment, keep-alive connections.
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).build().context("cannot build the HTTP client")
}

/// The machine and server the figures were taken on.
#[derive(Debug, Serialize)]
struct Machine {
    os: &'static str,
    arch: &'static str,
    cpus: usize,
    memory_total_bytes: Option<u64>,
    postgres_version: String,
    postgres_shared_buffers: String,
    goim_version: &'static str,
}

impl Machine {
    async fn probe(pool: &PgPool) -> anyhow::Result<Self> {
        let postgres_version: String = sqlx::query_scalar("SHOW server_version").fetch_one(pool).await?;
        let postgres_shared_buffers: String = sqlx::query_scalar("SHOW shared_buffers").fetch_one(pool).await?;
        Ok(Machine {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_total_bytes: memory_total_bytes(),
            postgres_version,
            postgres_shared_buffers,
            // goim-bench takes its version from the workspace, as goim does.
            goim_version: env!("CARGO_PKG_VERSION"),
        })
    }

    fn describe(&self) -> String {
        let memory = self
            .memory_total_bytes
            .map_or_else(String::new, |b| format!(", {:.1} GiB RAM", b as f64 / f64::from(1u32 << 30)));
        format!(
            "{} {}, {} CPUs{memory}, PostgreSQL {} (shared_buffers {})",
            self.os, self.arch, self.cpus, self.postgres_version, self.postgres_shared_buffers
        )
    }
}

/// The 1, 5 and 15 minute load averages, to show how busy the shared machine was.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn memory_total_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Writes `report` as pretty JSON, creating the folder if needed.
fn write_json(path: &Path, report: &impl Serialize) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))
}

/// Waits, at most 30 s, until GOIM's search indexer has put every message of
/// `conversations` in a search block; how long that took, or `None` (a server without
/// search blocks, or not done in time).
async fn wait_until_indexed(pool: &sqlx::PgPool, conversations: &[i64]) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM conversations c JOIN message_search_progress p ON p.conversation_id = c.id
              WHERE c.id = ANY($1) AND c.last_seq > p.indexed_seq",
        )
        .bind(conversations)
        .fetch_one(pool)
        .await
        .ok()?;
        if behind == 0 {
            return Some(started.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}
