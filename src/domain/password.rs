//! Plain-text passwords on their way to the hasher: new ones 8–256 characters, any at
//! most 1024 bytes, so hashing cannot be turned into a denial of service.

use super::Invalid;

pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// For new passwords; at most 4 bytes each, so always within [`Self::MAX_BYTES`].
    pub const MAX_CHARS: usize = 256;
    pub const MAX_BYTES: usize = 1024;

    /// Validates a new password (registration, change).
    pub fn parse(raw: String, field: &'static str) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(Invalid::new(
                field,
                format!("must be {}–{} characters long", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        Self::parse_any(raw, field)
    }

    /// Accepts any length up to the bound: for checking an existing password, whose
    /// rules may have been weaker when it was set.
    pub fn parse_any(raw: String, field: &'static str) -> Result<Self, Invalid> {
        if raw.len() > Self::MAX_BYTES {
            return Err(Invalid::new(field, format!("must be at most {} bytes long", Self::MAX_BYTES)));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_shorter_than_8_chars_is_rejected() {
        assert!(Password::parse("1234567".into(), "password").is_err());
        assert!(Password::parse("12345678".into(), "password").is_ok());
    }

    #[test]
    fn a_password_over_1024_bytes_is_rejected_even_for_checking() {
        assert!(Password::parse("x".repeat(1025), "password").is_err());
        assert!(Password::parse_any("x".repeat(1025), "password").is_err());
    }

    #[test]
    fn passwords_are_counted_in_characters_for_the_minimum() {
        assert!(Password::parse("密码密码密码密码".into(), "password").is_ok());
    }
}
