//! Prometheus metrics: HTTP requests by route and status, request latency, and the
//! database pool. Rendered in the OpenMetrics text format at `/metrics`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

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
    pub state: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    /// Open WebSockets on this instance.
    pub ws_connections: Gauge,
    pub ws_frames_in: Counter,
    pub ws_frames_out: Counter,
    /// Sockets closed because their outbound queue was full (1013).
    pub ws_slow_disconnects: Counter,
    /// Events the fan-out skipped because it fell behind the event bus.
    pub fanout_dropped: Counter,
    /// Time from a message's commit timestamp to its fan-out to sockets.
    pub delivery_latency: Histogram,
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
        let mut registry = Registry::with_prefix("goim");
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
        Self {
            registry,
            http_requests,
            http_latency,
            pool_connections,
            ws_connections,
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

    /// Renders every metric, sampling the pool at scrape time.
    pub fn render(&self, pool: &sqlx::PgPool) -> String {
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        let max = i64::from(pool.options().get_max_connections());
        for (state, value) in [("idle", idle), ("in_use", size - idle), ("max", max)] {
            self.pool_connections.get_or_create(&PoolLabels { state }).set(value);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
