//! Authentication: password hashing off the async runtime, JWT access tokens, opaque
//! refresh tokens, the extractor that authorises every request, the revocation cache it
//! reads, and login rate limits.

pub mod extractor;
pub mod password;
pub mod rate_limit;
pub mod revocations;
pub mod token;

pub use extractor::{Authenticated, SessionCheck, authenticate, check_token, session_revoked};
pub use password::PasswordHasher;
pub use rate_limit::{Clock, RateLimiter, RateLimits};
pub use revocations::{Revocations, Verdict};
pub use token::{AccessClaims, RefreshToken, TokenError, TokenKeys};
