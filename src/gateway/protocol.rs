//! The `goim.v1` frames (docs/protocol.md): requests parsed once at the edge, replies
//! and errors rendered here. Requests carry an `id` and get exactly one reply.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{domain::MessageInput, dto::strict_json::StrictObject, error::ApiError};

pub const SUBPROTOCOL: &str = "goim.v1";
const MAX_ID_CHARS: usize = 64;

/// A client request, without its `id`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientRequest {
    Ping {},
    Send {
        conversation_id: i64,
        message: MessageInput,
    },
    Edit {
        conversation_id: i64,
        seq: i64,
        body: String,
    },
    Recall {
        conversation_id: i64,
        seq: i64,
    },
    React {
        conversation_id: i64,
        seq: i64,
        emoji: String,
        add: bool,
    },
    Read {
        conversation_id: i64,
        seq: i64,
    },
    Delivered {
        conversation_id: i64,
        seq: i64,
    },
    Typing {
        conversation_id: i64,
        typing: bool,
    },
    History {
        conversation_id: i64,
        before: Option<i64>,
        after: Option<i64>,
        from: Option<i64>,
        to: Option<i64>,
        limit: Option<i64>,
    },
    Conversations {
        cursor: Option<String>,
        limit: Option<i64>,
        archived: Option<bool>,
    },
    Receipts {
        conversation_id: i64,
    },
    Presence {
        user_ids: Vec<i64>,
    },
    Sync {
        cursors: Option<HashMap<String, i64>>,
        limit: Option<i64>,
    },
}

impl ClientRequest {
    /// Requests whose effects must follow the order the client sent them in
    /// (`service::turn`); typing is ephemeral and reads never change anything.
    pub fn changes_state(&self) -> bool {
        matches!(
            self,
            Self::Send { .. }
                | Self::Edit { .. }
                | Self::Recall { .. }
                | Self::React { .. }
                | Self::Read { .. }
                | Self::Delivered { .. }
        )
    }
}

/// Every request type a client may send; the authorisation matrix test walks this list.
pub const REQUEST_TYPES: [&str; 13] = [
    "ping",
    "send",
    "edit",
    "recall",
    "react",
    "read",
    "delivered",
    "typing",
    "history",
    "conversations",
    "receipts",
    "presence",
    "sync",
];

/// Why a text frame could not become a request; answered with an error reply.
#[derive(Debug)]
pub struct FrameError {
    pub id: Option<String>,
    pub code: &'static str,
    pub message: String,
}

/// Parses a text frame into its `id` and request.
pub fn parse(text: &str) -> Result<(String, ClientRequest), FrameError> {
    let malformed =
        |id: Option<String>, message: &str| FrameError { id, code: "malformed_frame", message: message.into() };
    let StrictObject(mut object) =
        serde_json::from_str(text).map_err(|e| malformed(None, &format!("not a JSON object: {e}")))?;
    let id = match object.remove("id") {
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ID_CHARS => id,
        _ => return Err(malformed(None, "every request needs an \"id\": a string of 1–64 characters")),
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(malformed(Some(id), "missing \"type\"")),
    };
    if !REQUEST_TYPES.contains(&kind.as_str()) {
        return Err(FrameError {
            id: Some(id),
            code: "unknown_type",
            message: format!("unknown request type {kind:?}"),
        });
    }
    match StrictObject(object).into_request::<ClientRequest>() {
        Ok(request) => Ok((id, request)),
        Err(e) => Err(FrameError { id: Some(id), code: "invalid_request", message: e.to_string() }),
    }
}

