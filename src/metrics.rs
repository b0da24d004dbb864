//! Prometheus metrics: HTTP requests by route and status, request latency, the database
//! pools, WebSocket and message counters, build info and the standard `process_*` figures.
//! Rendered in the OpenMetrics text format at `/metrics`.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// What the retention sweep removed (`messages`, `sessions`, `tickets`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Webhook outbox rows by state (`pending`, `dead`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The matched route pattern (`/api/v1/users/{id}`), never the raw path, so that
    /// label cardinality stays bounded; `unmatched` for 404s.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `main` (requests) or `writer` (the message writer's own connections).
    pub pool: &'static str,
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    /// Open WebSockets on this instance (until their close handshake ends).
    pub ws_connections: Gauge,
    /// HTTP requests being handled now (shutdown waits for them).
    pub http_in_flight: Gauge,
    pub ws_frames_in: Counter,
    pub ws_frames_out: Counter,
    /// Sockets closed because their client stopped reading (1013): a full outbound
    /// queue, or no room to write for 5 s.
    pub ws_slow_disconnects: Counter,
    /// Events the fan-out skipped because it fell behind the event bus.
    pub fanout_dropped: Counter,
    /// Time from a message's commit timestamp to its fan-out to sockets.
    pub delivery_latency: Histogram,
    /// Messages committed by the writer (retries of stored messages not counted).
    pub messages_stored: Counter,
    /// Logins by outcome (`ok`, `invalid_credentials`).
    pub logins: Family<OutcomeLabels, Counter>,
    /// Notifications the relay sent to, and received from, other instances.
    pub relay_notifications_sent: Counter,
    pub relay_notifications_received: Counter,
    /// Times the relay's listening connection was lost.
    pub relay_reconnects: Counter,
    /// Notifications the relay could not send.
    pub relay_failures: Counter,
    /// 1 while the relay listens for other instances' events.
    pub relay_listening: Gauge,
    /// Rows the retention sweep deleted, by kind.
    pub retention_deleted: Family<KindLabels, Counter>,
    /// Webhook deliveries this instance's writer queued (one per offline recipient and
    /// endpoint).
    pub webhook_queued: Counter,
    /// Webhook attempts by outcome: `delivered`, `failed` (retried later), `dead` (the
    /// last attempt failed; kept as a dead letter).
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,
    /// The whole outbox (every instance's rows), by state, sampled every few seconds.
    pub webhook_backlog: Family<StateLabels, Gauge>,
    http_requests: Family<RequestLabels, Counter>,
    http_latency: HistogramFamily,
    pool_connections: Family<PoolLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        // The standard names, unprefixed, so dashboards made for any process work.
        root.register_collector(Box::new(ProcessCollector { started: std::time::SystemTime::now() }));
        let registry = root.sub_registry_with_prefix("goim");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", http_requests.clone());
        let http_latency: HistogramFamily = Family::new_with_constructor(|| {
            // 0.25 ms .. ~8 s
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register("http_request_duration_seconds", "HTTP request latency by route", http_latency.clone());
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use, max)",
            pool_connections.clone(),
        );
        let ws_connections = Gauge::default();
        registry.register("ws_connections", "Open WebSocket connections", ws_connections.clone());
        let http_in_flight = Gauge::default();
        registry.register("http_in_flight", "HTTP requests being handled", http_in_flight.clone());
        let ws_frames_in = Counter::default();
        registry.register("ws_frames_in", "WebSocket frames received from clients", ws_frames_in.clone());
        let ws_frames_out = Counter::default();
        registry.register("ws_frames_out", "Event frames queued to WebSocket clients", ws_frames_out.clone());
        let ws_slow_disconnects = Counter::default();
        registry.register(
            "ws_slow_disconnects",
            "WebSockets closed because the client did not read (1013)",
            ws_slow_disconnects.clone(),
        );
        let fanout_dropped = Counter::default();
        registry.register("fanout_dropped", "Events skipped because the fan-out fell behind", fanout_dropped.clone());
        let delivery_latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        registry.register(
            "delivery_latency_seconds",
            "From a message's commit timestamp to its fan-out to sockets",
            delivery_latency.clone(),
        );
        let messages_stored = Counter::default();
        registry.register("messages_stored", "Messages committed by the writer", messages_stored.clone());
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register("logins", "Logins by outcome", logins.clone());
        let relay_notifications_sent = Counter::default();
        registry.register(
            "relay_notifications_sent",
            "Notifications sent to other instances",
            relay_notifications_sent.clone(),
        );
        let relay_notifications_received = Counter::default();
        registry.register(
            "relay_notifications_received",
            "Notifications received from instances (own included)",
            relay_notifications_received.clone(),
        );
        let relay_reconnects = Counter::default();
        registry.register("relay_reconnects", "Times the relay's LISTEN connection was lost", relay_reconnects.clone());
        let relay_failures = Counter::default();
        registry.register("relay_failures", "Notifications the relay could not send", relay_failures.clone());
        let relay_listening = Gauge::default();
        registry.register("relay_listening", "1 while the relay listens for other instances", relay_listening.clone());
        let retention_deleted = Family::<KindLabels, Counter>::default();
        registry.register(
            "retention_deleted",
            "Rows deleted by the retention sweep (GOIM_RETENTION_DAYS), by kind",
            retention_deleted.clone(),
        );
        let webhook_queued = Counter::default();
        registry.register(
            "webhook_queued",
            "Webhook deliveries queued by this instance (offline recipients x endpoints)",
            webhook_queued.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, failed, dead)",
            webhook_deliveries.clone(),
        );
        let webhook_backlog = Family::<StateLabels, Gauge>::default();
        registry.register(
            "webhook_outbox",
            "Rows in the webhook outbox, all instances, by state (pending, dead)",
            webhook_backlog.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "The running build (always 1)", build_info);
        Self {
            registry: root,
            messages_stored,
            logins,
            relay_notifications_sent,
            relay_notifications_received,
            relay_reconnects,
            relay_failures,
            relay_listening,
            retention_deleted,
            webhook_queued,
            webhook_deliveries,
            webhook_backlog,
            http_requests,
            http_latency,
            pool_connections,
            ws_connections,
            http_in_flight,
            ws_frames_in,
            ws_frames_out,
            ws_slow_disconnects,
            fanout_dropped,
            delivery_latency,
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RequestLabels { method: method.to_owned(), route: route.to_owned(), status })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels { method: method.to_owned(), route: route.to_owned() })
            .observe(seconds);
    }

    /// Renders every metric, sampling the pools at scrape time.
    pub fn render(&self, pools: &[(&'static str, &sqlx::PgPool)]) -> String {
        for &(name, pool) in pools {
            let size = i64::from(pool.size());
            let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
            let max = i64::from(pool.options().get_max_connections());
            for (state, value) in [("idle", idle), ("in_use", size - idle), ("max", max)] {
                self.pool_connections.get_or_create(&PoolLabels { pool: name, state }).set(value);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds` (read
/// from `/proc` at scrape time, so Linux only) and `process_start_time_seconds`.
#[derive(Debug)]
struct ProcessCollector {
    started: std::time::SystemTime,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let started = self.started.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let gauge = ConstGauge::new(started);
        encode_one(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch",
            &gauge,
        )?;
        if let Some(seconds) = proc_cpu_seconds() {
            let counter = ConstCounter::new(seconds);
            encode_one(&mut encoder, "process_cpu_seconds", "User and system CPU time of the process", &counter)?;
        }
        if let Some(bytes) = proc_resident_bytes() {
            encode_one(&mut encoder, "process_resident_memory_bytes", "Resident memory", &ConstGauge::new(bytes))?;
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let gauge = ConstGauge::new(entries.count() as i64);
            encode_one(&mut encoder, "process_open_fds", "Open file descriptors", &gauge)?;
        }
        Ok(())
    }
}

fn encode_one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// utime + stime from `/proc/self/stat`, in clock ticks of 1/100 s (Linux's fixed
/// `USER_HZ`). The command name may hold spaces, so fields are counted after its `)`.
fn proc_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn proc_resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
