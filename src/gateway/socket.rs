//! One WebSocket's connection after the handshake: the read half decodes whole messages
//! with [`Decoder`], the write half writes encoded frames. An idle socket holds no
//! buffer at all: bytes are read into a stack chunk and kept only while a frame is
//! incomplete, and each write's frames live only until they are written.

use std::io;

use actix_web::web::BytesMut;
use tokio::{
    io::AsyncWriteExt as _,
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
};

use super::wire::{Decoder, Message, Violation};

/// The most one read takes from the kernel.
const READ_CHUNK: usize = 8 * 1024;

pub struct Inbound {
    io: OwnedReadHalf,
    /// Bytes of a frame not yet complete; empty (and unallocated) between frames.
    pending: BytesMut,
    decoder: Decoder,
    ended: bool,
}

impl Inbound {
    /// `early` is what the client sent right behind its handshake request.
    pub fn new(io: OwnedReadHalf, early: &[u8], max_message: usize) -> Self {
        Self { io, pending: BytesMut::from(early), decoder: Decoder::new(max_message), ended: false }
    }

    /// The next message; `None` once the peer is gone (its end of the stream, a reset)
    /// or after a violation was returned. Cancel-safe: what was read stays in `pending`,
    /// so a `select!` may drop this future at its await.
    pub async fn recv(&mut self) -> Option<Result<Message, Violation>> {
        loop {
            if self.ended {
                return None;
            }
            let decoded = self.decoder.decode(&mut self.pending);
            if self.pending.is_empty() && self.pending.capacity() > 0 {
                self.pending = BytesMut::new();
            }
            match decoded {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => {}
                Err(violation) => {
                    self.ended = true;
                    return Some(Err(violation));
                }
            }
            if self.io.readable().await.is_err() {
                self.ended = true;
                continue;
            }
            match self.read_available() {
                Ok(0) => self.ended = true,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => self.ended = true,
            }
        }
    }

    /// Reads what the kernel holds, through a stack chunk (not kept across awaits).
    fn read_available(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; READ_CHUNK];
        let read = self.io.try_read(&mut chunk)?;
        self.pending.extend_from_slice(&chunk[..read]);
        Ok(read)
    }
}

pub struct Outbound {
    io: OwnedWriteHalf,
}

impl Outbound {
    pub fn new(io: OwnedWriteHalf) -> Self {
        Self { io }
    }

    /// Writes `frames` whole. Not cancel-safe: a caller that stops waiting (a timeout)
    /// must close the connection, as a frame may be half written.
    pub async fn write(&mut self, frames: &[u8]) -> io::Result<()> {
        self.io.write_all(frames).await
    }

    /// Sends our end of the stream (after the close frame).
    pub async fn finish(&mut self) {
        let _ = self.io.shutdown().await;
    }
}
