//! The client's messages: frames decoded from the socket's byte stream, and a message
//! sent in fragments (RFC 6455 §5.4) put back together.
//!
//! This does what actix-ws's `AggregatedMessageStream` does (with actix-http's frame
//! codec, and the same errors), but holds on to less:
//! - actix-ws reads into one buffer and splits each frame off it, and the handle left
//!   behind keeps, and reuses, the allocation: a socket holds the buffer its largest
//!   frame needed for as long as it is open. Here the buffer is dropped once every
//!   whole frame in it is decoded (what is left of a frame still arriving is copied
//!   out), so an idle socket holds no read buffer, whatever it sent before.
//! - A fragmented message is copied out of the read buffer part by part, into one
//!   buffer held to the message limit; its parts do not pin the buffers they came in.
//!   It must be whole within [`UNFINISHED_MESSAGE_LIMIT`], or the stream fails then:
//!   control frames may come between its parts, so without a limit a client answering
//!   pings could hold one open, and its buffer, for the socket's life.
//! - A whole text or binary frame in the middle of a fragmented message is refused
//!   (§5.4), which the codec lets through.
//!
//! A frame still arriving holds the buffer it needs, up to the frame limit, until it
//! is whole; no pong can come in the middle of a frame, so the heartbeat closes a
//! socket whose frame stops arriving. What was read is always decoded before more is
//! read, so the frames in front of a violation [`super::frame_guard::FrameGuard`]
//! reports are answered first. After the first error no more messages come out; what
//! the client still sends is read and dropped until it stops, so that the session can
//! wait for the client's close without a reset cutting its close frame off.

