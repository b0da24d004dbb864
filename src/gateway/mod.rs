//! The real-time gateway: the WebSocket handshake (`GET /api/v1/ws`), one-time
//! tickets (`POST /api/v1/ws/ticket`), and one [`session`] per socket. The protocol is
//! written down in docs/protocol.md; [`protocol`] parses and renders its frames.
//! Every operation calls the same service functions as the REST API.

mod client_messages;
mod frame_guard;
pub mod protocol;
mod session;
mod socket;
pub mod upgrade;

use actix_web::{
    FromRequest as _, HttpMessage as _, HttpRequest, HttpResponse,
    http::header::{self, HeaderValue},
    web,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use utoipa::ToSchema;

use self::client_messages::ClientMessages;
use crate::{
    auth::{Authenticated, Verdict, check_token, session_revoked},
    db,
    domain::{SessionId, UserId},
    error::ApiError,
    state::AppState,
};

/// The handshake route: the only one a WebSocket upgrade is served on.
pub const WEBSOCKET_PATH: &str = "/api/v1/ws";

/// How long a ticket may wait before it is redeemed.
pub const TICKET_TTL_SECS: i64 = 30;

#[derive(Serialize, ToSchema)]
pub struct TicketResponse {
    /// Single use; pass as `?ticket=` when opening the WebSocket.
    pub ticket: String,
    /// Seconds until the ticket expires.
    pub expires_in: i64,
}

/// The WebSocket half of the OpenAPI document: the ticket, the handshake and the
/// request shapes (events are described with `crate::events::Event`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_ticket, connect), components(schemas(protocol::ClientRequest)))]
pub struct ApiDoc;

/// The WebSocket routes. Registered by `crate::startup` ahead of the REST routes (whose
/// `/api/v1` scope would otherwise answer 404 for them).
pub fn routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/ws/ticket").route(web::post().to(create_ticket)))
        .service(web::resource(WEBSOCKET_PATH).route(web::get().to(connect)));
}

/// A one-time ticket for opening a WebSocket (browsers cannot send an Authorization
/// header on the handshake, and access tokens must not travel in URLs).
#[utoipa::path(post, path = "/api/v1/ws/ticket", tag = "realtime", security(("bearer" = [])),
    responses((status = 200, body = TicketResponse), (status = 401, body = crate::dto::ErrorResponse),
        (status = 503, description = "the instance is shutting down", body = crate::dto::ErrorResponse)))]
