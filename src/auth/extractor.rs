//! The extractor that authorises a request: a valid access token in
//! `Authorization: Bearer …` whose session is still active. The session is checked on
//! every request (one primary-key lookup), so a revoked session's tokens stop working
//! at once rather than when they expire.

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;

use std::sync::Arc;

use sqlx::PgPool;

use super::{TokenError, TokenKeys};
use crate::{
    db,
    domain::{SessionId, UserId},
    error::ApiError,
};

/// What the extractor needs to check a caller, registered as app data by
/// `crate::startup`: the token keys and the pool, not the whole application state.
#[derive(Clone)]
pub struct SessionCheck {
    pub tokens: Arc<TokenKeys>,
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
            authenticate(&check.tokens, &check.pool, &token).await
        })
    }
}

/// Checks an access token and its session; shared by HTTP and the WebSocket handshake.
pub async fn authenticate(tokens: &TokenKeys, pool: &PgPool, token: &str) -> Result<Authenticated, ApiError> {
    let (user_id, session_id) = tokens.verify(token).map_err(|error| match error {
        TokenError::Expired => ApiError::unauthorized("token_expired", "the access token has expired; refresh it"),
        TokenError::Invalid => ApiError::unauthorized("invalid_token", "the access token is invalid"),
    })?;
    if !db::sessions::is_active(pool, user_id, session_id).await? {
        return Err(ApiError::unauthorized("session_revoked", "this session has been signed out"));
    }
    Ok(Authenticated { user_id, session_id })
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim().to_owned())
}