use std::{
    future::Future as _,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_codec::Decoder as _;
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::{
    dev::Payload,
    web::{Bytes, BytesMut},
};
use actix_ws::AggregatedMessage;
use bytestring::ByteString;
use futures_util::{Stream, StreamExt as _};
use tokio::time::Sleep;

/// How long a message sent in fragments may take to be whole.
pub const UNFINISHED_MESSAGE_LIMIT: Duration = Duration::from_secs(30);

pub struct ClientMessages {
    payload: Payload,
    codec: Codec,
    /// Bytes read and not yet decoded: whole frames, then at most the beginning of one.
    unread: BytesMut,
    /// A frame was split off `unread` since it last had a buffer of its own.
    shares_buffer: bool,
    /// The source ended: what is left in `unread` is decoded, then the stream ends.
    ended: bool,
    /// The message coming in fragments, if one is.
    partial: Option<Partial>,
    /// A protocol error ended the messages. What the client still sends is read and
    /// dropped, so that the session's wait for the client's close (after its own close
    /// frame) does not end early and reset a connection with unread bytes.
    failed: bool,
    max_message: usize,
    /// [`UNFINISHED_MESSAGE_LIMIT`] (shorter in tests).
    unfinished_limit: Duration,
}

struct Partial {
    text: bool,
    bytes: BytesMut,
    /// When the message must be whole ([`UNFINISHED_MESSAGE_LIMIT`] after its first
    /// part); boxed, so that sockets not in the middle of a message do not carry it.
    deadline: Pin<Box<Sleep>>,
}

/// A fragmented message grew past the largest message a client may send.
#[derive(Debug, thiserror::Error)]
#[error("message exceeds the maximum message size")]
pub struct MessageTooLarge;

/// A fragmented message was not whole within [`UNFINISHED_MESSAGE_LIMIT`].
#[derive(Debug, thiserror::Error)]
#[error("a fragmented message was not finished in time")]
pub struct MessageUnfinished;

impl ClientMessages {
    /// Frames over `max_frame` bytes fail with `ProtocolError::Overflow`, fragmented
    /// messages over it with [`MessageTooLarge`].
    pub fn new(payload: Payload, max_frame: usize) -> Self {
        Self {
            payload,
            codec: Codec::new().max_size(max_frame),
            unread: BytesMut::new(),
            shares_buffer: false,
            ended: false,
            partial: None,
            failed: false,
            max_message: max_frame,
            unfinished_limit: UNFINISHED_MESSAGE_LIMIT,
        }
    }

    pub async fn recv(&mut self) -> Option<Result<AggregatedMessage, ProtocolError>> {
        self.next().await
    }

    /// The next whole message in what was read, if there is one.
    fn decode(&mut self) -> Result<Option<AggregatedMessage>, ProtocolError> {
        while let Some(frame) = self.codec.decode(&mut self.unread)? {
            self.shares_buffer = true;
            if let Some(message) = self.assemble(frame)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// A message from `frame`, or `None` while a fragmented one is still incomplete.
    fn assemble(&mut self, frame: Frame) -> Result<Option<AggregatedMessage>, ProtocolError> {
        // A client's close is answered with its own code even in the middle of a message.
        if !matches!(frame, Frame::Close(_))
            && self.partial.as_ref().is_some_and(|partial| partial.deadline.is_elapsed())
        {
            return Err(ProtocolError::Io(io::Error::other(MessageUnfinished)));
        }
        let message = match frame {
            Frame::Text(_) | Frame::Binary(_) if self.partial.is_some() => {
                return Err(ProtocolError::ContinuationStarted);
            }
            Frame::Text(text) => AggregatedMessage::Text(text_of(text)?),
            Frame::Binary(binary) => AggregatedMessage::Binary(binary),
            Frame::Ping(ping) => AggregatedMessage::Ping(ping),
            Frame::Pong(pong) => AggregatedMessage::Pong(pong),
            Frame::Close(reason) => AggregatedMessage::Close(reason),
            Frame::Continuation(item) => {
                // The codec refuses a first fragment while a message is in progress,
                // and a continuation with nothing to continue.
                if let Item::FirstText(_) | Item::FirstBinary(_) = item {
                    let text = matches!(item, Item::FirstText(_));
                    let deadline = Box::pin(tokio::time::sleep(self.unfinished_limit));
                    self.partial = Some(Partial { text, bytes: BytesMut::new(), deadline });
                }
                let (part, last) = match item {
                    Item::FirstText(part) | Item::FirstBinary(part) | Item::Continue(part) => (part, false),
                    Item::Last(part) => (part, true),
                };
                let Some(mut partial) = self.partial.take() else {
                    return Err(ProtocolError::ContinuationNotStarted);
                };
                if partial.bytes.len() + part.len() > self.max_message {
                    return Err(ProtocolError::Io(io::Error::other(MessageTooLarge)));
                }
                partial.bytes.extend_from_slice(&part);
                if !last {
                    self.partial = Some(partial);
                    return Ok(None);
                }
                let whole = partial.bytes.freeze();
                if partial.text { AggregatedMessage::Text(text_of(whole)?) } else { AggregatedMessage::Binary(whole) }
            }
        };
        Ok(Some(message))
    }

    /// Ends the messages with `error`, and lets go of what was being decoded.
    fn fail(&mut self, error: ProtocolError) -> Poll<Option<Result<AggregatedMessage, ProtocolError>>> {
        self.failed = true;
        self.unread = BytesMut::new();
        self.partial = None;
        Poll::Ready(Some(Err(error)))
    }

    /// After a failure: reads and drops what the client sends, until it stops.
    fn discard(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<AggregatedMessage, ProtocolError>>> {
        loop {
            match Pin::new(&mut self.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(_) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Every frame split off `unread` shares its allocation, and the handle left behind
    /// would keep (and reuse) the largest buffer ever read. Once every whole frame is
    /// decoded, `unread` is either empty, and dropped, or the beginning of one frame,
    /// and copied into a buffer of its own (at most one read's worth, once per read).
    fn let_go_of_decoded(&mut self) {
        if self.unread.is_empty() {
            self.unread = BytesMut::new();
        } else if self.shares_buffer {
            self.unread = BytesMut::from(&self.unread[..]);
        }
        self.shares_buffer = false;
    }
}

fn text_of(bytes: Bytes) -> Result<ByteString, ProtocolError> {
    ByteString::try_from(bytes).map_err(|error| ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, error)))
}

impl Stream for ClientMessages {
    type Item = Result<AggregatedMessage, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return this.discard(cx);
        }
        loop {
            match this.decode() {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(None) => this.let_go_of_decoded(),
                Err(error) => return this.fail(error),
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.unread.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(error))) => return this.fail(ProtocolError::Io(io::Error::other(error))),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => {
                    if let Some(partial) = &mut this.partial
                        && partial.deadline.as_mut().poll(cx).is_ready()
                    {
                        return this.fail(ProtocolError::Io(io::Error::other(MessageUnfinished)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// A client's frame, masked as every client frame must be (for tests here and in the
/// session).
#[cfg(test)]
pub(super) fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![opcode | if fin { 0x80 } else { 0 }];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

#[cfg(test)]
impl ClientMessages {
    pub(super) fn with_unfinished_limit(mut self, limit: Duration) -> Self {
        self.unfinished_limit = limit;
        self
    }
}

#[cfg(test)]
mod tests {
    use actix_http::{BoxedPayloadStream, error::PayloadError, ws::CloseCode};
    use futures_util::{FutureExt as _, stream};

    use super::*;

    fn messages(chunks: Vec<Result<Vec<u8>, PayloadError>>, max: usize) -> ClientMessages {
        let source: BoxedPayloadStream = Box::pin(stream::iter(chunks.into_iter().map(|c| c.map(Bytes::from))));
        ClientMessages::new(Payload::from(source), max)
    }

    async fn all(mut messages: ClientMessages) -> Vec<Result<AggregatedMessage, String>> {
        let mut out = Vec::new();
        while let Some(next) = messages.recv().await {
            let failed = next.is_err();
            out.push(next.map_err(|e| e.to_string()));
            if failed {
                break;
            }
        }
        out
    }

    #[actix_web::test]
    async fn frames_split_across_reads_and_fragments_come_out_as_whole_messages() {
        let mut bytes = frame(0x1, true, b"hello");
        bytes.extend(frame(0x1, false, "caf".as_bytes()));
        bytes.extend(frame(0x9, true, b"ping")); // a control frame between fragments
        bytes.extend(frame(0x0, false, &"é, ".as_bytes()[..1])); // a character split across fragments
        bytes.extend(frame(0x0, true, &"é, ".as_bytes()[1..]));
        bytes.extend(frame(0x2, true, &[0, 1, 2]));
        bytes.extend(frame(0x8, true, &[0x03, 0xE8, b'b', b'y', b'e']));
        let expected = vec![
            Ok(AggregatedMessage::Text("hello".into())),
            Ok(AggregatedMessage::Ping(Bytes::from_static(b"ping"))),
            Ok(AggregatedMessage::Text("café, ".into())),
            Ok(AggregatedMessage::Binary(Bytes::from_static(&[0, 1, 2]))),
            Ok(AggregatedMessage::Close(Some((CloseCode::Normal, "bye").into()))),
        ];
        // Every way of cutting the bytes into reads of one size, down to a byte each.
        for size in 1..=bytes.len() {
            let chunks = bytes.chunks(size).map(|c| Ok(c.to_vec())).collect();
            assert_eq!(all(messages(chunks, 1024)).await, expected, "reads of {size} bytes");
        }
    }

    #[actix_web::test]
    async fn a_frame_over_the_limit_and_a_message_over_it_in_fragments_fail() {
        let mut stream = messages(vec![Ok(frame(0x1, true, &[b'a'; 11]))], 10);
        let error = stream.recv().await.and_then(Result::err);
        assert!(matches!(error, Some(ProtocolError::Overflow)), "{error:?}");

        let mut bytes = frame(0x1, false, &[b'a'; 6]);
        bytes.extend(frame(0x0, true, &[b'a'; 5]));
        let mut stream = messages(vec![Ok(bytes)], 10);
        let error = stream.recv().await.and_then(Result::err);
        assert!(
            matches!(&error, Some(ProtocolError::Io(io)) if io.get_ref().is_some_and(|e| e.is::<MessageTooLarge>())),
            "{error:?}"
        );
    }

    #[actix_web::test]
    async fn text_that_is_not_utf8_fails_as_invalid_data_whole_or_reassembled() {
        let mut stream = messages(vec![Ok(frame(0x1, true, &[0xFF, 0xFE]))], 10);
        let error = stream.recv().await.and_then(Result::err);
        assert!(matches!(&error, Some(ProtocolError::Io(io)) if io.kind() == io::ErrorKind::InvalidData), "{error:?}");

        let mut bytes = frame(0x1, false, &[0xC3]);
        bytes.extend(frame(0x0, true, &[0x28]));
        let mut stream = messages(vec![Ok(bytes)], 10);
        let error = stream.recv().await.and_then(Result::err);
        assert!(matches!(&error, Some(ProtocolError::Io(io)) if io.kind() == io::ErrorKind::InvalidData), "{error:?}");
    }

    #[actix_web::test]
    async fn a_whole_message_inside_a_fragmented_one_is_refused() {
        let mut bytes = frame(0x1, false, b"{\"id\":");
        bytes.extend(frame(0x1, true, b"{}"));
        let mut stream = messages(vec![Ok(bytes)], 100);
        let error = stream.recv().await.and_then(Result::err);
        assert!(matches!(error, Some(ProtocolError::ContinuationStarted)), "{error:?}");
    }

    #[actix_web::test]
    async fn frames_before_a_source_error_are_decoded_first() {
        let chunks = vec![Ok(frame(0x1, true, b"first")), Err(PayloadError::Overflow)];
        let got = all(messages(chunks, 100)).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Ok(AggregatedMessage::Text("first".into())));
        assert!(got[1].is_err());
    }

    /// `chunks`, then a source that stays open and silent, like an idle client.
    fn then_idle(chunks: Vec<Vec<u8>>, max: usize) -> ClientMessages {
        let source: BoxedPayloadStream =
            Box::pin(stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).chain(stream::pending()));
        ClientMessages::new(Payload::from(source), max)
    }

    /// Whether `buffer` still holds an allocation with room for a large frame.
    /// (`capacity()` cannot tell: it is only the room after the handle's own bytes.)
    fn keeps_a_large_buffer(buffer: &mut BytesMut) -> bool {
        buffer.try_reclaim(30_000)
    }

    #[actix_web::test]
    async fn an_idle_socket_holds_no_read_buffer_after_a_large_message() {
        let mut stream = then_idle(vec![frame(0x1, true, &[b'x'; 60_000])], 65_536);
        let first = stream.recv().await;
        assert!(matches!(&first, Some(Ok(AggregatedMessage::Text(t))) if t.len() == 60_000));
        drop(first);
        assert!(stream.recv().now_or_never().is_none(), "then nothing more");
        assert!(!keeps_a_large_buffer(&mut stream.unread));
    }

    #[actix_web::test]
    async fn a_frame_beginning_left_behind_a_large_message_does_not_keep_its_buffer() {
        let mut chunk = frame(0x1, true, &[b'x'; 60_000]);
        let next = frame(0x1, true, b"next");
        chunk.extend_from_slice(&next[..3]);
        let mut stream = then_idle(vec![chunk, next[3..].to_vec()], 65_536);
        let first = stream.recv().await;
        assert!(matches!(&first, Some(Ok(AggregatedMessage::Text(t))) if t.len() == 60_000));
        drop(first);
        // The rest of the next frame is read and decoded in the same poll.
        assert_eq!(stream.recv().await.and_then(Result::ok), Some(AggregatedMessage::Text("next".into())));
        assert!(stream.recv().now_or_never().is_none());
        assert!(!keeps_a_large_buffer(&mut stream.unread));

        // And when the next frame's beginning is all that came, it is kept, not its buffer.
        let mut chunk = frame(0x1, true, &[b'x'; 60_000]);
        chunk.extend_from_slice(&next[..3]);
        let mut stream = then_idle(vec![chunk], 65_536);
        drop(stream.recv().await);
        assert!(stream.recv().now_or_never().is_none());
        assert_eq!(&stream.unread[..], &next[..3]);
        assert!(!keeps_a_large_buffer(&mut stream.unread));
    }

    #[actix_web::test]
    async fn a_fragment_is_copied_out_of_the_read_buffer() {
        let mut stream = then_idle(vec![], 65_536);
        stream.unread.extend_from_slice(&frame(0x1, false, &[b'x'; 40_000]));
        let read = stream.unread.as_ptr_range();
        assert!(matches!(stream.decode(), Ok(None)));
        let kept = stream.partial.as_ref().map(|p| p.bytes.as_ptr()).unwrap();
        assert!(!read.contains(&kept), "the first part still points into the read buffer");
        assert_eq!(stream.partial.as_ref().map(|p| p.bytes.len()), Some(40_000));
    }

    /// A source the test feeds by hand, and leaves open.
    fn fed() -> (tokio::sync::mpsc::UnboundedSender<Result<Bytes, PayloadError>>, ClientMessages) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let source: BoxedPayloadStream =
            Box::pin(stream::unfold(receiver, |mut receiver| async move { Some((receiver.recv().await?, receiver)) }));
        (sender, ClientMessages::new(Payload::from(source), 100))
    }

    async fn within_a_second(stream: &mut ClientMessages) -> Option<Result<AggregatedMessage, ProtocolError>> {
        tokio::time::timeout(Duration::from_secs(1), stream.recv()).await.expect("an answer within a second")
    }

    #[actix_web::test]
    async fn a_fragmented_message_must_be_whole_in_time_even_if_nothing_else_comes() {
        let (sender, mut stream) = fed();
        stream.unfinished_limit = Duration::from_millis(200);
        sender.send(Ok(Bytes::from(frame(0x1, false, b"{")))).unwrap();
        assert!(stream.recv().now_or_never().is_none());
        // A pong in time is fine; then nothing comes, and the limit passes.
        sender.send(Ok(Bytes::from(frame(0xA, true, b"")))).unwrap();
        assert!(matches!(within_a_second(&mut stream).await, Some(Ok(AggregatedMessage::Pong(_)))));
        let error = within_a_second(&mut stream).await.and_then(Result::err);
        assert!(
            matches!(&error, Some(ProtocolError::Io(io)) if io.get_ref().is_some_and(|e| e.is::<MessageUnfinished>())),
            "{error:?}"
        );
    }

    #[actix_web::test]
    async fn after_an_error_what_the_client_sends_is_dropped_until_it_stops() {
        let (sender, mut stream) = fed();
        let mut unmasked = frame(0x1, true, b"hi");
        unmasked[1] &= 0x7F;
        sender.send(Ok(Bytes::from(unmasked))).unwrap();
        assert!(matches!(within_a_second(&mut stream).await, Some(Err(ProtocolError::UnmaskedFrame))));
        // Not the same error again and again: the rest is read and dropped...
        sender.send(Ok(Bytes::from(frame(0x1, true, b"after")))).unwrap();
        assert!(stream.recv().now_or_never().is_none());
        assert!(stream.unread.is_empty());
        // ...until the client's side ends.
        drop(sender);
        assert!(within_a_second(&mut stream).await.is_none());
    }
}
