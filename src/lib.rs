//! GOIM: a self-hosted instant-messaging backend, one binary and one PostgreSQL.
//!
//! # Layout
//! - [`config`]: the typed configuration (flags > environment > `.env` > defaults).
//! - [`domain`]: values that exist only when valid (usernames, nicknames, ids…).
//! - [`pg`]: the managed local PostgreSQL (find binaries, initdb, start, stop, recover).
//! - [`db`]: the pool, database creation, migrations; one module per table group. **All
//!   SQL lives here**, compile-checked against the schema (sqlx's `query!` macros and friends,
//!   with the `.sqlx/` offline cache); the longer statements are files in `src/db/sql/`.
//! - [`events`]: domain events published after commit, for the real-time gateway.
//! - [`writer`]: the batching message writer: shared commits, acks after commit, drain on
//!   shutdown. [`search_index`] indexes committed messages for search beside it;
//!   [`retention`] deletes what is past its keep-by date.
//! - [`webhooks`]: webhooks for offline delivery: the outbox the writer queues into, in
//!   the message's transaction, and the worker that posts signed events with retries.
//! - [`hub`]: who is connected where; event fan-out with bounded queues; presence.
//! - [`relay`]: events to and from the other GOIM instances of the database
//!   (LISTEN/NOTIFY).
//! - [`auth`]: password hashing, access and refresh tokens, the `Authenticated`
//!   extractor, login rate limits.
//! - [`error`]: the one API error type and its JSON shape.
//! - [`state`]: the shared handles every handler receives.
//! - [`service`]: the operations REST and WebSocket share.
//! - [`dto`]: request and reply shapes shared by REST and WebSocket.
//! - [`http`]: the REST route table, thin handlers, request middleware.
//! - [`gateway`]: the WebSocket handshake and one session per socket (docs/protocol.md);
//!   registers its own routes.
//! - [`openapi`]: the served OpenAPI document, REST and WebSocket halves merged.
//! - [`startup`]: [`startup::Application`] wires state, routes and shutdown.
//! - [`backup`]: `goim backup` / `goim restore` with PostgreSQL's own tools.
//! - [`admin_cli`]: `goim admin …`, the administration API's operations from the
//!   command line.
//! - [`cli`]: the subcommands `main` dispatches to (`serve`, `migrate`, internal `pg-guard`),
//!   and the database opening the bench shares.
//! - [`os_service`]: `goim service …`, GOIM as a Windows service.
//! - [`metrics`], [`telemetry`], [`shutdown`], [`readiness`]: plumbing with no
//!   dependencies inside GOIM ([`readiness`] tells systemd when GOIM is ready).
//!
//! The load generator is not part of the server: it is the `goim-bench` crate in
//! `bench/`, which uses this library.
//!
//! # Dependency rule
//! Every module imports only from modules listed before it here, and only these (checked
//! by `tests/api/architecture.rs`, which holds the same table):
//!
//! | module | may import |
//! |---|---|
//! | `config`, `domain`, `metrics`, `readiness`, `shutdown` | nothing |
//! | `telemetry`, `pg` | `config` |
//! | `db` | `config`, `domain` |
//! | `events` | `domain` |
//! | `error` | `db`, `domain` |
//! | `search_index` | `db`, `domain` |
//! | `retention` | `db`, `metrics` |
//! | `webhooks` | `config`, `db`, `metrics` |
//! | `writer` | `db`, `domain`, `error`, `events`, `metrics`, `search_index`, `webhooks` |
//! | `hub` | `db`, `domain`, `events`, `metrics` |
//! | `auth` | `config`, `db`, `domain`, `error` |
//! | `relay` | `auth`, `db`, `domain`, `events`, `hub`, `metrics` |
//! | `state` | `auth`, `config`, `events`, `hub`, `metrics`, `relay`, `writer` |
//! | `service` | `auth`, `config`, `db`, `domain`, `error`, `events`, `metrics`, `state`, `writer` |
//! | `dto` | `db`, `domain`, `service`, `writer` |
//! | `http` | `auth`, `db`, `domain`, `dto`, `error`, `metrics`, `service`, `state` |
//! | `gateway` | `auth`, `db`, `domain`, `dto`, `error`, `hub`, `service`, `state` |
//! | `openapi` | `events`, `gateway`, `http` |
//! | `startup` | `auth`, `config`, `events`, `gateway`, `http`, `hub`, `metrics`, `openapi`, `relay`, `retention`, `service`, `state`, `webhooks`, `writer` |
//! | `backup` | `config`, `db`, `pg` |
//! | `admin_cli` | `auth`, `backup`, `config`, `db`, `domain`, `relay`, `service` |
//! | `cli` | `admin_cli`, `backup`, `config`, `db`, `openapi`, `pg`, `readiness`, `shutdown`, `startup`, `telemetry` |
//! | `os_service` | `cli`, `config`, `telemetry` |
//!
//! So `http` and `gateway` never import each other, `domain` knows nothing of the web,
//! and handlers never reach for globals: everything arrives through [`state::AppState`]
//! or a narrower handle registered by [`startup`].

pub mod admin_cli;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod dto;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod openapi;
pub mod os_service;
pub mod pg;
pub mod readiness;
pub mod relay;
pub mod retention;
pub mod search_index;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod webhooks;
pub mod writer;
