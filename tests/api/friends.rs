//! Friend requests, friendships, blocks, mutual friends and suggestions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser, befriend, error_code, spawn_app};

async fn send(app: &TestApp, from: &TestUser, to: i64) -> reqwest::Response {
    app.send_as(Method::POST, &from.access_token, "/api/v1/friend-requests", Some(&json!({ "to_user_id": to }))).await
}

async fn send_ok(app: &TestApp, from: &TestUser, to: &TestUser) -> i64 {
    let response = send(app, from, to.id).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["request"]["id"].as_i64().unwrap()
}

async fn act(app: &TestApp, user: &TestUser, request_id: i64, action: &str) -> reqwest::Response {
    app.send_as(Method::POST, &user.access_token, &format!("/api/v1/friend-requests/{request_id}/{action}"), None).await
}

async fn friend_ids(app: &TestApp, user: &TestUser) -> Vec<i64> {
    let body: Value = app.get_as(&user.access_token, "/api/v1/friends?limit=100").await.json().await.unwrap();
    body["items"].as_array().unwrap().iter().map(|f| f["user"]["id"].as_i64().unwrap()).collect()
}

async fn friendship_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM friendships").fetch_one(&app.pool).await.unwrap()
}

async fn pending_ids(app: &TestApp, user: &TestUser, direction: &str) -> Vec<i64> {
    let body: Value = app
        .get_as(&user.access_token, &format!("/api/v1/friend-requests?direction={direction}"))
        .await
        .json()
        .await
        .unwrap();
    body["items"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn a_request_is_listed_both_ways_and_accepting_makes_both_friends() {
    let app = spawn_app().await;
    let (ann, ben) = (app.register("ann").await, app.register("ben").await);
    let mut events = app.local().events.subscribe();
    let response = app
        .send_as(
            Method::POST,
            &ann.access_token,
            "/api/v1/friend-requests",
            Some(&json!({ "to_user_id": ben.id, "note": "hi, it's Ann" })),
        )
        .await;
    assert_eq!(response.status(), 201);
    let request: Value = response.json().await.unwrap();
    let request_id = request["request"]["id"].as_i64().unwrap();
    assert_eq!(request["status"], "pending");

    let incoming: Value = app.get_as(&ben.access_token, "/api/v1/friend-requests").await.json().await.unwrap();
    assert_eq!(incoming["items"][0]["note"], "hi, it's Ann");
    assert_eq!(incoming["items"][0]["user"]["username"], "ann");
    assert_eq!(pending_ids(&app, &ann, "outgoing").await, [request_id]);
    assert!(pending_ids(&app, &ann, "incoming").await.is_empty());

    assert_eq!(act(&app, &ben, request_id, "accept").await.status(), 200);
    assert_eq!(friend_ids(&app, &ann).await, [ben.id]);
    assert_eq!(friend_ids(&app, &ben).await, [ann.id]);
    assert!(pending_ids(&app, &ben, "incoming").await.is_empty());

    // The hook the gateway will use: events arrive after commit, for the right users.
    let received = events.recv().await.unwrap();
    assert_eq!(received.recipients, [goim::domain::UserId(ben.id), goim::domain::UserId(ann.id)]);
    assert!(
        matches!(received.event, goim::events::Event::FriendRequestReceived { request_id: id, .. } if id == request_id)
    );
    let accepted = events.recv().await.unwrap();
    assert!(matches!(accepted.event, goim::events::Event::FriendRequestAccepted { .. }));
}

#[tokio::test]
async fn sending_to_someone_who_already_asked_accepts_their_request() {
    let app = spawn_app().await;
    let (cat, dan) = (app.register("cat").await, app.register("dan").await);
    send_ok(&app, &cat, &dan).await;
    let response = send(&app, &dan, cat.id).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    assert_eq!(friend_ids(&app, &cat).await, [dan.id]);
    assert_eq!(friendship_rows(&app).await, 2);
}

#[tokio::test]
async fn crossed_requests_at_the_same_moment_make_friends_exactly_once() {
    let app = spawn_app().await;
    for round in 0..5 {
        let a = app.register(&format!("cross_a{round}")).await;
        let b = app.register(&format!("cross_b{round}")).await;
        let (ra, rb) = tokio::join!(send(&app, &a, b.id), send(&app, &b, a.id));
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "one request, one acceptance (round {round})");
        assert_eq!(friend_ids(&app, &a).await, [b.id]);
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM friend_requests WHERE status = 'pending' AND from_user IN ($1, $2)",
        )
        .bind(a.id)
        .bind(b.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(pending, 0);
    }
    assert_eq!(friendship_rows(&app).await, 10);
}

#[tokio::test]
async fn accept_racing_cancel_leaves_one_consistent_outcome() {
    let app = spawn_app().await;
    for round in 0..5 {
        let a = app.register(&format!("race_a{round}")).await;
        let b = app.register(&format!("race_b{round}")).await;
        let id = send_ok(&app, &a, &b).await;
        let (accepted, cancelled) = tokio::join!(act(&app, &b, id, "accept"), act(&app, &a, id, "cancel"));
        let (accepted, cancelled) = (accepted.status().as_u16(), cancelled.status().as_u16());
        let status: String = sqlx::query_scalar("SELECT status FROM friend_requests WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let friends = !friend_ids(&app, &a).await.is_empty();
        match (accepted, cancelled) {
            (200, 409) => assert!(status == "accepted" && friends, "round {round}"),
            (409, 204) => assert!(status == "cancelled" && !friends, "round {round}"),
            other => panic!("both or neither won: {other:?} (round {round})"),
        }
    }
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let app = spawn_app().await;
    let (eve, fay, gus) = (app.register("eve").await, app.register("fay").await, app.register("gus").await);

    assert_eq!(error_code(send(&app, &eve, eve.id).await, 400).await, "cannot_befriend_self");
    assert_eq!(error_code(send(&app, &eve, 999_999).await, 404).await, "user_not_found");
    let id = send_ok(&app, &eve, &fay).await;
    assert_eq!(error_code(send(&app, &eve, fay.id).await, 409).await, "request_pending");
    // Gus cannot accept, decline or cancel a request between Eve and Fay.
    for action in ["accept", "decline", "cancel"] {
        assert_eq!(error_code(act(&app, &gus, id, action).await, 404).await, "friend_request_not_found", "{action}");
    }
    // Eve cannot accept her own request, and Fay cannot cancel it.
    assert_eq!(error_code(act(&app, &eve, id, "accept").await, 404).await, "friend_request_not_found");
    assert_eq!(error_code(act(&app, &fay, id, "cancel").await, 404).await, "friend_request_not_found");
    assert_eq!(error_code(act(&app, &gus, 424_242, "accept").await, 404).await, "friend_request_not_found");
    assert_eq!(pending_ids(&app, &fay, "incoming").await, [id], "still pending");

    let long_note = json!({ "to_user_id": gus.id, "note": "n".repeat(201) });
    let response = app.send_as(Method::POST, &eve.access_token, "/api/v1/friend-requests", Some(&long_note)).await;
    assert_eq!(error_code(response, 400).await, "validation_failed");
    let wrong_type = json!({ "to_user_id": "gus" });
    let response = app.send_as(Method::POST, &eve.access_token, "/api/v1/friend-requests", Some(&wrong_type)).await;
    assert_eq!(error_code(response, 400).await, "invalid_body");

    assert_eq!(act(&app, &fay, id, "accept").await.status(), 200);
    assert_eq!(error_code(act(&app, &fay, id, "accept").await, 409).await, "request_not_pending");
    assert_eq!(error_code(send(&app, &fay, eve.id).await, 409).await, "already_friends");
    assert_eq!(friendship_rows(&app).await, 2);
}

#[tokio::test]
async fn re_sending_after_a_decline_waits_24_hours() {
    let app = spawn_app().await;
    let (hal, ida) = (app.register("hal").await, app.register("ida").await);
    let id = send_ok(&app, &hal, &ida).await;
    assert_eq!(act(&app, &ida, id, "decline").await.status(), 204);
    let again = send(&app, &hal, ida.id).await;
    let retry_after: u64 = again.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((86_000..=86_400).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(again, 429).await, "rate_limited");
    // Ida may still ask Hal herself.
    assert_eq!(send(&app, &ida, hal.id).await.status(), 201);

    // Once the decline is a day old, Hal may ask again.
    sqlx::query("UPDATE friend_requests SET decided_at = now() - interval '25 hours' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(act(&app, &ida, pending_ids(&app, &ida, "outgoing").await[0], "cancel").await.status(), 204);
    assert_eq!(send(&app, &hal, ida.id).await.status(), 201);
}

#[tokio::test]
async fn removing_a_friend_removes_both_sides_and_remarks_are_private() {
    let app = spawn_app().await;
    let (jo, kim) = (app.register("joe").await, app.register("kim").await);
    befriend(&app, &jo, &kim).await;

    let path = format!("/api/v1/friends/{}", kim.id);
    let response = app.send_as(Method::PATCH, &jo.access_token, &path, Some(&json!({ "remark": "Kimmy" }))).await;
    assert_eq!(response.status(), 204);
    let jo_view: Value = app.get_as(&jo.access_token, "/api/v1/friends").await.json().await.unwrap();
    assert_eq!(jo_view["items"][0]["remark"], "Kimmy");
    let kim_view: Value = app.get_as(&kim.access_token, "/api/v1/friends").await.json().await.unwrap();
    assert!(kim_view["items"][0]["remark"].is_null(), "a remark is seen only by its author");
    let bad = app.send_as(Method::PATCH, &jo.access_token, &path, Some(&json!({ "remark": "" }))).await;
    assert_eq!(error_code(bad, 400).await, "validation_failed");

    assert_eq!(
        app.send_as(Method::DELETE, &kim.access_token, &format!("/api/v1/friends/{}", jo.id), None).await.status(),
        204
    );
    assert!(friend_ids(&app, &jo).await.is_empty());
    assert!(friend_ids(&app, &kim).await.is_empty());
    let again = app.send_as(Method::DELETE, &kim.access_token, &format!("/api/v1/friends/{}", jo.id), None).await;
    assert_eq!(error_code(again, 404).await, "not_friends");
}

#[tokio::test]
async fn blocking_ends_friendship_and_requests_and_stops_new_ones_either_way() {
    let app = spawn_app().await;
    let (lea, mo, ned) = (app.register("lea").await, app.register("moe").await, app.register("ned").await);
    befriend(&app, &lea, &mo).await;
    let pending = send_ok(&app, &ned, &lea).await;

    for target in [mo.id, ned.id] {
        let response = app.send_as(Method::PUT, &lea.access_token, &format!("/api/v1/blocks/{target}"), None).await;
        assert_eq!(response.status(), 204);
    }
    assert!(friend_ids(&app, &lea).await.is_empty());
    assert!(friend_ids(&app, &mo).await.is_empty());
    assert!(pending_ids(&app, &lea, "incoming").await.is_empty());
    assert_eq!(error_code(act(&app, &lea, pending, "accept").await, 409).await, "request_not_pending");

    // Neither side can start again, and the blocked one learns nothing specific.
    let blocked_side = send(&app, &mo, lea.id).await;
    let blocker_side = send(&app, &lea, mo.id).await;
    let (a, b): (Value, Value) = (blocked_side.json().await.unwrap(), blocker_side.json().await.unwrap());
    assert_eq!(a["error"]["code"], "not_allowed");
    assert_eq!(a, b, "the same generic answer both ways");

    let blocks: Value = app.get_as(&lea.access_token, "/api/v1/blocks").await.json().await.unwrap();
    let mut blocked: Vec<i64> =
        blocks["items"].as_array().unwrap().iter().map(|b| b["user"]["id"].as_i64().unwrap()).collect();
    blocked.sort();
    assert_eq!(blocked, [mo.id, ned.id]);
    assert_eq!(
        app.send_as(Method::PUT, &lea.access_token, &format!("/api/v1/blocks/{}", mo.id), None).await.status(),
        204,
        "blocking twice is fine"
    );

    assert_eq!(
        app.send_as(Method::DELETE, &lea.access_token, &format!("/api/v1/blocks/{}", mo.id), None).await.status(),
        204
    );
    assert!(friend_ids(&app, &lea).await.is_empty(), "unblocking does not restore the friendship");
    assert_eq!(send(&app, &mo, lea.id).await.status(), 201);

    let self_block = app.send_as(Method::PUT, &lea.access_token, &format!("/api/v1/blocks/{}", lea.id), None).await;
    assert_eq!(error_code(self_block, 400).await, "cannot_block_self");
    let unknown = app.send_as(Method::PUT, &lea.access_token, "/api/v1/blocks/999999", None).await;
    assert_eq!(error_code(unknown, 404).await, "user_not_found");
    let not_blocked = app.send_as(Method::DELETE, &lea.access_token, &format!("/api/v1/blocks/{}", mo.id), None).await;
    assert_eq!(error_code(not_blocked, 404).await, "not_blocked");
}

#[tokio::test]
async fn mutual_friends_and_suggestions_follow_the_graph() {
    let app = spawn_app().await;
    let me = app.register("me_user").await;
    let f1 = app.register("friend_one").await;
    let f2 = app.register("friend_two").await;
    let f3 = app.register("friend_three").await;
    let two_mutual = app.register("two_mutual").await;
    let one_mutual = app.register("one_mutual").await;
    let blocked = app.register("blocked_fof").await;
    let requested = app.register("requested_fof").await;
    for f in [&f1, &f2, &f3] {
        befriend(&app, &me, f).await;
    }
    befriend(&app, &f1, &two_mutual).await;
    befriend(&app, &f2, &two_mutual).await;
    befriend(&app, &f3, &one_mutual).await;
    befriend(&app, &f1, &blocked).await;
    befriend(&app, &f2, &requested).await;
    befriend(&app, &f1, &f2).await; // friends of mine who know each other are not suggestions
    app.send_as(Method::PUT, &blocked.access_token, &format!("/api/v1/blocks/{}", me.id), None).await;
    send_ok(&app, &requested, &me).await;

    let body: Value = app.get_as(&me.access_token, "/api/v1/friends/suggestions").await.json().await.unwrap();
    let got: Vec<(i64, i64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["user"]["id"].as_i64().unwrap(), s["mutual_friends"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, [(two_mutual.id, 2), (one_mutual.id, 1)]);

    let page: Value = app.get_as(&me.access_token, "/api/v1/friends/suggestions?limit=1").await.json().await.unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = app
        .get_as(&me.access_token, &format!("/api/v1/friends/suggestions?limit=1&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["items"][0]["user"]["id"], one_mutual.id);
    assert!(next["next_cursor"].is_null());

    let mutual: Value = app
        .get_as(&me.access_token, &format!("/api/v1/users/{}/mutual-friends", two_mutual.id))
        .await
        .json()
        .await
        .unwrap();
    let mut ids: Vec<i64> = mutual["items"].as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [f1.id, f2.id]);
    let unknown = app.get_as(&me.access_token, "/api/v1/users/999999/mutual-friends").await;
    assert_eq!(error_code(unknown, 404).await, "user_not_found");
    let bad_cursor = app.get_as(&me.access_token, "/api/v1/friends/suggestions?cursor=zz").await;
    assert_eq!(error_code(bad_cursor, 400).await, "invalid_cursor");
}

#[tokio::test]
async fn the_friends_list_pages_by_cursor() {
    let app = spawn_app().await;
    let hub = app.register("hub_user").await;
    let mut expected = Vec::new();
    for i in 0..5 {
        let spoke = app.register(&format!("spoke{i}")).await;
        befriend(&app, &spoke, &hub).await;
        expected.push(spoke.id);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/friends?limit=2".to_owned();
    loop {
        let body: Value = app.get_as(&hub.access_token, &path).await.json().await.unwrap();
        seen.extend(body["items"].as_array().unwrap().iter().map(|f| f["user"]["id"].as_i64().unwrap()));
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/friends?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let too_big = app.get_as(&hub.access_token, "/api/v1/friends?limit=101").await;
    assert_eq!(error_code(too_big, 400).await, "validation_failed");
}
