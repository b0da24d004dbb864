//! Server administration through `/api/v1/admin/*` and `goim admin …` (docs/operations.md).
//! That every other caller gets 403 on every admin route is a row of the authorisation
//! matrix (`matrix.rs`) per route.

use std::{process::Output, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    TEST_PASSWORD, TestApp, TestUser, befriend, binary::goim_command, call, cluster, error_code, open_direct,
    send_text, spawn_app,
};

/// `goim admin ARGS…` against `app`'s database, as an operator runs it.
async fn goim_admin(app: &TestApp, args: &[&str]) -> Output {
    let url = cluster().database_url(&app.db_options);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        goim_command(dir.path()).env("DATABASE_URL", url).arg("admin").args(&args).output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Registers `name` and makes them a server administrator from the command line.
pub(crate) async fn admin_user(app: &TestApp, name: &str) -> TestUser {
    let user = app.register(name).await;
    let granted = goim_admin(app, &["grant", name]).await;
    assert!(granted.status.success(), "grant: {}", String::from_utf8_lossy(&granted.stderr));
    user
}

async fn ok_json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/login", &json!({ "username": username, "password": password })).await
}

#[tokio::test]
async fn only_the_command_line_makes_an_administrator() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    assert_eq!(error_code(call(&app, &alice, Method::GET, "/api/v1/admin/stats", None).await, 403).await, "not_admin");
    // The flag is not a profile field: the API cannot set it.
    let patched = call(&app, &alice, Method::PATCH, "/api/v1/me", Some(json!({ "is_admin": true }))).await;
    assert_eq!(error_code(patched, 400).await, "invalid_body");

    let granted = goim_admin(&app, &["grant", "ALICE"]).await;
    assert!(granted.status.success(), "{}", String::from_utf8_lossy(&granted.stderr));
    assert!(stdout(&granted).contains("is now a server administrator"), "{}", stdout(&granted));
    let stats = ok_json(call(&app, &alice, Method::GET, "/api/v1/admin/stats", None).await).await;
    assert_eq!(stats["users"], 1);
    assert!(stats["database_bytes"].as_i64().unwrap() > 0, "{stats}");

    let unknown = goim_admin(&app, &["grant", "nobody"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such user"));

    let revoked = goim_admin(&app, &["revoke", "alice"]).await;
    assert!(revoked.status.success());
    assert_eq!(error_code(call(&app, &alice, Method::GET, "/api/v1/admin/stats", None).await, 403).await, "not_admin");
}

#[tokio::test]
async fn administrators_list_users_and_see_statistics() {
    let app = spawn_app().await;
    let root = admin_user(&app, "root").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    befriend(&app, &bob, &carol).await;
    let conversation = open_direct(&app, &bob, &carol).await;
    send_text(&app, &bob, conversation, "one").await;
    send_text(&app, &carol, conversation, "two").await;
    let mut socket = app.connect(&bob).await;
    socket.request("ping", json!({})).await;

    // Presence is recorded just after the socket opens: wait (bounded) until it shows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = ok_json(call(&app, &root, Method::GET, "/api/v1/admin/users?q=BO", None).await).await;
        if page["items"][0]["online"] == true || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["username"], "bob");
    assert_eq!(items[0]["active_sessions"], 1);
    assert_eq!(items[0]["online"], true);
    assert_eq!(items[0]["is_admin"], false);

    let first = ok_json(call(&app, &root, Method::GET, "/api/v1/admin/users?limit=2", None).await).await;
    let names: Vec<&str> = first["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["carol", "bob"], "newest first");
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest =
        ok_json(call(&app, &root, Method::GET, &format!("/api/v1/admin/users?cursor={cursor}"), None).await).await;
    assert_eq!(rest["items"][0]["username"], "root");
    assert!(rest["next_cursor"].is_null());

    let stats = ok_json(call(&app, &root, Method::GET, "/api/v1/admin/stats", None).await).await;
    assert_eq!(stats["users"], 3);
    assert_eq!(stats["online_users"], 1);
    assert_eq!(stats["messages_today"], 2);
    assert_eq!(stats["groups"], 0);

    let bad = call(&app, &root, Method::GET, "/api/v1/admin/users?limit=0", None).await;
    assert_eq!(error_code(bad, 400).await, "validation_failed");
    let bad = call(&app, &root, Method::GET, "/api/v1/admin/audit?cursor=nonsense", None).await;
    assert_eq!(error_code(bad, 400).await, "invalid_cursor");
}

#[tokio::test]
async fn deactivation_closes_sockets_at_once_and_refuses_logins_until_reactivated() {
    let app = spawn_app().await;
    let root = admin_user(&app, "root").await;
    let bob = app.register("bob").await;
    let mut socket = app.connect(&bob).await;
    socket.request("ping", json!({})).await;

    let path = format!("/api/v1/admin/users/{}/deactivate", bob.id);
    assert_eq!(call(&app, &root, Method::POST, &path, None).await.status(), 204);
    assert_eq!(socket.closed_with().await, Some(4001), "the socket closes on the spot");
    let refused = app.get_as(&bob.access_token, "/api/v1/me").await;
    assert_eq!(error_code(refused, 401).await, "session_revoked");
    let refreshed = app.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": bob.refresh_token })).await;
    assert_eq!(error_code(refreshed, 401).await, "session_revoked");
    assert_eq!(error_code(login_status(&app, "bob", TEST_PASSWORD).await, 403).await, "account_deactivated");
    // Only the right password learns why: a guesser sees the usual answer.
    assert_eq!(error_code(login_status(&app, "bob", "a wrong password").await, 401).await, "invalid_credentials");
    let search = ok_json(call(&app, &root, Method::GET, "/api/v1/users?q=bob", None).await).await;
    assert_eq!(search["items"], json!([]), "deactivated accounts are not found");

    // Twice is the same as once, and an administrator cannot lock themselves out.
    assert_eq!(call(&app, &root, Method::POST, &path, None).await.status(), 204);
    let own = format!("/api/v1/admin/users/{}/deactivate", root.id);
    assert_eq!(error_code(call(&app, &root, Method::POST, &own, None).await, 400).await, "cannot_deactivate_self");
    let unknown = call(&app, &root, Method::POST, "/api/v1/admin/users/999999/deactivate", None).await;
    assert_eq!(error_code(unknown, 404).await, "user_not_found");

    let path = format!("/api/v1/admin/users/{}/reactivate", bob.id);
    assert_eq!(call(&app, &root, Method::POST, &path, None).await.status(), 204);
    assert_eq!(login_status(&app, "bob", TEST_PASSWORD).await.status(), 200);
    let refused = app.get_as(&bob.access_token, "/api/v1/me").await;
    assert_eq!(error_code(refused, 401).await, "session_revoked", "old sessions stay signed out");

    let audit = ok_json(call(&app, &root, Method::GET, "/api/v1/admin/audit", None).await).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["reactivate_user", "deactivate_user", "grant_admin"], "each change once, newest first");
    let deactivation = &audit["items"][1];
    assert_eq!(deactivation["actor_id"], root.id);
    assert_eq!(deactivation["actor_username"], "root");
    assert_eq!(deactivation["target_user_id"], bob.id);
    assert_eq!(deactivation["detail"]["sessions_revoked"], 1);
    assert!(audit["items"][2]["actor_id"].is_null(), "the grant came from the command line");
}

