//! Typed configuration, read once at start-up.
//!
//! Precedence is flag > environment > `.env` > default: clap reads flags and the
//! environment, and `main` loads `.env` into the environment first with `dotenvy`, which
//! never overrides a variable that is already set. Every setting is listed with its
//! default in `.env.example`; keep the two in step.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The `goim` command line.
#[derive(Debug, Parser)]
#[command(name = "goim", version, about = "Self-hosted instant-messaging backend")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve HTTP and WebSocket (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Print the REST API's OpenAPI document (as served at /api/openapi.json), then exit.
    Openapi,
    /// Write the whole database to FILE (pg_dump, custom format); works while GOIM runs.
    Backup(BackupArgs),
    /// Replace the database's contents with FILE's (pg_restore, one transaction). Stop
    /// GOIM first; with the managed cluster a new data directory gets a new cluster.
    Restore(BackupArgs),
    /// Server administration from the command line, for the box that has no admin
    /// account yet (every action is written to the audit trail).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run GOIM as a Windows service: install, uninstall, start, stop. Its data
    /// directory defaults to %ProgramData%\GOIM, its settings come from the `.env`
    /// there and it logs to goim.log there. (On Linux: the systemd unit in
    /// docs/operations.md.)
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Internal: stop a managed PostgreSQL once standard input closes.
    ///
    /// Started by GOIM next to the managed cluster so that a GOIM that dies without
    /// running its shutdown path (SIGKILL, crash) leaves no `postgres` behind.
    #[command(name = "pg-guard", hide = true)]
    PgGuard(PgGuardArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The backup file.
    pub file: PathBuf,
}

/// `goim admin …`: accounts are named by username, groups by id.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Make USERNAME a server administrator (the only way to get one).
    Grant { username: String },
    /// Take USERNAME's server-administrator flag away.
    Revoke { username: String },
    /// List accounts (newest first), optionally those whose username or nickname contains QUERY.
    Users { query: Option<String> },
    /// Sign USERNAME out everywhere and refuse their logins until reactivated.
    Deactivate { username: String },
    /// Let USERNAME sign in again.
    Reactivate { username: String },
    /// Give USERNAME a new random password (printed once) and sign them out everywhere.
    ResetPassword { username: String },
    /// Remove every message USERNAME has sent.
    DeleteMessages { username: String },
    /// Disband group GROUP_ID.
    Disband { group_id: i64 },
    /// Users, online now, messages today, database size.
    Stats,
    /// The latest entries of the audit trail.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
        limit: i64,
    },
}

/// `goim service …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ServiceCommand {
    /// Register the service (starts automatically at boot); needs an administrator prompt.
    Install,
    /// Stop the service if it runs, then remove it.
    Uninstall,
    /// Start the installed service.
    Start,
    /// Stop the service: it drains and stops its PostgreSQL like Ctrl+C does.
    Stop,
    /// Internal: what the service control manager runs.
    #[command(hide = true)]
    Run,
}

#[derive(Debug, Clone, Args)]
pub struct PgGuardArgs {
    /// The cluster's data directory.
    #[arg(long)]
    pub pgdata: PathBuf,
    /// The folder holding `pg_ctl`.
    #[arg(long)]
    pub bin_dir: PathBuf,
    /// Delete the whole cluster directory after stopping it (throwaway test clusters).
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectMessagePolicy {
    /// Only friends may open a direct conversation and send in it.
    Friends,
    /// Any two users may (unless one blocked the other).
    Anyone,
}

/// What happens to the messages of an account its owner deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeletedAccountMessages {
    /// They stay in every conversation, under the author "Deleted user".
    Keep,
    /// Each is removed as a recall removes it (content gone, its place in history kept).
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Every setting GOIM reads. Durations are whole seconds so that the environment
/// variable names can say their unit.
#[derive(Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerConfig,

    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub managed: ManagedPgConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub chat: ChatConfig,

    #[command(flatten)]
    pub websocket: WebSocketConfig,

