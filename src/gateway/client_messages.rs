//! The client's messages: frames decoded from the socket's byte stream, and a message
//! sent in fragments (RFC 6455 §5.4) put back together.
//!
//! This is what actix-ws's `AggregatedMessageStream` does, with one difference: its
//! decoder keeps the buffer it reads frames into for the socket's life, at the size of
//! the largest frame the client ever sent. One 64 KiB message would cost its socket
//! 64 KiB until it closed; across 10,000 sockets, more than six times what they cost
//! idle. Here the buffer is let go whenever every byte in it has been decoded, so an
//! idle socket holds none, whatever it sent before.

use std::{
    io, mem,
    pin::Pin,
    task::{Context, Poll},
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

pub struct ClientMessages {
    payload: Payload,
    codec: Codec,
    /// Bytes read and not yet decoded: a frame's beginning, or nothing.
    unread: BytesMut,
    /// A frame was split off `unread` since it last had a buffer of its own.
    shares_buffer: bool,
    /// The source ended: what is left in `unread` is decoded, then the stream ends.
    ended: bool,
    /// A fragmented message's parts so far.
    fragments: Vec<Bytes>,
    fragments_are_text: bool,
    fragments_size: usize,
    max_message: usize,
}

/// A fragmented message grew past the largest message a client may send.
#[derive(Debug, thiserror::Error)]
#[error("message exceeds the maximum message size")]
pub struct MessageTooLarge;

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
            fragments: Vec::new(),
            fragments_are_text: false,
            fragments_size: 0,
            max_message: max_frame,
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
        let message = match frame {
            Frame::Text(text) => AggregatedMessage::Text(text_of(text)?),
            Frame::Binary(binary) => AggregatedMessage::Binary(binary),
            Frame::Ping(ping) => AggregatedMessage::Ping(ping),
            Frame::Pong(pong) => AggregatedMessage::Pong(pong),
            Frame::Close(reason) => AggregatedMessage::Close(reason),
            // The codec refuses fragments out of order (a continuation with no first
            // fragment, a new message before the last one ended).
            Frame::Continuation(item) => {
                let (part, last) = match item {
                    Item::FirstText(part) => {
                        self.fragments_are_text = true;
                        (part, false)
                    }
                    Item::FirstBinary(part) => {
                        self.fragments_are_text = false;
                        (part, false)
                    }
                    Item::Continue(part) => (part, false),
                    Item::Last(part) => (part, true),
                };
                self.fragments_size += part.len();
                if self.fragments_size > self.max_message {
                    self.fragments = Vec::new();
                    self.fragments_size = 0;
                    return Err(ProtocolError::Io(io::Error::other(MessageTooLarge)));
                }
                self.fragments.push(part);
                if !last {
                    return Ok(None);
                }
                self.fragments_size = 0;
                // Taken, not cleared: the list's room for a message of many fragments
                // is given back too.
                let parts = mem::take(&mut self.fragments);
                let whole =
                    if parts.len() == 1 { parts.into_iter().next().unwrap_or_default() } else { parts.concat().into() };
                if self.fragments_are_text {
                    AggregatedMessage::Text(text_of(whole)?)
                } else {
                    AggregatedMessage::Binary(whole)
                }
            }
        };
        Ok(Some(message))
    }
}

impl ClientMessages {
    /// Every frame split off `unread` shares its allocation, and the handle left behind
    /// would keep (and reuse) the largest buffer ever read. Once every whole frame is
    /// decoded, `unread` is either empty, and dropped, or the beginning of one frame,
    /// and copied into a buffer of its own (once per frame at most).
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
        loop {
            // What was read is decoded before reading more: the frames in front of a
            // violation the source reports are still answered.
            match this.decode() {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(None) => this.let_go_of_decoded(),
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.unread.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Some(Err(ProtocolError::Io(io::Error::other(error)))));
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Whether `error` (inside a `ProtocolError::Io`) is [`MessageTooLarge`].
pub fn is_message_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<MessageTooLarge>()
}

#[cfg(test)]
mod tests {
    use actix_http::{BoxedPayloadStream, error::PayloadError, ws::CloseCode};
    use futures_util::stream;

    use super::*;

    /// A client's frame: masked, as every client frame must be.
    fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
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
            matches!(&error, Some(ProtocolError::Io(io)) if io.get_ref().is_some_and(|e| is_message_too_large(e))),
            "{error:?}"
        );
    }

    #[actix_web::test]
    async fn text_that_is_not_utf8_fails_as_invalid_data() {
        let mut stream = messages(vec![Ok(frame(0x1, true, &[0xFF, 0xFE]))], 10);
        let error = stream.recv().await.and_then(Result::err);
        assert!(matches!(&error, Some(ProtocolError::Io(io)) if io.kind() == io::ErrorKind::InvalidData), "{error:?}");
    }

    #[actix_web::test]
    async fn frames_before_a_source_error_are_decoded_first() {
        let chunks = vec![Ok(frame(0x1, true, b"first")), Err(PayloadError::Overflow)];
        let got = all(messages(chunks, 100)).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], Ok(AggregatedMessage::Text("first".into())));
        assert!(got[1].is_err());
    }

    #[actix_web::test]
    async fn a_frame_beginning_left_behind_a_large_message_does_not_keep_its_buffer() {
        let mut chunk = frame(0x1, true, &[b'x'; 60_000]);
        chunk.extend_from_slice(&frame(0x1, true, b"next")[..3]);
        let mut stream = messages(vec![Ok(chunk)], 65_536);
        let first = stream.recv().await;
        assert!(matches!(&first, Some(Ok(AggregatedMessage::Text(t))) if t.len() == 60_000));
        drop(first);
        // The source ends here, so the stream does too, with the partial frame unread.
        assert!(stream.recv().await.is_none());
        assert_eq!(stream.unread.len(), 3);
        assert!(stream.unread.capacity() < 1024, "{} bytes kept for 3", stream.unread.capacity());
    }

    #[actix_web::test]
    async fn the_read_buffer_is_let_go_once_a_large_message_is_decoded() {
        let big = frame(0x1, true, &[b'x'; 60_000]);
        let mut small_after = frame(0x1, true, b"next");
        // The next frame's first bytes arrive with the large one.
        let tail = small_after.split_off(3);
        let mut chunk = big;
        chunk.extend_from_slice(&small_after);
        let mut stream = messages(vec![Ok(chunk), Ok(tail)], 65_536);

        let first = stream.recv().await;
        assert!(matches!(&first, Some(Ok(AggregatedMessage::Text(t))) if t.len() == 60_000));
        let second = stream.recv().await;
        assert_eq!(second.and_then(Result::ok), Some(AggregatedMessage::Text("next".into())));
        assert_eq!(stream.unread.capacity(), 0, "an empty buffer is given back, not kept at 60 KB");
        drop(first);
        assert!(stream.recv().await.is_none());
    }
}
