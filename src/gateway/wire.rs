//! RFC 6455 framing, server side: [`Decoder`] turns the client's bytes into whole
//! messages and [`encode`] writes the server's frames. Every rule is checked on a
//! frame's header, before its payload is buffered: a header declaring 1 GiB is refused
//! when its last byte arrives, so what one socket buffers is bounded by the frame limit.

use actix_web::web::{Bytes, BytesMut};

pub use actix_http::ws::{CloseCode, CloseReason};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Control frames carry at most this much (§5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// One whole message from the client (fragments already joined).
#[derive(Debug, PartialEq)]
pub enum Message {
    Text(String),
    Binary,
    Ping(Bytes),
    Pong,
    /// The peer's close frame; `None` when it carried no code.
    Close(Option<CloseReason>),
}

/// Why the client's frames end the connection; each has its close code.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("protocol error")]
    Protocol,
    #[error("frame too large")]
    FrameTooLarge,
    #[error("message too large")]
    MessageTooLarge,
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
}

impl Violation {
    /// The close frame this violation is answered with.
    pub fn close_reason(&self) -> CloseReason {
        let code = match self {
            Self::Protocol => CloseCode::Protocol,
            Self::FrameTooLarge | Self::MessageTooLarge => CloseCode::Size,
            Self::InvalidUtf8 => CloseCode::Invalid,
        };
        CloseReason { code, description: Some(self.to_string()) }
    }
}

/// A frame's header, parsed and checked.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    payload: usize,
    length: usize,
}

/// Joins the client's frames into messages, holding a fragmented one in between.
pub struct Decoder {
    max_message: usize,
    /// A fragmented text or binary message still waiting for its final frame.
    fragments: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    /// `max_message` bounds a single frame's payload and a reassembled message alike.
    pub fn new(max_message: usize) -> Self {
        Self { max_message, fragments: None }
    }

    /// Takes the next whole message out of `buf`; `Ok(None)` means more bytes are needed
    /// (and everything decodable so far has been taken). After an `Err` the connection is
    /// to be closed: the stream is no longer in step.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Violation> {
        loop {
            let Some(header) = self.header(buf)? else {
                return Ok(None);
            };
            if buf.len() < header.length + header.payload {
                return Ok(None);
            }
            let mut frame = buf.split_to(header.length + header.payload);
            let mut payload = frame.split_off(header.length);
            unmask(&mut payload, header.mask);
            if let Some(message) = self.take(header, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// Parses and checks the header at the start of `buf`, if it is all there.
    fn header(&self, buf: &[u8]) -> Result<Option<Header>, Violation> {
        let [first, second, ..] = *buf else {
            return Ok(None);
        };
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        // No extension is ever negotiated, so the reserved bits stay clear (§5.2), and
        // every client frame is masked (§5.1).
        let reserved_bits = first & 0x70 != 0;
        let masked = second & 0x80 != 0;
        if reserved_bits || !masked {
            return Err(Violation::Protocol);
        }
        let is_control = opcode & 0x8 != 0;
        match opcode {
            OP_CONTINUATION if self.fragments.is_none() => return Err(Violation::Protocol),
            OP_TEXT | OP_BINARY if self.fragments.is_some() => return Err(Violation::Protocol),
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(Violation::Protocol),
        }
        let (declared, length_bytes) = match second & 0x7F {
            126 => (buf.get(2..4).map(|b| u64::from(u16::from_be_bytes([b[0], b[1]]))), 2),
            127 => (buf.get(2..10).map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default())), 8),
            short => (Some(u64::from(short)), 0),
        };
        let Some(declared) = declared else {
            return Ok(None);
        };
        if is_control && (!fin || declared > MAX_CONTROL_PAYLOAD) {
            return Err(Violation::Protocol);
        }
        if declared > self.max_message as u64 {
            return Err(Violation::FrameTooLarge);
        }
        let held = self.fragments.as_ref().map_or(0, |(_, data)| data.len());
        if !is_control && held as u64 + declared > self.max_message as u64 {
            return Err(Violation::MessageTooLarge);
        }
        let length = 2 + length_bytes + 4;
        let Some(mask) = buf.get(length - 4..length) else {
            return Ok(None);
        };
        let mask = [mask[0], mask[1], mask[2], mask[3]];
        Ok(Some(Header { fin, opcode, mask, payload: declared as usize, length }))
    }

