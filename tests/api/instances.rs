//! Several GOIM instances on one database: every event crosses between them through
//! LISTEN/NOTIFY (src/relay.rs), nothing is lost when the listening connection drops,
//! and a revoked session closes everywhere.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp, TestUser, befriend, call, metric_value, open_direct, send_text, spawn_app, spawn_peer, ws::Follower,
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
                  WHERE datname = current_database() AND query LIKE 'LISTEN%'",
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
}
