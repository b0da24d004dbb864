//! Conversations and durable messages over REST.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp, TestUser, befriend, call, error_code, open_direct as direct, send_text, spawn_app, spawn_app_with,
};

async fn send(app: &TestApp, user: &TestUser, conversation: i64, body: Value) -> reqwest::Response {
    call(app, user, Method::POST, &format!("/api/v1/conversations/{conversation}/messages"), Some(body)).await
}

async fn history(app: &TestApp, user: &TestUser, conversation: i64, query: &str) -> Value {
    let response =
        app.get_as(&user.access_token, &format!("/api/v1/conversations/{conversation}/messages?{query}")).await;
    assert_eq!(response.status(), 200, "history {query}");
    response.json().await.unwrap()
}

fn seqs(page: &Value) -> Vec<i64> {
    page["items"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
}

async fn message_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&app.pool).await.unwrap()
}

async fn conversation_row(app: &TestApp, user: &TestUser, conversation: i64) -> Value {
    let list: Value = app.get_as(&user.access_token, "/api/v1/conversations").await.json().await.unwrap();
    list["items"].as_array().unwrap().iter().find(|c| c["id"] == conversation).cloned().unwrap_or(Value::Null)
}

async fn group_with(app: &TestApp, owner: &TestUser, members: &[&TestUser], extra: Value) -> (i64, i64) {
    let mut body = json!({ "name": "Chat", "join_policy": "open" });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let group: Value = call(app, owner, Method::POST, "/api/v1/groups", Some(body)).await.json().await.unwrap();
    let group_id = group["id"].as_i64().unwrap();
    for member in members {
        assert_eq!(
            call(app, member, Method::POST, &format!("/api/v1/groups/{group_id}/join"), None).await.status(),
            200
        );
    }
    let conversation: Value =
        app.get_as(&owner.access_token, &format!("/api/v1/groups/{group_id}/conversation")).await.json().await.unwrap();
    (group_id, conversation["conversation_id"].as_i64().unwrap())
}

#[tokio::test]
async fn friends_get_one_direct_conversation_even_when_both_open_it_at_once() {
    let app = spawn_app().await;
    let (ana, bo) = (app.register("ana_dm").await, app.register("bo_dm").await);
    befriend(&app, &ana, &bo).await;
    let (a, b) = tokio::join!(direct(&app, &ana, &bo), direct(&app, &bo, &ana));
    assert_eq!(a, b);
    assert_eq!(direct(&app, &ana, &bo).await, a);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations WHERE kind = 'direct'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn direct_conversations_need_friendship_by_default_and_never_cross_a_block() {
    let app = spawn_app().await;
    let (cy, di, ed) = (app.register("cy_dm").await, app.register("di_dm").await, app.register("ed_dm").await);
    let stranger =
        call(&app, &cy, Method::POST, "/api/v1/conversations/direct", Some(json!({ "user_id": di.id }))).await;
    assert_eq!(error_code(stranger, 403).await, "not_friends");
    let own = call(&app, &cy, Method::POST, "/api/v1/conversations/direct", Some(json!({ "user_id": cy.id }))).await;
    assert_eq!(error_code(own, 400).await, "cannot_message_self");
    let unknown =
        call(&app, &cy, Method::POST, "/api/v1/conversations/direct", Some(json!({ "user_id": 999_999 }))).await;
    assert_eq!(error_code(unknown, 404).await, "user_not_found");

    befriend(&app, &cy, &ed).await;
    let conversation = direct(&app, &cy, &ed).await;
    send_text(&app, &cy, conversation, "before the block").await;
    call(&app, &ed, Method::PUT, &format!("/api/v1/blocks/{}", cy.id), None).await;
    let blocked = send(&app, &cy, conversation, json!({ "client_msg_id": Uuid::new_v4(), "body": "hello?" })).await;
    assert_eq!(error_code(blocked, 403).await, "not_allowed");
    let reopen = call(&app, &cy, Method::POST, "/api/v1/conversations/direct", Some(json!({ "user_id": ed.id }))).await;
    assert_eq!(error_code(reopen, 403).await, "not_allowed");
    assert_eq!(message_count(&app).await, 1);

    let open_app =
        spawn_app_with(|config| config.chat.direct_messages = goim::config::DirectMessagePolicy::Anyone).await;
    let (x, y) = (open_app.register("x_open").await, open_app.register("y_open").await);
    let conversation = direct(&open_app, &x, &y).await;
    send_text(&open_app, &x, conversation, "hi stranger").await;
}

#[tokio::test]
async fn messages_get_increasing_seqs_and_history_unread_and_preview_follow() {
    let app = spawn_app().await;
    let (fi, gu) = (app.register("fi_msg").await, app.register("gu_msg").await);
    befriend(&app, &fi, &gu).await;
    let conversation = direct(&app, &fi, &gu).await;
    let mut acks = Vec::new();
    for text in ["one", "two", "three"] {
        acks.push(send_text(&app, &fi, conversation, text).await);
    }
    assert_eq!(acks.iter().map(|a| a["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(acks[0]["duplicate"], false);

    let page = history(&app, &gu, conversation, "").await;
    assert_eq!(seqs(&page), [1, 2, 3]);
    assert_eq!(page["items"][2]["body"], "three");
    assert_eq!(page["items"][0]["sender_id"], fi.id);
    assert_eq!(page["last_seq"], 3);

    let for_gu = conversation_row(&app, &gu, conversation).await;
    assert_eq!(for_gu["unread"], 3);
    assert_eq!(for_gu["peer"]["username"], "fi_msg");
    assert_eq!(for_gu["last_message"]["body"], "three");
    assert_eq!(conversation_row(&app, &fi, conversation).await["unread"], 0, "own messages are never unread");

    send_text(&app, &gu, conversation, "reply").await;
    assert_eq!(conversation_row(&app, &gu, conversation).await["unread"], 0, "sending reads everything before it");
    assert_eq!(conversation_row(&app, &fi, conversation).await["unread"], 1);
}

#[tokio::test]
async fn fifty_concurrent_senders_get_a_gap_free_sequence() {
    let app = spawn_app().await;
    let users = app.seed_users("burst", 50).await;
    let (owner, others) = users.split_first().unwrap();
    let members: Vec<&TestUser> = others.iter().collect();
    let (_, conversation) = group_with(&app, owner, &members, json!({})).await;
    let sends = users
        .iter()
        .map(|u| send(&app, u, conversation, json!({ "client_msg_id": Uuid::new_v4(), "body": u.username })));
    let responses = futures_util::future::join_all(sends).await;
    let mut acked = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        acked.push(response.json::<Value>().await.unwrap()["seq"].as_i64().unwrap());
    }
    acked.sort();
    assert_eq!(acked, (1..=50).collect::<Vec<_>>());
    let stored: Vec<i64> = sqlx::query_scalar("SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq")
        .bind(conversation)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, acked);
    let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM conversations WHERE id = $1")
        .bind(conversation)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(last_seq, 50);
}

#[tokio::test]
async fn a_retry_returns_the_original_ack_and_a_reused_id_is_refused() {
    let app = spawn_app().await;
    let (ha, io) = (app.register("ha_idem").await, app.register("io_idem").await);
    befriend(&app, &ha, &io).await;
    let conversation = direct(&app, &ha, &io).await;
    let id = Uuid::new_v4();
    let body = json!({ "client_msg_id": id, "body": "exactly once" });
    let (first, second) =
        tokio::join!(send(&app, &ha, conversation, body.clone()), send(&app, &ha, conversation, body.clone()));
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 201], "one stored, one answered as a retry");
    let (a, b): (Value, Value) = (first.json().await.unwrap(), second.json().await.unwrap());
    assert_eq!((a["seq"].clone(), a["created_at"].clone()), (b["seq"].clone(), b["created_at"].clone()));

    let later = send(&app, &ha, conversation, body.clone()).await;
    assert_eq!(later.status(), 200);
    let later: Value = later.json().await.unwrap();
    assert_eq!(later["seq"], a["seq"]);
    assert_eq!(later["created_at"], a["created_at"]);
    assert_eq!(later["duplicate"], true);

    let reused = send(&app, &ha, conversation, json!({ "client_msg_id": id, "body": "something else" })).await;
    assert_eq!(error_code(reused, 409).await, "client_msg_id_reused");
    assert_eq!(message_count(&app).await, 1);
}

