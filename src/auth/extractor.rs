//! The extractor that authorises a request: a valid access token in
//! `Authorization: Bearer …` whose session is still active, so a revoked session's
//! tokens stop working at once rather than when they expire.
//!
//! The session is checked against the instance's revocation cache
//! ([`super::revocations`]) and takes no database connection, so a request waits for
//! one connection at most — its handler's — and a database that cannot give one is a
//! 503 after one acquire timeout, not two. While the cache is not authoritative (the
//! listener is reconnecting, or has not loaded yet) the session is read from the
//! database on every request, as before.

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;

use std::sync::Arc;

use sqlx::PgPool;

use super::{
    TokenError, TokenKeys,
    revocations::{Revocations, Verdict},
};
use crate::{
    db,
    domain::{SessionId, UserId},
    error::ApiError,
};

/// What the extractor needs to check a caller, registered as app data by
/// `crate::startup`: the token keys, the revocation cache and the pool (for when the
/// cache is not authoritative), not the whole application state.
#[derive(Clone)]
pub struct SessionCheck {
    pub tokens: Arc<TokenKeys>,
    pub revocations: Revocations,
    pub pool: PgPool,
}

/// The caller, authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    pub user_id: UserId,
    pub session_id: SessionId,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let check = req.app_data::<web::Data<SessionCheck>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let check = check.ok_or_else(|| ApiError::internal(anyhow::anyhow!("SessionCheck is not registered")))?;
            let token = token.ok_or_else(|| {
                ApiError::unauthorized("missing_token", "an access token is required (Authorization: Bearer …)")
            })?;
            authenticate(&check, &token).await
        })
    }
}

/// Checks an access token and its session.
pub async fn authenticate(check: &SessionCheck, token: &str) -> Result<Authenticated, ApiError> {
    let (caller, verdict) = check_token(&check.tokens, &check.revocations, token)?;
    match verdict {
        Verdict::Active => Ok(caller),
        Verdict::Revoked => Err(session_revoked()),
        Verdict::Unknown if db::sessions::is_active(&check.pool, caller.user_id, caller.session_id).await? => {
            Ok(caller)
        }
        Verdict::Unknown => Err(session_revoked()),
    }
}

/// Checks an access token's signature and expiry, and what the revocation cache knows
/// of its session; the WebSocket handshake reads the session itself when it needs to.
pub fn check_token(
    tokens: &TokenKeys,
    revocations: &Revocations,
    token: &str,
) -> Result<(Authenticated, Verdict), ApiError> {
    let (user_id, session_id) = tokens.verify(token).map_err(|error| match error {
        TokenError::Expired => ApiError::unauthorized("token_expired", "the access token has expired; refresh it"),
        TokenError::Invalid => ApiError::unauthorized("invalid_token", "the access token is invalid"),
    })?;
    Ok((Authenticated { user_id, session_id }, revocations.verdict(user_id, session_id)))
}

pub fn session_revoked() -> ApiError {
    ApiError::unauthorized("session_revoked", "this session has been signed out")
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim().to_owned())
}
