//! Several GOIM instances on one database: every event crosses between them through
//! LISTEN/NOTIFY (src/relay.rs), nothing is lost when the listening connection drops,
//! and a revoked session closes everywhere.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp, TestUser, befriend, call, metric_value, open_direct, send_text, spawn_app, spawn_app_with, spawn_peer,
    spawn_peer_with,
    ws::{Follower, WsClient},
};

async fn friends_with_conversation(app: &TestApp, a: &str, b: &str) -> (TestUser, TestUser, i64) {
    let (a, b) = (app.register(a).await, app.register(b).await);
    befriend(app, &a, &b).await;
    let conversation = open_direct(app, &a, &b).await;
    (a, b, conversation)
}

#[tokio::test]
async fn messages_typing_and_receipts_cross_instances_in_order() {
    let a = spawn_app().await;
    a.wait_until_ready().await;
    let b = spawn_peer(&a).await;
    let (ann, ben, conversation) = friends_with_conversation(&a, "multi_ann", "multi_ben").await;
    let mut ann_on_a = a.connect(&ann).await;
    let mut ben_on_b = b.connect(&ben).await;
    let mut ben_on_a = a.connect(&ben).await;

    for n in 1..=20 {
        let reply = ann_on_a
            .request("send", json!({ "conversation_id": conversation, "message": { "client_msg_id": Uuid::new_v4(), "body": format!("n{n}") } }))
            .await;
        assert_eq!(reply["ok"], true, "{reply}");
    }
    // Instance B's socket sees exactly what instance A's sees, in seq order.
    for socket in [&mut ben_on_b, &mut ben_on_a] {
        for n in 1..=20_i64 {
            let event = socket.event("message_created", |e| e["message"]["conversation_id"] == conversation).await;
            assert_eq!(event["message"]["seq"], n);
            assert_eq!(event["message"]["body"], format!("n{n}"));
        }
    }

    // Typing and read receipts from B reach A.
    let reply = ben_on_b.request("typing", json!({ "conversation_id": conversation, "typing": true })).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let typing = ann_on_a.event("typing", |e| e["user_id"] == ben.id).await;
    assert_eq!(typing["typing"], true);
    let reply = ben_on_b.request("read", json!({ "conversation_id": conversation, "seq": 20 })).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let marker = ann_on_a.event("read_marker_moved", |e| e["user_id"] == ben.id).await;
    assert_eq!(marker["last_read_seq"], 20);

    // A message of 16 KiB does not fit a notification; it crosses by reference, intact.
    let long = "长".repeat(5461) + "x"; // 16,384 bytes: the largest message allowed
    let body = json!({ "client_msg_id": Uuid::new_v4(), "body": long });
    let path = format!("/api/v1/conversations/{conversation}/messages");
    assert_eq!(call(&a, &ann, reqwest::Method::POST, &path, Some(body)).await.status(), 201);
    let event = ben_on_b.event("message_created", |e| e["message"]["seq"] == 21).await;
    assert_eq!(event["message"]["body"].as_str().unwrap(), long);

    let metrics = b.get("/metrics").await.text().await.unwrap();
    assert!(metric_value(&metrics, "goim_relay_notifications_received_total") > 0.0, "{metrics}");
    assert_eq!(metric_value(&metrics, "goim_relay_listening"), 1.0, "{metrics}");
}

#[tokio::test]
async fn logout_on_one_instance_closes_the_sessions_socket_on_another_with_4001() {
    let a = spawn_app().await;
    a.wait_until_ready().await;
    let b = spawn_peer(&a).await;
    let cid = a.register("multi_cid").await;
    let mut on_b = b.connect(&cid).await;
    let logout = a.send_as(reqwest::Method::POST, &cid.access_token, "/api/v1/auth/logout", None).await;
    assert_eq!(logout.status(), 204);
    assert_eq!(on_b.closed_with().await, Some(4001));
}