    #[command(flatten)]
    pub webhooks: WebhookConfig,

    #[command(flatten)]
    pub uploads: UploadConfig,
}

/// HTTP serving, logging and shutdown.
#[derive(Clone, Args)]
#[command(next_help_heading = "server")]
pub struct ServerConfig {
    /// Address the HTTP and WebSocket server listens on.
    #[arg(long, global = true, env = "GOIM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// HTTP worker threads (0: one per CPU core).
    #[arg(long, global = true, env = "GOIM_HTTP_WORKERS", default_value_t = 0)]
    pub http_workers: usize,

    /// Seconds in-flight work may take to finish after a shutdown signal.
    #[arg(long, global = true, env = "GOIM_SHUTDOWN_TIMEOUT_SECS", default_value = "10", value_parser = parse_secs)]
    pub shutdown_timeout: Duration,

    /// Seconds a request body may take to arrive in full (408 after that); a body that
    /// trickles would otherwise hold its connection forever.
    #[arg(long, global = true, env = "GOIM_BODY_TIMEOUT_SECS", default_value = "10", value_parser = parse_secs)]
    pub body_timeout: Duration,

    /// Open HTTP and WebSocket connections at most, over all workers; further
    /// connections wait in the kernel's accept queue. Also capped below the process's
    /// open-file limit, so the accept loop never runs out of descriptors.
    #[arg(long, global = true, env = "GOIM_MAX_CONNECTIONS", default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Largest accepted HTTP request body, bytes.
    #[arg(long, global = true, env = "GOIM_MAX_REQUEST_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_request_bytes: u32,

    /// Log filter, in `tracing` EnvFilter syntax (e.g. `info,goim=debug`).
    #[arg(long, global = true, env = "GOIM_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, global = true, env = "GOIM_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

/// Which PostgreSQL, and the pools GOIM opens on it.
#[derive(Clone, Args)]
#[command(next_help_heading = "database")]
pub struct DatabaseConfig {
    /// PostgreSQL to use. Unset: GOIM runs its own managed cluster under the data dir.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Maximum connections in the pool.
    #[arg(long, global = true, env = "GOIM_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,

    /// Connections the pool keeps open when idle.
    #[arg(long, global = true, env = "GOIM_DB_MIN_CONNECTIONS", default_value_t = 1)]
    pub db_min_connections: u32,

    /// Seconds a request waits for a pooled connection before failing with 503.
    #[arg(long, global = true, env = "GOIM_DB_ACQUIRE_TIMEOUT_SECS", default_value = "5", value_parser = parse_secs)]
    pub db_acquire_timeout: Duration,

    /// Seconds an idle pooled connection is kept.
    #[arg(long, global = true, env = "GOIM_DB_IDLE_TIMEOUT_SECS", default_value = "600", value_parser = parse_secs)]
    pub db_idle_timeout: Duration,

    /// Server-side statement timeout in seconds (0 disables it).
    #[arg(long, global = true, env = "GOIM_DB_STATEMENT_TIMEOUT_SECS", default_value = "30", value_parser = parse_secs_or_zero)]
    pub db_statement_timeout: Duration,

    /// Message writer lanes (tasks that batch concurrent sends into shared commits).
    #[arg(long, global = true, env = "GOIM_WRITER_LANES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub writer_lanes: u32,

    /// Messages each writer lane may queue before senders wait (then get 503).
    #[arg(long, global = true, env = "GOIM_WRITER_QUEUE", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub writer_queue: u32,
}

/// The managed local cluster (used when `DATABASE_URL` is unset) and GOIM's data directory.
#[derive(Clone, Args)]
#[command(next_help_heading = "managed")]
pub struct ManagedPgConfig {
    /// Directory for GOIM's state: the managed cluster, generated secrets.
    #[arg(long, global = true, env = "GOIM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Folder with the PostgreSQL server binaries (initdb, pg_ctl, postgres).
    #[arg(long, global = true, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,

