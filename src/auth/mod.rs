//! Authentication: password hashing off the async runtime, JWT access tokens, opaque
//! refresh tokens, the extractor that authorises every request, and login rate limits.

pub mod extractor;
pub mod password;
pub mod rate_limit;
pub mod token;

pub use extractor::{Authenticated, SessionCheck, authenticate};
pub use password::PasswordHasher;
pub use rate_limit::{Clock, RateLimiter, RateLimits};
pub use token::{AccessClaims, RefreshToken, TokenError, TokenKeys};