pub async fn create_ticket(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    refuse_while_stopping(&state)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let ticket = URL_SAFE_NO_PAD.encode(bytes);
    let hash = Sha256::digest(ticket.as_bytes());
    let mut connection = state.pool.acquire().await?;
    db::ws_tickets::insert(&mut *connection, &hash, caller.user_id, caller.session_id, TICKET_TTL_SECS as f64).await?;
    db::ws_tickets::delete_expired(&mut *connection).await?;
    Ok(HttpResponse::Ok().json(TicketResponse { ticket, expires_in: TICKET_TTL_SECS }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectQuery {
    /// A ticket from `POST /api/v1/ws/ticket` (browsers); other clients may send
    /// `Authorization: Bearer` instead.
    ticket: Option<String>,
}

/// Open the WebSocket (subprotocol `goim.v1`, docs/protocol.md). Frames from the client
/// are `ClientRequest`s with an `id`; the server answers each with a reply and pushes
/// `{"type":"event","event":Event}`.
///
/// Everything that can be refused is refused here, before the upgrade, with the
/// standard JSON error.
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime", security((), ("bearer" = [])),
    params(ConnectQuery,
        ("Sec-WebSocket-Protocol" = String, Header, description = "Must offer `goim.v1`."),
        ("Origin" = Option<String>, Header, description = "Browsers: must be this server or one of GOIM_WS_ALLOWED_ORIGINS.")),
    responses(
        (status = 101, description = "switched to the WebSocket protocol `goim.v1`"),
        (status = 400, description = "subprotocol_required, unsupported_subprotocol, websocket_handshake_failed (not a WebSocket upgrade)", body = crate::dto::ErrorResponse),
        (status = 401, description = "missing_token, invalid_ticket (unknown, used or expired)", body = crate::dto::ErrorResponse),
        (status = 403, description = "origin_not_allowed", body = crate::dto::ErrorResponse),
        (status = 429, description = "too_many_connections for this user", body = crate::dto::ErrorResponse),
        (status = 503, description = "the instance is shutting down", body = crate::dto::ErrorResponse),
    ))]
pub async fn connect(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ConnectQuery>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    refuse_while_stopping(&state)?;
    check_subprotocol(&req)?;
    check_origin(&req, &state.config.websocket.ws_allowed_origins)?;
    // A token is checked before waiting for a connection; a ticket is in the database.
    let caller = match &query.ticket {
        Some(_) => None,
        None => {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .ok_or_else(|| ApiError::unauthorized("missing_token", "a ticket or an access token is required"))?;
            Some(check_token(&state.tokens, &state.revocations, token.trim())?.0)
        }
    };
    // One connection for the whole handshake: the session's expiry is read anyway (the
    // socket closes by itself then), and the same read tells whether it is active.
    let mut connection = state.pool.acquire().await?;
    let (user, session) = match (caller, &query.ticket) {
        (Some(caller), _) => (caller.user_id, caller.session_id),
        (None, ticket) => redeem_ticket(&mut connection, ticket.as_deref().unwrap_or_default()).await?,
    };
    // Revocations are pushed to open sockets from here on.
    if state.revocations.verdict(user, session) == Verdict::Revoked {
        return Err(session_revoked());
    }
    let session_expires_at =
        db::sessions::active_until(&mut *connection, user, session).await?.ok_or_else(session_revoked)?;
    drop(connection);
    let config = &state.config;
    // The handshake is checked before the socket is registered: a failed one must not
    // count as a connection, nor flap the user's presence. Nothing reaches the client
    // until the response below is returned, so a refusal after this is still clean.
    let handshake_failed = |why: String| ApiError::bad_request("websocket_handshake_failed", why);
    // actix-ws encodes what the socket sends; what the client sends is decoded by
    // `ClientMessages`, which does not keep a buffer at the largest frame's size, so
    // actix-ws's own decoder is given no payload.
    let no_payload = web::Payload::extract(&req).await.map_err(|e| handshake_failed(e.to_string()))?;
    let (mut response, socket, _) = actix_ws::handle(&req, no_payload).map_err(|e| handshake_failed(e.to_string()))?;
    // Only a request actix-http handed to `upgrade` can take its connection over.
    let handover = req
        .extensions()
        .get::<upgrade::Handover>()
        .cloned()
        .ok_or_else(|| handshake_failed("not a WebSocket upgrade".to_owned()))?;
    let (registration, outbound) = state
        .hub
        .register(
            user,
            session,
            config.websocket.ws_max_connections_per_user as usize,
            config.websocket.ws_outbound_queue as usize,
        )
        .map_err(|_| too_many_connections())?;
    response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol::SUBPROTOCOL));
    // A message may come in fragments (RFC 6455 §5.4); reassembled, it is held to the
    // same limit as a single frame.
    let max_frame = config.websocket.ws_max_frame_bytes as usize;
    let messages = ClientMessages::new(body.into_inner(), max_frame);
    handover.admit(session::Connection {
        state: state.clone(),
        user,
        session,
        session_expires_at,
        registration,
        outbound,
        socket,
        messages,
    });
    Ok(response)
}

/// A stopping instance hands out no tickets and opens no sockets: they would be closed
/// with 1001 at once. 503 sends the client (or the load balancer) to another instance.
fn refuse_while_stopping(state: &AppState) -> Result<(), ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable(anyhow::anyhow!("this instance is shutting down")));
    }
    Ok(())
}

fn too_many_connections() -> ApiError {
    ApiError::TooMany { code: "too_many_connections", message: "too many open connections for this user".into() }
}

async fn redeem_ticket(connection: &mut PgConnection, ticket: &str) -> Result<(UserId, SessionId), ApiError> {
    let found = db::ws_tickets::redeem(&mut *connection, &Sha256::digest(ticket.as_bytes())).await?;
    found.ok_or_else(|| ApiError::unauthorized("invalid_ticket", "the ticket is unknown, used or expired"))
}

fn check_subprotocol(req: &HttpRequest) -> Result<(), ApiError> {
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(ApiError::bad_request(
            "subprotocol_required",
            "offer the subprotocol goim.v1 (Sec-WebSocket-Protocol)",
        ));
    }
    if !offered.iter().any(|p| p == protocol::SUBPROTOCOL) {
        return Err(ApiError::bad_request("unsupported_subprotocol", "this server speaks goim.v1 only"));
    }
    Ok(())
}

/// Browsers send `Origin`; it must be allowed (by default: this server's own origin).
/// Clients without `Origin` (native apps, bots) are not browsers and are allowed.
fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let allowed_list: Vec<&str> = allowed.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect();
    let ok = if allowed_list.is_empty() {
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    } else {
        allowed_list.iter().any(|o| o.eq_ignore_ascii_case(origin))
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden("origin_not_allowed", "this origin may not open a WebSocket here"))
    }
}