#[tokio::test]
async fn only_allowed_members_read_and_send() {
    let app = spawn_app().await;
    let users = app.seed_users("perm", 5).await;
    let (owner, admin, member, muted, outsider) = (&users[0], &users[1], &users[2], &users[3], &users[4]);
    let (group, conversation) = group_with(&app, owner, &[admin, member, muted], json!({})).await;
    let g = format!("/api/v1/groups/{group}");
    call(&app, owner, Method::PUT, &format!("{g}/members/{}/role", admin.id), Some(json!({ "role": "admin" }))).await;
    call(&app, admin, Method::PUT, &format!("{g}/members/{}/mute", muted.id), Some(json!({ "duration_secs": 600 })))
        .await;
    let by_member = send_text(&app, member, conversation, "from member").await;
    let seq = by_member["seq"].as_i64().unwrap();

    let text = || json!({ "client_msg_id": Uuid::new_v4(), "body": "hi" });
    assert_eq!(error_code(send(&app, outsider, conversation, text()).await, 404).await, "conversation_not_found");
    let read = app.get_as(&outsider.access_token, &format!("/api/v1/conversations/{conversation}/messages")).await;
    assert_eq!(error_code(read, 404).await, "conversation_not_found");
    assert_eq!(error_code(send(&app, muted, conversation, text()).await, 403).await, "muted");
    let at_all = send(
        &app,
        member,
        conversation,
        json!({ "client_msg_id": Uuid::new_v4(), "body": "hey all", "mention_all": true }),
    )
    .await;
    assert_eq!(error_code(at_all, 403).await, "insufficient_role");
    assert_eq!(
        send(
            &app,
            admin,
            conversation,
            json!({ "client_msg_id": Uuid::new_v4(), "body": "hey all", "mention_all": true })
        )
        .await
        .status(),
        201
    );

    // Someone else's message: no edit, no recall; an admin may remove it.
    let path = format!("/api/v1/conversations/{conversation}/messages/{seq}");
    let edit = call(&app, owner, Method::PATCH, &path, Some(json!({ "body": "hijacked" }))).await;
    assert_eq!(error_code(edit, 403).await, "not_your_message");
    assert_eq!(error_code(call(&app, muted, Method::DELETE, &path, None).await, 403).await, "not_your_message");
    assert_eq!(call(&app, admin, Method::DELETE, &path, None).await.status(), 204);
    let page = history(&app, owner, conversation, "").await;
    assert_eq!(page["items"][0]["deleted"], true);
    assert!(page["items"][0]["body"].is_null());

    // Kicked: access ends at once.
    call(&app, owner, Method::DELETE, &format!("{g}/members/{}", member.id), None).await;
    assert_eq!(error_code(send(&app, member, conversation, text()).await, 404).await, "conversation_not_found");
    let gone = app.get_as(&member.access_token, &format!("/api/v1/conversations/{conversation}/messages")).await;
    assert_eq!(error_code(gone, 404).await, "conversation_not_found");
    assert_eq!(message_count(&app).await, 2);
}