#[tokio::test]
async fn administrators_reset_passwords_remove_messages_and_disband_groups() {
    let app = spawn_app().await;
    let root = admin_user(&app, "root").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    befriend(&app, &bob, &carol).await;
    let conversation = open_direct(&app, &bob, &carol).await;
    for text in ["spam one", "spam two", "spam three"] {
        send_text(&app, &bob, conversation, text).await;
    }
    send_text(&app, &carol, conversation, "carol stays").await;
    let mut watching = app.connect(&carol).await;
    watching.request("ping", json!({})).await;

    let path = format!("/api/v1/admin/users/{}/messages", bob.id);
    let removed = ok_json(call(&app, &root, Method::DELETE, &path, None).await).await;
    assert_eq!(removed["deleted"], 3);
    let event = watching.event("message_deleted", |_| true).await;
    assert_eq!(event["conversation_id"], conversation);
    assert_eq!(event["by_user_id"], root.id);
    let history =
        ok_json(call(&app, &carol, Method::GET, &format!("/api/v1/conversations/{conversation}/messages"), None).await)
            .await;
    let bodies: Vec<Value> = history["items"].as_array().unwrap().iter().map(|m| m["body"].clone()).collect();
    assert_eq!(bodies.iter().filter(|b| b.is_null()).count(), 3, "{history}");
    assert!(bodies.contains(&json!("carol stays")));
    let again = ok_json(call(&app, &root, Method::DELETE, &path, None).await).await;
    assert_eq!(again["deleted"], 0, "nothing left to remove");

    let path = format!("/api/v1/admin/users/{}/password", bob.id);
    let short = call(&app, &root, Method::POST, &path, Some(json!({ "password": "short" }))).await;
    assert_eq!(error_code(short, 400).await, "validation_failed");
    let reset = call(&app, &root, Method::POST, &path, Some(json!({ "password": "a brand new horse" }))).await;
    assert_eq!(reset.status(), 204);
    assert_eq!(error_code(app.get_as(&bob.access_token, "/api/v1/me").await, 401).await, "session_revoked");
    assert_eq!(error_code(login_status(&app, "bob", TEST_PASSWORD).await, 401).await, "invalid_credentials");
    assert_eq!(login_status(&app, "bob", "a brand new horse").await.status(), 200);

    let created =
        call(&app, &carol, Method::POST, "/api/v1/groups", Some(json!({ "name": "carols", "join_policy": "open" })))
            .await;
    let group = created.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let path = format!("/api/v1/admin/groups/{group}");
    assert_eq!(call(&app, &root, Method::DELETE, &path, None).await.status(), 204);
    assert!(watching.sees_event_within("group_disbanded", Duration::from_secs(5)).await);
    assert_eq!(error_code(call(&app, &root, Method::DELETE, &path, None).await, 410).await, "group_disbanded");
    let unknown = call(&app, &root, Method::DELETE, "/api/v1/admin/groups/999999", None).await;
    assert_eq!(error_code(unknown, 404).await, "group_not_found");

    let audit = ok_json(call(&app, &root, Method::GET, "/api/v1/admin/audit?limit=3", None).await).await;
    let entries = audit["items"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["disband_group", "reset_password", "delete_messages"]);
    assert_eq!(entries[0]["target_group_id"], group);
    assert_eq!(entries[2]["detail"]["messages"], 0, "the second removal found nothing");
    assert!(audit["next_cursor"].is_string(), "older entries follow");
}

