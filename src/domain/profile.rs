//! Profile fields: nickname, avatar URL, birthday, bio.

use time::{Date, OffsetDateTime};

use super::{Invalid, bounded_text, has_forbidden_controls, public_http_url};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nickname(String);

impl Nickname {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "nickname", 1, Self::MAX_CHARS, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    pub const MAX_BYTES: usize = 2048;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let url = public_http_url(raw, "avatar_url", Self::MAX_BYTES)?;
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Birthday(Date);

impl Birthday {
    /// `today` is a parameter so tests need not depend on the clock.
    pub fn parse(date: Date, today: Date) -> Result<Self, Invalid> {
        if date > today {
            return Err(Invalid::new("birthday", "must not be in the future"));
        }
        if date.year() < 1900 {
            return Err(Invalid::new("birthday", "must be in 1900 or later"));
        }
        Ok(Self(date))
    }

    pub fn parse_now(date: Date) -> Result<Self, Invalid> {
        Self::parse(date, OffsetDateTime::now_utc().date())
    }

    pub fn date(self) -> Date {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bio(String);

impl Bio {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new("bio", format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if has_forbidden_controls(raw, true) {
            return Err(Invalid::new("bio", "must not contain control characters other than newlines"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn a_nickname_is_trimmed_and_bounded_in_characters() {
        assert_eq!(Nickname::parse("  小明  ").unwrap().as_str(), "小明");
        assert!(Nickname::parse("   ").is_err());
        assert!(Nickname::parse(&"字".repeat(64)).is_ok());
        assert!(Nickname::parse(&"字".repeat(65)).is_err());
        assert!(Nickname::parse("bell\u{7}").is_err());
    }

    #[test]
    fn only_http_and_https_avatar_urls_are_accepted() {
        assert!(AvatarUrl::parse("https://example.com/a.png").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://x/a.png",
            "/relative.png",
            "https://user:pw@x/a.png",
            "data:image/png;base64,AA",
        ] {
            assert!(AvatarUrl::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(AvatarUrl::parse(&format!("https://x.org/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn a_birthday_in_the_future_is_rejected() {
        let today = date!(2026 - 11 - 29);
        assert!(Birthday::parse(date!(2026 - 11 - 30), today).is_err());
        assert!(Birthday::parse(date!(2026 - 11 - 29), today).is_ok());
        assert!(Birthday::parse(date!(1899 - 12 - 31), today).is_err());
    }

    #[test]
    fn a_bio_keeps_newlines_but_not_other_controls() {
        assert!(Bio::parse("line one\nline two").is_ok());
        assert!(Bio::parse("esc\u{1b}[31m").is_err());
        assert!(Bio::parse(&"b".repeat(501)).is_err());
    }
}