    /// Unprivileged system user that runs the managed cluster when GOIM runs as root.
    #[arg(long, global = true, env = "GOIM_PG_USER", default_value = "postgres")]
    pub pg_user: String,

    /// Database name GOIM uses in the managed cluster.
    #[arg(long, global = true, env = "GOIM_DB_NAME", default_value = "goim", value_parser = parse_identifier)]
    pub db_name: String,

    /// Managed cluster only: trade durability for speed (fsync off). For throwaway test
    /// clusters; never set it for data you want to keep.
    #[arg(long, global = true, env = "GOIM_PG_UNSAFE_FAST", default_value_t = false, hide = true)]
    pub pg_unsafe_fast: bool,
}

/// Tokens and login limits.
#[derive(Clone, Args)]
#[command(next_help_heading = "auth")]
pub struct AuthConfig {
    /// HMAC secret for access tokens (at least 32 bytes). Unset: generated once and kept
    /// in the data dir.
    #[arg(long, global = true, env = "GOIM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of an access token, seconds.
    #[arg(long, global = true, env = "GOIM_ACCESS_TOKEN_TTL_SECS", default_value = "900", value_parser = parse_secs)]
    pub access_token_ttl: Duration,

    /// Lifetime of a refresh token (an idle session), seconds.
    #[arg(long, global = true, env = "GOIM_REFRESH_TOKEN_TTL_SECS", default_value = "2592000", value_parser = parse_secs)]
    pub refresh_token_ttl: Duration,

    /// Login and registration attempts allowed at once, per client IP and per username.
    #[arg(long, global = true, env = "GOIM_AUTH_RATE_BURST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_rate_burst: u32,

    /// Login and registration attempts refilled per minute, per client IP and per username.
    #[arg(long, global = true, env = "GOIM_AUTH_RATE_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_rate_per_minute: u32,

    /// Reverse proxies whose `X-Forwarded-For` names the client (comma-separated
    /// addresses or CIDR ranges, e.g. `127.0.0.1,10.0.0.0/8`). Empty: the TCP peer is
    /// the client, and the header is ignored.
    #[arg(long, global = true, env = "GOIM_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// An address (a single host) or a CIDR range.
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "expected an IP address or a CIDR range such as 10.0.0.0/8".into())
}

/// Messaging and group rules.
#[derive(Clone, Args)]
#[command(next_help_heading = "chat")]
pub struct ChatConfig {
    /// Largest member limit a group may have; also the default limit of new groups.
    #[arg(long, global = true, env = "GOIM_GROUP_MAX_MEMBERS", default_value_t = 500, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub group_max_members: u32,

    /// Who may open a direct conversation: `friends` (default) or `anyone`. Never across a block.
    #[arg(long, global = true, env = "GOIM_DIRECT_MESSAGES", value_enum, default_value = "friends")]
    pub direct_messages: DirectMessagePolicy,

    /// Seconds after sending during which the sender may edit a message.
    #[arg(long, global = true, env = "GOIM_EDIT_WINDOW_SECS", default_value = "86400", value_parser = parse_secs)]
    pub edit_window: Duration,

    /// Days after which messages are deleted (with their reactions), in small batches off
    /// the write path; 0 keeps them forever. Expired sessions and tickets are deleted
    /// either way.
    #[arg(long, global = true, env = "GOIM_RETENTION_DAYS", default_value_t = 0)]
    pub retention_days: u32,

    /// What happens to a deleted account's messages: `keep` (default; shown with the
    /// author "Deleted user") or `remove` (each removed as a recall removes it).
    #[arg(long, global = true, env = "GOIM_DELETED_ACCOUNT_MESSAGES", value_enum, default_value = "keep")]
    pub deleted_account_messages: DeletedAccountMessages,

    /// Days a deleted account's username stays unavailable for registration.
    #[arg(long, global = true, env = "GOIM_USERNAME_REUSE_DAYS", default_value_t = 30)]
    pub username_reuse_days: u32,

