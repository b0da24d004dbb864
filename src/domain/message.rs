//! Messages: what a client may send (validated once, here) and what is stored.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Invalid, UserId, has_forbidden_controls};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct ConversationId(pub i64);

impl std::fmt::Display for ConversationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    File,
    Link,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::File => "file",
            MessageKind::Link => "link",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "text" => Some(MessageKind::Text),
            "image" => Some(MessageKind::Image),
            "file" => Some(MessageKind::File),
            "link" => Some(MessageKind::Link),
            _ => None,
        }
    }
}

/// What a client sends: the same shape over REST and WebSocket.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// Chosen by the client (UUID); retrying with the same id returns the original ack.
    pub client_msg_id: uuid::Uuid,
    /// Default `text`.
    pub kind: Option<MessageKind>,
    /// The text; required for `text`, an optional caption otherwise.
    pub body: Option<String>,
    /// `image` and `file`: `{"upload_id"}` of the sender's own upload, which the stored
    /// message replaces with the upload's name, sniffed mime, size (and width/height for
    /// images); `link`: url, title, description.
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
    /// An earlier message of the same conversation.
    #[schema(minimum = 1)]
    pub reply_to_seq: Option<i64>,
    /// User ids; each must be a member of the conversation.
    pub mentions: Option<Vec<i64>>,
    /// "@all": group owners and admins only.
    pub mention_all: Option<bool>,
}

/// A validated message, ready for the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub client_msg_id: uuid::Uuid,
    pub kind: MessageKind,
    pub body: Option<String>,
    pub content: Option<serde_json::Value>,
    pub reply_to_seq: Option<i64>,
    pub mentions: Vec<UserId>,
    pub mention_all: bool,
}

const MAX_MENTIONS: usize = 50;
const MAX_URL_BYTES: usize = 2048;

/// What a client sends as the content of an `image` or `file` message: the upload it
/// made (`POST /api/v1/uploads`). The server fills in the rest from the upload itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentRef {
    upload_id: uuid::Uuid,
}

