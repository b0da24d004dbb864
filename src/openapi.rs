//! The OpenAPI 3.1 document GOIM serves at `/api/openapi.json` and prints with
//! `goim openapi`: the REST operations, the WebSocket handshake and ticket, and the
//! shapes of WebSocket requests and events, all generated from the code.

use actix_web::{HttpResponse, web};
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, Ref, RefOr, ResponseBuilder,
        path::{Operation, ParameterIn},
    },
};

use crate::{events::Event, gateway, http};

/// Event types that travel only between GOIM instances and never reach a client.
const INTERNAL_EVENTS: [&str; 2] = ["session_revoked", "instance_lost"];

#[derive(OpenApi)]
#[openapi(components(schemas(Event)))]
struct EventSchemas;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = http::openapi::ApiDoc::openapi();
    document.merge(gateway::ApiDoc::openapi());
    document.merge(EventSchemas::openapi());
    CommonResponses.modify(&mut document);
    document
}

/// The document as JSON, with the internal event types left out of `Event`.
pub fn json() -> Value {
    let mut json = serde_json::to_value(document()).unwrap_or(Value::Null);
    if let Some(Value::Array(variants)) = json.pointer_mut("/components/schemas/Event/oneOf") {
        variants.retain(|variant| {
            let kind = variant.pointer("/properties/type/enum/0").and_then(Value::as_str);
            !kind.is_some_and(|kind| INTERNAL_EVENTS.contains(&kind))
        });
    }
    json
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/openapi.json").route(web::get().to(serve)).route(web::head().to(serve)));
}

async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(json())
}

/// Responses an operation can give before or around its handler (authentication, the
/// path, query and body extractors, the body deadline, the database): described here
/// once from the operation's shape instead of on every handler, and merged into the
/// handler's own description where it documents the same status.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for (status, codes) in common_responses(operation) {
                    add_response(operation, status, &codes, Merge::Append);
                }
                for (status, codes) in resource_responses(path, operation) {
                    add_response(operation, status, codes, Merge::KeepHandlers);
                }
            }
        }
    }
}

fn common_responses(operation: &Operation) -> Vec<(&'static str, String)> {
    let takes =
        |place: ParameterIn| operation.parameters.iter().flatten().any(|parameter| parameter.parameter_in == place);
    let mut bad_request = Vec::new();
    if takes(ParameterIn::Path) {
        bad_request.push("invalid_path");
    }
    if takes(ParameterIn::Query) {
        bad_request.push("invalid_query");
    }
    let body = operation.request_body.is_some();
    if body {
        bad_request.extend(["malformed_json", "invalid_body"]);
    }
    if !bad_request.is_empty() {
        bad_request.push("invalid_text (a NUL character)");
    }
    let mut responses = Vec::new();
    if !bad_request.is_empty() {
        responses.push(("400", bad_request.join(", ")));
    }
    if operation.security.as_ref().is_some_and(|requirements| !requirements.is_empty()) {
        responses
            .push(("401", "missing_token, invalid_token, token_expired, session_revoked (sign in or refresh)".into()));
    }
    if body {
        responses.push(("408", "request_timeout: the body did not arrive within GOIM_BODY_TIMEOUT_SECS".into()));
        responses.push(("413", "payload_too_large".into()));
        responses.push(("415", "unsupported_media_type: send Content-Type: application/json".into()));
    }
    responses.push(("414", "uri_too_long: the path and query exceed 8 KiB".into()));
    responses.push((
        "503",
        "service_unavailable: the database is unreachable or too slow, or this instance is stopping; \
         retry after Retry-After"
            .into(),
    ));
    responses
}

/// What the resources named in the path add: they may not exist (or be hidden from
/// the caller), and a disbanded group refuses every change. Handlers that document these
/// statuses say more precisely which codes they use, so theirs are kept.
fn resource_responses(path: &str, operation: &Operation) -> Vec<(&'static str, &'static str)> {
    let mut responses = Vec::new();
    if operation.parameters.iter().flatten().any(|parameter| parameter.parameter_in == ParameterIn::Path) {
        responses.push(("404", "the resource named in the path does not exist or is hidden from you"));
    }
    if path.contains("{group_id}") || path.contains("{conversation_id}") {
        responses.push(("410", "group_disbanded: the group no longer takes changes"));
    }
    responses
}

#[derive(PartialEq)]
enum Merge {
    /// Add the codes to the handler's own description of the status.
    Append,
    /// Only add the status where the handler does not document it.
    KeepHandlers,
}

fn add_response(operation: &mut Operation, status: &str, codes: &str, merge: Merge) {
    let responses = &mut operation.responses.responses;
    match responses.get_mut(status) {
        Some(_) if merge == Merge::KeepHandlers => {}
        Some(RefOr::T(response)) if response.description.is_empty() => response.description = codes.to_owned(),
        Some(RefOr::T(response)) => response.description = format!("{}; {codes}", response.description),
        Some(RefOr::Ref(_)) => {}
        None => {
            let error = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build();
            let response = ResponseBuilder::new().description(codes).content("application/json", error).build();
            responses.insert(status.to_owned(), RefOr::T(response));
        }
    }
}
