//! One WebSocket's bytes after the handshake, outside actix-http's dispatcher. This
//! module only moves bytes between the framing and the connection: [`Inbound`] is the
//! request payload the client's frames are decoded from
//! ([`super::client_messages::ClientMessages`]), read straight off the socket, and
//! [`write_frames`] writes what actix-ws encodes (the body of the `101` response).
//! Neither keeps a buffer while the socket is idle: reads go through a stack chunk and
//! are handed on at once, and each write's bytes live until written.

use std::{
    mem::{self, MaybeUninit},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{
    body::{BoxBody, MessageBody as _},
    error::PayloadError,
    web::Bytes,
};
use futures_util::Stream;
use tokio::{
    io::{AsyncRead, AsyncWriteExt as _, ReadBuf},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
};

/// The most one read takes from the kernel.
const READ_CHUNK: usize = 8 * 1024;
/// How much is read in one go before the reader yields to the runtime: a client that
/// never stops sending (a large frame in many pieces) must not keep its task running
/// while other sockets wait.
const READ_BURST: usize = 64 * 1024;
/// Longest wait for one write before the client counts as not reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// What one write (and its [`WRITE_TIMEOUT`]) covers at most: actix-ws joins whatever
/// is queued into one buffer, which can be megabytes, and a client on a slow link that
/// keeps reading is not one that stopped.
const WRITE_SLICE: usize = 64 * 1024;

/// The client's bytes, as the WebSocket's request payload.
pub struct Inbound {
    io: OwnedReadHalf,
    /// What the client sent right behind its handshake request; handed on first.
    early: Bytes,
    read_since_pause: usize,
    ended: bool,
}

impl Inbound {
    /// `early` is copied: it is the tail of the dispatcher's 8 KiB read buffer, which a
    /// reference would keep alive for the socket's life.
    pub fn new(io: OwnedReadHalf, early: &[u8]) -> Self {
        Self { io, early: Bytes::copy_from_slice(early), read_since_pause: 0, ended: false }
    }
}

impl Stream for Inbound {
    type Item = Result<Bytes, PayloadError>;

    /// Ends (rather than fails) when the peer is gone, by its end of the stream or a
    /// reset: either way there is no one left to send a close frame to.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            return Poll::Ready(Some(Ok(mem::take(&mut this.early))));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        if this.read_since_pause >= READ_BURST {
            this.read_since_pause = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
            Poll::Pending => {
                this.read_since_pause = 0;
                Poll::Pending
            }
            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                this.read_since_pause += buf.filled().len();
                Poll::Ready(Some(Ok(Bytes::copy_from_slice(buf.filled()))))
            }
            Poll::Ready(_) => {
                this.ended = true;
                Poll::Ready(None)
            }
        }
    }
}

/// How writing the frames ended.
pub enum Written {
    /// actix-ws ended the stream (after its close frame), and ours was ended too.
    Finished,
    /// A write failed: the peer is gone.
    Failed,
    /// A slice of the frames could not be written within [`WRITE_TIMEOUT`]: the client
    /// stopped reading and the kernel's buffers are full.
    Stalled,
}

/// Writes the frames actix-ws encodes until it ends the stream. A failed or stalled
/// write ends it early: a frame may be half written, so nothing more can follow.
/// `frames` is borrowed so that the caller can say why before the session learns, by
/// the body's drop, that the connection is gone.
pub async fn write_frames(mut io: OwnedWriteHalf, frames: &mut BoxBody) -> Written {
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut *frames).poll_next(cx)).await;
        let Some(Ok(bytes)) = next else { break };
        for slice in bytes.chunks(WRITE_SLICE) {
            match tokio::time::timeout(WRITE_TIMEOUT, io.write_all(slice)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Written::Failed,
                Err(_) => return Written::Stalled,
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
    Written::Finished
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::Wake,
    };

    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_long_burst_pauses_at_its_budget_and_loses_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let sent = READ_BURST + 4 * READ_CHUNK;
        client.write_all(&vec![7u8; sent]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (read, _write) = server.into_split();
        let mut inbound = Inbound::new(read, b"early");
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut poll = |inbound: &mut Inbound| match Pin::new(inbound).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(bytes))) => Some(bytes),
            Poll::Pending => None,
            other => panic!("the stream ended or failed: {other:?}"),
        };
        assert_eq!(poll(&mut inbound).as_deref(), Some(&b"early"[..]), "the early bytes come first");
        let mut before_pause = 0;
        while let Some(bytes) = poll(&mut inbound) {
            before_pause += bytes.len();
        }
        assert!(before_pause >= READ_BURST, "paused before its budget: {before_pause}");
        assert!(before_pause < READ_BURST + READ_CHUNK, "read past its budget: {before_pause}");
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "a pause asks to be polled again at once");
        let mut rest = 0;
        while rest < sent - before_pause {
            match poll(&mut inbound) {
                Some(bytes) => rest += bytes.len(),
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert_eq!(before_pause + rest, sent);
        drop(client);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(Pin::new(&mut inbound).poll_next(&mut cx), Poll::Ready(None)), "the peer's end ends it");
    }
}