/// An upload as a message shows it, from the upload's own row: what the bytes turned out
/// to be, not what the sender said.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub upload_id: uuid::Uuid,
    pub name: String,
    pub mime: String,
    pub size: i64,
    /// Present when the bytes decoded as an image.
    pub dimensions: Option<(i32, i32)>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct LinkContent {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// A message's text as stored: CRLF becomes LF (clients on Windows send it), then at
/// most `max_bytes` bytes with no control characters but newlines and tabs; `None`
/// when nothing but whitespace is left.
pub fn message_body(raw: &str, max_bytes: usize) -> Result<Option<String>, Invalid> {
    let body = raw.replace("\r\n", "\n");
    if body.len() > max_bytes {
        return Err(Invalid::new("body", format!("must be at most {max_bytes} bytes")));
    }
    if has_forbidden_controls(&body, true) {
        return Err(Invalid::new("body", "must not contain control characters other than newlines and tabs"));
    }
    Ok((!body.trim().is_empty()).then_some(body))
}

impl NewMessage {
    /// Validates `input`; `max_body_bytes` bounds the text.
    pub fn parse(input: MessageInput, max_body_bytes: usize) -> Result<Self, Invalid> {
        let kind = input.kind.unwrap_or(MessageKind::Text);
        let body = input.body.map(|body| message_body(&body, max_body_bytes)).transpose()?.flatten();
        let content = match (kind, input.content) {
            (MessageKind::Text, None) => {
                if body.is_none() {
                    return Err(Invalid::new("body", "a text message needs a non-empty body"));
                }
                None
            }
            (MessageKind::Text, Some(_)) => return Err(Invalid::new("content", "text messages carry no content")),
            (_, None) => return Err(Invalid::new("content", "is required for this kind")),
            (MessageKind::Image | MessageKind::File, Some(raw)) => {
                let attachment: AttachmentRef = parse_content(raw)?;
                Some(serde_json::json!({ "upload_id": attachment.upload_id }))
            }
            (MessageKind::Link, Some(raw)) => Some(validate_link(raw)?),
        };
        if let Some(reply) = input.reply_to_seq
            && reply < 1
        {
            return Err(Invalid::new("reply_to_seq", "must be a positive sequence number"));
        }
        let mut mentions: Vec<UserId> = input.mentions.unwrap_or_default().into_iter().map(UserId).collect();
        mentions.sort();
        mentions.dedup();
        if mentions.len() > MAX_MENTIONS {
            return Err(Invalid::new("mentions", format!("at most {MAX_MENTIONS} users")));
        }
        Ok(Self {
            client_msg_id: input.client_msg_id,
            kind,
            body,
            content,
            reply_to_seq: input.reply_to_seq,
            mentions,
            mention_all: input.mention_all.unwrap_or(false),
        })
    }

    /// The upload an `image` or `file` message names.
    pub fn upload_id(&self) -> Option<uuid::Uuid> {
        let content = self.content.as_ref().filter(|_| matches!(self.kind, MessageKind::Image | MessageKind::File))?;
        content.get("upload_id")?.as_str()?.parse().ok()
    }

    /// Replaces the bare upload id with what the upload is; an `image` message needs an
    /// upload that decoded as an image.
    pub fn attach(&mut self, attachment: &Attachment) -> Result<(), Invalid> {
        let mut content = serde_json::json!({
            "upload_id": attachment.upload_id,
            "name": attachment.name,
            "mime": attachment.mime,
            "size": attachment.size,
        });
        match (self.kind, attachment.dimensions) {
            (MessageKind::Image, Some((width, height))) => {
                content["width"] = width.into();
                content["height"] = height.into();
            }
            (MessageKind::Image, None) => {
                return Err(Invalid::new(
                    "content",
                    "the upload is not an image this server can show; send it as a file",
                ));
            }
            _ => {}
        }
        self.content = Some(content);
        Ok(())
    }

    /// Identifies the request's meaning, so a retry (same hash) can be told from a
    /// different message that reuses a `client_msg_id`.
    pub fn request_hash(&self) -> Vec<u8> {
        let canonical = serde_json::json!({
            "kind": self.kind.as_str(),
            "body": self.body,
            "content": self.content,
            "reply_to_seq": self.reply_to_seq,
            "mentions": self.mentions,
            "mention_all": self.mention_all,
        });
        Sha256::digest(canonical.to_string().as_bytes()).to_vec()
    }
}

fn check_url(url: &str) -> Result<(), Invalid> {
    super::public_http_url(url, "content", MAX_URL_BYTES).map(|_| ())
}

fn check_text(text: &str, max_chars: usize, what: &str) -> Result<(), Invalid> {
    if text.chars().count() > max_chars || has_forbidden_controls(text, false) {
        return Err(Invalid::new(
            "content",
            format!("{what} must be at most {max_chars} characters without control characters"),
        ));
    }
    Ok(())
}

fn parse_content<T: for<'de> Deserialize<'de>>(raw: serde_json::Value) -> Result<T, Invalid> {
    serde_json::from_value(raw).map_err(|e| Invalid::new("content", e.to_string()))
}

fn validate_link(raw: serde_json::Value) -> Result<serde_json::Value, Invalid> {
    let link: LinkContent = parse_content(raw)?;
    check_url(&link.url)?;
    if let Some(title) = &link.title {
        check_text(title, 256, "title")?;
    }
    if let Some(description) = &link.description {
        check_text(description, 1024, "description")?;
    }
    serde_json::to_value(link).map_err(|e| Invalid::new("content", e.to_string()))
}

/// A stored message as clients see it (history, search, events). A recalled or
/// removed message is a tombstone: `deleted` with no body or content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub conversation_id: ConversationId,
    pub seq: i64,
    /// The conversation version of this message's latest change (catch-up cursor).
    pub version: i64,
    pub sender_id: i64,
    pub client_msg_id: uuid::Uuid,
    pub kind: MessageKind,
    pub body: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
    pub reply_to_seq: Option<i64>,
    pub mentions: Vec<i64>,
    pub mention_all: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub edited_at: Option<OffsetDateTime>,
    pub deleted: bool,
    /// Reactions by emoji; filled in history pages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
    /// Whether the caller is among them.
    pub me: bool,
}

