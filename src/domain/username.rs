//! Usernames: 3–32 ASCII letters, digits, `_`, `.`, `-`. Unique case-insensitively;
//! stored as typed. ASCII only, so look-alike characters cannot impersonate a name.

use super::Invalid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&len) {
            return Err(Invalid::new(
                "username",
                format!("must be {}–{} characters long", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        if !raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            return Err(Invalid::new("username", "may contain only letters a–z, digits, '_', '.' and '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_longer_than_32_chars_is_rejected() {
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn a_username_shorter_than_3_chars_is_rejected() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
    }

    #[test]
    fn punctuation_beyond_underscore_dot_and_dash_is_rejected() {
        for bad in ["a b c", "robert'); drop", "名字名字", "ali\u{0435}", "x@y.z", "tab\there"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Username::parse("Ann_e.Marie-1").is_ok());
    }
}