#[tokio::test]
async fn the_command_line_acts_on_a_running_server() {
    let app = spawn_app().await;
    app.wait_until_ready().await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    befriend(&app, &bob, &carol).await;
    let conversation = open_direct(&app, &bob, &carol).await;
    send_text(&app, &bob, conversation, "from bob").await;
    let mut socket = app.connect(&bob).await;
    socket.request("ping", json!({})).await;

    let listed = goim_admin(&app, &["users", "bo"]).await;
    assert!(listed.status.success());
    let lines = stdout(&listed);
    assert!(lines.lines().any(|l| l.contains("bob")) && !lines.contains("carol"), "{lines}");

    // The running server hears about it through the relay, and closes the socket.
    let deactivated = goim_admin(&app, &["deactivate", "bob"]).await;
    assert!(deactivated.status.success(), "{}", String::from_utf8_lossy(&deactivated.stderr));
    assert_eq!(socket.closed_with().await, Some(4001));
    assert_eq!(error_code(login_status(&app, "bob", TEST_PASSWORD).await, 403).await, "account_deactivated");
    assert!(goim_admin(&app, &["reactivate", "bob"]).await.status.success());

    let reset = goim_admin(&app, &["reset-password", "bob"]).await;
    assert!(reset.status.success());
    let output = stdout(&reset);
    let password = output.trim().rsplit(' ').next().unwrap();
    assert_eq!(password.len(), 20, "{output}");
    assert_eq!(login_status(&app, "bob", password).await.status(), 200);

    let removed = goim_admin(&app, &["delete-messages", "bob"]).await;
    assert!(stdout(&removed).contains("removed 1 message"), "{}", stdout(&removed));

    let stats = stdout(&goim_admin(&app, &["stats"]).await);
    assert!(stats.lines().any(|l| l.starts_with("users:") && l.trim_end().ends_with(" 2")), "{stats}");
    let audit = stdout(&goim_admin(&app, &["audit", "--limit", "10"]).await);
    for action in ["deactivate_user", "reactivate_user", "reset_password", "delete_messages"] {
        assert!(audit.contains(action), "{action} missing from {audit}");
    }
    assert!(audit.contains("(command line)"), "{audit}");
}
