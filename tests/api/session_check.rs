//! How a request's session is checked (src/auth/extractor.rs, src/auth/revocations.rs):
//! without a database connection of its own, so a request waits for one connection at
//! most; and a revoked session's tokens are refused at once, on every instance, by
//! whichever path revoked it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use goim::auth::{Revocations, SessionCheck, TokenKeys, authenticate};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::{
    admin::admin_user,
    support::{
        TEST_PASSWORD, TestApp, TestUser, call, error_code, spawn_app, spawn_app_with, spawn_peer, test_config,
        wait_for_lock_waiters,
    },
};

/// A server with a one-connection pool: 2 s to get it, 1 s per statement.
async fn one_connection_app() -> crate::support::TestApp {
    let app = spawn_app_with(|config| {
        config.database.db_max_connections = 1;
        config.database.db_acquire_timeout = Duration::from_secs(2);
        config.database.db_statement_timeout = Duration::from_secs(1);
    })
    .await;
    app.wait_until_ready().await;
    app
}

/// The pool is full and its queue moves (connections held by statements that time out,
/// others waiting behind): an authenticated request queues for a connection once, so it
/// is answered within one acquire timeout. With the session read from the pool first, it
/// queued twice — for the session check, then behind everyone who arrived meanwhile for
/// its query — and answered 503 after nearly two.
#[tokio::test]
async fn an_authenticated_request_queues_for_one_connection_only() {
    let app = one_connection_app().await;
    let ann = app.register("queue_ann").await;
    let group = crate::support::call(
        &app,
        &ann,
        Method::POST,
        "/api/v1/groups",
        Some(json!({ "name": "Queue", "join_policy": "open" })),
    )
    .await;
    let group: serde_json::Value = group.json().await.unwrap();
    let path = format!("/api/v1/groups/{}/conversation", group["id"]);
    let conversation: serde_json::Value = app.get_as(&ann.access_token, &path).await.json().await.unwrap();
    let conversation = conversation["conversation_id"].as_i64().unwrap();
    let mut socket = app.connect(&ann).await;

    // Reading history waits for this lock in its first statement (membership) until the
    // statement times out, holding the pool's only connection for a second.
    let mut locker = sqlx::PgConnection::connect_with(&app.db_options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE conversation_members IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
    let history = json!({ "conversation_id": conversation });
    socket.send("history", history.clone()).await;
    wait_for_lock_waiters(&mut locker, 1).await;

    let me = {
        let (client, url, token) = (app.client.clone(), app.url("/api/v1/me"), ann.access_token.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = client.get(url).bearer_auth(token).send().await.unwrap();
            (response.status().as_u16(), response.headers().contains_key("retry-after"), started.elapsed())
        })
    };
    // Three more readers queue behind the request, on the socket (no session check).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        socket.send("history", history.clone()).await;
    }
    let (status, retry_after, waited) = me.await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert!(status == 200 || (status == 503 && retry_after), "{status}");
    // One 2 s acquire at most (and the second the lock holds the connection, before it).
    assert!(waited < Duration::from_millis(2500), "answered {status} after {waited:?}");
}

