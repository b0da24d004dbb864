//! Domain values that can only exist when valid: each has a private field and a
//! `parse` constructor, so code that holds one never re-checks it.

pub mod group;
pub mod ids;
pub mod image_preview;
pub mod message;
pub mod password;
pub mod profile;
pub mod social;
pub mod upload;
pub mod username;

pub use group::{
    Announcement, GroupDescription, GroupId, GroupName, HistoryVisibility, JoinPolicy, Role, ShortMessage,
};
pub use ids::{SessionId, UserId};
pub use message::{
    Attachment, ConversationId, Emoji, MessageInput, MessageKind, MessageView, NewMessage, message_body,
};
pub use password::Password;
pub use profile::{AvatarUrl, Bio, Birthday, Nickname};
pub use social::{Remark, RequestNote};
pub use upload::FileName;
pub use username::Username;

/// Why a value was refused; `field` names the input it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// Text from users may not carry control characters (they break logs and terminals
/// and hide content); newlines and tabs are allowed only where `multiline` says so.
/// A URL that every contact's client will fetch or open: http or https with a host,
/// at most `max_bytes`, and no credentials (`http://bank.example@evil.example/` shows
/// one host and goes to another; a password in it would leak to every reader).
pub fn public_http_url(raw: &str, field: &'static str, max_bytes: usize) -> Result<url::Url, Invalid> {
    if raw.len() > max_bytes {
        return Err(Invalid::new(field, format!("must be at most {max_bytes} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|_| Invalid::new(field, "must be an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::new(field, "must be an http or https URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(field, "must not contain credentials"));
    }
    Ok(url)
}

/// Free text as every text field takes it: no control characters anywhere (newlines
/// and tabs allowed when `multiline`), then `min..=max` characters once trimmed; the
/// trimmed text is what is stored. The OpenAPI patterns say the same.
pub fn bounded_text(
    raw: &str,
    field: &'static str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, Invalid> {
    if has_forbidden_controls(raw, multiline) {
        let allowed = if multiline { " other than newlines and tabs" } else { "" };
        return Err(Invalid::new(field, format!("must not contain control characters{allowed}")));
    }
    let trimmed = raw.trim();
    let len = trimmed.chars().count();
    if len < min || len > max {
        return Err(Invalid::new(field, format!("must be {min}–{max} characters")));
    }
    Ok(trimmed.to_owned())
}

pub fn has_forbidden_controls(text: &str, multiline: bool) -> bool {
    text.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
}