#[tokio::test]
async fn edits_and_recalls_respect_their_windows() {
    let app = spawn_app().await;
    let (jay, kay) = (app.register("jay_edit").await, app.register("kay_edit").await);
    befriend(&app, &jay, &kay).await;
    let conversation = direct(&app, &jay, &kay).await;
    let seq = send_text(&app, &jay, conversation, "typo").await["seq"].as_i64().unwrap();
    let path = format!("/api/v1/conversations/{conversation}/messages/{seq}");

    let edited = call(&app, &jay, Method::PATCH, &path, Some(json!({ "body": "fixed" }))).await;
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.unwrap();
    assert_eq!(edited["body"], "fixed");
    assert!(edited["edited_at"].is_string());
    let empty = call(&app, &jay, Method::PATCH, &path, Some(json!({ "body": "  " }))).await;
    assert_eq!(error_code(empty, 400).await, "validation_failed");

    sqlx::query("UPDATE messages SET created_at = now() - interval '3 minutes' WHERE conversation_id = $1")
        .bind(conversation)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(error_code(call(&app, &jay, Method::DELETE, &path, None).await, 403).await, "recall_window_passed");
    assert_eq!(call(&app, &jay, Method::PATCH, &path, Some(json!({ "body": "still editable" }))).await.status(), 200);
    sqlx::query("UPDATE messages SET created_at = now() - interval '25 hours' WHERE conversation_id = $1")
        .bind(conversation)
        .execute(&app.pool)
        .await
        .unwrap();
    let late = call(&app, &jay, Method::PATCH, &path, Some(json!({ "body": "too late" }))).await;
    assert_eq!(error_code(late, 403).await, "edit_window_passed");

    let fresh = send_text(&app, &jay, conversation, "oops").await["seq"].as_i64().unwrap();
    let fresh_path = format!("/api/v1/conversations/{conversation}/messages/{fresh}");
    assert_eq!(call(&app, &jay, Method::DELETE, &fresh_path, None).await.status(), 204);
    let edit_deleted = call(&app, &jay, Method::PATCH, &fresh_path, Some(json!({ "body": "x" }))).await;
    assert_eq!(error_code(edit_deleted, 409).await, "message_deleted");
    let page = history(&app, &kay, conversation, "").await;
    assert_eq!(seqs(&page), [1, 2], "the tombstone keeps its seq");
    assert_eq!(page["items"][0]["body"], "still editable");
    assert_eq!(page["items"][1]["deleted"], true);
}

#[tokio::test]
async fn the_read_marker_only_moves_forward_and_drives_unread_counts() {
    let app = spawn_app().await;
    let (lu, mo) = (app.register("lu_read").await, app.register("mo_read").await);
    befriend(&app, &lu, &mo).await;
    let conversation = direct(&app, &lu, &mo).await;
    for i in 0..6 {
        send_text(&app, &lu, conversation, &format!("m{i}")).await;
    }
    let read_path = format!("/api/v1/conversations/{conversation}/read");
    let (app_ref, mo_ref, read_path) = (&app, &mo, read_path.as_str());
    let mark =
        |seq: i64| async move { call(app_ref, mo_ref, Method::POST, read_path, Some(json!({ "seq": seq }))).await };
    let marker = |response: reqwest::Response| async move {
        response.json::<Value>().await.unwrap()["last_read_seq"].as_i64().unwrap()
    };
    assert_eq!(marker(mark(4).await).await, 4);
    assert_eq!(conversation_row(&app, &mo, conversation).await["unread"], 2);
    assert_eq!(marker(mark(2).await).await, 4, "never backwards");
    assert_eq!(marker(mark(1000).await).await, 6, "never past the last message");
    assert_eq!(conversation_row(&app, &mo, conversation).await["unread"], 0);
    let negative = mark(-1).await;
    assert_eq!(error_code(negative, 400).await, "validation_failed");
}

