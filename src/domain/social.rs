//! Free text attached to relations: friend request notes and friend remarks.

use super::{Invalid, bounded_text};

/// The note sent with a friend request: up to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestNote(String);

impl RequestNote {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "note", 0, Self::MAX_CHARS, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The private name a user gives a friend: 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark(String);

impl Remark {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "remark", 1, Self::MAX_CHARS, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_over_200_chars_is_rejected() {
        assert!(RequestNote::parse(&"n".repeat(201)).is_err());
        assert!(RequestNote::parse(&"好".repeat(200)).is_ok());
        assert_eq!(RequestNote::parse("").unwrap().as_str(), "");
    }

    #[test]
    fn an_empty_remark_is_rejected() {
        assert!(Remark::parse("  ").is_err());
        assert!(Remark::parse(&"r".repeat(65)).is_err());
        assert_eq!(Remark::parse(" Mom ").unwrap().as_str(), "Mom");
    }
}