    /// Handles one complete, unmasked frame: a message when it completes one.
    fn take(&mut self, header: Header, payload: BytesMut) -> Result<Option<Message>, Violation> {
        let data_opcode = match header.opcode {
            OP_PING => return Ok(Some(Message::Ping(payload.freeze()))),
            OP_PONG => return Ok(Some(Message::Pong)),
            OP_CLOSE => return close_message(&payload).map(Some),
            OP_CONTINUATION => {
                let (opcode, data) = self.fragments.as_mut().ok_or(Violation::Protocol)?;
                data.extend_from_slice(&payload);
                if !header.fin {
                    return Ok(None);
                }
                let opcode = *opcode;
                let data = self.fragments.take().map(|(_, data)| data).unwrap_or_default();
                return data_message(opcode, data).map(Some);
            }
            opcode => opcode,
        };
        if !header.fin {
            self.fragments = Some((data_opcode, payload.to_vec()));
            return Ok(None);
        }
        data_message(data_opcode, payload.to_vec()).map(Some)
    }
}

fn data_message(opcode: u8, data: Vec<u8>) -> Result<Message, Violation> {
    if opcode == OP_BINARY {
        return Ok(Message::Binary);
    }
    String::from_utf8(data).map(Message::Text).map_err(|_| Violation::InvalidUtf8)
}

/// A close frame's payload: empty, or a code a peer may send and a UTF-8 reason (§5.5.1).
fn close_message(payload: &[u8]) -> Result<Message, Violation> {
    if payload.is_empty() {
        return Ok(Message::Close(None));
    }
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return Err(Violation::Protocol);
    };
    let code = u16::from_be_bytes(*code);
    if !is_sendable_close_code(code) {
        return Err(Violation::Protocol);
    }
    let reason = std::str::from_utf8(reason).map_err(|_| Violation::InvalidUtf8)?;
    let description = (!reason.is_empty()).then(|| reason.to_owned());
    Ok(Message::Close(Some(CloseReason { code: CloseCode::from(code), description })))
}

/// Whether a peer may send close `code` (§7.4): the defined codes it may use on the
/// wire, and the ranges for libraries and applications.
fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// What the server sends: one unfragmented, unmasked frame each.
pub enum Outgoing<'a> {
    Text(&'a str),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Close(Option<&'a CloseReason>),
}