/// One request, sent while the pool's only connection is held and others queue behind
/// it: its status and how long it took to be answered.
async fn queued_request(
    app: &TestApp,
    holder: &TestUser,
    caller: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, bool, Duration) {
    // Each holder waits for this lock in its only statement until the statement times
    // out, holding the pool's only connection for a second. None of the requests below
    // reads friend requests.
    let mut locker = sqlx::PgConnection::connect_with(&app.db_options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE friend_requests IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
    let hold = || {
        let (client, url, token) =
            (app.client.clone(), app.url("/api/v1/friend-requests"), holder.access_token.clone());
        tokio::spawn(async move { client.get(url).bearer_auth(token).send().await.map(|r| r.status()) })
    };
    let mut holders = vec![hold()];
    wait_for_lock_waiters(&mut locker, 1).await;

    let request = {
        let (client, url, token) = (app.client.clone(), app.url(path), caller.access_token.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut request = client.request(method, url).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.headers().contains_key("retry-after"), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    holders.extend((0..3).map(|_| hold()));
    let answered = request.await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    for holder in holders {
        let _ = holder.await.unwrap();
    }
    answered
}

/// The same bound for a representative request of every area: each takes one
/// connection (or one transaction) from the pool, so it queues once.
#[tokio::test]
async fn every_area_queues_for_one_connection_only() {
    let app = one_connection_app().await;
    let holder = app.register("areas_holder").await;
    let ann = admin_user(&app, "areas_ann").await;
    let bob = app.register("areas_bob").await;
    crate::support::befriend(&app, &ann, &bob).await;
    let created =
        call(&app, &ann, Method::POST, "/api/v1/groups", Some(json!({ "name": "Areas", "join_policy": "open" })));
    let group: Value = created.await.json().await.unwrap();
    let group = group["id"].as_i64().unwrap();
    let opened = call(&app, &ann, Method::POST, "/api/v1/conversations/direct", Some(json!({ "user_id": bob.id })));
    let direct: Value = opened.await.json().await.unwrap();
    let direct = direct["conversation_id"].as_i64().unwrap();

    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/conversations".into(), None),
        (Method::POST, format!("/api/v1/conversations/{direct}/read"), Some(json!({ "seq": 0 }))),
        (Method::POST, "/api/v1/conversations/direct".into(), Some(json!({ "user_id": bob.id }))),
        (Method::GET, format!("/api/v1/groups/{group}"), None),
        (Method::GET, format!("/api/v1/groups/{group}/members"), None),
        (Method::GET, format!("/api/v1/groups/{group}/announcements"), None),
        (Method::PATCH, format!("/api/v1/groups/{group}"), Some(json!({ "description": "queued" }))),
        (Method::GET, "/api/v1/friends".into(), None),
        (Method::GET, format!("/api/v1/users/{}/mutual-friends", bob.id), None),
        (Method::GET, "/api/v1/blocks".into(), None),
        (Method::GET, format!("/api/v1/users/{}", bob.id), None),
        (Method::GET, "/api/v1/messages/search?q=hello".into(), None),
        (Method::GET, "/api/v1/users?q=areas".into(), None),
        (Method::GET, "/api/v1/admin/stats".into(), None),
        (Method::GET, "/api/v1/admin/users".into(), None),
    ];
    let mut slow = Vec::new();
    for (method, path, body) in cases {
        let (status, retry_after, waited) = queued_request(&app, &holder, &ann, method.clone(), &path, body).await;
        assert!((200..300).contains(&status) || (status == 503 && retry_after), "{method} {path}: {status}");
        // One 2 s acquire at most (and the second the first holder keeps the connection).
        if waited >= Duration::from_millis(2500) {
            slow.push(format!("{method} {path}: {status} after {waited:?}"));
        }
    }
    assert!(slow.is_empty(), "queued more than once: {slow:#?}");
}

/// A second session of `user`, logged in on `app`: its access token and session id.
async fn second_session(app: &TestApp, user: &TestUser) -> (String, String) {
    let body = json!({ "username": user.username, "password": TEST_PASSWORD });
    let login: Value = app.post_json("/api/v1/auth/login", &body).await.json().await.unwrap();
    (login["access_token"].as_str().unwrap().to_owned(), login["session_id"].as_str().unwrap().to_owned())
}

/// Asserts that `token` works on `app` now; returns it for the revocation that follows.
async fn accepted(app: &TestApp, token: &str) {
    assert_eq!(app.get_as(token, "/api/v1/me").await.status(), 200);
}

/// Asserts that `app` refuses `token` as revoked within a second. Another instance learns
/// of a revocation from its notification, a few milliseconds after the revoking request
/// was answered (on a busy machine, the next request can be faster); a path the cache
/// missed is never refused, since the instance no longer reads sessions while it listens.
async fn refused(app: &TestApp, token: &str, path: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut response = app.get_as(token, "/api/v1/me").await;
    while response.status() == 200 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        response = app.get_as(token, "/api/v1/me").await;
    }
    let code = error_code(response, 401).await;
    assert_eq!(code, "session_revoked", "{path}: the revoked session's token still worked");
}

/// Every way a session ends, done on instance A; instance B, whose revocation cache is
/// authoritative (it listens), refuses the session's unexpired access token as soon as
/// the notification arrives. A path the cache missed would answer 200 here for good: B
/// no longer reads the session from the database while it listens.
#[tokio::test]
async fn every_revocation_path_refuses_the_token_on_another_instance_within_a_second() {
    let a = spawn_app().await;
    a.wait_until_ready().await;
    let b = spawn_peer(&a).await;
    let root = admin_user(&a, "rev_root").await;

    let logout = a.register("rev_logout").await;
    accepted(&b, &logout.access_token).await;
    assert_eq!(a.send_as(Method::POST, &logout.access_token, "/api/v1/auth/logout", None).await.status(), 204);
    refused(&b, &logout.access_token, "logout").await;

    let signed_out = a.register("rev_signed_out").await;
    let (other_token, _) = second_session(&a, &signed_out).await;
    accepted(&b, &signed_out.access_token).await;
    let path = format!("/api/v1/me/sessions/{}", signed_out.session_id);
    assert_eq!(a.send_as(Method::DELETE, &other_token, &path, None).await.status(), 204);
    refused(&b, &signed_out.access_token, "sign out one of my sessions").await;

    let changer = a.register("rev_changer").await;
    let (other_token, _) = second_session(&a, &changer).await;
    accepted(&b, &other_token).await;
    let change = json!({ "current_password": TEST_PASSWORD, "new_password": "another horse battery" });
    let changed = a.send_as(Method::POST, &changer.access_token, "/api/v1/auth/password", Some(&change)).await;
    assert_eq!(changed.status(), 204);
    refused(&b, &other_token, "password change signs out the other sessions").await;
    accepted(&b, &changer.access_token).await;

    let reused = a.register("rev_reused").await;
    let rotated: Value = a
        .post_json("/api/v1/auth/refresh", &json!({ "refresh_token": reused.refresh_token }))
        .await
        .json()
        .await
        .unwrap();
    let fresh_token = rotated["access_token"].as_str().unwrap().to_owned();
    accepted(&b, &fresh_token).await;
    let replay = a.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": reused.refresh_token })).await;
    assert_eq!(error_code(replay, 401).await, "refresh_token_reused");
    refused(&b, &fresh_token, "refresh-token reuse").await;

    let deactivated = a.register("rev_deactivated").await;
    accepted(&b, &deactivated.access_token).await;
    let path = format!("/api/v1/admin/users/{}/deactivate", deactivated.id);
    assert_eq!(call(&a, &root, Method::POST, &path, None).await.status(), 204);
    refused(&b, &deactivated.access_token, "admin deactivation").await;

    let reset = a.register("rev_reset").await;
    accepted(&b, &reset.access_token).await;
    let path = format!("/api/v1/admin/users/{}/password", reset.id);
    let body = json!({ "password": "a brand new horse" });
    assert_eq!(call(&a, &root, Method::POST, &path, Some(body)).await.status(), 204);
    refused(&b, &reset.access_token, "admin password reset").await;

    let deleted = a.register("rev_deleted").await;
    accepted(&b, &deleted.access_token).await;
    let gone = call(&a, &deleted, Method::DELETE, "/api/v1/me", Some(json!({ "password": TEST_PASSWORD }))).await;
    assert_eq!(gone.status(), 204);
    refused(&b, &deleted.access_token, "account deletion").await;
}

/// Notifications sent while an instance did not listen are lost; an instance that starts
/// (and one that reconnects, through the same load) reads the recent revocations and
/// deleted accounts before its cache is trusted.
#[tokio::test]
async fn an_instance_that_starts_after_a_revocation_refuses_the_token() {
    let a = spawn_app().await;
    let revoked = a.register("late_revoked").await;
    let deleted = a.register("late_deleted").await;
    let kept = a.register("late_kept").await;
    assert_eq!(a.send_as(Method::POST, &revoked.access_token, "/api/v1/auth/logout", None).await.status(), 204);
    let gone = call(&a, &deleted, Method::DELETE, "/api/v1/me", Some(json!({ "password": TEST_PASSWORD }))).await;
    assert_eq!(gone.status(), 204);

    let b = spawn_peer(&a).await;
    refused(&b, &revoked.access_token, "revoked before the instance started").await;
    refused(&b, &deleted.access_token, "account deleted before the instance started").await;
    accepted(&b, &kept.access_token).await;
}

/// While the cache is not authoritative (the listener is reconnecting, or has not loaded
/// yet), the session is read from the database: a cache that knows nothing still lets
/// no revoked session through.
#[tokio::test]
async fn without_an_authoritative_cache_the_session_is_read_from_the_database() {
    let app = spawn_app().await;
    let revoked = app.register("fallback_revoked").await;
    let kept = app.register("fallback_kept").await;
    assert_eq!(app.send_as(Method::POST, &revoked.access_token, "/api/v1/auth/logout", None).await.status(), 204);

    let config = test_config();
    let secret = config.auth.jwt_secret.clone().unwrap();
    let check = SessionCheck {
        tokens: Arc::new(TokenKeys::new(&secret, config.auth.access_token_ttl)),
        revocations: Revocations::new(config.auth.access_token_ttl),
        pool: app.pool.clone(),
    };
    assert!(!check.revocations.is_authoritative());
    let refused = authenticate(&check, &revoked.access_token).await.unwrap_err();
    assert_eq!(refused.code(), "session_revoked");
    assert!(authenticate(&check, &kept.access_token).await.is_ok());
    // The same cache, authoritative and told nothing, would have let it through: the
    // database is what refused it above.
    check.revocations.loaded(&[], &[], time::OffsetDateTime::now_utc());
    assert!(authenticate(&check, &revoked.access_token).await.is_ok());
}
