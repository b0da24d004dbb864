//! The outermost middleware: gives every request an id (echoed in `x-request-id` and
//! carried by every log line inside the request's span), logs one line per request,
//! and records the request metrics.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::state::AppState;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Counts a request as in flight until dropped (also when the client goes away and
/// the request's future is dropped half-way).
struct InFlight(std::sync::Arc<crate::metrics::Metrics>);

impl InFlight {
    fn enter(metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        metrics.http_in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.http_in_flight.dec();
    }
}

/// Routes polled by load balancers and metrics scrapers.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

pub async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = incoming_request_id(&req).unwrap_or_else(|| Uuid::new_v4().to_string());
    let method = req.method().to_string();
    // The path only: query strings may carry one-time tickets and must stay out of logs.
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %req.path());
    let metrics = req.app_data::<web::Data<AppState>>().map(|state| state.metrics.clone());
    let started = Instant::now();

    let in_flight = metrics.clone().map(InFlight::enter);
    let result = next.call(req).instrument(span.clone()).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let mut response = match result {
        Ok(response) => response,
        Err(error) => return Err(error),
    };
    let status = response.status().as_u16();
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    if let Some(metrics) = metrics {
        metrics.observe_request(&method, &route, status, elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        let elapsed_ms = elapsed.as_secs_f64() * 1e3;
        // Probes and scrapes arrive every few seconds for the life of the process; at
        // INFO they would bury the requests people look for. Failures still show.
        if status < 400 && PROBES.contains(&route.as_str()) {
            tracing::debug!(status, elapsed_ms, "request finished");
        } else {
            tracing::info!(status, elapsed_ms, "request finished");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

/// A caller-supplied id (from a proxy) is kept when it is short and plain, so one id
/// follows a request across systems; anything else is replaced.
fn incoming_request_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plain.then(|| value.to_owned())
}
