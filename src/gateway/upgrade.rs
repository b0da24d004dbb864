//! WebSockets served outside actix-http's HTTP/1 dispatcher. A connection kept by the
//! dispatcher holds an 8 KiB read and an 8 KiB write buffer for life (16 of the 18 KiB
//! an idle socket cost). actix-http hands an upgrade request over together with its
//! connection instead: the request still goes through the whole application (the
//! middleware, [`super::connect`]'s checks, the JSON errors), its response head is
//! written here, and an admitted socket's session then runs on the bare connection
//! ([`super::socket`]) in this same task, so the server still counts the connection.

use std::{cell::RefCell, future::poll_fn, io, pin::Pin, rc::Rc, time::Duration};

use actix_codec::Framed;
use actix_http::{
    ConnectionType, HttpMessage as _, Method, Request, Response, StatusCode,
    body::{BodySize, BoxBody, MessageBody},
    h1,
};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_web::{ResponseError as _, dev::ServiceResponse};
use tokio::net::TcpStream;
use tracing::Instrument as _;

use crate::error::ApiError;

use super::{
    session::{self, Connection},
    socket::{Inbound, Outbound},
};

/// What actix-http hands over: the request and its connection, with the bytes read so far.
pub type Upgraded = (Request, HttpConnection);

type HttpConnection = Framed<TcpStream, h1::Codec>;
type Outgoing = h1::Message<(Response<()>, BodySize)>;

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
/// serves other requests with.
pub fn service<F, B>(
    app: F,
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
            Ok(fn_service(move |upgraded: Upgraded| serve(app.clone(), upgraded)))
        }
    })
}

async fn serve<S, B>(app: Rc<S>, upgraded: Upgraded) -> Result<(), actix_http::Error>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    // Boxed: the handshake's futures are several KiB, and held inline they would be
    // part of this future for the socket's whole life.
    let Some((connection, inbound, outbound)) = Box::pin(handshake(app, upgraded)).await else {
        return Ok(());
    };
    let span = tracing::info_span!("ws", user = %connection.user, connection = connection.registration.id());
    let tasks = connection.state.tasks.clone();
    tasks.track_future(session::run(connection, inbound, outbound).instrument(span)).await;
    Ok(())
}

/// Runs the request through the application and writes its response: the socket's
/// two halves when it was admitted (`101`), `None` when refused.
async fn handshake<S, B>(app: Rc<S>, (request, mut framed): Upgraded) -> Option<(Connection, Inbound, Outbound)>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
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
        let _ = tokio::time::timeout(RESPONSE_TIMEOUT, write_refusal(&mut framed, head, body)).await;
        return None;
    };
    let written = tokio::time::timeout(RESPONSE_TIMEOUT, async {
        put(&mut framed, h1::Message::Item((head, BodySize::None)))?;
        flush(&mut framed).await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return None;
    }
    let parts = framed.into_parts();
    let max_message = connection.state.config.websocket.ws_max_frame_bytes as usize;
    let (read, write) = parts.io.into_split();
    // Only what the client sent right behind its request is kept; the dispatcher's
    // buffers are dropped with the parts.
    let inbound = Inbound::new(read, &parts.read_buf, max_message);
    Some((connection, inbound, Outbound::new(write)))
}

async fn write_refusal(framed: &mut HttpConnection, head: Response<()>, body: BoxBody) -> io::Result<()> {
    // Only the handshake's own refusals come here: small JSON errors. Anything else is
    // not sent as if it were whole: the connection just closes.
    let body = match body.try_into_bytes() {
        Ok(bytes) => bytes,
        Err(body) => match actix_web::body::to_bytes_limited(body, MAX_ERROR_BODY).await {
            Ok(Ok(bytes)) => bytes,
            _ => return Err(io::Error::other("a refusal's body is too large or failed")),
        },
    };
    put(framed, h1::Message::Item((head, BodySize::Sized(body.len() as u64))))?;
    put(framed, h1::Message::Chunk(Some(body)))?;
    put(framed, h1::Message::Chunk(None))?;
    flush(framed).await?;
    poll_fn(|cx| Pin::new(&mut *framed).close::<Outgoing>(cx)).await
}

/// Encodes `message` into the connection's write buffer.
fn put(framed: &mut HttpConnection, message: Outgoing) -> io::Result<()> {
    Pin::new(framed).write(message)
}

async fn flush(framed: &mut HttpConnection) -> io::Result<()> {
    poll_fn(|cx| Pin::new(&mut *framed).flush::<Outgoing>(cx)).await
}
