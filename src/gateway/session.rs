//! One WebSocket: the loop that reads client frames, writes queued frames, pings, and
//! closes with the right code. Requests run as their own tasks so a slow one (a send
//! waiting for its commit) never holds up the socket; their replies join the same
//! bounded outbound queue as events.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::web;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use futures_util::FutureExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::{
    client_messages::{ClientMessages, MessageTooLarge, MessageUnfinished},
    frame_guard,
    protocol::{self, ClientRequest},
    socket::WRITE_TIMEOUT,
};
use crate::{
    auth::Verdict,
    db,
    domain::{ConversationId, Emoji, SessionId, UserId},
    dto::{AckView, ConversationPage, ConversationView, HistoryResponse},
    error::ApiError,
    hub::{Frame, KillReason, Registration},
    service::{
        conversations,
        messages::{self, HistoryQuery},
        turn::{Turn, TurnQueue},
    },
    state::AppState,
};

pub struct Connection {
    /// Shared, not cloned: the state is many handles, and a socket keeps it for life.
    pub state: web::Data<AppState>,
    pub user: UserId,
    pub session: SessionId,
    /// When the login session expires unless refreshed meanwhile.
    pub session_expires_at: OffsetDateTime,
    pub registration: Registration,
    /// Frames for this socket: replies and events, in order.
    pub outbound: mpsc::Receiver<Frame>,
    /// Where frames go to the client (actix-ws encodes them).
    pub socket: Session,
    /// The client's messages.
    pub messages: ClientMessages,
}

/// Consecutive rate-limited requests after which the socket is closed with 4008.
const ABUSE_LIMIT: u32 = 50;
/// Forwarded typing indicators per conversation per socket.
const TYPING_INTERVAL: Duration = Duration::from_secs(1);
/// How many conversations a socket remembers typing in before forgetting stale entries.
const TYPING_TRACKED_MAX: usize = 64;
const CLOSE_SESSION_REVOKED: u16 = 4001;
/// How often a socket re-reads its session even before it expires: a safety net for a
/// revocation whose push was lost (revocations are pushed to every instance).
const SESSION_RECHECK: Duration = Duration::from_secs(600);
const CLOSE_RATE_LIMITED: u16 = 4008;
const CLOSE_REPLACED: u16 = 4009;
/// After a server-initiated close, how long the client may take to answer it.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// Queued frames handed to actix-ws in one turn of the loop, up to about this many
/// bytes: it encodes what it holds into one write, so under load one system call
/// carries many frames.
const WRITE_BATCH: usize = 64 * 1024;

/// One socket's session: reads requests, dispatches them, writes replies and events,
/// keeps the heartbeat, and closes with the right code.
struct SocketSession {
    state: web::Data<AppState>,
    user: UserId,
    session: SessionId,
    session_expires_at: OffsetDateTime,
    session_checked: Instant,
    registration: Registration,
    socket: Session,
    /// Requests in flight, so their replies (acks) go out before the socket closes.
    requests: TaskTracker,
    last_heard: Instant,
    bucket: Bucket,
    refused_in_a_row: u32,
    last_typing: HashMap<i64, (Instant, bool)>,
    /// Orders the state-changing requests.
    turns: TurnQueue,
}

/// What the session loop does after a step.
enum Flow {
    Continue,
    /// Close with this reason, or without a close frame when the peer is gone.
    Close(Option<CloseReason>),
    /// The peer sent its close frame: answer it (echoing its code) without waiting for
    /// another.
    PeerClosed(CloseReason),
}

