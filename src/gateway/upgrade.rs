//! WebSockets served outside actix-http's HTTP/1 dispatcher. A connection kept by the
//! dispatcher holds an 8 KiB read and an 8 KiB write buffer for life (16 of the 18 KiB
//! an idle socket cost). actix-http hands an upgrade request over together with its
//! connection instead: the request still goes through the whole application (the
//! middleware, [`super::connect`]'s checks and its `actix_ws::handle`, the JSON errors),
//! with the connection's read half as its payload ([`super::socket::Inbound`], behind
//! [`FrameGuard`]). Its response head is written here; for an admitted socket, the
//! response's body (the frames actix-ws encodes) is then written to the bare connection
//! while the session runs, both in this same task, so the server still counts the
//! connection.

use std::{cell::RefCell, io, rc::Rc, time::Duration};

use actix_codec::{Encoder as _, Framed};
use actix_http::{
    BoxedPayloadStream, ConnectionType, HttpMessage as _, Method, Payload, Request, Response, StatusCode,
    body::{BodySize, BoxBody, MessageBody},
    h1,
};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_web::{ResponseError as _, dev::ServiceResponse, web::BytesMut};
use futures_util::future;
use tokio::{
    io::AsyncWriteExt as _,
    net::{TcpStream, tcp::OwnedWriteHalf},
};
use tracing::Instrument as _;

use crate::{error::ApiError, hub::KillReason};

use super::{
    frame_guard::FrameGuard,
    session::{self, Connection},
    socket::{self, Inbound, Written},
};

/// What actix-http hands over: the request and its connection, with the bytes read so far.
pub type Upgraded = (Request, HttpConnection);

type HttpConnection = Framed<TcpStream, h1::Codec>;

/// The longest a response head (or an error's body) may take to be written.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// An error body larger than this is not expected; the connection closes instead.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Placed in an upgrade request's extensions; [`super::connect`] leaves the admitted
/// socket here, so its session starts once the `101` is written.
#[derive(Clone, Default)]
pub struct Handover(Rc<RefCell<Option<Connection>>>);

impl Handover {
    pub fn admit(&self, connection: Connection) {
        *self.0.borrow_mut() = Some(connection);
    }

    fn take(&self) -> Option<Connection> {
        self.0.borrow_mut().take()
    }
}

/// The upgrade service for one worker: `app` builds the same application the worker
/// serves other requests with; `max_frame` is the largest frame a client may send.
pub fn service<F, B>(
    app: F,
    max_frame: u64,
) -> impl ServiceFactory<Upgraded, Config = (), Response = (), Error = actix_http::Error, InitError = ()>
where
    F: ServiceFactory<Request, Config = (), Response = ServiceResponse<B>, Error = actix_web::Error, InitError = ()>
        + 'static,
    B: MessageBody + 'static,
{
    let app = Rc::new(app);
    fn_factory(move || {
        let app = app.clone();
        async move {
            let app = Rc::new(app.new_service(()).await?);
            Ok(fn_service(move |upgraded: Upgraded| serve(app.clone(), max_frame, upgraded)))
        }
    })
}

/// Not an `async fn`, and the handshake boxed: an idle socket would otherwise carry
/// the handshake's futures, and the place of this function's arguments, for life.
fn serve<S, B>(app: Rc<S>, max_frame: u64, upgraded: Upgraded) -> impl Future<Output = Result<(), actix_http::Error>>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    let handshake = Box::pin(handshake(app, max_frame, upgraded));
    async move {
        let Some((connection, frames, write)) = handshake.await else {
            return Ok(());
        };
        let span = tracing::info_span!("ws", user = %connection.user, connection = connection.registration.id());
        let tasks = connection.state.tasks.clone();
        let kill = connection.registration.kill.clone();
        let writing = async move {
            let mut frames = frames;
            match socket::write_frames(write, &mut frames).await {
                Written::Finished => {}
                Written::Failed => kill.kill(KillReason::ConnectionLost),
                Written::Stalled => kill.kill(KillReason::SlowConsumer),
            }
        };
        let socket = future::join(session::run(connection), writing);
        let (registration, ()) = tasks.track_future(socket.instrument(span)).await;
        // Last: the connection counts as open until its last frame is written.
        drop(registration);
        Ok(())
    }
}

