//! A small WebSocket client for tests: requests with ids, replies matched by id,
//! events buffered until asked for. Every wait is bounded.

use std::{collections::VecDeque, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue, protocol::CloseFrame},
};

use super::{TestApp, TestUser};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    pub socket: Socket,
    next_id: u64,
    events: VecDeque<Value>,
    replies: VecDeque<Value>,
}

impl TestApp {
    pub async fn ticket(&self, user: &TestUser) -> String {
        self.ticket_for(&user.access_token).await
    }

    async fn ticket_for(&self, access_token: &str) -> String {
        let response = self.send_as(reqwest::Method::POST, access_token, "/api/v1/ws/ticket", None).await;
        assert_eq!(response.status(), 200, "ticket");
        response.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("{}/api/v1/ws{query}", self.address.replacen("http", "ws", 1))
    }

    /// Opens a socket for `user` with a fresh ticket.
    pub async fn connect(&self, user: &TestUser) -> WsClient {
        self.connect_with_token(&user.access_token).await
    }

    /// The handshake request for a socket of `access_token`'s session: a fresh ticket
    /// and the `goim.v1` subprotocol.
    pub async fn ws_request(&self, access_token: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        let url = self.ws_url(&format!("?ticket={}", self.ticket_for(access_token).await));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("goim.v1"));
        request
    }

    /// The handshake request a non-browser client sends: its access token in
    /// `Authorization` instead of a ticket, and the `goim.v1` subprotocol.
    pub fn ws_bearer_request(&self, access_token: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        let mut request = self.ws_url("").into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("goim.v1"));
        let bearer = HeaderValue::from_str(&format!("Bearer {access_token}")).unwrap();
        request.headers_mut().insert("authorization", bearer);
        request
    }

    /// Opens a socket for the session of `access_token`, with a fresh ticket.
    pub async fn connect_with_token(&self, access_token: &str) -> WsClient {
        let request = self.ws_request(access_token).await;
        let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("handshake");
        assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "goim.v1");
        WsClient { socket, next_id: 0, events: VecDeque::new(), replies: VecDeque::new() }
    }
}

impl WsClient {
    /// Sends a request and returns its id.
    pub async fn send(&mut self, kind: &str, mut fields: Value) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let object = fields.as_object_mut().expect("fields are an object");
        object.insert("id".into(), json!(id));
        object.insert("type".into(), json!(kind));
        self.socket.send(Message::text(fields.to_string())).await.expect("send frame");
        id
    }

    /// Sends a request and waits for its reply.
    pub async fn request(&mut self, kind: &str, fields: Value) -> Value {
        let id = self.send(kind, fields).await;
        self.reply(&id).await
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send raw frame");
    }

    /// The reply with `id`.
    pub async fn reply(&mut self, id: &str) -> Value {
        loop {
            if let Some(pos) = self.replies.iter().position(|r| r["id"] == id) {
                return self.replies.remove(pos).unwrap_or_default();
            }
            self.read_one().await;
        }
    }

    /// The next reply, whatever its id.
    pub async fn any_reply(&mut self) -> Value {
        loop {
            if let Some(reply) = self.replies.pop_front() {
                return reply;
            }
            self.read_one().await;
        }
    }

    /// The first buffered or future event whose `type` is `kind` and that `matches`.
    pub async fn event(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(pos) = self.events.iter().position(|e| e["type"] == kind && matches(e)) {
                return self.events.remove(pos).unwrap_or_default();
            }
            self.read_one().await;
        }
    }

    /// The next event of any kind, if one arrives within `wait`.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(message))) => self.absorb(message),
                _ => return None,
            }
        }
    }

    /// Whether an event of `kind` arrives within `wait`.
    pub async fn sees_event_within(&mut self, kind: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.events.iter().any(|e| e["type"] == kind) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(message))) => self.absorb(message),
                Ok(_) => return false,
            }
        }
    }

    /// Reads until the server closes (within [`WAIT`] in all); returns the close code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await.expect("server closes in time") {
                Some(Ok(Message::Close(frame))) => return frame.map(|f: CloseFrame| f.code.into()),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Every reply (buffered, then arriving) until the connection ends, whichever way:
    /// for a server that dies mid-conversation. Bounded by [`WAIT`].
    pub async fn replies_until_closed(&mut self) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await.expect("the connection ends in time") {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("server frames are JSON");
                    if value["type"] == "reply" {
                        self.replies.push_back(value);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return self.replies.drain(..).collect(),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn read_one(&mut self) {
        let message = tokio::time::timeout(WAIT, self.socket.next())
            .await
            .expect("a frame arrives in time")
            .expect("socket open")
            .expect("frame readable");
        self.absorb(message);
    }

    fn absorb(&mut self, message: Message) {
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("server frames are JSON");
            match value["type"].as_str() {
                Some("event") => self.events.push_back(value["event"].clone()),
                Some("reply") => self.replies.push_back(value),
                other => panic!("unexpected frame type {other:?}: {value}"),
            }
        } else if let Message::Close(frame) = message {
            panic!("socket closed unexpectedly: {frame:?}");
        }
    }
}

/// A client that keeps its cursor exactly as docs/protocol.md §5 says: it advances only
/// over contiguous versions, and a gap or a `resync` event makes it run `sync`.
pub struct Follower {
    pub ws: WsClient,
    conversation: i64,
    cursor: i64,
    pub held: std::collections::BTreeSet<i64>,
    pub resyncs: u32,
    pub gaps: u32,
}

impl Follower {
    pub async fn connect(app: &TestApp, user: &TestUser, conversation: i64) -> Self {
        let ws = app.connect(user).await;
        Self { ws, conversation, cursor: 0, held: Default::default(), resyncs: 0, gaps: 0 }
    }

    pub async fn sync(&mut self) {
        loop {
            let cursors = json!({ self.conversation.to_string(): self.cursor });
            let reply = self.ws.request("sync", json!({ "cursors": cursors, "limit": 500 })).await;
            assert_eq!(reply["ok"], true, "{reply}");
            let mut more = false;
            for entry in reply["data"]["conversations"].as_array().unwrap() {
                for change in entry["changes"].as_array().unwrap() {
                    self.held.insert(change["seq"].as_i64().unwrap());
                }
                more |= entry["has_more"] == true;
                let reached = match entry["changes"].as_array().unwrap().last() {
                    Some(last) if entry["has_more"] == true => last["version"].as_i64().unwrap(),
                    _ => entry["version"].as_i64().unwrap(),
                };
                self.cursor = self.cursor.max(reached);
            }
            if !more {
                return;
            }
        }
    }

    /// Follows events until it holds seqs 1..=`count`; fails after `wait` without them.
    pub async fn follow_until(&mut self, count: i64, wait: Duration) {
        let deadline = std::time::Instant::now() + wait;
        while (1..=count).any(|seq| !self.held.contains(&seq)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "missing messages after {wait:?}: holds {} of {count}", self.held.len());
            let Some(event) = self.ws.next_event_within(left.min(Duration::from_millis(500))).await else {
                continue;
            };
            match event["type"].as_str() {
                Some("resync") => {
                    self.resyncs += 1;
                    self.sync().await;
                }
                Some("message_created") => {
                    let message = &event["message"];
                    self.held.insert(message["seq"].as_i64().unwrap());
                    let version = message["version"].as_i64().unwrap();
                    if version == self.cursor + 1 {
                        self.cursor = version;
                    } else if version > self.cursor + 1 {
                        self.gaps += 1;
                        self.sync().await;
                    }
                }
                _ => {}
            }
        }
    }
}
