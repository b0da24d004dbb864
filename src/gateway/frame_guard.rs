//! Refuses a WebSocket frame by its declared length, as soon as its header arrives.
//! actix-http's frame parser checks the size limit only once a whole frame is buffered,
//! and the decoder keeps appending to its buffer meanwhile: one header declaring 1 GiB,
//! followed by a steady stream of bytes, would make GOIM buffer all of it before
//! answering 1009. [`FrameGuard`] reads the frame headers in the raw byte stream (without copying
//! it) and fails the stream with `PayloadError::Overflow` the moment a header declares
//! more than the limit; the session then closes with 1009. It also refuses a frame with
//! a reserved bit set (no extension is ever negotiated), which actix-http lets through,
//! and checks close frames' payloads (a one-byte payload, a code no peer may send, a
//! reason that is not UTF-8), which actix-http reads as "no code", and a close frame
//! over 125 bytes, which it reads as a normal close: the session closes with 1002
//! (1007 for the reason). And it caps how many fragments one message may come in:
//! each one, even an empty one, is a step of decoding work, and without a cap one
//! message could be an endless stream of them.
//!
//! Frames before a bad one are handed on first, so a request in the same packet as a
//! violation is still answered before the connection closes.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{error::PayloadError, web::Bytes};
use futures_util::Stream;

/// Where the scanner is in the client's frame stream.
#[derive(Debug)]
enum Scan {
    /// Inside a header: the bytes seen so far (a header is at most 14 bytes).
    Header { bytes: [u8; 14], have: usize },
    /// Inside a payload: how many bytes of it are still to come.
    Payload { left: u64 },
    /// Inside a close frame's payload (at most 125 bytes), kept and unmasked to be
    /// checked once complete: actix-http reads a malformed one as "no code".
    Close { key: [u8; 4], payload: Vec<u8>, left: usize },
}

/// Fragments one message may come in.
const MAX_FRAGMENTS: u32 = 256;

/// A message came in more than [`MAX_FRAGMENTS`] fragments.
#[derive(Debug, thiserror::Error)]
#[error("a message in more than {MAX_FRAGMENTS} fragments")]
struct TooManyFragments;

pub struct FrameGuard<S> {
    inner: S,
    max_frame: u64,
    scan: Scan,
    /// Fragments of the message in progress (0 between messages).
    fragments: u32,
    /// A violation found behind frames that were handed on first; reported on the next
    /// poll, once [`super::client_messages::ClientMessages`] decoded those frames (it
    /// decodes what it has before reading more).
    deferred: Option<PayloadError>,
    failed: bool,
}

