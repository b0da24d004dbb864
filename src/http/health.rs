//! Liveness, readiness and metrics endpoints for operators and load balancers.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::{error::ApiError, state::AppState};

const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers; a load balancer should route traffic here.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable(anyhow::anyhow!("shutting down")));
    }
    let ping = crate::db::ping(&state.pool);
    match tokio::time::timeout(READINESS_TIMEOUT, ping).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(ApiError::Unavailable(anyhow::anyhow!("database unreachable: {error}"))),
        Err(_) => return Err(ApiError::Unavailable(anyhow::anyhow!("database did not answer within 2 s"))),
    }
    // Without its LISTEN connection this instance would miss other instances' events. It
    // connects within milliseconds of start and reconnects with backoff, so wait a little.
    match tokio::time::timeout(READINESS_TIMEOUT, state.relay.listening()).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({ "status": "ready", "relay": "listening" }))),
        Err(_) => Err(ApiError::Unavailable(anyhow::anyhow!("not listening for other instances' events"))),
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render(&[("main", &state.pool), ("writer", state.writer.pool())]))
}