/// A reaction: exactly one emoji as Unicode defines them (skin tones, keycaps such as
/// 8️⃣, flags and ZWJ sequences included), stored fully qualified so that `❤` and `❤️`
/// are one reaction. Anything else (`!!`, `<>`, a zero-width space, a direction
/// override) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(&'static str);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        emojis::get(raw)
            .map(|emoji| Self(emoji.as_str()))
            .ok_or_else(|| Invalid::new("emoji", "must be exactly one emoji"))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: Option<MessageKind>, body: Option<&str>, content: Option<serde_json::Value>) -> MessageInput {
        MessageInput {
            client_msg_id: uuid::Uuid::new_v4(),
            kind,
            body: body.map(str::to_owned),
            content,
            reply_to_seq: None,
            mentions: None,
            mention_all: None,
        }
    }

    #[test]
    fn a_text_message_needs_a_body_within_the_limit() {
        assert!(NewMessage::parse(input(None, Some("hi"), None), 16).is_ok());
        assert!(NewMessage::parse(input(None, Some("   "), None), 16).is_err());
        assert!(NewMessage::parse(input(None, None, None), 16).is_err());
        assert!(NewMessage::parse(input(None, Some(&"x".repeat(17)), None), 16).is_err());
        assert!(NewMessage::parse(input(None, Some("a\u{0}b"), None), 16).is_err());
    }

    #[test]
    fn an_attachment_names_an_upload_and_nothing_else() {
        let upload_id = uuid::Uuid::new_v4();
        let good = serde_json::json!({ "upload_id": upload_id });
        let mut parsed = NewMessage::parse(input(Some(MessageKind::Image), None, Some(good)), 16).unwrap();
        assert_eq!(parsed.upload_id(), Some(upload_id));
        for bad in [
            serde_json::json!({ "upload_id": "not-a-uuid" }),
            serde_json::json!({ "url": "https://x.y/a.png", "mime": "image/png", "size": 1, "width": 1, "height": 1 }),
            serde_json::json!({ "upload_id": upload_id, "width": 1 }),
        ] {
            assert!(NewMessage::parse(input(Some(MessageKind::File), None, Some(bad.clone())), 16).is_err(), "{bad}");
        }
        let file = Attachment { upload_id, name: "a.txt".into(), mime: "text/plain".into(), size: 3, dimensions: None };
        assert!(parsed.attach(&file).is_err(), "an image message needs an image");
        let image = Attachment { dimensions: Some((64, 48)), mime: "image/png".into(), ..file };
        parsed.attach(&image).unwrap();
        let content = parsed.content.unwrap();
        assert_eq!((content["width"].as_i64(), content["mime"].as_str()), (Some(64), Some("image/png")));
    }

    #[test]
    fn the_request_hash_tells_a_retry_from_a_different_message() {
        let a = NewMessage::parse(input(None, Some("hi"), None), 16).unwrap();
        let mut b = a.clone();
        assert_eq!(a.request_hash(), b.request_hash());
        b.body = Some("hi!".into());
        assert_ne!(a.request_hash(), b.request_hash());
    }

    #[test]
    fn a_reaction_is_exactly_one_emoji() {
        for one in ["👍", "👨\u{200d}👩\u{200d}👧", "8\u{fe0f}\u{20e3}", "👍🏽", "🇫🇷", "❤\u{fe0f}"]
        {
            assert!(Emoji::parse(one).is_ok(), "{one:?} refused");
        }
        for not_one in ["lol", "", "!!", "<>", "\u{200b}", "\u{202e}", "👍👍", "👍 ", "\u{fffd}", "8"] {
            assert!(Emoji::parse(not_one).is_err(), "{not_one:?} accepted");
        }
        assert_eq!(Emoji::parse("❤").unwrap(), Emoji::parse("❤\u{fe0f}").unwrap(), "one reaction, qualified or not");
    }
}
