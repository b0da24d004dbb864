//! Noticing a peer that vanished. When a client's TCP connection is reset before it
//! sent anything more, actix-http ends the connection with an I/O error and drops the
//! request payload without ending it, so the socket's message stream would wait
//! forever (until the next ping failed to write). The response body, however, is always
//! dropped with the connection: [`WatchedBody`] turns that drop into a signal the
//! session loop waits on.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{
    body::{BodySize, MessageBody},
    web::Bytes,
};
use tokio_util::sync::{CancellationToken, DropGuard};

/// A response body that cancels its token when the server drops it.
pub struct WatchedBody<B> {
    inner: B,
    _gone: DropGuard,
}

impl<B> WatchedBody<B> {
    /// Wraps `inner`; `gone` is cancelled when the body is dropped.
    pub fn new(inner: B, gone: CancellationToken) -> Self {
        Self { inner, _gone: gone.drop_guard() }
    }
}

impl<B: MessageBody + Unpin> MessageBody for WatchedBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_body_cancels_the_token() {
        let gone = CancellationToken::new();
        let body = WatchedBody::new(actix_web::body::BoxBody::new("x"), gone.clone());
        assert!(!gone.is_cancelled());
        assert_eq!(body.size(), BodySize::Sized(1));
        drop(body);
        assert!(gone.is_cancelled());
    }
}
