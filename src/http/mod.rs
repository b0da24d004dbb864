//! The HTTP surface: `configure` is the whole route table; handlers are thin async
//! functions of extractors that call the service layer and map results to JSON.

mod errors;
mod health;
mod observe;

use actix_web::web;

use crate::{error::ApiError, state::AppState};

pub use errors::json_error_handlers;
pub use observe::observe_request;

/// Registers every route and the extractor configuration.
pub fn configure(state: &AppState) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let limit = state.config.max_request_bytes as usize;
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(errors::json_config(limit))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(errors::query_config())
            .app_data(errors::path_config())
            .service(web::resource("/healthz").route(web::get().to(health::healthz)))
            .service(web::resource("/readyz").route(web::get().to(health::readyz)))
            .service(web::resource("/metrics").route(web::get().to(health::metrics)));
    }
}

/// The answer for paths no route matches.
pub async fn no_route() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("not_found", "no resource at this path"))
}
