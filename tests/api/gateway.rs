//! The WebSocket gateway with real clients against the running server.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{Frame, coding::Data, coding::OpCode},
};
use uuid::Uuid;

use crate::support::{TestApp, TestUser, befriend, error_code, open_direct, spawn_app, spawn_app_with, ws::Follower};

async fn friends_with_conversation(app: &TestApp, a: &str, b: &str) -> (TestUser, TestUser, i64) {
    let (a, b) = (app.register(a).await, app.register(b).await);
    befriend(app, &a, &b).await;
    let conversation = open_direct(app, &a, &b).await;
    (a, b, conversation)
}

fn text(body: &str) -> Value {
    json!({ "client_msg_id": Uuid::new_v4(), "body": body })
}

async fn handshake_status(app: &TestApp, query: &str, protocol: Option<&str>, origin: Option<&str>) -> (u16, Value) {
    // A client of its own, without pooling: an upgrade request's connection must not
    // be reused for the next request, whatever the answer was.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(10)).build().unwrap();
    let mut request = client
        .get(app.url(&format!("/api/v1/ws{query}")))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(protocol) = protocol {
        request = request.header("sec-websocket-protocol", protocol);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_handshake_refuses_bad_tickets_protocols_and_origins_before_upgrading() {
    let app = spawn_app().await;
    let user = app.register("hs_user").await;
    let ticket = app.ticket(&user).await;
    let (status, body) = handshake_status(&app, &format!("?ticket={ticket}"), None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("subprotocol_required")));
    let (status, body) = handshake_status(&app, &format!("?ticket={ticket}"), Some("chat.v9"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unsupported_subprotocol")));
    let (status, body) =
        handshake_status(&app, &format!("?ticket={ticket}"), Some("goim.v1"), Some("https://evil.example")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("origin_not_allowed")));
    let (status, body) = handshake_status(&app, "?ticket=forged", Some("goim.v1"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_ticket")));
    let (status, body) = handshake_status(&app, "", Some("goim.v1"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")));

    // The refused attempts did not use the ticket up; the good one does.
    let (status, _) = handshake_status(&app, &format!("?ticket={ticket}"), Some("goim.v1"), Some(&app.address)).await;
    assert_eq!(status, 101);
    let (status, body) = handshake_status(&app, &format!("?ticket={ticket}"), Some("goim.v1"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_ticket")), "tickets are single use");

    // Non-browser clients may use the access token header instead of a ticket.
    assert!(tokio_tungstenite::connect_async(app.ws_bearer_request(&user.access_token)).await.is_ok());
    let ticket_without_login = app.client.post(app.url("/api/v1/ws/ticket")).send().await.unwrap();
    assert_eq!(error_code(ticket_without_login, 401).await, "missing_token");
}

#[tokio::test]
async fn messages_reach_every_device_in_order_with_acks_after_commit() {
    let app = spawn_app().await;
    let (ann, ben, conversation) = friends_with_conversation(&app, "ws_ann", "ws_ben").await;
    let mut ann_phone = app.connect(&ann).await;
    let mut ann_laptop = app.connect(&ann).await;
    let mut ben_phone = app.connect(&ben).await;

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            ann_phone.send("send", json!({ "conversation_id": conversation, "message": text(&format!("m{i}")) })).await,
        );
    }
    let mut acked = Vec::new();
    for id in &ids {
        let reply = ann_phone.reply(id).await;
        assert_eq!(reply["ok"], true, "{reply}");
        acked.push(reply["data"]["seq"].as_i64().unwrap());
    }
    acked.sort();
    assert_eq!(acked, [1, 2, 3, 4, 5]);
    for device in [&mut ben_phone, &mut ann_laptop] {
        let mut seen = Vec::new();
        for seq in 1..=5 {
            let event = device.event("message_created", |e| e["message"]["seq"] == seq).await;
            seen.push(event["message"]["seq"].as_i64().unwrap());
        }
        assert_eq!(seen, [1, 2, 3, 4, 5]);
    }
    // Ordered delivery: the events arrived in seq order on each socket.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored, 5);

    // A REST send reaches the sockets too: one path behind both.
    let response = app
        .send_as(
            Method::POST,
            &ben.access_token,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&text("via rest")),
        )
        .await;
    assert_eq!(response.status(), 201);
    let event = ann_laptop.event("message_created", |e| e["message"]["body"] == "via rest").await;
    assert_eq!(event["message"]["seq"], 6);
}

#[tokio::test]
async fn read_and_delivery_receipts_and_unread_counts_move() {
    let app = spawn_app().await;
    let (cat, dan, conversation) = friends_with_conversation(&app, "ws_cat", "ws_dan").await;
    let mut cat_ws = app.connect(&cat).await;
    let mut dan_ws = app.connect(&dan).await;
    for i in 0..3 {
        cat_ws.request("send", json!({ "conversation_id": conversation, "message": text(&format!("hi {i}")) })).await;
    }
    let list = dan_ws.request("conversations", json!({})).await;
    assert_eq!(list["data"]["items"][0]["unread"], 3);

    let delivered = dan_ws.request("delivered", json!({ "conversation_id": conversation, "seq": 3 })).await;
    assert_eq!(delivered["data"]["last_delivered_seq"], 3);
    let receipt = cat_ws.event("delivery_receipt", |e| e["user_id"] == dan.id).await;
    assert_eq!(receipt["last_delivered_seq"], 3);

    let read = dan_ws.request("read", json!({ "conversation_id": conversation, "seq": 2 })).await;
    assert_eq!(read["data"]["last_read_seq"], 2);
    let receipt = cat_ws.event("read_marker_moved", |e| e["user_id"] == dan.id).await;
    assert_eq!(receipt["last_read_seq"], 2);
    let list = dan_ws.request("conversations", json!({})).await;
    assert_eq!(list["data"]["items"][0]["unread"], 1);
    let receipts = cat_ws.request("receipts", json!({ "conversation_id": conversation })).await;
    let dan_marker =
        receipts["data"]["members"].as_array().unwrap().iter().find(|m| m["user_id"] == dan.id).cloned().unwrap();
    assert_eq!((dan_marker["last_read_seq"].as_i64(), dan_marker["last_delivered_seq"].as_i64()), (Some(2), Some(3)));
}

#[tokio::test]
async fn typing_reaches_the_peer_expires_and_is_never_stored() {
    let app = spawn_app().await;
    let (eve, fay, conversation) = friends_with_conversation(&app, "ws_eve", "ws_fay").await;
    let mut eve_ws = app.connect(&eve).await;
    let mut fay_ws = app.connect(&fay).await;
    let reply = eve_ws.request("typing", json!({ "conversation_id": conversation, "typing": true })).await;
    assert_eq!(reply["ok"], true);
    let typing = fay_ws.event("typing", |e| e["user_id"] == eve.id).await;
    assert_eq!((typing["typing"].as_bool(), typing["expires_in_ms"].as_u64()), (Some(true), Some(5000)));
    // A second indicator within a second is acknowledged but not forwarded.
    assert_eq!(eve_ws.request("typing", json!({ "conversation_id": conversation, "typing": true })).await["ok"], true);
    assert!(!fay_ws.sees_event_within("typing", Duration::from_millis(300)).await);
    assert!(!eve_ws.sees_event_within("typing", Duration::from_millis(100)).await, "not echoed to the typist");
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&app.pool).await.unwrap();
    assert_eq!(messages, 0);
}

#[tokio::test]
async fn presence_goes_online_and_offline_after_a_grace_period_for_friends_only() {
    let app = spawn_app_with(|config| config.websocket.presence_grace_ms = 300).await;
    let (gus, hal, _) = friends_with_conversation(&app, "ws_gus", "ws_hal").await;
    let stranger = app.register("ws_stranger").await;
    let mut hal_ws = app.connect(&hal).await;
    let mut stranger_ws = app.connect(&stranger).await;

    let gus_ws = app.connect(&gus).await;
    let online = hal_ws.event("presence", |e| e["user_id"] == gus.id).await;
    assert_eq!(online["online"], true);
    let state = hal_ws.request("presence", json!({ "user_ids": [gus.id, stranger.id] })).await;
    assert_eq!(
        state["data"]["users"],
        json!([{ "user_id": gus.id, "online": true, "last_seen_at": null }]),
        "friends only"
    );

    // A quick reconnect does not flap.
    drop(gus_ws);
    let gus_again = app.connect(&gus).await;
    assert!(!hal_ws.sees_event_within("presence", Duration::from_millis(600)).await);
    drop(gus_again);
    let offline = hal_ws.event("presence", |e| e["user_id"] == gus.id).await;
    assert_eq!(offline["online"], false);
    assert!(offline["last_seen_at"].is_string(), "RFC 3339 like every timestamp");
    let last_seen: Option<time::OffsetDateTime> = sqlx::query_scalar("SELECT last_seen_at FROM users WHERE id = $1")
        .bind(gus.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(last_seen.is_some());
    assert!(!stranger_ws.sees_event_within("presence", Duration::from_millis(100)).await, "strangers see nothing");
}

#[tokio::test]
async fn a_block_hides_presence_and_stops_messages() {
    let app = spawn_app_with(|config| config.websocket.presence_grace_ms = 200).await;
    let (ida, jon, conversation) = friends_with_conversation(&app, "ws_ida", "ws_jon").await;
    app.send_as(Method::PUT, &ida.access_token, &format!("/api/v1/blocks/{}", jon.id), None).await;
    let mut ida_ws = app.connect(&ida).await;
    let mut jon_ws = app.connect(&jon).await;
    let reply = jon_ws.request("send", json!({ "conversation_id": conversation, "message": text("hello?") })).await;
    assert_eq!(reply["error"]["code"], "not_allowed");
    drop(ida_ws.socket);
    assert!(!jon_ws.sees_event_within("presence", Duration::from_millis(500)).await);
    let state = jon_ws.request("presence", json!({ "user_ids": [ida.id] })).await;
    assert_eq!(state["data"]["users"], json!([]));
    ida_ws = app.connect(&ida).await;
    assert!(!ida_ws.sees_event_within("message_created", Duration::from_millis(100)).await);
}

#[tokio::test]
async fn a_reconnect_after_a_gap_of_1000_messages_catches_up_exactly() {
    let app = spawn_app_with(|config| {
        config.websocket.ws_rate_burst = 2000;
        config.websocket.ws_rate_per_sec = 2000;
    })
    .await;
    let (kim, lou, conversation) = friends_with_conversation(&app, "ws_kim", "ws_lou").await;
    let mut lou_ws = app.connect(&lou).await;
    let first = app
        .send_as(
            Method::POST,
            &kim.access_token,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&text("seen live")),
        )
        .await;
    assert_eq!(first.status(), 201);
    let live = lou_ws.event("message_created", |_| true).await;
    let cursor = live["message"]["version"].as_i64().unwrap();
    drop(lou_ws);

    let mut kim_ws = app.connect(&kim).await;
    for batch in 0..10 {
        let mut ids = Vec::new();
        for i in 0..100 {
            ids.push(kim_ws.send("send", json!({ "conversation_id": conversation, "message": text(&format!("gap {}", batch * 100 + i)) })).await);
        }
        for id in ids {
            assert_eq!(kim_ws.reply(&id).await["ok"], true);
        }
    }
    // One edit and one recall of messages Lou had not seen, and one of the one he had.
    kim_ws.request("edit", json!({ "conversation_id": conversation, "seq": 1, "body": "seen live, edited" })).await;
    kim_ws.request("recall", json!({ "conversation_id": conversation, "seq": 1001 })).await;

    let mut lou_ws = app.connect(&lou).await;
    let mut cursor_value = cursor;
    let mut seqs = Vec::new();
    let mut edited_body = None;
    loop {
        let reply = lou_ws
            .request("sync", json!({ "cursors": { conversation.to_string(): cursor_value }, "limit": 400 }))
            .await;
        assert_eq!(reply["ok"], true, "{reply}");
        let entry = &reply["data"]["conversations"][0];
        for change in entry["changes"].as_array().unwrap() {
            let seq = change["seq"].as_i64().unwrap();
            if seq == 1 {
                edited_body = change["body"].as_str().map(str::to_owned);
            }
            assert!(change["version"].as_i64().unwrap() > cursor_value);
            seqs.push(seq);
        }
        cursor_value = entry["version"].as_i64().unwrap();
        if reply["data"]["has_more"] == false {
            break;
        }
    }
    let mut unique = seqs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seqs.len(), "nothing twice");
    assert_eq!(unique, (1..=1001).collect::<Vec<_>>(), "every new message and the edited one");
    assert_eq!(edited_body.as_deref(), Some("seen live, edited"));
    let again = lou_ws.request("sync", json!({ "cursors": { conversation.to_string(): cursor_value } })).await;
    assert_eq!(again["data"]["conversations"], json!([]), "caught up: nothing more");
}

#[tokio::test]
async fn resending_after_a_lost_ack_returns_the_original_ack() {
    let app = spawn_app().await;
    let (max, ned, conversation) = friends_with_conversation(&app, "ws_max", "ws_ned").await;
    let _ = ned;
    let message = text("once only");
    let mut first = app.connect(&max).await;
    first.send("send", json!({ "conversation_id": conversation, "message": message.clone() })).await;
    drop(first); // the connection drops before the ack is read
    let mut second = app.connect(&max).await;
    let reply = second.request("send", json!({ "conversation_id": conversation, "message": message })).await;
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["data"]["seq"], 1);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn bad_frames_get_error_replies_and_the_socket_stays_open() {
    let app = spawn_app().await;
    let user = app.register("ws_frames").await;
    let mut ws = app.connect(&user).await;
    ws.send_raw(Message::text("{not json")).await;
    assert_eq!(ws.any_reply().await["error"]["code"], "malformed_frame");
    ws.send_raw(Message::text(r#"{"id":"a","type":"teleport"}"#)).await;
    let reply = ws.any_reply().await;
    assert_eq!((reply["id"].as_str(), reply["error"]["code"].as_str()), (Some("a"), Some("unknown_type")));
    ws.send_raw(Message::text(r#"{"id":"b","type":"read","conversation_id":"x","seq":1}"#)).await;
    assert_eq!(ws.any_reply().await["error"]["code"], "invalid_request");
    ws.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(ws.any_reply().await["error"]["code"], "binary_frames_unsupported");
    let reply = ws.request("read", json!({ "conversation_id": 999_999, "seq": 1 })).await;
    assert_eq!(reply["error"]["code"], "conversation_not_found");
    let reply = ws
        .request("send", json!({ "conversation_id": 1, "message": { "client_msg_id": Uuid::new_v4(), "body": "" } }))
        .await;
    assert_eq!(
        (reply["error"]["code"].as_str(), reply["error"]["field"].as_str()),
        (Some("validation_failed"), Some("body"))
    );
    assert_eq!(ws.request("ping", json!({})).await["data"]["pong"], true, "still open");
}

#[tokio::test]
async fn oversize_frames_and_invalid_utf8_close_with_the_documented_codes() {
    let app = spawn_app_with(|config| config.websocket.ws_max_frame_bytes = 2048).await;
    let user = app.register("ws_big").await;
    let mut ws = app.connect(&user).await;
    ws.send_raw(Message::text("x".repeat(4096))).await;
    assert_eq!(ws.closed_with().await, Some(1009));

    let mut ws = app.connect(&user).await;
    let invalid = Frame::message(vec![0xC3, 0x28], OpCode::Data(Data::Text), true);
    ws.send_raw(Message::Frame(invalid)).await;
    assert_eq!(ws.closed_with().await, Some(1007));
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_closed() {
    let app = spawn_app_with(|config| {
        config.websocket.ws_ping_interval = Duration::from_secs(1);
        config.websocket.ws_timeout = Duration::from_secs(2);
    })
    .await;
    let user = app.register("ws_silent").await;
    let mut ws = app.connect(&user).await;
    // Reading nothing means answering no pings. The server's own count says when it
    // has dropped the connection (within its 2 s timeout plus a ping interval).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut metrics = String::new();
    while std::time::Instant::now() < deadline {
        metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains("goim_ws_connections 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics.contains("goim_ws_connections 0"), "the server dropped the connection: {metrics}");
    let code = ws.closed_with().await;
    assert!(matches!(code, Some(1000) | None), "closed (with 1000 if the close frame got through): {code:?}");
}

#[tokio::test]
async fn a_revoked_session_is_closed_with_4001() {
    let app = spawn_app_with(|config| config.websocket.ws_ping_interval = Duration::from_secs(1)).await;
    let user = app.register("ws_revoked").await;
    let mut ws = app.connect(&user).await;
    app.send_as(Method::POST, &user.access_token, "/api/v1/auth/logout", None).await;
    assert_eq!(ws.closed_with().await, Some(4001));
}

#[tokio::test]
async fn revocations_are_pushed_to_sockets_at_once_not_found_by_a_heartbeat() {
    // Heartbeats far apart: a close within seconds can only come from the push.
    let app = spawn_app_with(|config| config.websocket.ws_ping_interval = Duration::from_secs(3600)).await;
    let user = app.register("ws_pushed").await;
    let other_device = crate::support::login_token(&app, "ws_pushed").await;
    let mut on_other_device = app.connect_with_token(&other_device).await;
    let changed = app
        .send_as(
            Method::POST,
            &user.access_token,
            "/api/v1/auth/password",
            Some(&json!({ "current_password": user.password, "new_password": "a brand new passphrase" })),
        )
        .await;
    assert_eq!(changed.status(), 204);
    assert_eq!(on_other_device.closed_with().await, Some(4001), "a password change signs other devices out");

    // A refresh token presented twice revokes its session: its socket closes too.
    let mut on_this_device = app.connect(&user).await;
    let refresh = json!({ "refresh_token": user.refresh_token });
    assert_eq!(app.post_json("/api/v1/auth/refresh", &refresh).await.status(), 200);
    assert_eq!(app.post_json("/api/v1/auth/refresh", &refresh).await.status(), 401);
    assert_eq!(on_this_device.closed_with().await, Some(4001), "refresh-token reuse signs the session out");
}

#[tokio::test]
async fn a_socket_closes_when_its_session_expires() {
    let app = spawn_app_with(|config| {
        config.websocket.ws_ping_interval = Duration::from_secs(1);
        config.auth.access_token_ttl = Duration::from_secs(1);
        config.auth.refresh_token_ttl = Duration::from_secs(2);
    })
    .await;
    let user = app.register("ws_expiring").await;
    let mut ws = app.connect(&user).await;
    assert_eq!(ws.closed_with().await, Some(4001));
}

#[tokio::test]
async fn abusive_request_rates_get_refusals_then_4008() {
    let app = spawn_app_with(|config| {
        config.websocket.ws_rate_burst = 5;
        config.websocket.ws_rate_per_sec = 1;
    })
    .await;
    let user = app.register("ws_spammer").await;
    let mut ws = app.connect(&user).await;
    for _ in 0..5 {
        assert_eq!(ws.request("ping", json!({})).await["ok"], true);
    }
    assert_eq!(ws.request("ping", json!({})).await["error"]["code"], "rate_limited");
    for _ in 0..60 {
        ws.send_raw(Message::text(r#"{"id":"s","type":"ping"}"#)).await;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(&mut ws.socket))
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(4008));
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a 4008 close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_while_others_keep_receiving() {
    let app = spawn_app_with(|config| {
        config.websocket.ws_outbound_queue = 8;
        config.chat.max_message_bytes = 60_000;
        config.server.max_request_bytes = 128 * 1024;
    })
    .await;
    let (sender, reader) = (app.register("ws_sender").await, app.register("ws_reader").await);
    befriend(&app, &sender, &reader).await;
    let conversation = open_direct(&app, &sender, &reader).await;
    let mut stalled = app.connect(&reader).await; // never read from until the end
    let mut healthy = app.connect(&sender).await;
    let big = "x".repeat(59_000);
    let total = 400;
    let url = app.url(&format!("/api/v1/conversations/{conversation}/messages"));
    // At most 5 messages in flight, fewer than the outbound queue holds (8): the healthy
    // socket reads only between chunks, and must never look slow itself.
    let per_chunk = 5;
    for chunk in 0..(total / per_chunk) {
        let sends = (0..per_chunk).map(|_| {
            app.client
                .post(url.clone())
                .bearer_auth(&sender.access_token)
                .json(&json!({ "client_msg_id": Uuid::new_v4(), "body": big }))
                .send()
        });
        for response in futures_util::future::join_all(sends).await {
            assert_eq!(response.unwrap().status(), 201, "chunk {chunk}");
        }
        // The healthy socket keeps up.
        for _ in 0..per_chunk {
            healthy.event("message_created", |_| true).await;
        }
    }
    let slow: f64 = {
        let text = app.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("goim_ws_slow_disconnects_total"))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(slow >= 1.0, "the stalled socket was cut off");
    let mut code = None;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(&mut stalled.socket)).await
    {
        match message {
            Ok(Message::Close(frame)) => {
                code = frame.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(code.is_none() || code == Some(1013), "closed with 1013 if a close frame got through: {code:?}");
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let app = spawn_app().await;
    let (oli, pam, _) = friends_with_conversation(&app, "ws_oli", "ws_pam").await;
    let mut a = app.connect(&oli).await;
    let mut b = app.connect(&pam).await;
    // One round trip each, so both sessions are running: a socket whose handshake has
    // just finished may see its connection end without a close frame when the server
    // stops in that instant (seen once under load).
    a.request("conversations", json!({})).await;
    b.request("conversations", json!({})).await;
    app.local().shutdown.cancel();
    // While the sockets close (these clients have not answered yet), the instance hands
    // out no new tickets: a kept-alive connection still reaches it, and gets 503.
    let refused = app.send_as(reqwest::Method::POST, &oli.access_token, "/api/v1/ws/ticket", None).await;
    assert_eq!(error_code(refused, 503).await, "service_unavailable");
    assert_eq!(a.closed_with().await, Some(1001));
    assert_eq!(b.closed_with().await, Some(1001));
}

#[tokio::test]
async fn a_user_may_hold_only_so_many_sockets() {
    let app = spawn_app_with(|config| config.websocket.ws_max_connections_per_user = 2).await;
    let user = app.register("ws_many").await;
    let _first = app.connect(&user).await;
    let _second = app.connect(&user).await;
    // A socket of another login session of the same user is refused.
    let other_session = crate::support::login_token(&app, "ws_many").await;
    let ticket = app.send_as(Method::POST, &other_session, "/api/v1/ws/ticket", None).await;
    let ticket = ticket.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned();
    let (status, body) = handshake_status(&app, &format!("?ticket={ticket}"), Some("goim.v1"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_connections")));
}

/// At the limit, a new socket of a session that already has one replaces that
/// session's oldest (a client reconnecting after its network died without a reset
/// would otherwise lock itself out until the dead socket's heartbeat times out).
#[tokio::test]
async fn a_new_socket_of_the_same_session_replaces_its_oldest_at_the_limit() {
    let app = spawn_app_with(|config| config.websocket.ws_max_connections_per_user = 2).await;
    let user = app.register("ws_again").await;
    let mut first = app.connect(&user).await;
    let mut second = app.connect(&user).await;
    let mut third = app.connect(&user).await;
    assert_eq!(first.closed_with().await, Some(4009));
    for socket in [&mut second, &mut third] {
        let reply = socket.request("ping", json!({})).await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
}

#[tokio::test]
async fn when_the_fan_out_falls_behind_every_socket_is_told_to_resync_and_every_client_ends_with_every_message() {
    // A one-event bus: a writer batch of two or more messages outruns the fan-out.
    let app = spawn_app_with(|config| config.websocket.event_bus_capacity = 1).await;
    let (ann, ben, conversation) = friends_with_conversation(&app, "lag_ann", "lag_ben").await;
    let mut followers = vec![
        Follower::connect(&app, &ann, conversation).await,
        Follower::connect(&app, &ben, conversation).await,
        Follower::connect(&app, &ben, conversation).await,
    ];
    const MESSAGES: i64 = 200;
    let mut senders = Vec::new();
    for task in 0..20 {
        let (app_url, token) =
            (app.url(&format!("/api/v1/conversations/{conversation}/messages")), ann.access_token.clone());
        let client = app.client.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..MESSAGES / 20 {
                let body = json!({ "client_msg_id": Uuid::new_v4(), "body": format!("m{task}-{n}") });
                let response = client.post(&app_url).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 201);
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    for follower in &mut followers {
        follower.follow_until(MESSAGES, Duration::from_secs(30)).await;
        assert_eq!(follower.held.len() as i64, MESSAGES);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let dropped = crate::support::metric_value(&metrics, "goim_fanout_dropped_total");
    assert!(dropped > 0.0, "the test must make the fan-out fall behind: {metrics}");
    // A gap shows only when a later event arrives; losing the last events would go
    // unnoticed, so the server tells every socket.
    assert!(
        followers.iter().all(|f| f.resyncs > 0),
        "every socket was told to resync (resyncs, gaps seen): {:?}",
        followers.iter().map(|f| (f.resyncs, f.gaps)).collect::<Vec<_>>()
    );
}

/// A client whose connection is reset (no close frame, no FIN) is noticed at once, not
/// at the next ping: its friends see it go offline after the grace period alone.
#[tokio::test]
async fn a_reset_connection_is_noticed_at_once() {
    let app = spawn_app_with(|config| {
        config.websocket.presence_grace_ms = 100;
        config.websocket.ws_ping_interval = Duration::from_secs(60);
    })
    .await;
    let (kim, lee, _) = friends_with_conversation(&app, "reset_kim", "reset_lee").await;
    let mut lee_watching = app.connect(&lee).await;
    let kim_socket = app.connect(&kim).await;
    let online = lee_watching.event("presence", |e| e["user_id"] == kim.id).await;
    assert_eq!(online["online"], true);

    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = kim_socket.socket.get_ref() else {
        panic!("tests use plain TCP");
    };
    tcp.set_zero_linger().unwrap();
    drop(kim_socket); // closes with RST
    let offline = lee_watching.event("presence", |e| e["user_id"] == kim.id).await;
    assert_eq!(offline["online"], false, "{offline}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(crate::support::metric_value(&metrics, "goim_ws_connections"), 1.0, "{metrics}");
}

/// A burst of pipelined sends on one socket is stored in the order sent: each message's
/// `seq` is higher than the one sent before it, though the server checks them
/// concurrently.
#[tokio::test]
async fn pipelined_sends_are_stored_in_the_order_sent() {
    let app = spawn_app_with(|config| config.websocket.ws_rate_burst = 1000).await;
    let (mia, ned, conversation) = friends_with_conversation(&app, "order_mia", "order_ned").await;
    let mut mia_socket = app.connect(&mia).await;
    let _ = ned;
    const BURST: usize = 100;
    let mut ids = Vec::with_capacity(BURST);
    for n in 0..BURST {
        let message = json!({ "client_msg_id": Uuid::new_v4(), "body": format!("burst {n}") });
        ids.push(mia_socket.send("send", json!({ "conversation_id": conversation, "message": message })).await);
    }
    let mut seqs = Vec::with_capacity(BURST);
    for id in &ids {
        let reply = mia_socket.reply(id).await;
        assert_eq!(reply["ok"], true, "{reply}");
        seqs.push(reply["data"]["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (1..=BURST as i64).collect::<Vec<_>>(), "seq follows the order sent");
    let history = app
        .get_as(&mia.access_token, &format!("/api/v1/conversations/{conversation}/messages?limit=100"))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let stored = history["items"].as_array().unwrap();
    for message in stored {
        let seq = message["seq"].as_i64().unwrap();
        assert_eq!(message["body"], format!("burst {}", seq - 1), "the body sent in position {seq}");
    }
    assert_eq!(stored.len(), BURST);
}

#[tokio::test]
async fn a_handshake_that_fails_announces_no_presence() {
    let app = spawn_app_with(|config| config.websocket.presence_grace_ms = 200).await;
    let (gus, hal, _) = friends_with_conversation(&app, "flap_gus", "flap_hal").await;
    let mut hal_ws = app.connect(&hal).await;
    // Authenticated and with the subprotocol, but no WebSocket upgrade: refused at the
    // handshake, after every other check passed.
    let url = app.ws_url(&format!("?ticket={}", app.ticket(&gus).await)).replacen("ws", "http", 1);
    let response = app.client.get(url).header("sec-websocket-protocol", "goim.v1").send().await.unwrap();
    assert_eq!(crate::support::error_code(response, 400).await, "websocket_handshake_failed");
    assert!(!hal_ws.sees_event_within("presence", Duration::from_millis(600)).await, "no online/offline flap");
}