    /// Seconds after sending during which the sender may recall a message.
    #[arg(long, global = true, env = "GOIM_RECALL_WINDOW_SECS", default_value = "120", value_parser = parse_secs)]
    pub recall_window: Duration,

    /// Largest text message body, bytes.
    #[arg(long, global = true, env = "GOIM_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_message_bytes: u32,
}

/// The real-time gateway.
#[derive(Clone, Args)]
#[command(next_help_heading = "websocket")]
pub struct WebSocketConfig {
    /// Seconds between WebSocket pings from the server.
    #[arg(long, global = true, env = "GOIM_WS_PING_SECS", default_value = "25", value_parser = parse_secs)]
    pub ws_ping_interval: Duration,

    /// Seconds of silence (no frame, no pong) after which a WebSocket is closed.
    #[arg(long, global = true, env = "GOIM_WS_TIMEOUT_SECS", default_value = "60", value_parser = parse_secs)]
    pub ws_timeout: Duration,

    /// Frames a socket may have waiting to be written before it counts as a slow
    /// client and is closed with 1013.
    #[arg(long, global = true, env = "GOIM_WS_OUTBOUND_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_outbound_queue: u32,

    /// Largest WebSocket frame a client may send, bytes (1009 above).
    #[arg(long, global = true, env = "GOIM_WS_MAX_FRAME_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub ws_max_frame_bytes: u32,

    /// Open WebSockets per user (429 above).
    #[arg(long, global = true, env = "GOIM_WS_MAX_CONNECTIONS_PER_USER", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_max_connections_per_user: u32,

    /// Requests per second a socket may send on average.
    #[arg(long, global = true, env = "GOIM_WS_RATE_PER_SEC", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_rate_per_sec: u32,

    /// Requests a socket may send in a burst.
    #[arg(long, global = true, env = "GOIM_WS_RATE_BURST", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_rate_burst: u32,

    /// Milliseconds a user stays "online" after their last socket closes, so that a
    /// quick reconnect does not flap.
    #[arg(long, global = true, env = "GOIM_PRESENCE_GRACE_MS", default_value_t = 5000)]
    pub presence_grace_ms: u64,

    /// Milliseconds between an instance's presence heartbeats. An instance that misses
    /// three in a row counts as dead: peers announce its users offline.
    #[arg(long, global = true, env = "GOIM_INSTANCE_HEARTBEAT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(50..))]
    pub instance_heartbeat_ms: u64,

    /// Events the real-time fan-out may fall behind before it drops some and tells every
    /// socket to resync.
    #[arg(long, global = true, env = "GOIM_EVENT_BUS_CAPACITY", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub event_bus_capacity: u32,

    /// Origins allowed to open a WebSocket, comma separated. Empty: only the server's own
    /// origin. Clients that send no Origin (non-browsers) are always allowed.
    #[arg(long, global = true, env = "GOIM_WS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    pub ws_allowed_origins: Vec<String>,
}

/// What a webhook event says about the message (`GOIM_WEBHOOK_PREVIEW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WebhookPreview {
    /// Ids, kind and time only: nothing of what was said, nor who said it by name.
    None,
    /// Also the sender's nickname and the first characters of the text.
    Text,
}

/// Files and images sent in chats, stored in PostgreSQL (docs/protocol.md, "Uploads").
#[derive(Clone, Args)]
#[command(next_help_heading = "uploads")]
pub struct UploadConfig {
    /// Largest upload, bytes; larger ones get 413 (before their body is read when the
    /// request says its length).
    #[arg(long, global = true, env = "GOIM_UPLOAD_MAX_BYTES", default_value_t = 25 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=(1 << 32)))]
    pub upload_max_bytes: u64,

    /// Bytes one user's uploads may take in total (sent or not); 0: no limit.
    #[arg(long, global = true, env = "GOIM_UPLOAD_QUOTA_BYTES", default_value_t = 1 << 30)]
    pub upload_quota_bytes: u64,