/// Appends `frame` to `out`.
pub fn encode(frame: Outgoing<'_>, out: &mut Vec<u8>) {
    let mut close_payload = Vec::new();
    let (opcode, payload): (u8, &[u8]) = match frame {
        Outgoing::Text(text) => (OP_TEXT, text.as_bytes()),
        Outgoing::Ping(payload) => (OP_PING, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD as usize)]),
        Outgoing::Pong(payload) => (OP_PONG, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD as usize)]),
        Outgoing::Close(reason) => {
            if let Some(reason) = reason {
                close_payload.extend_from_slice(&u16::from(reason.code).to_be_bytes());
                let description = reason.description.as_deref().unwrap_or_default();
                close_payload.extend_from_slice(truncate_utf8(description, MAX_CONTROL_PAYLOAD as usize - 2));
            }
            (OP_CLOSE, &close_payload)
        }
    };
    out.push(0x80 | opcode);
    match payload.len() {
        short @ 0..=125 => out.push(short as u8),
        medium @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(medium as u16).to_be_bytes());
        }
        long => {
            out.push(127);
            out.extend_from_slice(&(long as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// The longest prefix of `text` within `limit` bytes that ends on a character boundary.
fn truncate_utf8(text: &str, limit: usize) -> &[u8] {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text.as_bytes()[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a client library would write it.
    fn client_frame(first: u8, payload: &[u8], declared: Option<u64>) -> Vec<u8> {
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        let length = declared.unwrap_or(payload.len() as u64);
        let mut out = vec![first];
        match length {
            0..=125 => out.push(0x80 | length as u8),
            126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(length as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&length.to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, Violation> {
        let mut buf = BytesMut::from(bytes);
        let mut messages = Vec::new();
        while let Some(message) = decoder.decode(&mut buf)? {
            messages.push(message);
        }
        Ok(messages)
    }

    #[test]
    fn frames_split_anywhere_decode_to_the_same_messages() {
        let mut bytes = client_frame(0x01, b"{\"id\":", None);
        bytes.extend(client_frame(0x89, b"between", None));
        bytes.extend(client_frame(0x80, "\"é\"}".as_bytes(), None));
        bytes.extend(client_frame(0x81, b"second", None));
        let expected = vec![
            Message::Ping(Bytes::from_static(b"between")),
            Message::Text("{\"id\":\"é\"}".to_owned()),
            Message::Text("second".to_owned()),
        ];
        for split in 0..bytes.len() {
            let mut decoder = Decoder::new(1024);
            let mut buf = BytesMut::new();
            let mut messages = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                buf.extend_from_slice(part);
                while let Some(message) = decoder.decode(&mut buf).unwrap() {
                    messages.push(message);
                }
            }
            assert_eq!(messages, expected, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_header_over_the_limit_is_refused_before_its_payload() {
        let mut decoder = Decoder::new(1024);
        let header = &client_frame(0x81, b"", Some(1 << 30))[..14];
        assert_eq!(decode_all(&mut decoder, header), Err(Violation::FrameTooLarge));
        let mut decoder = Decoder::new(1024);
        let mut bytes = client_frame(0x01, &[b' '; 1000], None);
        bytes.extend(client_frame(0x80, &[b' '; 100], None));
        assert_eq!(decode_all(&mut decoder, &bytes), Err(Violation::MessageTooLarge));
    }

    #[test]
    fn every_rule_of_the_protocol_has_its_violation() {
        let cases: [(&str, Vec<u8>, Violation); 11] = [
            ("unmasked", vec![0x81, 0x00], Violation::Protocol),
            ("reserved bit", client_frame(0xC1, b"x", None), Violation::Protocol),
            ("reserved data opcode", client_frame(0x83, b"", None), Violation::Protocol),
            ("reserved control opcode", client_frame(0x8B, b"", None), Violation::Protocol),
            ("fragmented control", client_frame(0x09, b"x", None), Violation::Protocol),
            ("long control", client_frame(0x89, &[b'x'; 126], None), Violation::Protocol),
            ("lone continuation", client_frame(0x80, b"abc", None), Violation::Protocol),
            ("text not UTF-8", client_frame(0x81, &[0xC3, 0x28], None), Violation::InvalidUtf8),
            ("close code 999", client_frame(0x88, &999u16.to_be_bytes(), None), Violation::Protocol),
            ("close of one byte", client_frame(0x88, &[0x03], None), Violation::Protocol),
            ("close reason not UTF-8", client_frame(0x88, &[0x03, 0xE8, 0xFF, 0xFE], None), Violation::InvalidUtf8),
        ];
        for (name, bytes, expected) in cases {
            assert_eq!(decode_all(&mut Decoder::new(1024), &bytes), Err(expected), "{name}");
        }
        let mut interrupted = client_frame(0x01, b"a", None);
        interrupted.extend(client_frame(0x81, b"b", None));
        assert_eq!(decode_all(&mut Decoder::new(1024), &interrupted), Err(Violation::Protocol));
    }

    #[test]
    fn close_frames_carry_their_code_and_reason() {
        let mut payload = 4000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let messages = decode_all(&mut Decoder::new(1024), &client_frame(0x88, &payload, None)).unwrap();
        let expected = CloseReason { code: CloseCode::Other(4000), description: Some("bye".to_owned()) };
        assert_eq!(messages, vec![Message::Close(Some(expected))]);
        let empty = decode_all(&mut Decoder::new(1024), &client_frame(0x88, b"", None)).unwrap();
        assert_eq!(empty, vec![Message::Close(None)]);
    }

    #[test]
    fn server_frames_use_the_shortest_length_and_no_mask() {
        let mut out = Vec::new();
        encode(Outgoing::Text("hi"), &mut out);
        assert_eq!(out, [0x81, 2, b'h', b'i']);
        let long = "x".repeat(300);
        out.clear();
        encode(Outgoing::Text(&long), &mut out);
        assert_eq!(&out[..4], &[0x81, 126, 0x01, 0x2C]);
        assert_eq!(out.len(), 4 + 300);
        out.clear();
        let reason = CloseReason { code: CloseCode::Away, description: Some("é".repeat(100)) };
        encode(Outgoing::Close(Some(&reason)), &mut out);
        assert_eq!(out[0], 0x88);
        assert!(out[1] <= 125, "a close frame stays a control frame");
        assert_eq!(&out[2..4], &1001u16.to_be_bytes());
        assert!(std::str::from_utf8(&out[4..]).is_ok(), "the reason is cut on a character boundary");
    }
}