#[tokio::test]
async fn when_the_listening_connection_is_killed_it_reconnects_and_clients_lose_nothing() {
    let a = spawn_app().await;
    a.wait_until_ready().await;
    let b = spawn_peer(&a).await;
    let (ann, ben, conversation) = friends_with_conversation(&a, "multi_dee", "multi_eve").await;
    let mut follower = Follower::connect(&b, &ben, conversation).await;
    const MESSAGES: i64 = 60;
    for n in 1..=MESSAGES {
        if n == 20 {
            // Every LISTEN connection goes, in the middle of the traffic.
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'goim listener'",
            )
            .fetch_all(&a.pool)
            .await
            .unwrap();
            assert!(!killed.is_empty(), "the relay listens on its own connection");
        }
        send_text(&a, &ann, conversation, &format!("m{n}")).await;
    }
    follower.follow_until(MESSAGES, Duration::from_secs(30)).await;
    assert_eq!(follower.held.len() as i64, MESSAGES);
    assert!(follower.resyncs >= 1, "the reconnected relay told its sockets to resync");
    b.wait_until_ready().await;
    let metrics = b.get("/metrics").await.text().await.unwrap();
    assert!(metric_value(&metrics, "goim_relay_reconnects_total") >= 1.0, "{metrics}");
    // After the reconnect the relay works again: a new message crosses live.
    let ack: Value = send_text(&a, &ann, conversation, "after").await;
    let event = follower.ws.event("message_created", |e| e["message"]["body"] == "after").await;
    assert_eq!(event["message"]["seq"], ack["seq"]);
}

#[tokio::test]
async fn a_group_chat_spread_over_three_instances_delivers_every_message_to_every_member_in_order() {
    let a = spawn_app().await;
    a.wait_until_ready().await;
    let (b, c) = (spawn_peer(&a).await, spawn_peer(&a).await);
    let (owner, bea, cal) = (a.register("tri_owner").await, a.register("tri_bea").await, a.register("tri_cal").await);
    let created = call(
        &a,
        &owner,
        reqwest::Method::POST,
        "/api/v1/groups",
        Some(json!({ "name": "Three", "join_policy": "open" })),
    )
    .await;
    assert_eq!(created.status(), 201);
    let group = created.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for member in [&bea, &cal] {
        let joined = call(&b, member, reqwest::Method::POST, &format!("/api/v1/groups/{group}/join"), None).await;
        assert!(joined.status().is_success(), "{} joins", member.username);
    }
    let conversation = c.get_as(&owner.access_token, &format!("/api/v1/groups/{group}/conversation")).await;
    let conversation = conversation.json::<Value>().await.unwrap()["conversation_id"].as_i64().unwrap();
    // One member per instance; every member sends from its own instance.
    let mut sockets = [a.connect(&owner).await, b.connect(&bea).await, c.connect(&cal).await];
    for round in 0..5 {
        for (socket, name) in sockets.iter_mut().zip(["owner", "bea", "cal"]) {
            let message = json!({ "client_msg_id": Uuid::new_v4(), "body": format!("{name} {round}") });
            let reply = socket.request("send", json!({ "conversation_id": conversation, "message": message })).await;
            assert_eq!(reply["ok"], true, "{reply}");
        }
    }
    // Each instance relays its own commits in order; commits of different instances may
    // interleave differently on the way (clients see a version gap and sync, §5). So:
    // every message exactly once everywhere, and each sender's messages in its order.
    for socket in &mut sockets {
        let mut seqs = Vec::new();
        let mut by_sender: std::collections::HashMap<i64, Vec<i64>> = Default::default();
        for _ in 0..15 {
            let event = socket.event("message_created", |e| e["message"]["conversation_id"] == conversation).await;
            let (seq, sender) =
                (event["message"]["seq"].as_i64().unwrap(), event["message"]["sender_id"].as_i64().unwrap());
            seqs.push(seq);
            by_sender.entry(sender).or_default().push(seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=15).collect::<Vec<i64>>(), "every message exactly once");
        for (sender, own) in by_sender {
            assert!(own.windows(2).all(|pair| pair[0] < pair[1]), "sender {sender}'s messages in order: {own:?}");
        }
        assert!(!socket.sees_event_within("message_created", Duration::from_millis(300)).await, "no duplicates");
    }

    // The longest announcement (2,000 emoji, 8,000 bytes) exceeds any notification; it
    // crosses through the spill table, intact, to members on the other instances.
    let announcement = "🎉".repeat(2000);
    let path = format!("/api/v1/groups/{group}");
    let patched = call(&a, &owner, reqwest::Method::PATCH, &path, Some(json!({ "announcement": announcement }))).await;
    assert_eq!(patched.status(), 200);
    for socket in &mut sockets[1..] {
        let event = socket.event("group_announcement_updated", |e| e["group_id"] == group).await;
        assert_eq!(event["announcement"].as_str().unwrap(), announcement);
    }
}