/// Runs the session to its close frame, and returns the socket's registration: the
/// connection counts as open (and shutdown waits for it) until the caller has also
/// written what actix-ws still holds, and drops it.
///
/// Not an `async fn`: its `connection` argument would keep its place in the future
/// for the socket's whole life, after being moved into the session.
pub fn run(connection: Connection) -> impl Future<Output = Registration> {
    let Connection { state, user, session, session_expires_at, registration, outbound, socket, messages } = connection;
    let bucket = Bucket::new(state.config.websocket.ws_rate_burst, state.config.websocket.ws_rate_per_sec);
    let session = SocketSession {
        state,
        user,
        session,
        session_expires_at,
        session_checked: Instant::now(),
        registration,
        socket,
        requests: TaskTracker::new(),
        last_heard: Instant::now(),
        bucket,
        refused_in_a_row: 0,
        last_typing: HashMap::new(),
        turns: TurnQueue::default(),
    };
    session.run(messages, outbound)
}

impl SocketSession {
    async fn run(mut self, mut messages: ClientMessages, mut outbound: mpsc::Receiver<Frame>) -> Registration {
        let mut heartbeat = tokio::time::interval(self.state.config.websocket.ws_ping_interval);
        heartbeat.tick().await;
        let shutdown = self.state.shutdown.clone();
        let kill = self.registration.kill.clone();
        let close = loop {
            let flow = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Flow::Close(Some(reason(CloseCode::Away, "server shutting down"))),
                killed = kill.killed() => Flow::Close(killed_reason(killed)),
                // Queued writes first: when one is ready, nothing after it is polled,
                // which keeps a busy socket's loop to one poll per batch of frames.
                frame = outbound.recv() => match frame {
                    Some(frame) => match self.write_queued(&frame, &mut outbound).await {
                        Flow::Continue => self.turns_after_writes(&mut messages, &mut heartbeat).await,
                        flow => flow,
                    },
                    None => Flow::Close(None),
                },
                // The client's frames before the heartbeat, which would otherwise take a
                // client whose pong is waiting unread for silent.
                message = messages.recv() => self.read(message).await,
                _ = heartbeat.tick() => self.heartbeat().await,
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(close) => break (close, true),
                Flow::PeerClosed(echo) => break (Some(echo), false),
            }
        };
        let (close, drain) = close;
        if close.as_ref().is_some_and(|close| close.code == CloseCode::Again) {
            self.state.metrics.ws_slow_disconnects.inc();
        }
        // Boxed for the same reason as the session check in `heartbeat`.
        Box::pin(self.close(close, drain, outbound, messages)).await
    }

    /// A queue that never empties would keep the branches after it from ever being
    /// polled, and the client's requests and the heartbeat's checks would wait for as
    /// long as it is busy: after every batch of writes, each gets a turn if it is due.
    async fn turns_after_writes(
        &mut self,
        messages: &mut ClientMessages,
        heartbeat: &mut tokio::time::Interval,
    ) -> Flow {
        if let Some(message) = messages.recv().now_or_never() {
            let flow = self.read(message).await;
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
        if heartbeat.tick().now_or_never().is_some() {
            return self.heartbeat().await;
        }
        Flow::Continue
    }

    /// Hands `first` and whatever else is queued behind it to actix-ws, which writes
    /// them together.
    async fn write_queued(&mut self, first: &str, outbound: &mut mpsc::Receiver<Frame>) -> Flow {
        let mut handed = first.len();
        let mut flow = self.write(first).await;
        while handed < WRITE_BATCH && matches!(flow, Flow::Continue) {
            let Ok(next) = outbound.try_recv() else { break };
            handed += next.len();
            flow = self.write(&next).await;
        }
        flow
    }

    async fn write(&mut self, frame: &str) -> Flow {
        self.bounded(|socket| socket.text(frame.to_owned())).await
    }

    /// Runs one send into actix-ws: it fails once the connection is gone, and a send
    /// that cannot start within [`WRITE_TIMEOUT`] means the client stopped reading (its
    /// queue is full), so nothing else in the loop would ever run for it again. A kill
    /// (the hub found this socket's queue full, or its session revoked) ends the wait at
    /// once: the loop that would notice it is waiting here.
    async fn bounded<'a, F>(&'a mut self, send: impl FnOnce(&'a mut Session) -> F) -> Flow
    where
        F: Future<Output = Result<(), actix_ws::Closed>> + 'a,
    {
        let kill = &self.registration.kill;
        tokio::select! {
            biased;
            sent = tokio::time::timeout(WRITE_TIMEOUT, send(&mut self.socket)) => match sent {
                Ok(Ok(())) => Flow::Continue,
                // The connection is gone; a stalled write says so with the kill switch.
                Ok(Err(_)) => Flow::Close(kill.reason().and_then(killed_reason)),
                Err(_) => Flow::Close(Some(reason(CloseCode::Again, "too slow: not reading"))),
            },
            killed = kill.killed() => Flow::Close(killed_reason(killed)),
        }
    }

    /// Closes a silent peer and an expired or revoked session, and pings. The database is
    /// read only when the session's known expiry has passed (a refresh may have moved it)
    /// or every [`SESSION_RECHECK`] while the revocation cache is not authoritative (it
    /// would have seen a revocation whose push was lost), not on every heartbeat.
    async fn heartbeat(&mut self) -> Flow {
        if self.last_heard.elapsed() > self.state.config.websocket.ws_timeout {
            return Flow::Close(Some(reason(CloseCode::Normal, "heartbeat timeout")));
        }
        let verdict = self.state.revocations.verdict(self.user, self.session);
        if verdict == Verdict::Revoked {
            return Flow::Close(Some(reason(CloseCode::Other(CLOSE_SESSION_REVOKED), "session revoked")));
        }
        let expired = OffsetDateTime::now_utc() >= self.session_expires_at;
        if expired || (verdict == Verdict::Unknown && self.session_checked.elapsed() >= SESSION_RECHECK) {
            // Boxed, as a rare path: inline, the query's future would add its size to
            // every idle socket's.
            match Box::pin(db::sessions::active_until(&self.state.pool, self.user, self.session)).await {
                Ok(Some(until)) => {
                    self.session_expires_at = until;
                    self.session_checked = Instant::now();
                }
                Ok(None) => {
                    let why = "session revoked or expired";
                    return Flow::Close(Some(reason(CloseCode::Other(CLOSE_SESSION_REVOKED), why)));
                }
                // Database trouble is not a reason to drop a client; try next time.
                Err(_) => {}
            }
        }
        self.bounded(|socket| socket.ping(b"goim")).await
    }

    /// Handles one message from the client.
    async fn read(&mut self, message: Option<Result<AggregatedMessage, ProtocolError>>) -> Flow {
        self.last_heard = Instant::now();
        let message = match message {
            None => return Flow::Close(None),
            Some(Ok(message)) => message,
            Some(Err(error)) => return Flow::Close(Some(protocol_error_reason(&error))),
        };
        self.state.metrics.ws_frames_in.inc();
        // Every frame that asks for work is held to the request rate, in this one place:
        // a flood of pings would otherwise cost one write (and one packet) each.
        if !matches!(message, AggregatedMessage::Close(_)) && !self.bucket.take() {
            return self.refuse(&message);
        }
        match message {
            AggregatedMessage::Text(text) => self.request(&text),
            AggregatedMessage::Binary(_) => {
                self.queue(protocol::error_reply(None, "binary_frames_unsupported", "send JSON text frames", None));
                Flow::Continue
            }
            AggregatedMessage::Ping(bytes) => self.bounded(|socket| socket.pong(&bytes)).await,
            AggregatedMessage::Pong(_) => Flow::Continue,
            AggregatedMessage::Close(peer) => Flow::PeerClosed(answer_to_close(peer)),
        }
    }

    /// Parses and dispatches one request (within the rate); its reply is queued when ready.
    fn request(&mut self, text: &str) -> Flow {
        self.refused_in_a_row = 0;
        match protocol::parse(text) {
            Err(error) => self.queue(protocol::error_reply(error.id.as_deref(), error.code, &error.message, None)),
            Ok((id, request)) => {
                if self.is_typing_renewal(&request) {
                    self.queue(protocol::ok_reply(&id, &json!({ "forwarded": false })));
                } else {
                    self.dispatch(id, request);
                }
            }
        }
        Flow::Continue
    }

    /// A frame over the rate limit: a request still gets a `rate_limited` reply naming
    /// it, anything else is dropped; too many refusals in a row close the socket.
    fn refuse(&mut self, message: &AggregatedMessage) -> Flow {
        self.refused_in_a_row += 1;
        if self.refused_in_a_row >= ABUSE_LIMIT {
            return Flow::Close(Some(reason(CloseCode::Other(CLOSE_RATE_LIMITED), "rate limited")));
        }
        if let AggregatedMessage::Text(text) = message {
            let id = protocol::parse(text).ok().map(|(id, _)| id);
            self.queue(protocol::error_reply(id.as_deref(), "rate_limited", "too many requests; slow down", None));
        }
        Flow::Continue
    }

    /// A `true` that only renews a `true` forwarded within the last second is
    /// acknowledged but not forwarded; state changes always go through.
    fn is_typing_renewal(&mut self, request: &ClientRequest) -> bool {
        let ClientRequest::Typing { conversation_id, typing } = request else {
            return false;
        };
        let now = Instant::now();
        let renewal = matches!(self.last_typing.get(conversation_id), Some((at, true)) if *typing && now.duration_since(*at) < TYPING_INTERVAL);
        if !renewal {
            // Only entries younger than the interval matter; dropping the rest keeps a
            // client naming endless conversation ids from growing the map.
            if self.last_typing.len() >= TYPING_TRACKED_MAX {
                self.last_typing.retain(|_, (at, _)| now.duration_since(*at) < TYPING_INTERVAL);
            }
            self.last_typing.insert(*conversation_id, (now, *typing));
        }
        renewal
    }

    /// Runs a request on its own task; its reply joins the outbound queue. A request
    /// that changes state takes its turn first, so it takes effect in arrival order.
    fn dispatch(&mut self, id: String, request: ClientRequest) {
        let turn = if request.changes_state() { self.turns.take_turn() } else { Turn::alone() };
        let (state, user) = (self.state.clone(), self.user);
        let (outbound, kill) = (self.registration.outbound.clone(), self.registration.kill.clone());
        actix_web::rt::spawn(self.requests.track_future(async move {
            let reply = handle(&state, user, &id, request, turn).await;
            if outbound.try_send(Arc::from(reply)).is_err() {
                kill.kill(KillReason::SlowConsumer);
            }
        }));
    }

    fn queue(&self, frame: String) {
        if self.registration.outbound.try_send(Arc::from(frame)).is_err() {
            self.registration.kill.kill(KillReason::SlowConsumer);
        }
    }

    /// Lets running requests finish and delivers their replies (acks), then closes.
    /// Ends the socket: replies in flight go out first, then the close frame. When the
    /// server closes (rather than the peer), it keeps reading, and discarding, until the
    /// client's own close frame or [`CLOSE_DRAIN`]: closing a TCP connection with unread
    /// data sends a reset, and a client still sending would see 1006 and lose the replies
    /// already on their way.
    async fn close(
        mut self,
        close: Option<CloseReason>,
        drain: bool,
        mut outbound: mpsc::Receiver<Frame>,
        mut messages: ClientMessages,
    ) -> Registration {
        self.requests.close();
        let _ = tokio::time::timeout(self.state.config.server.shutdown_timeout, self.requests.wait()).await;
        while let Ok(frame) = outbound.try_recv() {
            if let Flow::Close(_) = self.write_queued(&frame, &mut outbound).await {
                break;
            }
        }
        let we_close = drain && close.is_some();
        // Our end of the stream follows the close frame once the last handle to the
        // socket is gone: this one keeps it open while the client's close is awaited.
        let keep_open = self.socket.clone();
        let sent = tokio::time::timeout(Duration::from_secs(1), self.socket.close(close)).await;
        if we_close && matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(CLOSE_DRAIN, async {
                while let Some(Ok(message)) = messages.recv().await {
                    if matches!(message, AggregatedMessage::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        drop(keep_open);
        self.registration
    }
}

fn reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason { code, description: Some(description.to_owned()) }
}

/// The close frame for a killed connection; none when the peer is already gone.
fn killed_reason(killed: KillReason) -> Option<CloseReason> {
    Some(match killed {
        KillReason::SlowConsumer => reason(CloseCode::Again, "too slow: not reading"),
        KillReason::SessionRevoked => reason(CloseCode::Other(CLOSE_SESSION_REVOKED), "session revoked"),
        KillReason::Replaced => reason(CloseCode::Other(CLOSE_REPLACED), "replaced by a newer socket of this session"),
        KillReason::ConnectionLost => return None,
    })
}

/// The close frame that answers the peer's: its own code echoed (RFC 6455 §5.5.1).
/// [`frame_guard`] already failed any close frame with a code no peer may send.
fn answer_to_close(peer: Option<CloseReason>) -> CloseReason {
    peer.map_or_else(|| reason(CloseCode::Normal, ""), |peer| CloseReason { code: peer.code, description: None })
}

fn protocol_error_reason(error: &ProtocolError) -> CloseReason {
    match error {
        ProtocolError::Overflow => reason(CloseCode::Size, "frame too large"),
        ProtocolError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<MessageUnfinished>()) => {
            reason(CloseCode::Policy, "fragmented message not finished in time")
        }
        ProtocolError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<MessageTooLarge>()) => {
            reason(CloseCode::Size, "message too large")
        }
        ProtocolError::Io(io) if io.get_ref().is_some_and(|inner| frame_guard::is_too_many_fragments(inner)) => {
            reason(CloseCode::Size, "too many fragments")
        }
        ProtocolError::Io(io) if io.get_ref().is_some_and(|inner| frame_guard::is_overflow(inner)) => {
            reason(CloseCode::Size, "frame too large")
        }
        ProtocolError::Io(io)
            if io.kind() == std::io::ErrorKind::InvalidData
                || io.get_ref().is_some_and(|inner| frame_guard::is_invalid_utf8(inner)) =>
        {
            reason(CloseCode::Invalid, "text is not valid UTF-8")
        }
        _ => reason(CloseCode::Protocol, "protocol error"),
    }
}

/// Runs one request and renders its reply.
async fn handle(state: &AppState, user: UserId, id: &str, request: ClientRequest, turn: Turn) -> String {
    match dispatch(state, user, request, turn).await {
        Ok(Reply::Ack(ack)) => protocol::ok_reply(id, &ack),
        Ok(Reply::Data(data)) => protocol::ok_reply(id, &data),
        Err(error) => protocol::api_error_reply(id, &error),
    }
}

/// A request's result: a send's ack, the reply of nearly every request under load, is
/// written from its typed view; the others' through `Value`.
enum Reply {
    Ack(AckView),
    Data(Value),
}

/// Runs one request. A send passes its turn once its message is queued for the writer;
/// any other request waits for its turn before it starts and passes it when it ends.
async fn dispatch(state: &AppState, user: UserId, request: ClientRequest, mut turn: Turn) -> Result<Reply, ApiError> {
    let to_json = |value: &dyn erased::ToJson| value.to_json();
    if !matches!(request, ClientRequest::Send { .. }) {
        turn.wait().await;
    }
    Ok(Reply::Data(match request {
        ClientRequest::Ping {} => json!({ "pong": true, "server_time": now_rfc3339() }),
        ClientRequest::Send { conversation_id, message } => {
            let ack = messages::send_in_turn(state, user, ConversationId(conversation_id), message, turn).await?;
            return Ok(Reply::Ack(AckView::from(ack)));
        }
        ClientRequest::Edit { conversation_id, seq, body } => {
            to_json(&messages::edit(state, user, ConversationId(conversation_id), seq, body).await?)
        }
        ClientRequest::Recall { conversation_id, seq } => {
            messages::delete(state, user, ConversationId(conversation_id), seq).await?;
            json!({})
        }
        ClientRequest::React { conversation_id, seq, emoji, add } => {
            let emoji = Emoji::parse(&emoji)?;
            messages::react(state, user, ConversationId(conversation_id), seq, emoji, add).await?;
            json!({})
        }
        ClientRequest::Read { conversation_id, seq } => {
            json!({ "last_read_seq": conversations::mark_read(state, user, ConversationId(conversation_id), seq).await? })
        }
        ClientRequest::Delivered { conversation_id, seq } => {
            let marker = conversations::mark_delivered(state, user, ConversationId(conversation_id), seq).await?;
            json!({ "last_delivered_seq": marker })
        }
        ClientRequest::Typing { conversation_id, typing } => {
            conversations::typing(state, user, ConversationId(conversation_id), typing).await?;
            json!({ "forwarded": true })
        }
        ClientRequest::History { conversation_id, before, after, from, to, limit } => {
            let range = match (from, to) {
                (Some(from), Some(to)) => Some((from, to)),
                (None, None) => None,
                _ => return Err(ApiError::validation("from", "from and to go together")),
            };
            let page = messages::history(
                &state.pool,
                user,
                ConversationId(conversation_id),
                HistoryQuery { before, after, range, limit },
            )
            .await?;
            to_json(&HistoryResponse {
                items: page.messages,
                last_seq: page.last_seq,
                version: page.version,
                has_older: page.has_older,
                has_newer: page.has_newer,
            })
        }
        ClientRequest::Conversations { cursor, limit, archived } => {
            let page =
                conversations::list(&state.pool, user, archived.unwrap_or(false), cursor.as_deref(), limit).await?;
            to_json(&ConversationPage {
                items: page.items.into_iter().map(ConversationView::from).collect(),
                next_cursor: page.next_cursor,
            })
        }
        ClientRequest::Receipts { conversation_id } => {
            let members = conversations::receipts(&state.pool, user, ConversationId(conversation_id)).await?;
            let members: Vec<Value> = members
                .into_iter()
                .map(|(user_id, read, delivered)| {
                    json!({ "user_id": user_id, "last_read_seq": read, "last_delivered_seq": delivered })
                })
                .collect();
            json!({ "members": members })
        }
        ClientRequest::Presence { user_ids } => {
            if user_ids.len() > 200 {
                return Err(ApiError::validation("user_ids", "at most 200 users"));
            }
            let ids: Vec<i64> = user_ids;
            let friends = db::friends::presence_among(&state.pool, user, &ids).await?;
            let users: Vec<Value> = friends
                .into_iter()
                .map(|friend| {
                    json!({
                        "user_id": friend.id,
                        "online": friend.online,
                        "last_seen_at": friend.last_seen_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                    })
                })
                .collect();
            json!({ "users": users })
        }
        ClientRequest::Sync { cursors, limit } => {
            let mut parsed = HashMap::new();
            for (key, version) in cursors.unwrap_or_default() {
                let id: i64 =
                    key.parse().map_err(|_| ApiError::validation("cursors", "keys must be conversation ids"))?;
                parsed.insert(ConversationId(id), version);
            }
            let (changes, has_more) = conversations::sync(&state.pool, user, &parsed, limit.unwrap_or(200)).await?;
            let conversations: Vec<Value> = changes
                .into_iter()
                .map(|c| {
                    json!({
                        "conversation_id": c.conversation_id,
                        "version": c.version,
                        "last_seq": c.last_seq,
                        "last_read_seq": c.last_read_seq,
                        "changes": c.changes,
                        "has_more": c.has_more,
                    })
                })
                .collect();
            json!({ "conversations": conversations, "has_more": has_more })
        }
    }))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Serialising reply data without naming every type.
mod erased {
    pub trait ToJson {
        fn to_json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> ToJson for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// A per-socket token bucket for requests.
struct Bucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    updated: Instant,
}

impl Bucket {
    fn new(burst: u32, per_second: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            updated: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.updated).as_secs_f64() * self.per_second).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_http::{BoxedPayloadStream, error::PayloadError};
    use actix_web::{dev::Payload, web::Bytes};
    use futures_util::{StreamExt as _, stream};

    use super::*;
    use crate::gateway::{client_messages::frame, frame_guard::FrameGuard};

    const MAX: usize = 1024;

    /// The close frame a client gets for `bytes`: through the same guard and decoder as
    /// a socket's bytes.
    async fn close_for(bytes: Vec<u8>, unfinished_limit: Duration) -> CloseReason {
        let source = stream::iter([Ok::<_, PayloadError>(Bytes::from(bytes))]).chain(stream::pending());
        let guarded: BoxedPayloadStream = Box::pin(FrameGuard::new(source, MAX as u64));
        let mut messages = ClientMessages::new(Payload::from(guarded), MAX).with_unfinished_limit(unfinished_limit);
        loop {
            match tokio::time::timeout(Duration::from_secs(2), messages.recv()).await.expect("an outcome") {
                Some(Ok(_)) => continue,
                Some(Err(error)) => return protocol_error_reason(&error),
                None => panic!("the stream ended without an error"),
            }
        }
    }

    #[actix_web::test]
    async fn each_violation_closes_with_its_code_and_reason() {
        let fragments = |count: usize| {
            let mut bytes = frame(0x1, false, b"");
            bytes.extend((2..count).flat_map(|_| frame(0x0, false, b"")));
            bytes.extend(frame(0x0, true, b""));
            bytes
        };
        let mut too_large = frame(0x1, false, &[b'a'; 600]);
        too_large.extend(frame(0x0, true, &[b'a'; 600]));
        let mut whole_inside = frame(0x1, false, b"{");
        whole_inside.extend(frame(0x1, true, b"{}"));
        let mut unmasked = frame(0x1, true, b"hi");
        unmasked[1] &= 0x7F;
        let cases: Vec<(&str, Vec<u8>, CloseCode, &str)> = vec![
            ("a frame over the limit", frame(0x1, true, &[b'a'; MAX + 1]), CloseCode::Size, "frame too large"),
            ("too many fragments", fragments(257), CloseCode::Size, "too many fragments"),
            ("a fragmented message over the limit", too_large, CloseCode::Size, "message too large"),
            ("text that is not UTF-8", frame(0x1, true, &[0xC3, 0x28]), CloseCode::Invalid, "text is not valid UTF-8"),
            ("a whole message inside a fragmented one", whole_inside, CloseCode::Protocol, "protocol error"),
            ("an unmasked frame", unmasked, CloseCode::Protocol, "protocol error"),
            (
                "a fragmented message not finished in time",
                frame(0x1, false, b"{"),
                CloseCode::Policy,
                "fragmented message not finished in time",
            ),
        ];
        for (name, bytes, code, description) in cases {
            let close = close_for(bytes, Duration::from_millis(100)).await;
            assert_eq!((close.code, close.description.as_deref()), (code, Some(description)), "{name}");
        }
        // 256 fragments, the first and the last included, are one message.
        let ok = fragments(256);
        let source = stream::iter([Ok::<_, PayloadError>(Bytes::from(ok))]);
        let guarded: BoxedPayloadStream = Box::pin(FrameGuard::new(source, MAX as u64));
        let mut messages = ClientMessages::new(Payload::from(guarded), MAX);
        assert!(matches!(messages.recv().await, Some(Ok(AggregatedMessage::Text(t))) if t.is_empty()));
    }
}