/// A violation, and where in the chunk the frame that made it began.
struct Violation {
    error: PayloadError,
    frame_start: usize,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, max_frame: u64) -> Self {
        Self {
            inner,
            max_frame,
            scan: Scan::Header { bytes: [0; 14], have: 0 },
            fragments: 0,
            deferred: None,
            failed: false,
        }
    }

    /// Advances over `chunk`; `Err` on the first violation, with where its frame began
    /// in `chunk` (0 when it began in an earlier one).
    fn observe(&mut self, chunk: &[u8]) -> Result<(), Violation> {
        let mut frame_start = 0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let at = chunk.len() - rest.len();
            if matches!(self.scan, Scan::Header { have: 0, .. }) {
                frame_start = at;
            }
            rest = self.step(rest).map_err(|error| Violation { error, frame_start })?;
        }
        Ok(())
    }

    /// Advances over the start of `chunk`, within one frame; returns what is left.
    fn step<'a>(&mut self, mut chunk: &'a [u8]) -> Result<&'a [u8], PayloadError> {
        {
            match &mut self.scan {
                Scan::Payload { left } => {
                    let skipped = (*left).min(chunk.len() as u64);
                    *left -= skipped;
                    chunk = &chunk[skipped as usize..];
                    if *left == 0 {
                        self.scan = Scan::Header { bytes: [0; 14], have: 0 };
                    }
                }
                Scan::Close { key, payload, left } => {
                    let taken = (*left).min(chunk.len());
                    let start = payload.len();
                    payload.extend(chunk[..taken].iter().enumerate().map(|(i, byte)| byte ^ key[(start + i) % 4]));
                    *left -= taken;
                    chunk = &chunk[taken..];
                    if *left == 0 {
                        check_close_payload(payload)?;
                        self.scan = Scan::Header { bytes: [0; 14], have: 0 };
                    }
                }
                Scan::Header { bytes, have } => {
                    bytes[*have] = chunk[0];
                    *have += 1;
                    chunk = &chunk[1..];
                    // No extension is negotiated, so the reserved bits must be clear
                    // (RFC 6455 §5.2); actix-http's parser does not look at them.
                    if *have == 1 && bytes[0] & 0x70 != 0 {
                        return Err(PayloadError::EncodingCorrupted);
                    }
                    if let Some((length, header_length)) = declared_length(&bytes[..*have]) {
                        if length > self.max_frame {
                            return Err(PayloadError::Overflow);
                        }
                        let (fin, opcode) = (bytes[0] & 0x80 != 0, bytes[0] & 0x0f);
                        // A control frame is whole and short (§5.5); actix-http reads a
                        // long close frame as a normal close.
                        if opcode & 0x8 != 0 && (!fin || length > 125) {
                            return Err(PayloadError::EncodingCorrupted);
                        }
                        if *have == header_length {
                            if opcode & 0x8 == 0 {
                                // Every fragment counts, the first and the last too;
                                // a whole message in the middle of one (refused by the
                                // decoder) neither counts nor restarts the count.
                                let fragment = opcode == 0 || !fin;
                                let count = self.fragments + u32::from(fragment);
                                if count > MAX_FRAGMENTS {
                                    return Err(PayloadError::Io(std::io::Error::other(TooManyFragments)));
                                }
                                self.fragments = if fin && opcode == 0 { 0 } else { count };
                            }
                            let close = opcode == 0x8 && bytes[1] & 0x80 != 0;
                            self.scan = if length == 0 {
                                Scan::Header { bytes: [0; 14], have: 0 }
                            } else if close {
                                let mut key = [0; 4];
                                key.copy_from_slice(&bytes[header_length - 4..header_length]);
                                Scan::Close { key, payload: Vec::with_capacity(length as usize), left: length as usize }
                            } else {
                                Scan::Payload { left: length }
                            };
                        }
                    }
                }
            }
        }
        Ok(chunk)
    }
}

/// A close frame's payload is empty, or a code a peer may send (RFC 6455 §7.4) and a
/// UTF-8 reason (§5.5.1); anything else fails the connection.
fn check_close_payload(payload: &[u8]) -> Result<(), PayloadError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return Err(PayloadError::EncodingCorrupted);
    };
    if !is_sendable_close_code(u16::from_be_bytes(*code)) {
        return Err(PayloadError::EncodingCorrupted);
    }
    if std::str::from_utf8(reason).is_err() {
        return Err(PayloadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "close reason is not UTF-8",
        )));
    }
    Ok(())
}

/// Whether a peer may send close `code` (RFC 6455 §7.4): the defined codes it may use
/// on the wire, and the ranges for libraries and applications.
fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Whether a stream error is the guard's verdict on text that is not UTF-8.
pub fn is_invalid_utf8(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(error.downcast_ref::<PayloadError>(), Some(PayloadError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData)
}

/// The payload length a frame header declares and the header's full length, as soon
/// as the length bytes are in (the mask key may still be on its way); `None` before.
/// (RFC 6455 §5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit, then a 4-byte mask
/// key when the mask bit is set.)
fn declared_length(header: &[u8]) -> Option<(u64, usize)> {
    if header.len() < 2 {
        return None;
    }
    let masked = header[1] & 0x80 != 0;
    let (extended, short) = match header[1] & 0x7f {
        126 => (2, None),
        127 => (8, None),
        short => (0, Some(u64::from(short))),
    };
    if header.len() < 2 + extended {
        return None;
    }
    let length =
        short.unwrap_or_else(|| header[2..2 + extended].iter().fold(0u64, |n, byte| (n << 8) | u64::from(*byte)));
    Some((length, 2 + extended + if masked { 4 } else { 0 }))
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for FrameGuard<S> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(error) = this.deferred.take() {
            this.failed = true;
            return Poll::Ready(Some(Err(error)));
        }
        if this.failed {
            // Handed on unread: the decoder, failed too, drops it (so closing does not
            // reset a connection with bytes still unread).
            return Pin::new(&mut this.inner).poll_next(cx);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match this.observe(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(Violation { error, frame_start: 0 }) => {
                    this.failed = true;
                    Poll::Ready(Some(Err(error)))
                }
                Err(Violation { error, frame_start }) => {
                    this.deferred = Some(error);
                    Poll::Ready(Some(Ok(chunk.slice(..frame_start))))
                }
            },
            other => other,
        }
    }
}

