//! A deadline for request bodies: a client that sends complete headers and then
//! trickles its body (one byte every 20 s) would otherwise hold its connection, and a
//! file descriptor, for as long as it likes. The body must arrive in full within
//! `GOIM_BODY_TIMEOUT_SECS` of the request's start; after that the read fails and the
//! request is answered 408. Uploads get `GOIM_UPLOAD_TIMEOUT_SECS` instead. The
//! WebSocket handshake is exempt: its "body" is the socket (`crate::gateway` takes the
//! connection over, and refuses an upgrade of any other request before it gets here).

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{
    Error, HttpMessage as _,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    error::PayloadError,
    http::header,
    middleware::Next,
    web::{self, Bytes},
};
use futures_util::Stream;
use tokio::time::Sleep;

use crate::state::AppState;

/// The gateway's handshake route (`crate::gateway`, which this module may not import).
const WEBSOCKET_PATH: &str = "/api/v1/ws";
/// Uploads may take `GOIM_UPLOAD_TIMEOUT_SECS` instead: files are larger than requests.
pub const UPLOAD_PATH: &str = "/api/v1/uploads";

pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // Only the WebSocket handshake route is exempt: an `Upgrade` header on any other
    // request must not buy its body unlimited time.
    let websocket = req.method() == actix_web::http::Method::GET
        && req.path() == WEBSOCKET_PATH
        && req.headers().contains_key(header::UPGRADE);
    if let (false, Some(state)) = (websocket, req.app_data::<web::Data<AppState>>()) {
        let upload = req.method() == actix_web::http::Method::POST && req.path() == UPLOAD_PATH;
        let limit = if upload { state.config.uploads.upload_timeout } else { state.config.server.body_timeout };
        let deadline = tokio::time::sleep(limit);
        let body = DeadlineBody { inner: req.take_payload(), deadline: Box::pin(deadline) };
        req.set_payload(Payload::Stream { payload: Box::pin(body) });
    }
    next.call(req).await
}

struct DeadlineBody {
    inner: Payload,
    deadline: Pin<Box<Sleep>>,
}

/// Recognised by the JSON extractor's error handler, which answers 408.
pub fn is_body_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut)
}

impl Stream for DeadlineBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(io::ErrorKind::TimedOut, "body timeout")))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