/// Runs the request through the application and writes its response head. Admitted
/// (`101`): the session, the frames actix-ws will encode, and where to write them;
/// refused: `None`, with the error written and the connection closed.
async fn handshake<S, B>(
    app: Rc<S>,
    max_frame: u64,
    (request, framed): Upgraded,
) -> Option<(Connection, BoxBody, OwnedWriteHalf)>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    // The dispatcher's buffers go with the parts; only what the client sent right
    // behind its request is kept, as the start of the payload.
    let parts = framed.into_parts();
    let mut codec = parts.codec;
    // Answers to requests pipelined ahead of this one, if any, not yet written.
    let mut unwritten = parts.write_buf;
    let (read, mut write) = parts.io.into_split();
    let inbound = FrameGuard::new(Inbound::new(read, &parts.read_buf), max_frame);
    let payload: BoxedPayloadStream = Box::pin(inbound);
    let (request, _) = request.replace_payload(Payload::Stream { payload });
    let handover = Handover::default();
    request.extensions_mut().insert(handover.clone());
    let response: Response<BoxBody> = if request.method() != Method::GET || request.path() != super::WEBSOCKET_PATH {
        // Any request that says `Upgrade: websocket` comes here. Another route's body,
        // if any, is still unread on the connection, and its answer could be any size:
        // refused whole rather than served without its body or written from here.
        let refusal = ApiError::bad_request("upgrade_not_supported", "only GET /api/v1/ws upgrades (to a WebSocket)");
        refusal.error_response().into()
    } else {
        match app.call(request).await {
            Ok(response) => response.map_into_boxed_body().into(),
            Err(error) => error.error_response().into(),
        }
    };
    let (mut head, body) = response.into_parts();
    let admitted = handover.take().filter(|_| head.status() == StatusCode::SWITCHING_PROTOCOLS);
    let Some(connection) = admitted else {
        // Refused: the error goes out whole and the connection closes.
        head.head_mut().set_connection_type(ConnectionType::Close);
        let _ =
            tokio::time::timeout(RESPONSE_TIMEOUT, write_refusal(&mut write, &mut codec, unwritten, head, body)).await;
        return None;
    };
    codec.encode(h1::Message::Item((head, BodySize::None)), &mut unwritten).ok()?;
    let written = tokio::time::timeout(RESPONSE_TIMEOUT, write.write_all(&unwritten)).await;
    matches!(written, Ok(Ok(()))).then_some((connection, body, write))
}

async fn write_refusal(
    write: &mut OwnedWriteHalf,
    codec: &mut h1::Codec,
    mut bytes: BytesMut,
    head: Response<()>,
    body: BoxBody,
) -> io::Result<()> {
    // Only the handshake's own refusals come here: small JSON errors. Anything else is
    // not sent as if it were whole: the connection just closes.
    let body = match body.try_into_bytes() {
        Ok(bytes) => bytes,
        Err(body) => match actix_web::body::to_bytes_limited(body, MAX_ERROR_BODY).await {
            Ok(Ok(bytes)) => bytes,
            _ => return Err(io::Error::other("a refusal's body is too large or failed")),
        },
    };
    codec.encode(h1::Message::Item((head, BodySize::Sized(body.len() as u64))), &mut bytes)?;
    codec.encode(h1::Message::Chunk(Some(body)), &mut bytes)?;
    codec.encode(h1::Message::Chunk(None), &mut bytes)?;
    write.write_all(&bytes).await?;
    write.shutdown().await
}
