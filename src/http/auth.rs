//! `/api/v1/auth/*`: register, login, refresh, logout, change password.

use std::net::IpAddr;

use ipnet::IpNet;

use super::json::Json;
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::dto::{OwnProfile, TokenResponse};
use crate::{
    auth::Authenticated,
    domain::{Nickname, Password, Username},
    error::ApiError,
    service::accounts::{self, Device},
    state::AppState,
};

const MAX_DEVICE_NAME_CHARS: usize = 64;
const MAX_USER_AGENT_CHARS: usize = 256;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 characters: ASCII letters, digits, `_`, `.`, `-`. Unique ignoring case.
    #[schema(example = "alice")]
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// 8 characters to 1024 bytes.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
    /// 1–64 characters; defaults to the username.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub nickname: Option<String>,
    /// A name for this device's session, up to 64 characters.
    #[schema(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub device_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
    #[schema(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub device_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 256)]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 256)]
    pub new_password: String,
}

#[derive(serde::Serialize, ToSchema)]
pub struct RegisterResponse {
    pub user: OwnProfile,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// Create an account and sign in on this device.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 400, description = "validation_failed, malformed_json, invalid_body", body = crate::dto::ErrorResponse),
        (status = 409, description = "username_taken", body = crate::dto::ErrorResponse),
        (status = 429, description = "rate_limited (Retry-After header)", body = crate::dto::ErrorResponse),
    ))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.rate_limits;
    limit(&limits.register_by_ip, &limits.clock, &client_key(&req, &state.config.auth.trusted_proxies))?;
    let body = body.into_inner();
    let username = Username::parse(&body.username)?;
    let password = Password::parse(body.password, "password")?;
    let nickname = body.nickname.as_deref().map(Nickname::parse).transpose()?;
    let device = device(&req, body.device_name)?;
    let (user, tokens) = accounts::register(&state, username, password, nickname, &device).await?;
    Ok(HttpResponse::Created().json(RegisterResponse { user: user.into(), tokens: tokens.into() }))
}

/// Sign in with username and password; opens a new session.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_credentials (unknown user and wrong password alike)", body = crate::dto::ErrorResponse),
        (status = 403, description = "account_deactivated (only with the right password)", body = crate::dto::ErrorResponse),
        (status = 429, description = "rate_limited, per IP and per username (Retry-After header)", body = crate::dto::ErrorResponse),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let limits = &state.rate_limits;
    limit(&limits.login_by_ip, &limits.clock, &client_key(&req, &state.config.auth.trusted_proxies))?;
    // Only a well-formed username can name an account, so only those get a bucket:
    // keys stay short, and junk names cannot fill the table.
    if Username::parse(&body.username).is_ok() {
        limit(&limits.login_by_username, &limits.clock, &body.username.to_lowercase())?;
    }
    let password = Password::parse_any(body.password, "password")?;
    let device = device(&req, body.device_name)?;
    let tokens = accounts::login(&state, &body.username, password, &device).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(tokens)))
}

/// Exchange a refresh token for a new access token and a new refresh token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_refresh_token, refresh_token_reused (the session is revoked), session_revoked", body = crate::dto::ErrorResponse),
    ))]
pub async fn refresh(state: web::Data<AppState>, body: Json<RefreshRequest>) -> Result<HttpResponse, ApiError> {
    let tokens = accounts::refresh(&state, &body.refresh_token).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(tokens)))
}

