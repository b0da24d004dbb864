//! Clients built to misbehave, over raw TCP: what they cost the server is bounded in
//! time and in connections.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use crate::support::{TestApp, TestUser, spawn_app_with};

async fn raw(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap()
}

/// A WebSocket of `user` over `tcp` (a connection the test shaped itself).
async fn ws_over(app: &TestApp, user: &TestUser, tcp: TcpStream) -> WebSocketStream<TcpStream> {
    tokio_tungstenite::client_async(app.ws_request(&user.access_token).await, tcp).await.unwrap().0
}

/// Reads frames until the server's close frame and returns its code, counting the
/// text frames before it; panics on a reset or an end without a close frame.
async fn close_code(socket: &mut WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>) -> (Option<u16>, usize) {
    let mut texts = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("the server closes in time") {
            Some(Ok(Message::Text(_))) => texts += 1,
            Some(Ok(Message::Close(frame))) => return (frame.map(|f| u16::from(f.code)), texts),
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("the connection broke instead of closing ({texts} text frames): {error}"),
            None => panic!("the connection ended without a close frame ({texts} text frames)"),
        }
    }
}

/// Reads until the server closes or `wait` passes; returns what arrived and whether the
/// connection was closed.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn a_body_that_trickles_is_answered_408_and_its_connection_closed() {
    let app = spawn_app_with(|config| config.server.body_timeout = Duration::from_secs(1)).await;
    // The second asks for an upgrade it will not get: only the WebSocket handshake
    // route is exempt from the deadline, not any request that says "Upgrade".
    for upgrade in ["", "Upgrade: websocket\r\nConnection: upgrade\r\n"] {
        let mut stream = raw(&app).await;
        let head = format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: goim\r\n{upgrade}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // One more byte now and then, never the whole body.
        let trickle = async {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(1500), trickle).await;
        let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(response.starts_with("HTTP/1.1 408"), "{upgrade:?}: {response}");
        assert!(response.contains("\"code\":\"request_timeout\""), "{response}");
        assert!(closed, "the connection is closed after the 408");
    }
    // A whole body within the deadline is fine.
    let ok = app
        .post_json("/api/v1/auth/login", &serde_json::json!({ "username": "nobody", "password": "wrong horse" }))
        .await;
    assert_eq!(ok.status(), 401);
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(|config| {
        config.server.max_connections = 3;
        config.server.http_workers = 1;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = raw(&app).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: goim\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream); // kept alive, idle
    }
    let mut fourth = raw(&app).await;
    fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: goim\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(1000), fourth.read(&mut buffer)).await;
    assert!(early.is_err(), "a fourth connection is not served while three are open");
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), fourth.read(&mut buffer)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"), "served once one closed");
}

/// A client that stops reading (a tiny receive buffer, never drained) while events pour
/// in is cut off within seconds: its socket is unregistered, it goes offline, and the
/// disconnect is counted once, not once per dropped frame.
#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_within_seconds() {
    use crate::support::{befriend, metric_value, open_direct, send_text};

    let app = spawn_app_with(|config| config.websocket.ws_rate_burst = 1000).await;
    let (ola, pat) = (app.register("stall_ola").await, app.register("stall_pat").await);
    befriend(&app, &ola, &pat).await;
    let conversation = open_direct(&app, &ola, &pat).await;

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let tcp = socket.connect(app.address.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let stalled = ws_over(&app, &pat, tcp).await;

    let connections = |metrics: &str| metric_value(metrics, "goim_ws_connections");
    assert_eq!(connections(&app.get("/metrics").await.text().await.unwrap()), 1.0);
    // About 6 MB of events for Pat, who reads none of them.
    let body = "x".repeat(15_000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut cut_off = false;
    for _ in 0..400 {
        send_text(&app, &ola, conversation, &body).await;
        if connections(&app.get("/metrics").await.text().await.unwrap()) == 0.0 {
            cut_off = true;
            break;
        }
    }
    while !cut_off && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cut_off = connections(&app.get("/metrics").await.text().await.unwrap()) == 0.0;
    }
    assert!(cut_off, "the stalled socket is still registered");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric_value(&metrics, "goim_ws_slow_disconnects_total"), 1.0, "{metrics}");
    drop(stalled);
}

/// The rate-limit close reaches a client that still has requests in flight as a close
/// frame (4008), after the replies already sent, not as a connection reset.
#[tokio::test]
async fn a_rate_limited_client_gets_its_replies_and_a_clean_4008() {
    let app = spawn_app_with(|config| {
        config.websocket.ws_rate_burst = 5;
        config.websocket.ws_rate_per_sec = 1;
    })
    .await;
    let quinn = app.register("flood_quinn").await;
    let mut socket = app.connect(&quinn).await;
    for n in 0..300 {
        socket.send_raw(Message::text(format!(r#"{{"id":"{n}","type":"ping"}}"#))).await;
    }
    let (close, replies) = close_code(&mut socket.socket).await;
    assert_eq!(close, Some(4008));
    // Five within the burst, then 49 refusals; the 50th refusal is the close.
    assert!(replies >= 54, "the replies sent before the close arrived: {replies}");
}

/// A frame header that declares 1 GiB is refused when the header arrives (1009), not
/// after the server has buffered the gigabyte.
#[tokio::test]
async fn a_frame_declaring_a_gigabyte_is_refused_at_its_header() {
    let app = spawn_app_with(|_| {}).await;
    let rita = app.register("huge_rita").await;
    let mut socket = ws_over(&app, &rita, raw(&app).await).await;

    // FIN + text, masked, 64-bit length 2^30, a mask key, then the first MiB of payload.
    let mut bytes = vec![0x81, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4];
    bytes.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    let _ = socket.get_mut().write_all(&bytes).await;
    let (close, _) = close_code(&mut socket).await;
    assert_eq!(close, Some(1009));
}
