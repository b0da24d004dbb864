//! Clients built to misbehave, over raw TCP: what they cost the server is bounded in
//! time and in connections.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use crate::support::{TestApp, TestUser, binary::RunningGoim, cluster, spawn_app_with, test_config};

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

/// A complete WebSocket handshake request with a bearer token, as bytes on the wire.
fn raw_handshake(access_token: &str) -> String {
    format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: goim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: goim.v1\r\nAuthorization: Bearer {access_token}\r\n\r\n"
    )
}

/// Headers that make actix-http hand a request to the WebSocket upgrade.
const UPGRADE: &str = "Upgrade: websocket\r\nConnection: upgrade\r\n";

#[tokio::test]
async fn a_body_that_trickles_is_answered_408_and_its_connection_closed() {
    let app = spawn_app_with(|config| config.server.body_timeout = Duration::from_secs(1)).await;
    // The second asks for an upgrade it will not get: that must not buy its body
    // unlimited time either. It is refused at once, its body unread.
    let cases = [("", "HTTP/1.1 408", "request_timeout"), (UPGRADE, "HTTP/1.1 400", "upgrade_not_supported")];
    for (upgrade, status, code) in cases {
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
        assert!(response.starts_with(status), "{upgrade:?}: {response}");
        assert!(response.contains(&format!("\"code\":\"{code}\"")), "{response}");
        assert!(closed, "the connection is closed after the refusal");
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

/// A WebSocket runs outside the HTTP dispatcher, inside its connection's task: it holds
/// its place under `GOIM_MAX_CONNECTIONS` while open and gives it back when it closes.
#[tokio::test]
async fn open_websockets_count_against_the_connection_cap() {
    let mut app = spawn_app_with(|config| {
        config.server.max_connections = 3;
        config.server.http_workers = 1;
    })
    .await;
    // No pooled connection of the test's own may take one of the three places.
    app.client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let user = app.register("cap_holder").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let request = app.ws_bearer_request(&user.access_token);
        let opened = tokio::time::timeout(Duration::from_secs(10), async {
            tokio_tungstenite::client_async(request, raw(&app).await).await.expect("a handshake")
        });
        sockets.push(opened.await.expect("one of the three places").0);
    }
    let mut fourth = raw(&app).await;
    fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: goim\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(1000), fourth.read(&mut buffer)).await;
    assert!(early.is_err(), "a fourth connection is not served while three sockets are open");
    // actix-server wakes its acceptor for a full worker on the second close, not the
    // first (its counter starts at one); two sockets close.
    let started = std::time::Instant::now();
    sockets.truncate(1);
    let n = tokio::time::timeout(Duration::from_secs(10), fourth.read(&mut buffer)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"), "served once sockets closed");
    assert!(started.elapsed() < Duration::from_secs(8), "the closed sockets' places are freed by their closing");
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

/// A client may send its first frames right behind the handshake request, in the same
/// packet, without waiting for the 101 (RFC 6455 §4.1 allows it once the 101 arrives,
/// and pipelining clients do it anyway). Those bytes reach the server with the request;
/// they must become the socket's first messages, not be dropped with the HTTP parser.
#[tokio::test]
async fn frames_sent_right_behind_the_handshake_are_answered() {
    let app = spawn_app_with(|_| {}).await;
    let user = app.register("early_bird").await;
    let mut tcp = raw(&app).await;
    let mut bytes = raw_handshake(&user.access_token).into_bytes();
    bytes.extend(client_frame(0x81, br#"{"id":"early-1","type":"ping"}"#, true, None));
    bytes.extend(client_frame(0x81, br#"{"id":"early-2","type":"ping"}"#, true, None));
    tcp.write_all(&bytes).await.unwrap();

    let mut received = Vec::new();
    let mut replies = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while replies.len() < 2 {
        let mut chunk = [0u8; 4096];
        let read =
            tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await.expect("both replies in time").unwrap();
        assert!(read > 0, "the server closed: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&chunk[..read]);
        let Some(head_end) = received.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        assert!(received.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&received));
        // Unmasked server text frames, each under 126 bytes.
        replies.clear();
        let mut frames = &received[head_end + 4..];
        while let [0x81, length, rest @ ..] = frames
            && rest.len() >= usize::from(*length)
        {
            replies.push(String::from_utf8_lossy(&rest[..usize::from(*length)]).into_owned());
            frames = &rest[usize::from(*length)..];
        }
    }
    assert!(replies[0].contains(r#""id":"early-1""#) && replies[0].contains("pong"), "{replies:?}");
    assert!(replies[1].contains(r#""id":"early-2""#) && replies[1].contains("pong"), "{replies:?}");
}

/// Pings are held to the request rate too: each would cost the server a write and a
/// packet. A flood gets its burst of pongs, then 4008.
#[tokio::test]
async fn a_ping_flood_gets_a_few_pongs_then_4008() {
    let app = spawn_app_with(|config| {
        config.websocket.ws_rate_burst = 5;
        config.websocket.ws_rate_per_sec = 1;
    })
    .await;
    let user = app.register("ping_flooder").await;
    let mut socket = ws_over(&app, &user, raw(&app).await).await;
    let flood: Vec<u8> = (0..300).flat_map(|_| client_frame(0x89, b"p", true, None)).collect();
    socket.get_mut().write_all(&flood).await.unwrap();
    let mut pongs = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("closed in time") {
            Some(Ok(Message::Pong(_))) => pongs += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(close, Some(4008));
    // The burst of 5, plus a token a second for however long a loaded machine takes.
    assert!((5..=15).contains(&pongs), "the burst's pongs, not one per ping: {pongs}");
}

/// Only the handshake route is upgraded; any other request asking for a WebSocket is
/// refused whole (its answer is not written from outside the HTTP dispatcher).
#[tokio::test]
async fn an_upgrade_of_another_route_is_refused() {
    let app = spawn_app_with(|_| {}).await;
    let mut stream = raw(&app).await;
    let head = format!("GET /healthz HTTP/1.1\r\nHost: goim\r\n{UPGRADE}Sec-WebSocket-Version: 13\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("\"code\":\"upgrade_not_supported\""), "{response}");
    assert!(closed, "the connection is closed after the refusal");
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

/// A client frame, masked as RFC 6455 requires of clients unless `masked` is false;
/// `declared` overrides the length field (the payload sent is still `payload`).
fn client_frame(first_byte: u8, payload: &[u8], masked: bool, declared: Option<u64>) -> Vec<u8> {
    let length = declared.unwrap_or(payload.len() as u64);
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = vec![first_byte];
    match length {
        0..=125 => frame.push(mask_bit | length as u8),
        126..=0xFFFF => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&length.to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in KiB")
}

/// A real `goim` process on `peer`'s database, for cases whose cost is measured in the
/// server's own memory.
async fn separate_goim(
    peer: &TestApp,
    work_dir: &std::path::Path,
    settings: &[(&str, &str)],
) -> (RunningGoim, TestApp) {
    let database_url = cluster().database_url(&peer.db_options);
    let secret = test_config().auth.jwt_secret.expect("test secret");
    let mut env = vec![("DATABASE_URL", database_url.as_str()), ("GOIM_JWT_SECRET", secret.expose())];
    env.extend_from_slice(settings);
    let goim = RunningGoim::start_with(work_dir, &env);
    let app = goim.app(peer);
    app.wait_until_ready().await;
    (goim, app)
}

#[tokio::test]
async fn every_rfc_6455_violation_gets_its_close_code_and_memory_stays_bounded() {
    let peer = spawn_app_with(|_| {}).await;
    let work_dir = tempfile::tempdir().unwrap();
    let (goim, app) = separate_goim(&peer, work_dir.path(), &[]).await;
    let user = app.register("rfc_abuser").await;
    let ping = br#"{"id":"1","type":"ping"}"#;
    let max = 64 * 1024;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an unmasked client frame (§5.1)", client_frame(0x81, ping, false, None), 1002),
        ("a reserved bit without an extension (§5.2)", client_frame(0x81 | 0x40, ping, true, None), 1002),
        ("a reserved data opcode (§5.2)", client_frame(0x83, b"", true, None), 1002),
        ("a reserved control opcode (§5.2)", client_frame(0x8B, b"", true, None), 1002),
        ("a fragmented control frame (§5.5)", client_frame(0x09, b"x", true, None), 1002),
        ("a control frame over 125 bytes (§5.5)", client_frame(0x89, &[b'x'; 126], true, None), 1002),
        ("a continuation with nothing to continue (§5.4)", client_frame(0x80, b"abc", true, None), 1002),
        (
            "a whole message inside a fragmented one (§5.4)",
            {
                let mut frames = client_frame(0x01, br#"{"id":"#, true, None);
                frames.extend(client_frame(0x81, ping, true, None));
                frames
            },
            1002,
        ),
        ("text that is not UTF-8 (§8.1)", client_frame(0x81, &[0xC3, 0x28], true, None), 1007),
        ("a close code no peer may send (§7.4)", client_frame(0x88, &999u16.to_be_bytes(), true, None), 1002),
        ("a close payload of one byte (§5.5.1)", client_frame(0x88, &[0x03], true, None), 1002),
        ("a close reason that is not UTF-8 (§5.5.1)", client_frame(0x88, &[0x03, 0xE8, 0xFF, 0xFE], true, None), 1007),
        ("a close frame over 125 bytes (§5.5)", client_frame(0x88, &[b'x'; 126], true, None), 1002),
        (
            "a message in a thousand empty fragments (our limit)",
            {
                let mut frames = client_frame(0x01, b"", true, None);
                frames.extend((0..1000).flat_map(|_| client_frame(0x00, b"", true, None)));
                frames
            },
            1009,
        ),
        ("a frame declaring 1 GiB (§5.2, our limit)", client_frame(0x81, &[b'a'; 65536], true, Some(1 << 30)), 1009),
        (
            "a fragmented message past the limit",
            {
                let mut frames = client_frame(0x01, &vec![b' '; max - 100], true, None);
                frames.extend(client_frame(0x80, &vec![b' '; max - 100], true, None));
                frames
            },
            1009,
        ),
    ];
    for (name, bytes, expected) in cases {
        let mut socket = ws_over(&app, &user, raw(&app).await).await;
        let _ = socket.get_mut().write_all(&bytes).await;
        let (close, _) = close_code(&mut socket).await;
        assert_eq!(close, Some(expected), "{name}");
    }

    // A request in the same packet as a violation is answered before the close.
    let mut socket = ws_over(&app, &user, raw(&app).await).await;
    let mut frames = client_frame(0x81, br#"{"id":"before","type":"ping"}"#, true, None);
    frames.extend(client_frame(0x81 | 0x40, ping, true, None));
    socket.get_mut().write_all(&frames).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a reply in time") {
        Some(Ok(Message::Text(text))) => assert!(text.contains(r#""id":"before""#), "{text}"),
        other => panic!("the request before the violation got no reply: {other:?}"),
    }
    assert_eq!(close_code(&mut socket).await.0, Some(1002), "then the violation closes the socket");

    // A message in fragments, with a ping between them (§5.4 allows it), is one request.
    let mut socket = ws_over(&app, &user, raw(&app).await).await;
    let mut frames = client_frame(0x01, br#"{"id":"frag","#, true, None);
    frames.extend(client_frame(0x89, b"between", true, None));
    frames.extend(client_frame(0x80, br#""type":"ping"}"#, true, None));
    socket.get_mut().write_all(&frames).await.unwrap();
    let reply = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a reply in time") {
            Some(Ok(Message::Text(text))) => break text.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("the fragmented request got no reply: {other:?}"),
        }
    };
    assert!(reply.contains(r#""id":"frag""#) && reply.contains("pong"), "{reply}");
    // The peer's own close is answered with its code.
    socket.get_mut().write_all(&client_frame(0x88, &4000u16.to_be_bytes(), true, None)).await.unwrap();
    assert_eq!(close_code(&mut socket).await.0, Some(4000), "the close code is echoed");

    let rss_mib = resident_kib(goim.child.id()) / 1024;
    assert!(rss_mib < 100, "the server holds {rss_mib} MiB after the abuse");
}

#[tokio::test]
async fn a_socket_does_not_keep_the_buffer_its_largest_message_needed() {
    const SOCKETS: usize = 200;
    let peer = spawn_app_with(|_| {}).await;
    let work_dir = tempfile::tempdir().unwrap();
    // Two workers, as on the machine the limit below was set on: each worker thread has
    // its own allocator arena, and so its own high-water mark.
    let settings = [("GOIM_WS_MAX_CONNECTIONS_PER_USER", "1000"), ("GOIM_HTTP_WORKERS", "2")];
    let (goim, app) = separate_goim(&peer, work_dir.path(), &settings).await;
    let user = app.register("large_lars").await;
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(ws_over(&app, &user, raw(&app).await).await);
    }
    async fn request(socket: &mut WebSocketStream<TcpStream>, frame: &[u8], id: &str) {
        socket.get_mut().write_all(frame).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a reply in time") {
                Some(Ok(Message::Text(text))) if text.contains(&format!(r#""id":"{id}""#)) => return,
                Some(Ok(_)) => continue,
                other => panic!("no reply to {id}: {other:?}"),
            }
        }
    }
    let small = client_frame(0x81, br#"{"id":"small","type":"ping"}"#, true, None);
    for socket in &mut sockets {
        request(socket, &small, "small").await;
    }
    let before = resident_kib(goim.child.id());

    // Each socket sends one 60 KB request (its padding is refused), ten at a time so
    // that only ten are ever in memory together.
    let large = format!(r#"{{"id":"large","type":"ping","padding":"{}"}}"#, "x".repeat(60_000));
    let large = client_frame(0x81, large.as_bytes(), true, None);
    for group in sockets.chunks_mut(10) {
        futures_util::future::join_all(group.iter_mut().map(|socket| request(socket, &large, "large"))).await;
    }
    let grown = resident_kib(goim.child.id()).saturating_sub(before);
    // A socket that kept its read buffer would hold 60 KB more: 12 MiB for these 200.
    assert!(grown < 4 * 1024, "the server grew by {grown} KiB after {SOCKETS} sockets sent one large message each");
    for socket in &mut sockets {
        request(socket, &small, "small").await;
    }
}

#[tokio::test]
async fn half_open_connections_and_trickled_handshakes_cost_seconds_not_the_server() {
    let peer = spawn_app_with(|_| {}).await;
    let work_dir = tempfile::tempdir().unwrap();
    let (goim, app) = separate_goim(&peer, work_dir.path(), &[]).await;
    let user = app.register("half_open").await;

    // Hundreds of connections that send half a request line and then nothing.
    let mut idle = Vec::new();
    for _ in 0..400 {
        let mut stream = raw(&app).await;
        stream.write_all(b"GET /api/v1/ws HTT").await.unwrap();
        idle.push(stream);
    }
    // A handshake trickled a byte every 100 ms would take half a minute.
    let mut trickled = raw(&app).await;
    let handshake = raw_handshake(&user.access_token);
    let trickle = async {
        for byte in handshake.as_bytes() {
            if trickled.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Meanwhile everyone else is served as usual.
    let served = async {
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 200, "the server still answers");
        let mut socket = app.connect(&user).await;
        assert_eq!(socket.request("ping", serde_json::json!({})).await["ok"], true);
    };
    let (_, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(8), trickle), served);
    let (_, closed) = read_until_closed(&mut trickled, Duration::from_secs(3)).await;
    assert!(closed, "the trickled handshake was cut off by the request-head timeout");
    // The server's request-head timeout (actix's 5 s) closed the idle ones.
    let mut closed = 0;
    for stream in &mut idle {
        let (_, was_closed) = read_until_closed(stream, Duration::from_secs(3)).await;
        closed += usize::from(was_closed);
    }
    assert_eq!(closed, idle.len(), "every half-open connection was closed");
    let rss_mib = resident_kib(goim.child.id()) / 1024;
    assert!(rss_mib < 100, "the server holds {rss_mib} MiB");
}

#[tokio::test]
async fn a_locked_table_is_503_with_retry_after_over_rest_and_websocket_and_never_a_false_ack() {
    let app = spawn_app_with(|config| config.database.db_statement_timeout = Duration::from_secs(1)).await;
    let (ann, bob) = (app.register("locked_ann").await, app.register("locked_bob").await);
    crate::support::befriend(&app, &ann, &bob).await;
    let conversation = crate::support::open_direct(&app, &ann, &bob).await;
    let mut ws = app.connect(&ann).await;

    // An operator's migration (or a stuck transaction) holds the messages table.
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();

    let messages = format!("/api/v1/conversations/{conversation}/messages");
    let send_over_rest = |id: uuid::Uuid| {
        let body = serde_json::json!({ "client_msg_id": id, "body": "during the lock" });
        app.client.post(app.url(&messages)).bearer_auth(&ann.access_token).json(&body).send()
    };
    let rest_id = uuid::Uuid::new_v4();
    let rest = send_over_rest(rest_id).await.unwrap();
    assert_eq!(rest.status(), 503);
    assert!(rest.headers().get("retry-after").is_some(), "503 says when to come back");
    assert_eq!(crate::support::error_code(rest, 503).await, "service_unavailable");

    let ws_id = uuid::Uuid::new_v4();
    let reply = ws
        .request(
            "send",
            serde_json::json!({ "conversation_id": conversation, "message": { "client_msg_id": ws_id, "body": "ws" } }),
        )
        .await;
    assert_eq!(reply["error"]["code"], "service_unavailable", "{reply}");

    blocker.rollback().await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE client_msg_id = ANY($1)")
        .bind(vec![rest_id, ws_id])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "what was refused was not stored");
    // And once the lock is gone the same request goes through.
    let retry = send_over_rest(rest_id).await.unwrap();
    assert_eq!(retry.status(), 201);
}
