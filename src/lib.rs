//! GOIM: a self-hosted instant-messaging backend, one binary and one PostgreSQL.
//!
//! # Layout
//! - [`config`]: the typed configuration (flags > environment > `.env` > defaults).
//! - [`cli`]: the subcommands `main` dispatches to (`serve`, `migrate`, `bench`, internal
//!   `pg-guard`).
//! - [`pg`]: the managed local PostgreSQL (find binaries, initdb, start, stop, recover).
//! - [`domain`]: values that exist only when valid (usernames, nicknames, ids…).
//! - [`db`]: the pool, database creation, migrations; one module per table group.
//! - [`auth`]: password hashing, access and refresh tokens, the `Authenticated`
//!   extractor, login rate limits.
//! - [`service`]: the operations REST and WebSocket share.
//! - [`http`]: the route table, thin handlers, request middleware.
//! - [`startup`]: [`startup::Application`] wires state, routes and shutdown.
//! - [`gateway`]: the WebSocket handshake and one session loop per socket (docs/protocol.md).
//! - [`hub`]: who is connected where; event fan-out with bounded queues; presence.
//! - [`writer`]: the batching message writer: shared commits, acks after commit, drain on shutdown.
//! - [`events`]: domain events published after commit, for the real-time gateway.
//! - [`state`], [`error`], [`metrics`], [`telemetry`], [`shutdown`]: shared plumbing.
//!
//! # Dependency rule
//! Dependencies point one way: `domain` ← `db` ← {`http`, `hub`, `presence`} ←
//! `startup` ← `bench` ← `cli`. `pg` depends on nothing above it. Handlers never reach for
//! globals: everything arrives through [`state::AppState`].

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod pg;
pub mod search_upkeep;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod writer;
