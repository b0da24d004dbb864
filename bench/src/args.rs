//! The `goim-bench` command line: the server's whole [`Config`] (the same flags and
//! environment variables as `goim`, so a bench opens the database `serve` would open),
//! then one subcommand per workload with its own arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use goim::config::{Config, PgGuardArgs};

/// Run a standard workload against an in-process GOIM and report latency percentiles next
/// to same-run references (see docs/benchmarks.md).
///
/// The server settings are `goim`'s own flags and environment variables (`.env` too); as
/// flags they come before the workload: `goim-bench --db-max-connections 32 history`.
#[derive(Debug, Parser)]
#[command(name = "goim-bench", version)]
pub struct BenchArgs {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    #[command(flatten)]
    Workload(BenchWorkload),
    /// Internal: stop a managed PostgreSQL once standard input closes.
    ///
    /// The managed cluster starts its guard as `<current executable> pg-guard`, so
    /// `goim-bench` answers to it exactly as `goim` does.
    #[command(name = "pg-guard", hide = true)]
    PgGuard(PgGuardArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchWorkload {
    /// Login latency and user-search latency over N seeded users.
    Accounts(AccountsBenchArgs),
    /// The durable message write path against a pgbench one-message-per-transaction
    /// reference, at 1/16/64 senders, spread and hot.
    Writes(WritesBenchArgs),
    /// W1: 1:1 durable chat over the WebSocket protocol, end to end.
    Chat(ChatBenchArgs),
    /// W2: group fan-out: every member of one group online, a few of them sending.
    Fanout(FanoutBenchArgs),
    /// W6: mutual friends, suggestions and the friends page on a 100k-user graph.
    Social(SocialBenchArgs),
    /// W4: history pages (latest and deep), the conversation list and message search
    /// over 10M messages in 100k conversations.
    History(HistoryBenchArgs),
}

impl BenchWorkload {
    /// Whether the workload drives `goim` processes of its own (`--url`) rather than
    /// serving in-process.
    pub fn drives_separate_servers(&self) -> bool {
        match self {
            Self::Chat(args) => !args.urls.is_empty(),
            Self::Fanout(args) => args.url.is_some(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HistoryBenchArgs {
    /// Direct conversations seeded; one user is in 1,000 of them (or all, if fewer).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(10..=500_000))]
    pub conversations: u32,
    /// Messages seeded over all conversations: half in the longest 1 %, half spread
    /// evenly over the rest.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(100..=100_000_000))]
    pub messages: u64,
    /// Repetitions of every measurement; reported figures are medians across runs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Requests per figure, per concurrency level, per run.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests: u32,
    /// Concurrency levels, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Vec<u32>,
    /// Where the machine-readable results go (JSON).
    #[arg(long, default_value = "bench-results/history.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct AccountsBenchArgs {
    /// Seeded users (`bench_1` … `bench_N`); users from an earlier run are reused.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub users: u32,
    /// Repetitions of every measurement; reported figures are medians across runs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Sequential logins per run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub logins: u32,
    /// Searches per query class, per concurrency level, per run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub searches: u32,
    /// Concurrency levels for search, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Vec<u32>,
    /// Where the machine-readable results go (JSON).
    #[arg(long, default_value = "bench-results/accounts.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SocialBenchArgs {
    /// Users in the graph (about 50 friends each, skewed).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(10..=10_000_000))]
    pub users: u32,
    /// Random users measured (each: mutual friends, suggestions, friends page).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// Where the machine-readable results go (JSON).
    #[arg(long, default_value = "bench-results/social.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ChatBenchArgs {
    /// Sender→receiver pairs, all online.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub pairs: u32,
    /// Messages per sender.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub messages: u32,
    /// Unacknowledged messages a sender may have in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub in_flight: u32,
    /// GOIM instances on the one database. With 2 (W5), every sender is connected to the
    /// first and every receiver to the second, so each message crosses through
    /// LISTEN/NOTIFY.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub instances: u32,
    /// Drive running `goim` processes instead of serving in-process (repeat for several
    /// instances; replaces --instances). They must use this bench's database and JWT
    /// secret, with the WebSocket rate limits raised (docs/benchmarks.md). GOIM's CPU is
    /// then read from their `/metrics`, so the client's own work is not counted.
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// Paces the senders to this many messages per second in total (each sends its share
    /// at even intervals); without it they send as fast as `--in-flight` allows.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: Option<u32>,
    /// Where the machine-readable results go (JSON).
    #[arg(long, default_value = "bench-results/chat.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutBenchArgs {
    /// Members of the group, every one connected over its own WebSocket.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=5000))]
    pub members: u32,
    /// How many of the members send.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub senders: u32,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub messages: u32,
    /// Unacknowledged messages each sender may have.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub in_flight: u32,
    /// A `goim` already running in another process (as for `chat --url`); without it
    /// the server runs in the bench process.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, default_value = "bench-results/fanout.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct WritesBenchArgs {
    /// Concurrent senders, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub senders: Vec<u32>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub seconds: u32,
    /// Repetitions; figures are medians across runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Where the machine-readable results go (JSON).
    #[arg(long, default_value = "bench-results/writes.json")]
    pub out: PathBuf,
}
