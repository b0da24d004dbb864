//! Access tokens: HS256 JWTs with `sub`, `sid`, `iat`, `exp`, `iss`, `aud`, validated
//! strictly (HS256 only — `alg: none` and algorithm swaps fail; issuer and audience
//! must match; all claims required). Refresh tokens: 256 random bits, base64url,
//! stored only as a SHA-256 hash.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    config::Secret,
    domain::{SessionId, UserId},
};

pub const ISSUER: &str = "goim";
pub const AUDIENCE: &str = "goim-api";
/// Clock skew tolerated between instances when checking `exp`.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as a string per RFC 7519.
    pub sub: String,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is invalid")]
    Invalid,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &Secret, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            access_ttl,
        }
    }

    /// Signs an access token for `user`'s `session`, issued at `now` (unix seconds).
    pub fn issue(&self, user: UserId, session: SessionId, now: i64) -> anyhow::Result<String> {
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            sub: user.0.to_string(),
            sid: session.0,
            iat: now,
            exp: now.saturating_add(ttl),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| anyhow::anyhow!("cannot sign access token: {e}"))
    }

    /// Checks signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<(UserId, SessionId), TokenError> {
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let user = data.claims.sub.parse::<i64>().map_err(|_| TokenError::Invalid)?;
        Ok((UserId(user), SessionId(data.claims.sid)))
    }
}

/// A freshly generated refresh token; only its hash is stored.
pub struct RefreshToken(String);

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> Vec<u8> {
        hash_refresh_token(&self.0)
    }
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new("k".repeat(40)), Duration::from_secs(900))
    }

    #[test]
    fn an_issued_token_verifies_to_its_user_and_session() {
        let keys = keys();
        let session = SessionId(Uuid::new_v4());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = keys.issue(UserId(7), session, now).unwrap();
        assert_eq!(keys.verify(&token), Ok((UserId(7), session)));
    }

    #[test]
    fn an_expired_token_is_reported_as_expired() {
        let keys = keys();
        let long_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
        let token = keys.issue(UserId(7), SessionId(Uuid::new_v4()), long_ago).unwrap();
        assert_eq!(keys.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let other = TokenKeys::new(&Secret::new("o".repeat(40)), Duration::from_secs(900));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = other.issue(UserId(7), SessionId(Uuid::new_v4()), now).unwrap();
        assert_eq!(keys().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_carry_256_bits_and_differ() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(URL_SAFE_NO_PAD.decode(a.as_str()).unwrap().len(), 32);
        assert_eq!(a.hash().len(), 32);
    }
}
