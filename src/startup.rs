//! Building and running the application: [`Application::build`] binds the listener
//! (port 0 in tests) and wires state, routes and middleware; [`Application::run_until_stopped`]
//! serves until the shutdown token is cancelled, then drains in order:
//! stop accepting → in-flight requests finish (bounded) → tracked tasks finish (bounded)
//! → pool closed. The caller stops the managed PostgreSQL afterwards.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_http::HttpService;
use actix_service::{IntoServiceFactory as _, ServiceFactoryExt as _, map_config};
use actix_web::{App, dev::AppConfig, dev::Server, middleware::from_fn, web};
use anyhow::Context;
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    auth::{PasswordHasher, RateLimits, Revocations, SessionCheck, TokenKeys},
    config::Config,
    events::EventBus,
    gateway, http,
    hub::{self, Hub, presence::Presence},
    metrics::Metrics,
    relay,
    service::messages::SendAdmission,
    state::AppState,
    webhooks::{self, Outbox},
    writer::MessageWriter,
};

/// Descriptors kept free for the pools, the listener, logs and PostgreSQL's children.
#[cfg(unix)]
const RESERVED_FILES: u64 = 256;

/// Raises the soft open-file limit to the hard limit (many platforms start processes
/// at 1,024, which a few hundred idle sockets exhaust) and returns the new soft limit.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

/// `wanted` connections, but never so many that accepting them would exhaust the
/// process's file descriptors (then the accept loop fails and nobody gets in).
fn connection_cap(wanted: usize) -> usize {
    #[cfg(unix)]
    if let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        let room = soft.saturating_sub(RESERVED_FILES).max(64);
        if (room as usize) < wanted {
            tracing::info!(
                wanted,
                open_file_limit = soft,
                cap = room,
                "connections capped below the open-file limit (raise `ulimit -n` for more)"
            );
            return room as usize;
        }
    }
    wanted
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