#[tokio::test]
async fn history_pages_by_sequence_with_exact_boundaries() {
    let app = spawn_app().await;
    let (nu, ox) = (app.register("nu_page").await, app.register("ox_page").await);
    befriend(&app, &nu, &ox).await;
    let conversation = direct(&app, &nu, &ox).await;
    let sends = (0..120)
        .map(|i| send(&app, &nu, conversation, json!({ "client_msg_id": Uuid::new_v4(), "body": format!("m{i}") })));
    for response in futures_util::future::join_all(sends).await {
        assert_eq!(response.status(), 201);
    }
    let latest = history(&app, &ox, conversation, "").await;
    assert_eq!(seqs(&latest), (71..=120).collect::<Vec<_>>());
    assert_eq!((latest["has_older"].as_bool(), latest["has_newer"].as_bool()), (Some(true), Some(false)));
    assert_eq!(seqs(&history(&app, &ox, conversation, "before=71").await), (21..=70).collect::<Vec<_>>());
    let first = history(&app, &ox, conversation, "before=21&limit=100").await;
    assert_eq!(seqs(&first), (1..=20).collect::<Vec<_>>());
    assert_eq!(first["has_older"], false);
    let newer = history(&app, &ox, conversation, "after=110").await;
    assert_eq!(seqs(&newer), (111..=120).collect::<Vec<_>>());
    assert_eq!(newer["has_newer"], false);
    assert_eq!(seqs(&history(&app, &ox, conversation, "after=0&limit=3").await), [1, 2, 3]);
    assert_eq!(seqs(&history(&app, &ox, conversation, "from=5&to=9").await), [5, 6, 7, 8, 9]);
    assert_eq!(seqs(&history(&app, &ox, conversation, "after=120").await), Vec::<i64>::new());

    let path = |q: &str| format!("/api/v1/conversations/{conversation}/messages?{q}");
    for (query, code) in [
        ("limit=101", "validation_failed"),
        ("before=5&after=1", "validation_failed"),
        ("from=5", "validation_failed"),
        ("from=9&to=5", "validation_failed"),
        ("before=abc", "invalid_query"),
    ] {
        assert_eq!(error_code(app.get_as(&ox.access_token, &path(query)).await, 400).await, code, "{query}");
    }
}

#[tokio::test]
async fn bad_messages_are_refused_and_nothing_is_stored() {
    let app = spawn_app_with(|config| config.chat.max_message_bytes = 64).await;
    let users = app.seed_users("badmsg", 3).await;
    let (owner, member, outsider) = (&users[0], &users[1], &users[2]);
    let (_, conversation) = group_with(&app, owner, &[member], json!({})).await;
    send_text(&app, owner, conversation, "the only message").await;
    let id = || Uuid::new_v4();
    let cases = [
        (json!({ "client_msg_id": id(), "body": "x".repeat(65) }), "validation_failed"),
        (json!({ "client_msg_id": id(), "body": "" }), "validation_failed"),
        (
            json!({ "client_msg_id": id(), "kind": "image", "content": { "url": "ftp://x/y.png", "mime": "image/png", "size": 1, "width": 1, "height": 1 } }),
            "validation_failed",
        ),
        (json!({ "client_msg_id": id(), "kind": "image" }), "validation_failed"),
        (json!({ "client_msg_id": id(), "body": "hi", "content": { "url": "https://x.y" } }), "validation_failed"),
        (json!({ "client_msg_id": id(), "body": "re", "reply_to_seq": 99 }), "validation_failed"),
        (json!({ "client_msg_id": id(), "body": "re", "reply_to_seq": 0 }), "validation_failed"),
        (json!({ "client_msg_id": id(), "body": "hey", "mentions": [outsider.id] }), "validation_failed"),
        (json!({ "client_msg_id": "not-a-uuid", "body": "hi" }), "invalid_body"),
        (json!({ "client_msg_id": id(), "kind": "video", "body": "hi" }), "invalid_body"),
        (json!({ "client_msg_id": id(), "body": "hi", "sender_id": outsider.id }), "invalid_body"),
        (json!({ "body": "no id" }), "invalid_body"),
    ];
    for (body, code) in cases {
        let response = send(&app, member, conversation, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(error_code(response, 400).await, code, "{body}");
    }
    let raw = app
        .client
        .post(app.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(&member.access_token)
        .header("content-type", "application/json")
        .body("{\"client_msg_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(raw, 400).await, "malformed_json");
    assert_eq!(
        error_code(send(&app, member, 999_999, json!({ "client_msg_id": id(), "body": "x" })).await, 404).await,
        "conversation_not_found"
    );
    assert_eq!(message_count(&app).await, 1);

    let picture = crate::uploads::uploaded(&app, member, "cat.png", crate::uploads::png(640, 480)).await;
    let good_image = json!({ "client_msg_id": id(), "kind": "image", "body": "look", "reply_to_seq": 1, "mentions": [owner.id],
        "content": { "upload_id": picture["id"] } });
    assert_eq!(send(&app, member, conversation, good_image).await.status(), 201);
    let page = history(&app, owner, conversation, "").await;
    assert_eq!(page["items"][1]["content"]["width"], 640);
    assert_eq!(page["items"][1]["reply_to_seq"], 1);
    assert_eq!(page["items"][1]["mentions"], json!([owner.id]));
}

#[tokio::test]
async fn late_joiners_see_history_from_their_join_when_the_group_says_so() {
    let app = spawn_app().await;
    let users = app.seed_users("late", 3).await;
    let (owner, early, late) = (&users[0], &users[1], &users[2]);
    let (group, conversation) = group_with(&app, owner, &[early], json!({ "history_visibility": "since_join" })).await;
    send_text(&app, owner, conversation, "before").await;
    call(&app, late, Method::POST, &format!("/api/v1/groups/{group}/join"), None).await;
    send_text(&app, owner, conversation, "after").await;
    assert_eq!(seqs(&history(&app, late, conversation, "").await), [2]);
    assert_eq!(seqs(&history(&app, early, conversation, "").await), [1, 2]);
    let hidden =
        call(&app, late, Method::PUT, &format!("/api/v1/conversations/{conversation}/messages/1/reactions/👍"), None)
            .await;
    assert_eq!(error_code(hidden, 404).await, "message_not_found");
    assert_eq!(conversation_row(&app, late, conversation).await["unread"], 1, "only what they can see is unread");
}

#[tokio::test]
async fn reactions_are_counted_per_emoji_in_history() {
    let app = spawn_app().await;
    let users = app.seed_users("react", 3).await;
    let (owner, a, b) = (&users[0], &users[1], &users[2]);
    let (_, conversation) = group_with(&app, owner, &[a, b], json!({})).await;
    send_text(&app, owner, conversation, "react to me").await;
    let path = |emoji: &str| format!("/api/v1/conversations/{conversation}/messages/1/reactions/{emoji}");
    for user in [a, b] {
        assert_eq!(call(&app, user, Method::PUT, &path("👍"), None).await.status(), 204);
    }
    assert_eq!(call(&app, a, Method::PUT, &path("👍"), None).await.status(), 204, "idempotent");
    assert_eq!(call(&app, a, Method::PUT, &path("🎉"), None).await.status(), 204);
    let page = history(&app, a, conversation, "").await;
    assert_eq!(
        page["items"][0]["reactions"],
        json!([{ "emoji": "👍", "count": 2, "me": true }, { "emoji": "🎉", "count": 1, "me": true }])
    );
    assert_eq!(call(&app, a, Method::DELETE, &path("🎉"), None).await.status(), 204);
    assert_eq!(error_code(call(&app, a, Method::DELETE, &path("🎉"), None).await, 404).await, "reaction_not_found");
    assert_eq!(error_code(call(&app, a, Method::PUT, &path("lol"), None).await, 400).await, "validation_failed");
    let page = history(&app, owner, conversation, "").await;
    assert_eq!(page["items"][0]["reactions"], json!([{ "emoji": "👍", "count": 2, "me": false }]));
}

#[tokio::test]
async fn search_finds_substrings_including_cjk_only_in_the_callers_conversations() {
    let app = spawn_app().await;
    let users = app.seed_users("srch", 3).await;
    let (owner, member, outsider) = (&users[0], &users[1], &users[2]);
    let (_, conversation) = group_with(&app, owner, &[member], json!({})).await;
    let (_, private) = group_with(&app, outsider, &[], json!({ "name": "Private" })).await;
    send_text(&app, owner, conversation, "我们明天去北京开会").await;
    send_text(&app, owner, conversation, "Deploying the NEW release tonight").await;
    send_text(&app, outsider, private, "release notes are secret").await;

    let app_ref = &app;
    let search = |user: &TestUser, q: &str| {
        let path = format!("/api/v1/messages/search?q={}", urlencode(q));
        let token = user.access_token.clone();
        async move { app_ref.get_as(&token, &path).await }
    };
    let found: Value = search(member, "北京").await.json().await.unwrap();
    assert_eq!(found["items"][0]["body"], "我们明天去北京开会");
    let found: Value = search(member, "new rel").await.json().await.unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "case-insensitive substring, own conversations only");
    let theirs: Value = search(outsider, "release").await.json().await.unwrap();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["items"][0]["body"], "release notes are secret");
    assert_eq!(error_code(search(member, "x").await, 400).await, "validation_failed");
    let wildcard: Value = search(member, "%").await.json().await.unwrap_or(json!({ "items": [] }));
    assert!(wildcard["items"].as_array().is_none_or(|items| items.is_empty()));
}

/// Every page of a message search, following `next_cursor`: (conversation, seq) per hit.
async fn search_all_pages(app: &TestApp, user: &TestUser, q: &str, limit: usize) -> Vec<(i64, i64)> {
    let mut hits = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = format!("/api/v1/messages/search?q={}&limit={limit}", urlencode(q));
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = app.get_as(&user.access_token, &path).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        hits.extend(items.iter().map(|m| (m["conversation_id"].as_i64().unwrap(), m["seq"].as_i64().unwrap())));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return hits;
        }
    }
    panic!("search {q:?} did not end");
}

