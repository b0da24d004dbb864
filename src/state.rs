//! The shared context every handler and background task receives: cheap to clone,
//! built once in [`crate::startup`], never global.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::{PasswordHasher, RateLimits, Revocations, TokenKeys},
    config::Config,
    events::EventBus,
    hub::Hub,
    metrics::Metrics,
    relay::RelayStatus,
    writer::MessageWriter,
};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Domain events, published after commit; the gateway subscribes.
    pub events: EventBus,
    /// The only path by which messages are stored.
    pub writer: MessageWriter,
    /// Connected sockets and event fan-out.
    pub hub: Hub,
    /// Whether events from other instances arrive (LISTEN/NOTIFY).
    pub relay: RelayStatus,
    pub tokens: Arc<TokenKeys>,
    /// Sessions revoked within the access-token lifetime, fed by the relay's listener;
    /// lets a request be authorised without a database connection.
    pub revocations: Revocations,
    pub hasher: PasswordHasher,
    pub rate_limits: Arc<RateLimits>,
    /// Images decoded at once for their previews (one per core): decoding is the one
    /// CPU- and memory-heavy step of an upload.
    pub previews: Arc<Semaphore>,
    /// Cancelled when shutdown begins; long-lived tasks (WebSocket sessions, background
    /// writers, the listener) select on it and wind down.
    pub shutdown: CancellationToken,
    /// Long-lived tasks spawn through this so shutdown can wait for them.
    pub tasks: TaskTracker,
}
