//! `DELETE /api/v1/me`: an account deleted by its owner leaves no personal data behind.

use goim::config::DeletedAccountMessages;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::{
    TEST_PASSWORD, TestApp, TestUser, befriend, call, error_code, open_direct, send_text, spawn_app, spawn_app_with,
};

/// Strings only the deleted account's profile holds.
const MARKERS: [&str; 4] = ["zebramarker", "Nick Zebra", "bio of a zebra", "zebra.example"];

async fn delete_account(app: &TestApp, user: &TestUser, password: &str) -> reqwest::Response {
    call(app, user, Method::DELETE, "/api/v1/me", Some(json!({ "password": password }))).await
}

async fn json_of(response: reqwest::Response) -> Value {
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

async fn create_group(app: &TestApp, owner: &TestUser, name: &str) -> i64 {
    let body = json!({ "name": name, "join_policy": "open" });
    json_of(call(app, owner, Method::POST, "/api/v1/groups", Some(body)).await).await["id"].as_i64().unwrap()
}

async fn join(app: &TestApp, user: &TestUser, group: i64) {
    let path = format!("/api/v1/groups/{group}/join");
    assert!(call(app, user, Method::POST, &path, Some(json!({}))).await.status().is_success());
}

/// Every row of every table (in the public schema) whose text contains one of `MARKERS`.
async fn rows_with_markers(app: &TestApp) -> Vec<String> {
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json')",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut found = Vec::new();
    for column in columns {
        let (table, name): (String, String) = (column.get(0), column.get(1));
        for marker in MARKERS {
            let sql = format!(r#"SELECT count(*) FROM "{table}" WHERE "{name}"::text ILIKE '%' || $1 || '%'"#);
            let count: i64 = sqlx::query_scalar(&sql).bind(marker).fetch_one(&app.pool).await.unwrap();
            if count > 0 {
                found.push(format!("{table}.{name} holds {marker:?}"));
            }
        }
    }
    found
}

/// Rows that still name `user` by id in the tables of relations and credentials.
async fn relation_rows(app: &TestApp, user: i64) -> Vec<String> {
    let checks = [
        ("sessions", "user_id = $1"),
        ("friendships", "user_id = $1 OR friend_id = $1"),
        ("friend_requests", "from_user = $1 OR to_user = $1"),
        ("blocks", "blocker_id = $1 OR blocked_id = $1"),
        ("group_members", "user_id = $1"),
        ("group_join_requests", "user_id = $1"),
        ("group_invitations", "inviter_id = $1 OR invitee_id = $1"),
        ("ws_tickets", "user_id = $1"),
        ("message_reactions", "user_id = $1"),
    ];
    let mut found = Vec::new();
    for (table, condition) in checks {
        let sql = format!("SELECT count(*) FROM {table} WHERE {condition}");
        let count: i64 = sqlx::query_scalar(&sql).bind(user).fetch_one(&app.pool).await.unwrap();
        if count > 0 {
            found.push(format!("{count} row(s) in {table}"));
        }
    }
    let tokens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE s.user_id = $1",
    )
    .bind(user)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    if tokens > 0 {
        found.push(format!("{tokens} refresh token(s)"));
    }
    found
}

#[tokio::test]
async fn a_deleted_account_leaves_no_personal_data_and_hands_its_groups_on() {
    let app = spawn_app().await;
    let zed = app.register("zebramarker").await;
    let profile = json!({ "nickname": "Nick Zebra", "bio": "bio of a zebra", "birthday": "1990-01-02",
                          "avatar_url": "https://zebra.example/a.png" });
    assert_eq!(call(&app, &zed, Method::PATCH, "/api/v1/me", Some(profile)).await.status(), 200);
    let erin = app.register("erin").await;
    let frank = app.register("frank").await;
    let gina = app.register("gina").await;
    let hal = app.register("hal").await;
    befriend(&app, &zed, &erin).await;
    let asked = call(&app, &zed, Method::POST, "/api/v1/friend-requests", Some(json!({ "to_user_id": frank.id })));
    assert_eq!(asked.await.status(), 201);
    assert_eq!(call(&app, &zed, Method::PUT, &format!("/api/v1/blocks/{}", gina.id), None).await.status(), 204);
    let owned = create_group(&app, &zed, "zeds").await;
    join(&app, &erin, owned).await;
    let alone = create_group(&app, &zed, "nobody else").await;
    let others = create_group(&app, &hal, "hals").await;
    join(&app, &zed, others).await;
    let invite = json!({ "user_id": frank.id });
    let invited = call(&app, &zed, Method::POST, &format!("/api/v1/groups/{owned}/invitations"), Some(invite)).await;
    assert!(invited.status().is_success(), "{}", invited.status());
    let direct = open_direct(&app, &zed, &erin).await;
    let kept = send_text(&app, &zed, direct, "a message that stays").await;
    let theirs = send_text(&app, &erin, direct, "erin writes").await;
    let react = format!("/api/v1/conversations/{direct}/messages/{}/reactions/%F0%9F%91%8D", theirs["seq"]);
    assert!(call(&app, &zed, Method::PUT, &react, None).await.status().is_success());
    let ticket = call(&app, &zed, Method::POST, "/api/v1/ws/ticket", None).await;
    assert!(ticket.status().is_success());
    let mut erin_socket = app.connect(&erin).await;
    erin_socket.request("ping", json!({})).await;

    // The wrong password, or no password, changes nothing.
    assert_eq!(error_code(delete_account(&app, &zed, "not my password").await, 403).await, "wrong_password");
    let missing = call(&app, &zed, Method::DELETE, "/api/v1/me", Some(json!({}))).await;
    assert_eq!(error_code(missing, 400).await, "invalid_body");
    assert_eq!(call(&app, &zed, Method::GET, "/api/v1/me", None).await.status(), 200);

    assert_eq!(delete_account(&app, &zed, TEST_PASSWORD).await.status(), 204);

    assert_eq!(rows_with_markers(&app).await, Vec::<String>::new(), "no profile data survives");
    assert_eq!(relation_rows(&app, zed.id).await, Vec::<String>::new(), "no relation or credential survives");
    let user = sqlx::query(
        "SELECT username, nickname, password_hash, birthday IS NULL AS no_birthday FROM users WHERE id = $1",
    )
    .bind(zed.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(user.get::<String, _>(0), format!("#deleted-{}", zed.id));
    assert_eq!(user.get::<String, _>(1), "Deleted user");
    assert_eq!(user.get::<String, _>(2), "");
    assert!(user.get::<bool, _>(3));

    // Signed out, unknown to login, and the name is held back.
    assert_eq!(error_code(call(&app, &zed, Method::GET, "/api/v1/me", None).await, 401).await, "session_revoked");
    let credentials = json!({ "username": "zebramarker", "password": TEST_PASSWORD });
    let login = app.post_json("/api/v1/auth/login", &credentials).await;
    assert_eq!(error_code(login, 401).await, "invalid_credentials");
    let credentials = json!({ "username": "ZebraMarker", "password": TEST_PASSWORD });
    let again = app.post_json("/api/v1/auth/register", &credentials).await;
    assert_eq!(error_code(again, 409).await, "username_taken");

    // Erin: the friendship ends live, the group is hers now, the message stays with a
    // "Deleted user" author, and nobody can write to the deleted account.
    let removed = erin_socket.event("friend_removed", |e| e["user_id"] == zed.id).await;
    assert_eq!(removed["user_id"], zed.id);
    let friends = json_of(call(&app, &erin, Method::GET, "/api/v1/friends", None).await).await;
    assert_eq!(friends["items"], json!([]));
    let group = json_of(call(&app, &erin, Method::GET, &format!("/api/v1/groups/{owned}"), None).await).await;
    assert_eq!(group["my_role"], "owner", "{group}");
    let history =
        json_of(call(&app, &erin, Method::GET, &format!("/api/v1/conversations/{direct}/messages"), None).await).await;
    let message = history["items"].as_array().unwrap().iter().find(|m| m["seq"] == kept["seq"]).unwrap().clone();
    assert_eq!(message["body"], "a message that stays");
    assert_eq!(message["sender_id"], zed.id);
    let reactions = history["items"].as_array().unwrap().iter().find(|m| m["seq"] == theirs["seq"]).unwrap().clone();
    assert!(reactions["reactions"].as_array().is_none_or(Vec::is_empty), "{reactions}");
    let profile = json_of(call(&app, &erin, Method::GET, &format!("/api/v1/users/{}", zed.id), None).await).await;
    assert_eq!(profile["nickname"], "Deleted user");
    let body = json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": "are you there?" });
    let sent = call(&app, &erin, Method::POST, &format!("/api/v1/conversations/{direct}/messages"), Some(body)).await;
    assert_eq!(error_code(sent, 410).await, "account_deleted");
    let request = call(&app, &erin, Method::POST, "/api/v1/friend-requests", Some(json!({ "to_user_id": zed.id })));
    assert_eq!(error_code(request.await, 404).await, "user_not_found");
    let search = json_of(call(&app, &erin, Method::GET, "/api/v1/users?q=deleted", None).await).await;
    assert_eq!(search["items"], json!([]));

    // The group with nobody else in it is disbanded; hal's group just lost a member.
    let disbanded: bool = sqlx::query_scalar("SELECT disbanded_at IS NOT NULL FROM groups WHERE id = $1")
        .bind(alone)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(disbanded);
    let members = json_of(call(&app, &hal, Method::GET, &format!("/api/v1/groups/{others}/members"), None).await).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "{members}");
}

#[tokio::test]
async fn the_remove_setting_removes_a_deleted_accounts_messages() {
    let app = spawn_app_with(|c| c.chat.deleted_account_messages = DeletedAccountMessages::Remove).await;
    let zed = app.register("zed").await;
    let erin = app.register("erin").await;
    befriend(&app, &zed, &erin).await;
    let direct = open_direct(&app, &zed, &erin).await;
    send_text(&app, &zed, direct, "first").await;
    send_text(&app, &zed, direct, "second").await;
    send_text(&app, &erin, direct, "erin's own").await;
    let mut erin_socket = app.connect(&erin).await;
    erin_socket.request("ping", json!({})).await;

    assert_eq!(delete_account(&app, &zed, TEST_PASSWORD).await.status(), 204);
    let deleted = erin_socket.event("message_deleted", |e| e["conversation_id"] == direct).await;
    assert_eq!(deleted["by_user_id"], zed.id);
    let history =
        json_of(call(&app, &erin, Method::GET, &format!("/api/v1/conversations/{direct}/messages"), None).await).await;
    let bodies: Vec<Value> = history["items"].as_array().unwrap().iter().map(|m| m["body"].clone()).collect();
    assert_eq!(bodies.iter().filter(|b| b.is_null()).count(), 2, "{history}");
    assert!(bodies.contains(&json!("erin's own")));
}

/// A deleted account's files: those its kept messages show stay with the conversation;
/// unsent ones, and with `remove` the removed messages' files, go at once.
#[tokio::test]
async fn a_deleted_accounts_unsent_uploads_go_and_sent_ones_follow_its_messages() {
    for (setting, kept) in [(DeletedAccountMessages::Keep, vec!["sent.txt"]), (DeletedAccountMessages::Remove, vec![])]
    {
        let app = spawn_app_with(|c| c.chat.deleted_account_messages = setting).await;
        let zed = app.register("zed").await;
        let erin = app.register("erin").await;
        befriend(&app, &zed, &erin).await;
        let direct = open_direct(&app, &zed, &erin).await;
        let sent = crate::uploads::uploaded(&app, &zed, "sent.txt", b"shared".to_vec()).await;
        crate::uploads::uploaded(&app, &zed, "unsent.txt", b"private".to_vec()).await;
        let message =
            json!({ "client_msg_id": uuid::Uuid::new_v4(), "kind": "file", "content": { "upload_id": sent["id"] } });
        let path = format!("/api/v1/conversations/{direct}/messages");
        assert_eq!(call(&app, &zed, Method::POST, &path, Some(message)).await.status(), 201);

        assert_eq!(delete_account(&app, &zed, TEST_PASSWORD).await.status(), 204);
        let left: Vec<String> =
            sqlx::query_scalar("SELECT name FROM uploads ORDER BY name").fetch_all(&app.pool).await.unwrap();
        assert_eq!(left, kept, "{setting:?}");
        let download =
            call(&app, &erin, Method::GET, &format!("/api/v1/uploads/{}", sent["id"].as_str().unwrap()), None).await;
        assert_eq!(download.status(), if kept.is_empty() { 404 } else { 200 }, "{setting:?}");
    }
}

#[tokio::test]
async fn a_username_comes_back_after_the_reuse_delay() {
    let app = spawn_app_with(|c| c.chat.username_reuse_days = 0).await;
    let first = app.register("recycled").await;
    assert_eq!(delete_account(&app, &first, TEST_PASSWORD).await.status(), 204);
    let second = app.register("recycled").await;
    assert_ne!(second.id, first.id);
    // Another account's socket or token never reaches the new owner of the name.
    assert_eq!(error_code(call(&app, &first, Method::GET, "/api/v1/me", None).await, 401).await, "session_revoked");
    let me = json_of(call(&app, &second, Method::GET, "/api/v1/me", None).await).await;
    assert_eq!(me["username"], "recycled");
}

/// Messages name their sender and conversation without a foreign key (migration 20), so
/// the database itself refuses to delete or truncate either, even to an operator in
/// `psql`; an account is erased in place instead.
#[tokio::test]
async fn the_database_refuses_to_delete_a_user_or_a_conversation_that_messages_name() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let ben = app.register("ben").await;
    befriend(&app, &ann, &ben).await;
    let direct = open_direct(&app, &ann, &ben).await;
    send_text(&app, &ann, direct, "still named").await;

    let statements = [
        format!("DELETE FROM users WHERE id = {}", ann.id),
        format!("DELETE FROM conversations WHERE id = {direct}"),
        "TRUNCATE users CASCADE".to_owned(),
        "TRUNCATE conversations CASCADE".to_owned(),
    ];
    for statement in statements {
        let refused = sqlx::query(&statement).execute(&app.pool).await.unwrap_err();
        let code = refused.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("23001"), "{statement}: {refused}");
    }
    let kept: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM users WHERE id = $1), (SELECT count(*) FROM messages WHERE conversation_id = $2)",
    )
    .bind(ann.id)
    .bind(direct)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(kept, (1, 1), "the user and the message are still there");

    // Erasing the account (what deleting it does) still works, and keeps its message.
    assert_eq!(delete_account(&app, &ann, TEST_PASSWORD).await.status(), 204);
    let history = call(&app, &ben, Method::GET, &format!("/api/v1/conversations/{direct}/messages"), None).await;
    let history = json_of(history).await;
    assert_eq!(history["items"].as_array().map(Vec::len), Some(1), "{history}");
}