#[tokio::test]
async fn search_reaches_past_the_recent_window_and_pages_without_gaps() {
    let app = spawn_app().await;
    let users = app.seed_users("deep", 1).await;
    let owner = &users[0];
    let (_, conversation) = group_with(&app, owner, &[], json!({})).await;
    // Older than the newest 200 messages the first search step reads.
    send_text(&app, owner, conversation, "an ancient zebra").await;
    send_text(&app, owner, conversation, "你好 from long ago").await;
    for i in 0..205 {
        send_text(&app, owner, conversation, &format!("filler {i}")).await;
    }
    // Found by the trigram index, and (two CJK characters, no trigram) by reading all
    // of the caller's messages.
    assert_eq!(search_all_pages(&app, owner, "zebra", 20).await, [(conversation, 1)]);
    assert_eq!(search_all_pages(&app, owner, "你好", 20).await, [(conversation, 2)]);
    // Every filler, newest first, once: the first pages come from the recent window, the
    // last ones from the index.
    let fillers = search_all_pages(&app, owner, "filler", 50).await;
    let expected: Vec<(i64, i64)> = (3..=207).rev().map(|seq| (conversation, seq)).collect();
    assert_eq!(fillers, expected);
}

#[tokio::test]
async fn search_ranks_by_recency_across_more_conversations_than_it_reads_first() {
    let app = spawn_app().await;
    let users = app.seed_users("many", 1).await;
    let owner = &users[0];
    let mut sent = Vec::new();
    for i in 0..18 {
        let (_, conversation) = group_with(&app, owner, &[], json!({ "name": format!("Room {i}") })).await;
        let ack = send_text(&app, owner, conversation, &format!("needle {i}")).await;
        sent.push((conversation, ack["seq"].as_i64().unwrap()));
    }
    sent.reverse();
    assert_eq!(search_all_pages(&app, owner, "needle", 5).await, sent, "newest first, all 18, no repeats");
}