/// Sign out this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::dto::ErrorResponse)))]
pub async fn logout(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    accounts::logout(&state, caller).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A stolen access token must not buy fast guessing of the account's password (changing
/// it, deleting the account): those spend the budget login spends.
pub(super) fn limit_password_guesses(state: &AppState, caller: Authenticated) -> Result<(), ApiError> {
    let limits = &state.rate_limits;
    limit(&limits.login_by_username, &limits.clock, &format!("#{}", caller.user_id))
}

/// Change the password; every other session is signed out.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204),
        (status = 400, description = "validation_failed", body = crate::dto::ErrorResponse),
        (status = 403, description = "wrong_password", body = crate::dto::ErrorResponse),
        (status = 429, description = "rate_limited: the account's login budget is spent (Retry-After header)", body = crate::dto::ErrorResponse),
    ))]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    limit_password_guesses(&state, caller)?;
    let body = body.into_inner();
    let current = Password::parse_any(body.current_password, "current_password")?;
    let new = Password::parse(body.new_password, "new_password")?;
    accounts::change_password(&state, caller, current, new).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn limit(limiter: &crate::auth::RateLimiter, clock: &crate::auth::Clock, key: &str) -> Result<(), ApiError> {
    limiter.check(key, clock.now()).map_err(|retry_after| ApiError::RateLimited { retry_after })
}

/// Whose budget a request spends: the client's address. That is the TCP peer, unless
/// the peer is a trusted proxy (`GOIM_TRUSTED_PROXIES`): then the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy (proxies append, so addresses
/// further left are the client's own claims and could be forged). IPv6 clients are
/// keyed by their /64, which one host usually holds whole.
fn client_key(req: &HttpRequest, trusted: &[IpNet]) -> String {
    let Some(peer) = req.peer_addr().map(|addr| addr.ip()) else {
        return String::new();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if is_trusted(&peer) {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => client = ip,
                Ok(ip) => {
                    client = ip;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    match client {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            ipnet::Ipv6Net::new(v6, 64).map(|net| net.trunc().to_string()).unwrap_or_else(|_| v6.to_string())
        }
        other => other.to_canonical().to_string(),
    }
}

fn device(req: &HttpRequest, name: Option<String>) -> Result<Device, ApiError> {
    let name = name.unwrap_or_default();
    if name.chars().count() > MAX_DEVICE_NAME_CHARS || crate::domain::has_forbidden_controls(&name, false) {
        return Err(ApiError::validation("device_name", "must be at most 64 characters without control characters"));
    }
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(MAX_USER_AGENT_CHARS)
        .collect();
    Ok(Device { name, user_agent })
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn key(peer: &str, forwarded: Option<&str>, trusted: &[&str]) -> String {
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        let mut request = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(forwarded) = forwarded {
            request = request.insert_header(("x-forwarded-for", forwarded));
        }
        client_key(&request.to_http_request(), &trusted)
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        assert_eq!(key("203.0.113.7:5000", Some("198.51.100.1"), &[]), "203.0.113.7", "header ignored by default");
        assert_eq!(key("203.0.113.7:5000", Some("198.51.100.1"), &["10.0.0.0/8"]), "203.0.113.7", "untrusted peer");
        assert_eq!(key("10.1.2.3:5000", Some("198.51.100.1"), &["10.0.0.0/8"]), "198.51.100.1");
        assert_eq!(key("10.1.2.3:5000", None, &["10.0.0.0/8"]), "10.1.2.3", "no header: the proxy itself");
    }

    #[test]
    fn only_the_hops_added_by_trusted_proxies_are_believed() {
        let trusted = ["10.0.0.0/8"];
        // The client claims to be 1.1.1.1; the edge proxy appended the real address.
        assert_eq!(key("10.0.0.2:1", Some("1.1.1.1, 198.51.100.9, 10.0.0.1"), &trusted), "198.51.100.9");
        assert_eq!(key("10.0.0.2:1", Some("1.1.1.1"), &trusted), "1.1.1.1");
        assert_eq!(key("10.0.0.2:1", Some("garbage, 10.0.0.5"), &trusted), "10.0.0.5", "stops at what it cannot read");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(key("[2001:db8:1:2:aaaa::1]:1", None, &[]), "2001:db8:1:2::/64");
        assert_eq!(key("[2001:db8:1:2:bbbb::9]:1", None, &[]), "2001:db8:1:2::/64");
        assert_eq!(key("[::ffff:192.0.2.1]:1", None, &[]), "192.0.2.1", "a mapped IPv4 address is that address");
    }
}
