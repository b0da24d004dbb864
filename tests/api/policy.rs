//! One policy for every operation on a conversation: what stops a send (a block either
//! way, an ended friendship under `GOIM_DIRECT_MESSAGES=friends`, a disbanded group, a
//! mute) also stops edits, recalls, reactions, typing and receipts, and the other side
//! sees nothing of the refused attempt.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser, befriend, call, error_code, open_direct, send_text, spawn_app};

const QUIET: Duration = Duration::from_millis(400);

/// Every conversation operation `user` can attempt on message 1 (receipts up to 2), over REST and the
/// WebSocket, each with the status and code it got.
async fn attempt_everything(app: &TestApp, user: &TestUser, conversation: i64) -> Vec<(&'static str, u16, String)> {
    let base = format!("/api/v1/conversations/{conversation}");
    let rest: [(&'static str, Method, String, Option<Value>); 6] = [
        (
            "send",
            Method::POST,
            format!("{base}/messages"),
            Some(json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": "x" })),
        ),
        ("edit", Method::PATCH, format!("{base}/messages/1"), Some(json!({ "body": "edited" }))),
        ("react", Method::PUT, format!("{base}/messages/1/reactions/👍"), None),
        ("unreact", Method::DELETE, format!("{base}/messages/1/reactions/👍"), None),
        ("read", Method::POST, format!("{base}/read"), Some(json!({ "seq": 2 }))),
        ("recall", Method::DELETE, format!("{base}/messages/1"), None),
    ];
    let mut outcomes = Vec::new();
    for (name, method, path, body) in rest {
        let response = call(app, user, method, &path, body).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        outcomes.push((name, status, body["error"]["code"].as_str().unwrap_or_default().to_owned()));
    }
    let mut ws = app.connect(user).await;
    for (name, kind, fields) in [
        ("ws typing", "typing", json!({ "conversation_id": conversation, "typing": true })),
        ("ws delivered", "delivered", json!({ "conversation_id": conversation, "seq": 2 })),
        ("ws edit", "edit", json!({ "conversation_id": conversation, "seq": 1, "body": "edited" })),
        ("ws react", "react", json!({ "conversation_id": conversation, "seq": 1, "emoji": "🎉", "add": true })),
    ] {
        let reply = ws.request(kind, fields).await;
        let status = if reply["ok"] == true { 200 } else { 0 };
        outcomes.push((name, status, reply["error"]["code"].as_str().unwrap_or_default().to_owned()));
    }
    outcomes
}

fn refused_with(outcomes: &[(&'static str, u16, String)], expected: &[(&str, u16, &str)]) {
    let got: Vec<(&str, u16, &str)> = outcomes.iter().map(|(n, s, c)| (*n, *s, c.as_str())).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_block_stops_every_operation_in_the_direct_conversation_either_way() {
    let app = spawn_app().await;
    let (ann, bob) = (app.register("pol_ann").await, app.register("pol_bob").await);
    befriend(&app, &ann, &bob).await;
    let conversation = open_direct(&app, &ann, &bob).await;
    send_text(&app, &bob, conversation, "before the block").await;
    send_text(&app, &ann, conversation, "reply").await;
    assert_eq!(
        call(&app, &ann, Method::PUT, &format!("/api/v1/blocks/{}", bob.id), None).await.status(),
        204,
        "ann blocks bob"
    );
    let mut ann_ws = app.connect(&ann).await;

    let blocked = [
        ("send", 403, "not_allowed"),
        ("edit", 403, "not_allowed"),
        ("react", 403, "not_allowed"),
        ("unreact", 403, "not_allowed"),
        ("read", 403, "not_allowed"),
        ("recall", 403, "not_allowed"),
        ("ws typing", 0, "not_allowed"),
        ("ws delivered", 0, "not_allowed"),
        ("ws edit", 0, "not_allowed"),
        ("ws react", 0, "not_allowed"),
    ];
    refused_with(&attempt_everything(&app, &bob, conversation).await, &blocked);
    assert_eq!(ann_ws.next_event_within(QUIET).await, None, "ann hears nothing from the one she blocked");
    // The blocker is held to the same rule: she cannot reach him either.
    refused_with(&attempt_everything(&app, &ann, conversation).await, &blocked);

    let stored: (String, Option<time::OffsetDateTime>, i64) = sqlx::query_as(
        "SELECT body, edited_at, (SELECT count(*) FROM message_reactions r WHERE r.conversation_id = m.conversation_id)
           FROM messages m WHERE conversation_id = $1 AND seq = 1",
    )
    .bind(conversation)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, ("before the block".to_owned(), None, 0), "nothing changed");
    let marker: i64 = sqlx::query_scalar(
        "SELECT last_read_seq FROM conversation_members WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(conversation)
    .bind(bob.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(marker, 1, "the read marker stays where his own message put it");

    // Both can still read their history.
    let history = app.get_as(&bob.access_token, &format!("/api/v1/conversations/{conversation}/messages")).await;
    assert_eq!(history.status(), 200);
}

#[tokio::test]
async fn an_ended_friendship_stops_reactions_when_direct_messages_need_friends() {
    let app = spawn_app().await;
    let (cat, dan) = (app.register("pol_cat").await, app.register("pol_dan").await);
    befriend(&app, &cat, &dan).await;
    let conversation = open_direct(&app, &cat, &dan).await;
    send_text(&app, &cat, conversation, "hello").await;
    let reaction = format!("/api/v1/conversations/{conversation}/messages/1/reactions/👍");
    assert_eq!(call(&app, &dan, Method::PUT, &reaction, None).await.status(), 204, "friends react");
    assert_eq!(call(&app, &dan, Method::DELETE, &format!("/api/v1/friends/{}", cat.id), None).await.status(), 204);

    let refused = call(&app, &dan, Method::PUT, &reaction, None).await;
    assert_eq!(error_code(refused, 403).await, "not_friends");
    let refused = call(&app, &dan, Method::DELETE, &reaction, None).await;
    assert_eq!(error_code(refused, 403).await, "not_friends");
    let mut cat_ws = app.connect(&cat).await;
    let typing =
        app.connect(&dan).await.request("typing", json!({ "conversation_id": conversation, "typing": true })).await;
    assert_eq!(typing["error"]["code"], "not_friends");
    assert_eq!(cat_ws.next_event_within(QUIET).await, None);
}

#[tokio::test]
async fn a_disbanded_group_refuses_every_operation_with_410_and_a_mute_stops_only_speaking() {
    let app = spawn_app().await;
    let (owner, muted) = (app.register("pol_owner").await, app.register("pol_muted").await);
    let group =
        call(&app, &owner, Method::POST, "/api/v1/groups", Some(json!({ "name": "Pol", "join_policy": "open" })))
            .await
            .json::<Value>()
            .await
            .unwrap()["id"]
            .as_i64()
            .unwrap();
    assert_eq!(call(&app, &muted, Method::POST, &format!("/api/v1/groups/{group}/join"), None).await.status(), 200);
    let conversation = app.get_as(&owner.access_token, &format!("/api/v1/groups/{group}/conversation")).await;
    let conversation = conversation.json::<Value>().await.unwrap()["conversation_id"].as_i64().unwrap();
    send_text(&app, &muted, conversation, "said before the mute").await;
    send_text(&app, &owner, conversation, "owner speaks").await;
    let mute = format!("/api/v1/groups/{group}/members/{}/mute", muted.id);
    assert_eq!(call(&app, &owner, Method::PUT, &mute, Some(json!({ "duration_secs": 3600 }))).await.status(), 200);

    // Muted: nothing new in front of the others; receipts and taking back one's own
    // message still work.
    refused_with(
        &attempt_everything(&app, &muted, conversation).await,
        &[
            ("send", 403, "muted"),
            ("edit", 403, "muted"),
            ("react", 403, "muted"),
            ("unreact", 403, "muted"),
            ("read", 200, ""),
            ("recall", 204, ""),
            ("ws typing", 0, "muted"),
            ("ws delivered", 200, ""),
            ("ws edit", 0, "muted"),
            ("ws react", 0, "muted"),
        ],
    );

    assert_eq!(call(&app, &owner, Method::DELETE, &format!("/api/v1/groups/{group}"), None).await.status(), 204);
    let gone = [
        ("send", 410, "group_disbanded"),
        ("edit", 410, "group_disbanded"),
        ("react", 410, "group_disbanded"),
        ("unreact", 410, "group_disbanded"),
        ("read", 410, "group_disbanded"),
        ("recall", 410, "group_disbanded"),
        ("ws typing", 0, "group_disbanded"),
        ("ws delivered", 0, "group_disbanded"),
        ("ws edit", 0, "group_disbanded"),
        ("ws react", 0, "group_disbanded"),
    ];
    refused_with(&attempt_everything(&app, &owner, conversation).await, &gone);
    let history = app.get_as(&owner.access_token, &format!("/api/v1/conversations/{conversation}/messages")).await;
    assert_eq!(history.status(), 200, "a disbanded group's history stays readable");
}