    /// Seconds an upload's body may take to arrive in full (instead of
    /// GOIM_BODY_TIMEOUT_SECS); at most an hour.
    #[arg(long, global = true, env = "GOIM_UPLOAD_TIMEOUT_SECS", default_value = "300", value_parser = parse_upload_timeout)]
    pub upload_timeout: Duration,
}

fn parse_upload_timeout(s: &str) -> Result<Duration, String> {
    let timeout = parse_secs(s)?;
    // The orphan sweep removes unfinished uploads after an hour.
    if timeout > Duration::from_secs(3600) {
        return Err("must be at most 3600 seconds".into());
    }
    Ok(timeout)
}

/// Webhooks for offline delivery (docs/operations.md, "Webhooks").
#[derive(Clone, Args)]
#[command(next_help_heading = "webhooks")]
pub struct WebhookConfig {
    /// Endpoints (http or https URLs, comma separated) that receive a signed POST for
    /// every message stored for a member with no connected socket. Empty: webhooks off.
    #[arg(long, global = true, env = "GOIM_WEBHOOK_URLS", default_value = "", value_parser = WebhookUrls::parse)]
    pub webhook_urls: WebhookUrls,

    /// HMAC-SHA256 key that signs every delivery (at least 32 bytes); required with URLs.
    #[arg(long, global = true, env = "GOIM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,

    /// What an event tells of the message: `none` (default) or `text`.
    #[arg(long, global = true, env = "GOIM_WEBHOOK_PREVIEW", value_enum, default_value = "none")]
    pub webhook_preview: WebhookPreview,

    /// Attempts per delivery before it becomes a dead letter.
    #[arg(long, global = true, env = "GOIM_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,

    /// Milliseconds before the first retry; each further retry waits twice as long (up
    /// to 10 minutes), with jitter.
    #[arg(long, global = true, env = "GOIM_WEBHOOK_BACKOFF_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub webhook_backoff_ms: u64,
}

/// The webhook endpoints, in the order given; empty parts of the list are ignored, so
/// `GOIM_WEBHOOK_URLS=` (as `.env.example` has it) means none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookUrls(Vec<WebhookUrl>);

impl WebhookUrls {
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(WebhookUrl::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &WebhookUrl> {
        self.0.iter()
    }
}

/// A webhook endpoint: an absolute http or https URL with a host. Its `Display` hides
/// any password in it, since URLs end up in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err("expected an http:// or https:// URL with a host".into());
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({})", redact_url(self.0.as_str()))
    }
}

impl Config {
    /// The configuration from the environment and defaults alone (no flags), as a base
    /// for tests and tools that build a config in code.
    pub fn from_env() -> Result<Self, clap::Error> {
        Cli::try_parse_from(["goim"]).map(|cli| cli.config)
    }

    /// Checks that need more than one field.
    pub fn validate(&self) -> Result<(), String> {
        if self.database.db_min_connections > self.database.db_max_connections {
            return Err(format!(
                "GOIM_DB_MIN_CONNECTIONS ({}) must not exceed GOIM_DB_MAX_CONNECTIONS ({})",
                self.database.db_min_connections, self.database.db_max_connections
            ));
        }
        if let Some(secret) = &self.auth.jwt_secret {
            secret.check_jwt_strength().map_err(|e| format!("GOIM_JWT_SECRET: {e}"))?;
        }
        if self.auth.access_token_ttl >= self.auth.refresh_token_ttl {
            return Err("GOIM_ACCESS_TOKEN_TTL_SECS must be shorter than GOIM_REFRESH_TOKEN_TTL_SECS".into());
        }
        if !self.webhooks.webhook_urls.is_empty() && self.webhooks.webhook_secret.is_none() {
            return Err("GOIM_WEBHOOK_URLS is set but GOIM_WEBHOOK_SECRET is not: every delivery must be signed".into());
        }
        Ok(())
    }
}