/// A successful reply. Written straight from `data`: built as a `Value` first, every
/// reply would be a tree of maps, allocated and sorted only to be written out.
pub fn ok_reply(id: &str, data: &impl Serialize) -> String {
    #[derive(Serialize)]
    struct Reply<'a, T> {
        r#type: &'static str,
        id: &'a str,
        ok: bool,
        data: &'a T,
    }
    serde_json::to_string(&Reply { r#type: "reply", id, ok: true, data }).unwrap_or_default()
}

/// A refusal, written the same way as [`ok_reply`]; `id` is `null` when the frame had
/// none that could be read.
pub fn error_reply(id: Option<&str>, code: &str, message: &str, field: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Error<'a> {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Reply<'a> {
        r#type: &'static str,
        id: Option<&'a str>,
        ok: bool,
        error: Error<'a>,
    }
    let error = Error { code, message, field };
    serde_json::to_string(&Reply { r#type: "reply", id, ok: false, error }).unwrap_or_default()
}

/// An API error as an error reply; 5xx causes are logged, never sent.
pub fn api_error_reply(id: &str, error: &ApiError) -> String {
    match error {
        ApiError::Internal(cause) => tracing::error!(error = ?cause, "websocket request failed"),
        ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "websocket request refused: unavailable"),
        _ => {}
    }
    let field = match error {
        ApiError::Validation { field, .. } => Some(*field),
        _ => None,
    };
    error_reply(Some(id), error.code(), &error.to_string(), field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_request_parses_with_its_id() {
        let (id, request) =
            parse(r#"{"id":"7","type":"send","conversation_id":3,"message":{"client_msg_id":"5f0c4e4e-1c1b-4a2b-9d2c-0a0a0a0a0a0a","body":"hi"}}"#)
                .unwrap();
        assert_eq!(id, "7");
        assert!(matches!(request, ClientRequest::Send { conversation_id: 3, .. }));
    }

    #[test]
    fn broken_frames_name_the_problem_and_keep_the_id_when_possible() {
        assert_eq!(parse("{not json").unwrap_err().code, "malformed_frame");
        assert_eq!(parse("[1,2]").unwrap_err().code, "malformed_frame");
        assert!(parse(r#"{"type":"ping"}"#).unwrap_err().id.is_none());
        let unknown = parse(r#"{"id":"9","type":"teleport"}"#).unwrap_err();
        assert_eq!((unknown.code, unknown.id.as_deref()), ("unknown_type", Some("9")));
        let invalid = parse(r#"{"id":"9","type":"read","conversation_id":"x","seq":1}"#).unwrap_err();
        assert_eq!(invalid.code, "invalid_request");
        let extra = parse(r#"{"id":"9","type":"ping","surprise":1}"#).unwrap_err();
        assert_eq!(extra.code, "invalid_request");
    }

    proptest::proptest! {
        /// Whatever text arrives, parsing answers (a request or an error) and never
        /// panics; an error reply echoes an id only when it was a valid one.
        #[test]
        fn any_text_frame_is_answered_without_panicking(text in ".{0,300}") {
            if let Err(FrameError { id: Some(id), .. }) = parse(&text) {
                proptest::prop_assert!(!id.is_empty() && id.chars().count() <= MAX_ID_CHARS);
            }
        }

        /// Any JSON object with a string id and a known type gets that id back, in the
        /// request or in the error.
        #[test]
        fn a_valid_id_always_comes_back(
            id in "[a-zA-Z0-9-]{1,64}",
            kind in proptest::sample::select(REQUEST_TYPES.to_vec()),
            extra in proptest::collection::hash_map("[a-z_]{1,12}", proptest::prelude::any::<i64>(), 0..4),
        ) {
            let mut object = serde_json::Map::new();
            object.insert("id".into(), Value::String(id.clone()));
            object.insert("type".into(), Value::String(kind.into()));
            for (key, value) in extra {
                object.entry(key).or_insert(Value::from(value));
            }
            let text = Value::Object(object).to_string();
            match parse(&text) {
                Ok((got, _)) => proptest::prop_assert_eq!(got, id),
                Err(error) => proptest::prop_assert_eq!(error.id, Some(id)),
            }
        }
    }
}