#[tokio::test]
async fn a_full_page_of_recent_hits_does_not_hide_a_newer_one_outside_the_window() {
    let app = spawn_app().await;
    let users = app.seed_users("horizon", 1).await;
    let owner = &users[0];
    let (_, older) = group_with(&app, owner, &[], json!({ "name": "Older" })).await;
    let (_, busy) = group_with(&app, owner, &[], json!({ "name": "Busy" })).await;
    for i in 0..6 {
        send_text(&app, owner, older, &format!("needle {i}")).await;
    }
    // Newer than every hit in "Older", but pushed out of the recent window by fillers.
    send_text(&app, owner, busy, "needle in the busy room").await;
    for i in 0..200 {
        send_text(&app, owner, busy, &format!("filler {i}")).await;
    }
    send_text(&app, owner, older, "the older room speaks last").await;
    let hits = search_all_pages(&app, owner, "needle", 5).await;
    let expected: Vec<(i64, i64)> = std::iter::once((busy, 1)).chain((1..=6).rev().map(|seq| (older, seq))).collect();
    assert_eq!(hits, expected);
}

/// Waits until the search indexer has put every message of `conversation` in a block.
async fn wait_until_indexed(app: &TestApp, conversation: i64) {
    for _ in 0..300 {
        let behind: bool = sqlx::query_scalar(
            "SELECT c.last_seq > p.indexed_seq FROM conversations c
               JOIN message_search_progress p ON p.conversation_id = c.id WHERE c.id = $1",
        )
        .bind(conversation)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if !behind {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("conversation {conversation} was not indexed for search within 30 s");
}

/// The text the search blocks hold for `conversation` (lowercased), in seq order.
async fn block_text(app: &TestApp, conversation: i64) -> String {
    sqlx::query_scalar(
        "SELECT coalesce(string_agg(lowered_body, E'\\n' ORDER BY first_seq), '') FROM message_search_blocks
          WHERE conversation_id = $1",
    )
    .bind(conversation)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn search_blocks_follow_edits_recalls_and_the_callers_visibility() {
    let app = spawn_app().await;
    let users = app.seed_users("blocks", 3).await;
    let (owner, early, late) = (&users[0], &users[1], &users[2]);
    let (group, conversation) = group_with(&app, owner, &[early], json!({ "history_visibility": "since_join" })).await;
    send_text(&app, owner, conversation, "The Zebra Crossing").await;
    send_text(&app, owner, conversation, "斑马线在这里").await;
    // Across a block boundary (64 messages per block).
    for i in 0..70 {
        send_text(&app, owner, conversation, &format!("filler {i}")).await;
    }
    call(&app, late, Method::POST, &format!("/api/v1/groups/{group}/join"), None).await;
    send_text(&app, owner, conversation, "a zebra after the join").await;
    wait_until_indexed(&app, conversation).await;
    assert!(block_text(&app, conversation).await.contains("the zebra crossing"), "indexed off the send path");

    // Found through the blocks, each hit checked against the caller's visibility.
    assert_eq!(search_all_pages(&app, early, "zebra", 20).await, [(conversation, 73), (conversation, 1)]);
    assert_eq!(search_all_pages(&app, late, "zebra", 20).await, [(conversation, 73)]);
    assert_eq!(search_all_pages(&app, early, "ZEBRA CROSS", 20).await, [(conversation, 1)], "any case");
    assert_eq!(search_all_pages(&app, early, "斑马线", 20).await, [(conversation, 2)]);
    // Not yet in a block: read directly.
    send_text(&app, owner, conversation, "zebra, fresh off the press").await;
    assert_eq!(search_all_pages(&app, early, "zebra", 20).await.len(), 3);

    // An edit: the old words are neither found nor kept in the blocks; the new ones are found.
    let path = format!("/api/v1/conversations/{conversation}/messages/1");
    let edited = call(&app, owner, Method::PATCH, &path, Some(json!({ "body": "the giraffe crossing" }))).await;
    assert_eq!(edited.status(), 200);
    assert!(!block_text(&app, conversation).await.contains("the zebra crossing"));
    assert_eq!(search_all_pages(&app, early, "giraffe", 20).await, [(conversation, 1)]);
    assert_eq!(search_all_pages(&app, early, "zebra crossing", 20).await, Vec::<(i64, i64)>::new());

    // A recall: gone from results and from the blocks.
    assert_eq!(call(&app, owner, Method::DELETE, &path, None).await.status(), 204);
    assert!(!block_text(&app, conversation).await.contains("giraffe"));
    assert_eq!(search_all_pages(&app, early, "giraffe", 20).await, Vec::<(i64, i64)>::new());
    // A needle spanning two messages of one block is not a message's text.
    assert_eq!(search_all_pages(&app, early, "filler 3\nfiller 4", 20).await, Vec::<(i64, i64)>::new());
}

#[tokio::test]
async fn deleted_messages_leave_no_search_text_behind() {
    let app = spawn_app().await;
    let users = app.seed_users("sweep", 1).await;
    let owner = &users[0];
    let (_, conversation) = group_with(&app, owner, &[], json!({})).await;
    for i in 0..66 {
        send_text(&app, owner, conversation, &format!("secret number {i}")).await;
    }
    wait_until_indexed(&app, conversation).await;
    // As the retention sweep deletes: many messages in one statement.
    sqlx::query("DELETE FROM messages WHERE conversation_id = $1 AND seq <= 65")
        .bind(conversation)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(block_text(&app, conversation).await, "secret number 65", "a block keeps only what is left");
    assert_eq!(search_all_pages(&app, owner, "secret", 20).await, [(conversation, 66)]);
}

#[tokio::test]
async fn the_writers_idempotency_lookup_uses_its_own_index_from_the_first_batch() {
    // One lane, so one writer connection: its plans are made on the first batch, while
    // the tables are empty, and kept.
    let app = spawn_app_with(|config| config.database.writer_lanes = 1).await;
    let (ana, bo) = (app.register("ana_plan").await, app.register("bo_plan").await);
    befriend(&app, &ana, &bo).await;
    let conversation = direct(&app, &ana, &bo).await;
    for i in 0..120 {
        send_text(&app, &ana, conversation, &format!("message {i}")).await;
    }
    // A backend reports its statistics at the end of a transaction at most once a
    // second: one more send, a second later, reports everything before it.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    send_text(&app, &ana, conversation, "the last one").await;
    let (lookups, read_through_sync_index): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'messages_client_msg_id_key'),
                (SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'messages_conversation_version')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(lookups >= 120, "every send looked its id up ({lookups} lookups reported)");
    assert_eq!(read_through_sync_index, 0, "no send read earlier messages through the sync index");
}

#[tokio::test]
async fn a_send_does_not_wait_for_a_transaction_that_only_references_its_conversation() {
    // The statement timeout turns a wait into a 503 instead of a hung test.
    let app = spawn_app_with(|config| config.database.db_statement_timeout = std::time::Duration::from_secs(2)).await;
    let (ana, bo) = (app.register("ana_keyshare").await, app.register("bo_keyshare").await);
    befriend(&app, &ana, &bo).await;
    let conversation = direct(&app, &ana, &bo).await;
    send_text(&app, &ana, conversation, "before").await;

    // What the search indexer holds while it inserts a block for this conversation (and
    // any insert of a row referencing it): a foreign-key lock, for its whole transaction.
    let mut indexer = app.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM conversations WHERE id = $1 FOR KEY SHARE")
        .bind(conversation)
        .execute(&mut *indexer)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let sent = send(&app, &ana, conversation, json!({ "client_msg_id": Uuid::new_v4(), "body": "during" })).await;
    assert_eq!(sent.status(), 201, "the send was not held up by the lock");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "stored without waiting for the other transaction");
    assert_eq!(sent.json::<Value>().await.unwrap()["seq"], 2);
    indexer.rollback().await.unwrap();
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn conversation_settings_pin_and_archive() {
    let app = spawn_app().await;
    let users = app.seed_users("setting", 1).await;
    let owner = &users[0];
    let (_, first) = group_with(&app, owner, &[], json!({ "name": "First" })).await;
    let (_, second) = group_with(&app, owner, &[], json!({ "name": "Second" })).await;
    send_text(&app, owner, second, "newest activity").await;
    let order =
        |list: &Value| list["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect::<Vec<_>>();
    let list: Value = app.get_as(&owner.access_token, "/api/v1/conversations").await.json().await.unwrap();
    assert_eq!(order(&list), [second, first], "latest activity first");

    let settings = format!("/api/v1/conversations/{first}/settings");
    let pinned = call(&app, owner, Method::PATCH, &settings, Some(json!({ "pinned": true }))).await;
    assert_eq!(pinned.json::<Value>().await.unwrap()["pinned"], true);
    let list: Value = app.get_as(&owner.access_token, "/api/v1/conversations").await.json().await.unwrap();
    assert_eq!(order(&list), [first, second], "pinned first");

    let page: Value = app.get_as(&owner.access_token, "/api/v1/conversations?limit=1").await.json().await.unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = app
        .get_as(&owner.access_token, &format!("/api/v1/conversations?limit=1&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order(&next), [second]);

    call(
        &app,
        owner,
        Method::PATCH,
        &format!("/api/v1/conversations/{second}/settings"),
        Some(json!({ "archived": true })),
    )
    .await;
    let list: Value = app.get_as(&owner.access_token, "/api/v1/conversations").await.json().await.unwrap();
    assert_eq!(order(&list), [first]);
    let archived: Value =
        app.get_as(&owner.access_token, "/api/v1/conversations?archived=true").await.json().await.unwrap();
    assert_eq!(order(&archived), [second]);
    let bad = call(&app, owner, Method::PATCH, &settings, Some(json!({ "pinned": "yes" }))).await;
    assert_eq!(error_code(bad, 400).await, "invalid_body");
}

#[tokio::test]
async fn every_acknowledged_message_survives_a_shutdown_with_queued_writes() {
    let app = spawn_app().await;
    let users = app.seed_users("drain", 20).await;
    let (owner, others) = users.split_first().unwrap();
    let members: Vec<&TestUser> = others.iter().collect();
    let (_, conversation) = group_with(&app, owner, &members, json!({})).await;
    let url = app.url(&format!("/api/v1/conversations/{conversation}/messages"));
    let mut tasks = Vec::new();
    for user in &users {
        for _ in 0..10 {
            let (client, url, token) = (app.client.clone(), url.clone(), user.access_token.clone());
            tasks.push(tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "client_msg_id": Uuid::new_v4(), "body": "in flight" }))
                    .send()
                    .await
                    .ok()?;
                if response.status() == 201 { response.json::<Value>().await.ok()?["seq"].as_i64() } else { None }
            }));
        }
    }
    // Shut down while sends are in flight: once some are stored, not before.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while message_count(&app).await < 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app.local().shutdown.cancel();
    let mut acked = Vec::new();
    for task in tasks {
        if let Some(seq) = task.await.unwrap() {
            acked.push(seq);
        }
    }
    app.in_process.expect("in process").server.await.unwrap().unwrap();
    assert!(!acked.is_empty(), "some sends were acknowledged before the shutdown");
    // The app closed its pool on the way out; look with a connection of our own.
    let mut check = <sqlx::PgConnection as sqlx::Connection>::connect_with(&app.db_options).await.unwrap();
    let stored: Vec<i64> = sqlx::query_scalar("SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq")
        .bind(conversation)
        .fetch_all(&mut check)
        .await
        .unwrap();
    for seq in &acked {
        assert!(stored.contains(seq), "acknowledged seq {seq} is missing");
    }
    assert_eq!(stored, (1..=stored.len() as i64).collect::<Vec<_>>(), "gap-free");
}

