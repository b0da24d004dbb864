//! What a delivery says: the JSON body (docs/operations.md, "Webhooks", has an example)
//! and the text preview. The body is rendered from the outbox row at each attempt; the
//! event id stays the same across attempts and endpoints, so receivers can deduplicate.

use serde::Serialize;
use time::OffsetDateTime;

use crate::db::webhooks::Claimed;

/// Longest preview, in characters (not bytes, so no character is ever cut in two).
pub const PREVIEW_CHARS: usize = 100;

/// The body of one delivery.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// Always `message.created`: the one event there is today.
    #[serde(rename = "type")]
    pub kind_of_event: &'static str,
    /// `<conversation_id>-<seq>-<recipient_id>`: unique per (message, recipient), and
    /// the same in every attempt and at every endpoint.
    pub id: String,
    pub recipient_id: i64,
    pub conversation_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    /// `text`, `image`, `file` or `link`.
    pub kind: &'a str,
    /// The recipient muted this conversation.
    pub muted: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `GOIM_WEBHOOK_PREVIEW=text` only: the sender's nickname.
    pub sender_name: Option<&'a str>,
    /// `GOIM_WEBHOOK_PREVIEW=text` only: the start of the text (or caption).
    pub preview: Option<&'a str>,
}

impl<'a> Event<'a> {
    pub fn of(row: &'a Claimed) -> Self {
        Self {
            kind_of_event: "message.created",
            id: event_id(row.conversation_id, row.seq, row.recipient_id),
            recipient_id: row.recipient_id,
            conversation_id: row.conversation_id,
            seq: row.seq,
            sender_id: row.sender_id,
            kind: &row.kind,
            muted: row.muted,
            created_at: row.created_at,
            sender_name: row.sender_name.as_deref(),
            preview: row.preview.as_deref(),
        }
    }
}

pub fn event_id(conversation_id: i64, seq: i64, recipient_id: i64) -> String {
    format!("{conversation_id}-{seq}-{recipient_id}")
}

/// The first [`PREVIEW_CHARS`] characters of `text`, with `…` when it was longer.
pub fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_its_own_preview() {
        assert_eq!(preview("hello"), "hello");
        assert_eq!(preview(&"a".repeat(PREVIEW_CHARS)), "a".repeat(PREVIEW_CHARS));
    }

    #[test]
    fn a_long_text_is_cut_at_a_character_boundary() {
        let text = "é".repeat(PREVIEW_CHARS + 5);
        let cut = preview(&text);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