/// The `presence` reply for `user` as seen by `watcher`'s socket.
async fn presence_of(watcher: &mut WsClient, user: &TestUser) -> Value {
    let reply = watcher.request("presence", json!({ "user_ids": [user.id] })).await;
    assert_eq!(reply["ok"], true, "{reply}");
    reply["data"]["users"][0].clone()
}

#[tokio::test]
async fn a_user_on_two_instances_stays_online_until_the_last_socket_closes() {
    let quick_grace = |config: &mut goim::config::Config| config.websocket.presence_grace_ms = 200;
    let a = spawn_app_with(quick_grace).await;
    a.wait_until_ready().await;
    let b = spawn_peer_with(&a, quick_grace).await;
    let (fay, gus) = (a.register("pres_fay").await, a.register("pres_gus").await);
    befriend(&a, &fay, &gus).await;
    let mut gus_on_a = a.connect(&gus).await;

    let fay_on_a = a.connect(&fay).await;
    let online = gus_on_a.event("presence", |e| e["user_id"] == fay.id).await;
    assert_eq!(online["online"], true, "{online}");
    let fay_on_b = b.connect(&fay).await;
    assert_eq!(presence_of(&mut gus_on_a, &fay).await["online"], true);

    // Her socket on A closes; the one on B keeps her online, well past the grace period.
    drop(fay_on_a);
    for _ in 0..50 {
        let m = a.get("/metrics").await.text().await.unwrap();
        eprintln!("CONNS {}", metric_value(&m, "goim_ws_connections"));
        if metric_value(&m, "goim_ws_connections") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!gus_on_a.sees_event_within("presence", Duration::from_millis(1000)).await, "no offline flap");
    assert_eq!(presence_of(&mut gus_on_a, &fay).await["online"], true, "online through instance B");

    // The last one closes: offline everywhere, with a last-seen time.
    drop(fay_on_b);
    let offline = gus_on_a.event("presence", |e| e["user_id"] == fay.id).await;
    assert_eq!(offline["online"], false, "{offline}");
    assert!(offline["last_seen_at"].is_string(), "{offline}");
    let seen = presence_of(&mut gus_on_a, &fay).await;
    assert_eq!(seen["online"], false, "{seen}");
    assert_eq!(seen["last_seen_at"], offline["last_seen_at"]);
}