#[tokio::test]
async fn retention_deletes_messages_past_their_days_and_expired_sessions_and_nothing_else() {
    let app = crate::support::spawn_app().await;
    let (ann, bob) = (app.register("kept_or_not_ann").await, app.register("kept_or_not_bob").await);
    crate::support::befriend(&app, &ann, &bob).await;
    let conversation = crate::support::open_direct(&app, &ann, &bob).await;
    for text in ["old one", "old two", "recent"] {
        crate::support::send_text(&app, &ann, conversation, text).await;
    }
    let reaction = format!("/api/v1/conversations/{conversation}/messages/1/reactions/👍");
    assert_eq!(call(&app, &bob, Method::PUT, &reaction, None).await.status(), 204);
    // Two messages from 40 days ago, one session that expired two days ago.
    sqlx::query("UPDATE messages SET created_at = now() - interval '40 days' WHERE body LIKE 'old %'")
        .execute(&app.pool)
        .await
        .unwrap();
    let stale = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, now() - interval '2 days')")
        .bind(stale)
        .bind(ann.id)
        .execute(&app.pool)
        .await
        .unwrap();
    // The held-back names of two deleted accounts: one free again since yesterday.
    sqlx::query(
        "INSERT INTO retired_usernames (username_hash, available_at)
         VALUES ('\\x01', now() - interval '1 day'), ('\\x02', now() + interval '1 day')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // Two webhook dead letters, one past the 30 days they are kept; a delivery still
    // pending, however old, is never swept.
    sqlx::query(
        "INSERT INTO webhook_deliveries (endpoint, recipient_id, conversation_id, seq, sender_id, kind, muted,
                                         created_at, attempts, dead_at)
         VALUES ('http://old.example/', 1, 1, 1, 1, 'text', false, now() - interval '40 days', 10, now() - interval '31 days'),
                ('http://new.example/', 1, 1, 2, 1, 'text', false, now() - interval '40 days', 10, now() - interval '29 days'),
                ('http://pending.example/', 1, 1, 3, 1, 'text', false, now() - interval '40 days', 1, NULL)",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    // An instance with 30 days of retention sweeps as it starts.
    let keeper = crate::support::spawn_peer_with(&app, |config| config.chat.retention_days = 30).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let remaining = loop {
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM messages WHERE conversation_id = $1 ORDER BY seq")
                .bind(conversation)
                .fetch_all(&app.pool)
                .await
                .unwrap();
        if bodies.len() < 3 || std::time::Instant::now() > deadline {
            break bodies;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(remaining, ["recent"], "only what is past 30 days goes");
    let reactions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM message_reactions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(reactions, 0, "reactions go with their message");
    // The sweep deletes messages first, then sessions, tickets and names: wait for the rest.
    let sessions = loop {
        let sessions: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
            .bind(ann.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
        if !sessions.contains(&stale) || std::time::Instant::now() > deadline {
            break sessions;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(!sessions.contains(&stale), "the long-expired session is gone");
    assert!(!sessions.is_empty(), "live sessions stay");
    let held = loop {
        let held: Vec<Vec<u8>> = sqlx::query_scalar("SELECT username_hash FROM retired_usernames ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
        if held.len() < 2 || std::time::Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(held, [vec![2u8]], "a name is forgotten once it is free again, and not before");
    let deliveries = loop {
        let left: Vec<String> = sqlx::query_scalar("SELECT endpoint FROM webhook_deliveries ORDER BY seq")
            .fetch_all(&app.pool)
            .await
            .unwrap();
        if left.len() < 3 || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(deliveries, ["http://new.example/", "http://pending.example/"], "only the old dead letter goes");
    let metrics = keeper.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        crate::support::metric_value(&metrics, "goim_retention_deleted_total{kind=\"messages\"}"),
        2.0,
        "{metrics}"
    );
    // The history still answers, from the oldest message kept.
    let history = keeper.get_as(&ann.access_token, &format!("/api/v1/conversations/{conversation}/messages")).await;
    assert_eq!(history.status(), 200);
}