impl Application {
    /// Binds `config.server.bind` and prepares the server; nothing is served until
    /// [`Application::run_until_stopped`].
    pub fn build(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.server.bind)
            .with_context(|| format!("cannot listen on GOIM_BIND={}", config.server.bind))?;
        let port = listener.local_addr()?.port();
        let secret = config.auth.jwt_secret.clone().context("no JWT secret configured (GOIM_JWT_SECRET)")?;
        let tokens = TokenKeys::new(&secret, config.auth.access_token_ttl);
        let hashing_concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
        let events = EventBus::with_capacity(config.websocket.event_bus_capacity as usize);
        let tasks = TaskTracker::new();
        let metrics = Arc::new(Metrics::new());
        let outbox = Outbox::from_config(&config.webhooks);
        // Built before anything starts, so a client that cannot be built stops the start.
        let webhook_worker = match &outbox {
            Some(outbox) => {
                Some(webhooks::worker::Worker::new(pool.clone(), &config.webhooks, outbox, metrics.clone())?)
            }
            None => None,
        };
        let writer = MessageWriter::start(
            pool.clone(),
            events.clone(),
            metrics.clone(),
            &tasks,
            config.database.writer_lanes as usize,
            config.database.writer_queue as usize,
            Arc::new(SendAdmission::new(config.chat.direct_messages)),
            outbox,
        );
        let shutdown = CancellationToken::new();
        if let Some(worker) = webhook_worker {
            tasks.spawn(worker.run(shutdown.clone()).instrument(tracing::info_span!("webhooks")));
        }
        let presence = Presence::new(
            pool.clone(),
            events.clone(),
            tasks.clone(),
            std::time::Duration::from_millis(config.websocket.presence_grace_ms),
            std::time::Duration::from_millis(config.websocket.instance_heartbeat_ms),
            shutdown.clone(),
        );
        tasks.spawn(presence.clone().run().instrument(tracing::info_span!("presence")));
        let retention =
            crate::retention::run(pool.clone(), metrics.clone(), config.chat.retention_days, shutdown.clone());
        tasks.spawn(retention.instrument(tracing::info_span!("retention")));
        let hub = Hub::new(presence, metrics.clone());
        let fanout = hub::run_fanout(hub.clone(), events.clone(), shutdown.clone());
        tasks.spawn(fanout.instrument(tracing::info_span!("fanout")));
        let revocations = Revocations::new(config.auth.access_token_ttl);
        let relay = relay::start(
            pool.clone(),
            &events,
            hub.clone(),
            revocations.clone(),
            metrics.clone(),
            shutdown.clone(),
            &tasks,
        );
        let state = AppState {
            hub,
            relay,
            pool,
            writer,
            tokens: Arc::new(tokens),
            revocations,
            hasher: PasswordHasher::new(hashing_concurrency),
            previews: Arc::new(tokio::sync::Semaphore::new(hashing_concurrency)),
            rate_limits: Arc::new(RateLimits::new(config.auth.auth_rate_burst, config.auth.auth_rate_per_minute)),
            config: Arc::new(config),
            metrics,
            events,
            shutdown,
            tasks,
        };
        let app_state = state.clone();
        let session_check = SessionCheck {
            tokens: state.tokens.clone(),
            revocations: state.revocations.clone(),
            pool: state.pool.clone(),
        };
        let app = move || {
            App::new()
                .app_data(web::Data::new(app_state.clone()))
                .app_data(web::Data::new(session_check.clone()))
                .configure(gateway::routes)
                .configure(crate::openapi::routes)
                .configure(http::configure(&app_state))
                .default_service(web::to(http::no_route))
                .wrap(from_fn(http::body_deadline))
                .wrap(from_fn(http::limit_uri))
                .wrap(http::json_error_handlers())
                .wrap(from_fn(http::observe_request))
        };
        // What actix-web's `HttpServer` builds, plus the WebSocket upgrade (see
        // `gateway::upgrade`), which `HttpServer` cannot be given.
        let max_frame = u64::from(state.config.websocket.ws_max_frame_bytes);
        let service = move || {
            let served = map_config(app().into_factory(), |_| AppConfig::default());
            HttpService::build()
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .h1_allow_half_closed(true)
                .on_connect_ext(|tcp: &actix_web::rt::net::TcpStream, _| tune_connection(tcp))
                .upgrade(gateway::upgrade::service(
                    map_config(app().into_factory(), |_| AppConfig::default()),
                    max_frame,
                ))
                .h1(served.map_err(|error| error.error_response()))
                .tcp()
        };
        let workers = match state.config.server.http_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let cap = connection_cap(state.config.server.max_connections as usize);
        let server = Server::build()
            .workers(workers)
            // actix counts connections per worker.
            .max_concurrent_connections(cap.div_ceil(workers))
            // GOIM handles signals itself so that shutdown runs in its own order.
            .disable_signals()
            .shutdown_timeout(state.config.server.shutdown_timeout.as_secs())
            .listen("goim", listener, service)?
            .run();
        Ok(Self { port, server, state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The domain event bus, for in-process subscribers (and tests).
    pub fn events(&self) -> EventBus {
        self.state.events.clone()
    }

    /// Cancelling this token starts the graceful shutdown.
    /// The login and registration limits, whose clock tests move forward.
    pub fn rate_limits(&self) -> Arc<RateLimits> {
        self.state.rate_limits.clone()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { server, state, port } = self;
        tracing::info!(address = %format!("{}:{port}", state.config.server.bind.ip()), "GOIM is listening");
        let handle = server.handle();
        let mut serving = tokio::spawn(server);
        tokio::select! {
            result = &mut serving => {
                // The server ended on its own: a fatal I/O error.
                result.context("HTTP server task failed")?.context("HTTP server failed")?;
            }
            _ = state.shutdown.cancelled() => {
                tracing::info!("shutdown requested; draining");
                // No new connections; requests in flight finish and every socket closes
                // (the token tells them). actix's own graceful stop would also wait for
                // every idle keep-alive connection to time out (5 s), so once nothing is
                // in flight the remaining connections are dropped instead.
                handle.pause().await;
                let deadline = tokio::time::Instant::now() + state.config.server.shutdown_timeout;
                while tokio::time::Instant::now() < deadline
                    && (state.metrics.http_in_flight.get() > 0 || state.metrics.ws_connections.get() > 0)
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                handle.stop(false).await;
                let _ = serving.await;
            }
        }
        state.shutdown.cancel();
        // HTTP has drained, so no request waits for an ack any more: the writer stores
        // what is queued and its lanes end (tracked below).
        state.writer.shutdown();
        state.tasks.close();
        if tokio::time::timeout(state.config.server.shutdown_timeout, state.tasks.wait()).await.is_err() {
            tracing::warn!("unclean shutdown: background tasks did not finish within the timeout");
        }
        state.pool.close().await;
        Ok(())
    }
}

/// How long data the peer never acknowledges may sit in the kernel before the
/// connection is dropped (Linux `TCP_USER_TIMEOUT`): a peer that vanished without a
/// FIN or RST (a laptop lid, a dead NAT) frees its connection within this instead of
/// the kernel's ~15 minutes of retransmissions. Longer than any write GOIM waits for.
const UNACKNOWLEDGED_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

fn tune_connection(tcp: &actix_web::rt::net::TcpStream) {
    // Replies and acks are small writes that must leave at once; with Nagle's algorithm
    // an ack waits for the client's delayed ACK (~40 ms) behind the previous frame.
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot disable Nagle's algorithm on a connection");
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT)) {
        tracing::debug!(%error, "cannot bound unacknowledged data on a connection");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = UNACKNOWLEDGED_LIMIT;
}