/// kill -9 of an instance in the middle of traffic: every message it acknowledged is
/// stored and reaches the other side, its clients catch up on another instance, and its
/// users who do not come back go offline for their friends once its heartbeat expires —
/// while a user who reconnected elsewhere never flaps.
#[cfg(unix)]
#[tokio::test]
async fn a_killed_instances_clients_catch_up_elsewhere_and_its_users_go_offline() {
    use crate::support::{binary::RunningGoim, cluster};

    let beat = |config: &mut goim::config::Config| config.websocket.instance_heartbeat_ms = 500;
    let a = spawn_app_with(beat).await;
    a.wait_until_ready().await;
    let work_dir = tempfile::tempdir().unwrap();
    let database_url = cluster().database_url(&a.db_options);
    let secret = crate::support::test_config().auth.jwt_secret.unwrap();
    let mut doomed = RunningGoim::start_with(
        work_dir.path(),
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("GOIM_JWT_SECRET", secret.expose()),
            ("GOIM_INSTANCE_HEARTBEAT_MS", "500"),
            ("GOIM_PRESENCE_GRACE_MS", "200"),
            ("GOIM_WS_RATE_BURST", "1000"),
        ],
    );
    let b = doomed.app(&a);
    b.wait_until_ready().await;

    let (hal, ida, conversation) = friends_with_conversation(&a, "kill_hal", "kill_ida").await;
    let jon = a.register("kill_jon").await;
    befriend(&a, &jon, &ida).await;
    let mut ida_watching = a.connect(&ida).await;
    let mut ida_reading = Follower::connect(&a, &ida, conversation).await;
    let mut hal_on_b = b.connect(&hal).await;
    let _jon_on_b = b.connect(&jon).await;
    for user in [&hal, &jon] {
        let online = ida_watching.event("presence", |e| e["user_id"] == user.id).await;
        assert_eq!(online["online"], true, "{online}");
    }

    // Hal pipelines sends into B; B dies with some acknowledged and some not.
    let mut sent = std::collections::HashMap::new();
    for n in 0..60 {
        let client_msg_id = Uuid::new_v4();
        let message = json!({ "client_msg_id": client_msg_id, "body": format!("k{n}") });
        sent.insert(
            hal_on_b.send("send", json!({ "conversation_id": conversation, "message": message })).await,
            client_msg_id,
        );
    }
    let first = hal_on_b.any_reply().await;
    assert_eq!(first["ok"], true, "{first}");
    doomed.child.kill().expect("kill -9 the instance");
    let killed_at = time::OffsetDateTime::now_utc();
    let mut acked: Vec<Uuid> = vec![sent[first["id"].as_str().unwrap()]];
    for reply in hal_on_b.replies_until_closed().await {
        if reply["ok"] == true {
            acked.push(sent[reply["id"].as_str().unwrap()]);
        }
    }

    // Hal comes back on A at once and catches up from his cursor.
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT client_msg_id FROM messages WHERE conversation_id = $1")
        .bind(conversation)
        .fetch_all(&a.pool)
        .await
        .unwrap();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged message {id} was stored");
    }
    let count = stored.len() as i64;
    let mut hal_on_a = Follower::connect(&a, &hal, conversation).await;
    hal_on_a.sync().await;
    hal_on_a.follow_until(count, Duration::from_secs(20)).await;
    ida_reading.follow_until(count, Duration::from_secs(20)).await;
    assert_eq!(ida_reading.held.len() as i64, count, "the reader holds every stored message once");

    // Jon did not come back: offline for Ida once B's heartbeat expires (3 × 500 ms) and
    // A reaps it. Hal reconnected: never offline.
    let offline = ida_watching.event("presence", |e| e["online"] == false).await;
    assert_eq!(offline["user_id"], jon.id, "only the user who did not come back goes offline: {offline}");
    let last_seen = time::OffsetDateTime::parse(
        offline["last_seen_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(last_seen <= killed_at, "last seen when B was last alive ({last_seen}), not when it was reaped");
    assert_eq!(presence_of(&mut ida_watching, &jon).await["online"], false);
    assert_eq!(presence_of(&mut ida_watching, &hal).await["online"], true);
    // The dead instance may have stored messages it never relayed: every socket is told
    // to resync (the reader may already have acted on it while catching up).
    if ida_reading.resyncs == 0 {
        let resync = ida_reading.ws.event("resync", |_| true).await;
        assert_eq!(resync["reason"], "instance_lost", "{resync}");
    }
    while let Some(event) = ida_watching.next_event_within(Duration::from_millis(1000)).await {
        assert!(event["type"] != "presence" || event["user_id"] != hal.id, "Hal never flapped: {event}");
    }
}
