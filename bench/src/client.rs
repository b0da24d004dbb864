//! The load generators' side of the WebSocket protocol (docs/protocol.md): what W1 and
//! W2 send and the parts of the server's frames they read. Requests are written straight
//! from their fields and frames are read through borrowed views, because the client's
//! CPU shares the box with the server under test.

use std::{borrow::Cow, time::Duration};

use anyhow::Context;
use futures_util::StreamExt;
use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

/// How long a socket may stay silent, or a sender wait for an ack, before the run fails.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// The next text frame, skipping the server's pings (answered by tungstenite) and other
/// non-text frames; `None` once the socket ends, fails or closes, or stays silent for
/// [`SILENCE_LIMIT`] (a lost frame fails the run instead of hanging it).
pub(crate) async fn next_text<S>(stream: &mut S) -> Option<Utf8Bytes>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(SILENCE_LIMIT, stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(text),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_)))) => {}
            _ => return None,
        }
    }
}

/// Takes one place in a sender's window of unacknowledged requests; [`SILENCE_LIMIT`]
/// without a reply that frees one fails the run instead of hanging it.
pub(crate) async fn take_room(window: &Semaphore) -> anyhow::Result<()> {
    let room = tokio::time::timeout(SILENCE_LIMIT, window.acquire()).await;
    room.context("no reply for a minute")?.context("window")?.forget();
    Ok(())
}

/// A `send` request's text: request `id`, a random client message id, `body`.
pub(crate) fn send_request(id: u32, conversation: i64, rng: &mut StdRng, body: &str) -> anyhow::Result<String> {
    let message = SendMessage { client_msg_id: uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid(), body };
    let frame = SendFrame { id, r#type: "send", conversation_id: conversation, message };
    serde_json::to_string(&frame).context("send frame")
}

#[derive(Serialize)]
struct SendFrame<'a> {
    #[serde(serialize_with = "number_as_string")]
    id: u32,
    r#type: &'static str,
    conversation_id: i64,
    message: SendMessage<'a>,
}

#[derive(Serialize)]
struct SendMessage<'a> {
    client_msg_id: uuid::Uuid,
    body: &'a str,
}

fn number_as_string<S: serde::Serializer>(number: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(number)
}

/// The parts of a server frame the load generators read: a reply's type and id, or an
/// event's message. Everything else is skipped unread.
#[derive(Deserialize)]
pub(crate) struct ServerFrame<'a> {
    #[serde(default)]
    pub r#type: &'a str,
    #[serde(default, borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    event: Option<EventBody<'a>>,
}

impl<'a> ServerFrame<'a> {
    pub fn parse(text: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    /// The message of a `message_created` event.
    pub fn created(self) -> Option<EventMessage<'a>> {
        self.event.filter(|event| event.r#type == "message_created")?.message
    }
}

#[derive(Deserialize)]
struct EventBody<'a> {
    #[serde(borrow)]
    r#type: Cow<'a, str>,
    #[serde(borrow)]
    message: Option<EventMessage<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct EventMessage<'a> {
    pub seq: i64,
    #[serde(borrow)]
    pub body: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use serde_json::Value;

    use super::*;

    #[test]
    fn a_send_request_is_the_protocol_s_send_request() {
        let text = send_request(7, 3, &mut StdRng::seed_from_u64(1), "say \"hi\"").unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(value["id"], "7");
        assert_eq!(value["type"], "send");
        assert_eq!(value["conversation_id"], 3);
        let client_msg_id = value["message"]["client_msg_id"].as_str().unwrap_or_default();
        assert_eq!(uuid::Uuid::parse_str(client_msg_id).map(|id| id.get_version_num()).ok(), Some(4));
        assert_eq!(value["message"]["body"], "say \"hi\"");
    }

    #[test]
    fn a_server_frame_yields_a_reply_or_a_created_message() {
        let reply = ServerFrame::parse(r#"{"type":"reply","id":"12","ok":true,"data":{"seq":5}}"#).ok();
        assert_eq!(reply.as_ref().map(|r| (r.r#type, r.id.as_ref())), Some(("reply", "12")));
        assert!(reply.and_then(ServerFrame::created).is_none(), "a reply carries no message");

        let event = r#"{"type":"event","event":{"type":"message_created","message":{"seq":9,"body":"m1x2 \"q\""}}}"#;
        let message = ServerFrame::parse(event).ok().and_then(ServerFrame::created);
        assert_eq!(message.as_ref().map(|m| (m.seq, m.body.as_deref())), Some((9, Some("m1x2 \"q\""))));

        let other = r#"{"type":"event","event":{"type":"typing","conversation_id":1}}"#;
        assert!(ServerFrame::parse(other).ok().and_then(ServerFrame::created).is_none());
    }
}