/// A value that must never appear in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub const MIN_JWT_BYTES: usize = 32;

    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn check_jwt_strength(&self) -> Result<(), String> {
        if self.0.len() < Self::MIN_JWT_BYTES {
            return Err(format!("must be at least {} bytes long", Self::MIN_JWT_BYTES));
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let secret = Secret(s.to_owned());
        secret.check_jwt_strength()?;
        Ok(secret)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.server.bind)
            .field("database_url", &self.database.database_url.as_ref().map(|u| redact_url(u)))
            .field("data_dir", &self.managed.data_dir)
            .field("pg_bin", &self.managed.pg_bin)
            .field("db_name", &self.managed.db_name)
            .field("db_max_connections", &self.database.db_max_connections)
            .field("jwt_secret", &self.auth.jwt_secret)
            .field("webhook_urls", &self.webhooks.webhook_urls)
            .field("webhook_secret", &self.webhooks.webhook_secret)
            .field("log_format", &self.server.log_format)
            .finish_non_exhaustive()
    }
}

/// Hides the password of a `postgres://user:password@host/db` URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: u64 = s.parse().map_err(|_| "expected a whole number of seconds".to_owned())?;
    if secs == 0 {
        return Err("must be at least 1 second".into());
    }
    Ok(Duration::from_secs(secs))
}

fn parse_secs_or_zero(s: &str) -> Result<Duration, String> {
    let secs: u64 = s.parse().map_err(|_| "expected a whole number of seconds".to_owned())?;
    Ok(Duration::from_secs(secs))
}

/// Database names are interpolated into `CREATE DATABASE`, which takes no bind
/// parameters, so only plain identifiers are accepted.
pub fn parse_identifier(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(s.to_owned())
    } else {
        Err("expected 1-63 characters of a-z, 0-9 and _, not starting with a digit".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_database_url_is_redacted() {
        assert_eq!(
            redact_url("postgres://goim:hunter2@localhost:5432/goim"),
            "postgres://goim:***@localhost:5432/goim"
        );
        assert_eq!(redact_url("postgres://localhost/goim"), "postgres://localhost/goim");
    }

    #[test]
    fn a_database_name_with_quotes_is_rejected() {
        assert!(parse_identifier("goim\"; drop").is_err());
        assert!(parse_identifier("9lives").is_err());
        assert!(parse_identifier("goim_test_1").is_ok());
    }

    #[test]
    fn a_short_jwt_secret_is_rejected() {
        assert!("short".parse::<Secret>().is_err());
        assert!("x".repeat(32).parse::<Secret>().is_ok());
    }

    #[test]
    fn zero_seconds_is_not_a_timeout() {
        assert!(parse_secs("0").is_err());
        assert_eq!(parse_secs("15"), Ok(Duration::from_secs(15)));
        assert!(parse_secs("-1").is_err());
    }

    #[test]
    fn a_webhook_url_must_be_http_with_a_host() {
        assert!(WebhookUrl::parse("https://push.example.com/goim").is_ok());
        assert!(WebhookUrl::parse(" http://127.0.0.1:9000/hook ").is_ok());
        assert!(WebhookUrl::parse("ftp://push.example.com/").is_err());
        assert!(WebhookUrl::parse("file:///etc/passwd").is_err());
        assert!(WebhookUrl::parse("push.example.com").is_err());
    }

    #[test]
    fn an_empty_webhook_list_means_none_and_one_bad_url_fails_the_list() {
        assert!(WebhookUrls::parse("").unwrap().is_empty());
        assert!(WebhookUrls::parse(" , ").unwrap().is_empty());
        assert_eq!(WebhookUrls::parse("http://a.example/x, https://b.example/y").unwrap().iter().count(), 2);
        assert!(WebhookUrls::parse("http://a.example/x,nonsense").is_err());
    }

    #[test]
    fn a_password_in_a_webhook_url_does_not_show_in_debug_output() {
        let url = WebhookUrl::parse("https://goim:hunter2@push.example.com/").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret: Secret = "s".repeat(40).parse().unwrap();
        assert!(!format!("{secret:?}").contains("sss"));
    }
}