/// Whether a stream error is [`FrameGuard`]'s refusal of a message in too many fragments.
pub fn is_too_many_fragments(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(error.downcast_ref::<PayloadError>(), Some(PayloadError::Io(io)) if io.get_ref().is_some_and(|e| e.is::<TooManyFragments>()))
}

/// Whether a stream error came from [`FrameGuard`] (or actix's own size check).
pub fn is_overflow(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(error.downcast_ref::<PayloadError>(), Some(PayloadError::Overflow))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: u64) -> FrameGuard<()> {
        FrameGuard::new((), max)
    }

    fn observe(guard: &mut FrameGuard<()>, chunk: &[u8]) -> Result<(), PayloadError> {
        guard.observe(chunk).map_err(|violation| violation.error)
    }

    #[test]
    fn lengths_in_all_three_encodings_are_read_across_chunk_boundaries() {
        // A masked 5-byte text frame, a masked 300-byte frame (16-bit length) split
        // mid-header, then a 64-bit length of 70,000.
        let mut frames = vec![0x81, 0x85, 1, 2, 3, 4];
        frames.extend_from_slice(b"hello");
        frames.extend_from_slice(&[0x82, 0xFE, 0x01, 0x2C, 1, 2, 3, 4]);
        frames.extend(std::iter::repeat_n(0u8, 300));
        let mut g = guard(1000);
        for piece in frames.chunks(3) {
            observe(&mut g, piece).unwrap();
        }
        assert!(matches!(g.scan, Scan::Header { have: 0, .. }), "{:?}", g.scan);
        let big = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0x11, 0x70, 1, 2, 3, 4];
        assert!(matches!(observe(&mut g, &big[..9]), Ok(())), "not refused before the length is known");
        assert!(matches!(observe(&mut g, &big[9..10]), Err(PayloadError::Overflow)), "refused at the header");
    }

    #[test]
    fn a_gigabyte_header_is_refused_before_its_mask_arrives_in_full() {
        let mut g = guard(64 * 1024);
        let header = [0x81, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0];
        assert!(matches!(observe(&mut g, &header), Err(PayloadError::Overflow)), "refused before the mask key");
        let mut at_limit = guard(126);
        assert!(observe(&mut at_limit, &[0x81, 0xFE, 0, 126, 1, 2, 3, 4]).is_ok(), "a frame at the limit passes");
    }

    /// A client frame header for a masked frame of `length` bytes.
    fn header(first_byte: u8, length: u64) -> Vec<u8> {
        let mut header = vec![first_byte];
        match length {
            0..=125 => header.push(0x80 | length as u8),
            126..=0xFFFF => {
                header.push(0x80 | 126);
                header.extend_from_slice(&(length as u16).to_be_bytes());
            }
            _ => {
                header.push(0x80 | 127);
                header.extend_from_slice(&length.to_be_bytes());
            }
        }
        header.extend_from_slice(&[9, 8, 7, 6]);
        header
    }

    #[test]
    fn close_frames_are_checked_once_their_payload_is_in() {
        let close = |payload: &[u8]| {
            let mut frame = header(0x88, payload.len() as u64);
            frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ [9, 8, 7, 6][i % 4]));
            let mut g = guard(65_536);
            frame.chunks(1).try_for_each(|piece| observe(&mut g, piece))
        };
        assert!(close(b"").is_ok(), "no code at all");
        assert!(close(&[0x03, 0xE8]).is_ok(), "1000");
        assert!(close(&[0x0F, 0xA0, b'b', b'y', b'e']).is_ok(), "4000 with a reason");
        assert!(matches!(close(&[0x03]), Err(PayloadError::EncodingCorrupted)), "one byte");
        assert!(matches!(close(&[0x03, 0xED]), Err(PayloadError::EncodingCorrupted)), "1005 is never sent");
        assert!(matches!(close(&[0x03, 0xE8, 0xFF]), Err(PayloadError::Io(_))), "reason not UTF-8");
    }

    #[test]
    fn control_frames_must_be_whole_and_short() {
        let mut long_close = header(0x88, 126);
        long_close.extend(std::iter::repeat_n(0u8, 126));
        assert!(matches!(observe(&mut guard(65_536), &long_close), Err(PayloadError::EncodingCorrupted)));
        let fragmented_ping = header(0x09, 1);
        assert!(matches!(observe(&mut guard(65_536), &fragmented_ping), Err(PayloadError::EncodingCorrupted)));
        assert!(observe(&mut guard(65_536), &header(0x89, 0)).is_ok(), "an empty ping is fine");
    }

    #[test]
    fn a_message_may_come_in_a_bounded_number_of_fragments() {
        let mut g = guard(65_536);
        let mut frames = header(0x01, 0);
        for _ in 2..MAX_FRAGMENTS {
            frames.extend(header(0x00, 0));
        }
        frames.extend(header(0x80, 0));
        assert!(observe(&mut g, &frames).is_ok(), "{MAX_FRAGMENTS} fragments, the first and the last included");
        assert!(observe(&mut g, &header(0x81, 0)).is_ok(), "the count starts again with the next message");
        let mut flood = header(0x01, 0);
        flood.extend((1..MAX_FRAGMENTS).flat_map(|_| header(0x00, 0)));
        flood.extend(header(0x80, 0));
        assert!(observe(&mut guard(65_536), &flood).is_err_and(|e| is_too_many_fragments(&e)));
        // A whole message in between (which the decoder refuses) does not restart it.
        let mut sneaky = header(0x01, 0);
        sneaky.extend((2..MAX_FRAGMENTS).flat_map(|_| header(0x00, 0)));
        sneaky.extend(header(0x81, 0));
        sneaky.extend(header(0x00, 0));
        sneaky.extend(header(0x80, 0));
        assert!(observe(&mut guard(65_536), &sneaky).is_err_and(|e| is_too_many_fragments(&e)));
    }

    #[test]
    fn a_violation_says_where_its_frame_began() {
        let mut good = header(0x81, 3);
        good.extend_from_slice(b"abc");
        let mut chunk = good.clone();
        chunk.extend(header(0xC1, 0));
        let violation = guard(65_536).observe(&chunk).err().map(|violation| violation.frame_start);
        assert_eq!(violation, Some(good.len()));
        let mut g = guard(65_536);
        observe(&mut g, &good[..4]).unwrap();
        let violation = g.observe(&[&good[4..], &[0xC1][..]].concat()).err().map(|violation| violation.frame_start);
        assert_eq!(violation, Some(good.len() - 4), "measured in the chunk it arrived in");
    }

    proptest::proptest! {
        /// Any sequence of well-formed frames within the limit, cut into any chunks,
        /// passes and leaves the scanner between frames.
        #[test]
        fn frames_within_the_limit_pass_however_they_are_chunked(
            lengths in proptest::collection::vec(0u64..70_000, 1..6),
            cut in 1usize..4096,
        ) {
            let mut stream = Vec::new();
            for length in &lengths {
                stream.extend(header(0x81, *length));
                stream.extend(std::iter::repeat_n(0u8, *length as usize));
            }
            let mut g = guard(70_000);
            for piece in stream.chunks(cut) {
                proptest::prop_assert!(observe(&mut g, piece).is_ok());
            }
            let between_frames = matches!(g.scan, Scan::Header { have: 0, .. });
            proptest::prop_assert!(between_frames);
        }

        /// A frame over the limit is refused no later than the end of its header, after
        /// any number of good frames and however the bytes are cut.
        #[test]
        fn a_frame_over_the_limit_is_refused_by_its_header(
            before in proptest::collection::vec(0u64..2_000, 0..4),
            over in 2_001u64..u64::MAX,
            cut in 1usize..64,
        ) {
            let mut stream = Vec::new();
            for length in &before {
                stream.extend(header(0x82, *length));
                stream.extend(std::iter::repeat_n(1u8, *length as usize));
            }
            stream.extend(header(0x82, over));
            let mut g = guard(2_000);
            let refused = stream.chunks(cut).any(|piece| observe(&mut g, piece).is_err());
            proptest::prop_assert!(refused);
        }

        /// Arbitrary bytes never panic the scanner.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let mut g = guard(65_536);
            let _ = observe(&mut g, &bytes);
        }
    }
}
