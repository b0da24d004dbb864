//! Groups: creation, visibility, joining, roles, moderation, invitations, invariants.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser, call, error_code, spawn_app};

async fn create(app: &TestApp, owner: &TestUser, body: Value) -> i64 {
    let response = app.send_as(Method::POST, &owner.access_token, "/api/v1/groups", Some(&body)).await;
    assert_eq!(response.status(), 201, "create group");
    let group: Value = response.json().await.unwrap();
    group["id"].as_i64().unwrap()
}

async fn open_group(app: &TestApp, owner: &TestUser) -> i64 {
    create(app, owner, json!({ "name": "Open", "join_policy": "open" })).await
}

async fn join(app: &TestApp, user: &TestUser, group: i64) -> reqwest::Response {
    call(app, user, Method::POST, &format!("/api/v1/groups/{group}/join"), None).await
}

/// Every fact about a group's membership, for "nothing changed" assertions.
async fn snapshot(app: &TestApp, group: i64) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws('|', user_id, role, muted_until) FROM group_members WHERE group_id = $1 ORDER BY user_id",
    )
    .bind(group)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let group_row: String = sqlx::query_scalar(
        "SELECT concat_ws('|', name, description, announcement, join_policy, member_limit, member_count, disbanded_at)
           FROM groups WHERE id = $1",
    )
    .bind(group)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    rows.push(group_row);
    rows
}

async fn role_of(app: &TestApp, group: i64, user: i64) -> Option<String> {
    sqlx::query_scalar("SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_creator_owns_a_new_group_and_sees_it_in_their_list() {
    let app = spawn_app().await;
    let owner = app.register("owner_one").await;
    let response = app
        .send_as(
            Method::POST,
            &owner.access_token,
            "/api/v1/groups",
            Some(&json!({ "name": " Rustaceans ", "join_policy": "approval", "announcement": "Be kind", "member_limit": 50 })),
        )
        .await;
    assert_eq!(response.status(), 201);
    let group: Value = response.json().await.unwrap();
    assert_eq!(group["name"], "Rustaceans");
    assert_eq!(group["my_role"], "owner");
    assert_eq!(group["member_count"], 1);
    assert_eq!(group["member_limit"], 50);
    assert_eq!(group["announcement_updated_by"], owner.id);
    assert_eq!(group["history_visibility"], "all");

    let mine: Value = app.get_as(&owner.access_token, "/api/v1/me/groups").await.json().await.unwrap();
    assert_eq!(mine["items"][0]["id"], group["id"]);
    assert_eq!(mine["items"][0]["my_role"], "owner");
}

#[tokio::test]
async fn outsiders_see_open_groups_without_the_announcement_and_not_invite_only_ones() {
    let app = spawn_app().await;
    let (owner, outsider) = (app.register("vis_owner").await, app.register("vis_out").await);
    let open =
        create(&app, &owner, json!({ "name": "Open", "join_policy": "open", "announcement": "secret plans" })).await;
    let hidden = create(&app, &owner, json!({ "name": "Hidden", "join_policy": "invite_only" })).await;

    let seen: Value = app.get_as(&outsider.access_token, &format!("/api/v1/groups/{open}")).await.json().await.unwrap();
    assert_eq!(seen["name"], "Open");
    assert!(seen.get("announcement").is_none(), "{seen}");
    assert!(seen["my_role"].is_null());
    let hidden_response = app.get_as(&outsider.access_token, &format!("/api/v1/groups/{hidden}")).await;
    assert_eq!(error_code(hidden_response, 404).await, "group_not_found");
    let members = app.get_as(&outsider.access_token, &format!("/api/v1/groups/{open}/members")).await;
    assert_eq!(error_code(members, 403).await, "not_a_member");
}

#[tokio::test]
async fn joining_follows_the_policy() {
    let app = spawn_app().await;
    let owner = app.register("pol_owner").await;
    let joiner = app.register("pol_joiner").await;
    let open = create(&app, &owner, json!({ "name": "O", "join_policy": "open" })).await;
    let approval = create(&app, &owner, json!({ "name": "A", "join_policy": "approval" })).await;
    let invite_only = create(&app, &owner, json!({ "name": "I", "join_policy": "invite_only" })).await;

    let response = join(&app, &joiner, open).await;
    assert_eq!(response.status(), 200);
    assert_eq!(role_of(&app, open, joiner.id).await.as_deref(), Some("member"));
    assert_eq!(error_code(join(&app, &joiner, open).await, 409).await, "already_member");

    let response = call(
        &app,
        &joiner,
        Method::POST,
        &format!("/api/v1/groups/{approval}/join"),
        Some(json!({ "message": "let me in" })),
    )
    .await;
    assert_eq!(response.status(), 202);
    let request_id = response.json::<Value>().await.unwrap()["request_id"].as_i64().unwrap();
    assert_eq!(role_of(&app, approval, joiner.id).await, None, "not a member before approval");
    assert_eq!(error_code(join(&app, &joiner, approval).await, 409).await, "join_request_pending");
    let requests: Value = app
        .get_as(&owner.access_token, &format!("/api/v1/groups/{approval}/join-requests"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(requests["items"][0]["message"], "let me in");
    let approve = format!("/api/v1/groups/{approval}/join-requests/{request_id}/approve");
    assert_eq!(call(&app, &owner, Method::POST, &approve, None).await.status(), 204);
    assert_eq!(role_of(&app, approval, joiner.id).await.as_deref(), Some("member"));
    assert_eq!(
        error_code(call(&app, &owner, Method::POST, &approve, None).await, 409).await,
        "join_request_not_pending"
    );

    // An outsider learns nothing of an invite-only group, not even that it exists.
    assert_eq!(error_code(join(&app, &joiner, invite_only).await, 404).await, "group_not_found");
    assert_eq!(role_of(&app, invite_only, joiner.id).await, None);
}

#[tokio::test]
async fn invitations_need_the_invitees_consent() {
    let app = spawn_app().await;
    let owner = app.register("inv_owner").await;
    let (guest, other, blocker) =
        (app.register("inv_guest").await, app.register("inv_other").await, app.register("inv_blocker").await);
    let group = create(&app, &owner, json!({ "name": "Club", "join_policy": "invite_only" })).await;
    let invite = |user: i64| json!({ "user_id": user });
    let path = format!("/api/v1/groups/{group}/invitations");

    let response = call(&app, &owner, Method::POST, &path, Some(invite(guest.id))).await;
    assert_eq!(response.status(), 201);
    assert_eq!(role_of(&app, group, guest.id).await, None, "not added before accepting");
    assert_eq!(
        error_code(call(&app, &owner, Method::POST, &path, Some(invite(guest.id))).await, 409).await,
        "invitation_pending"
    );
    // The invitee may see the invite-only group.
    assert_eq!(app.get_as(&guest.access_token, &format!("/api/v1/groups/{group}")).await.status(), 200);

    let invitations: Value =
        app.get_as(&guest.access_token, "/api/v1/me/group-invitations").await.json().await.unwrap();
    let invitation_id = invitations["items"][0]["id"].as_i64().unwrap();
    assert_eq!(invitations["items"][0]["group_name"], "Club");
    // Someone else cannot answer it.
    let stolen =
        call(&app, &other, Method::POST, &format!("/api/v1/group-invitations/{invitation_id}/accept"), None).await;
    assert_eq!(error_code(stolen, 404).await, "invitation_not_found");
    let accepted =
        call(&app, &guest, Method::POST, &format!("/api/v1/group-invitations/{invitation_id}/accept"), None).await;
    assert_eq!(accepted.status(), 204);
    assert_eq!(role_of(&app, group, guest.id).await.as_deref(), Some("member"));

    // Members of an invite-only group cannot invite; blocked users cannot be invited.
    let by_member = call(&app, &guest, Method::POST, &path, Some(invite(other.id))).await;
    assert_eq!(error_code(by_member, 403).await, "insufficient_role");
    call(&app, &blocker, Method::PUT, &format!("/api/v1/blocks/{}", owner.id), None).await;
    let blocked = call(&app, &owner, Method::POST, &path, Some(invite(blocker.id))).await;
    assert_eq!(error_code(blocked, 403).await, "not_allowed");
    let member_again = call(&app, &owner, Method::POST, &path, Some(invite(guest.id))).await;
    assert_eq!(error_code(member_again, 409).await, "already_member");

    let response = call(&app, &owner, Method::POST, &path, Some(invite(other.id))).await;
    let declined_id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let declined =
        call(&app, &other, Method::POST, &format!("/api/v1/group-invitations/{declined_id}/decline"), None).await;
    assert_eq!(declined.status(), 204);
    assert_eq!(role_of(&app, group, other.id).await, None);
}

/// Name, actor, method, path, body, expected status, expected code.
type RefusalCase<'a> = (&'static str, &'a TestUser, Method, String, Option<Value>, u16, &'static str);

#[tokio::test]
async fn every_refused_role_and_action_combination_changes_nothing() {
    let app = spawn_app().await;
    let users = app.seed_users("rolecase", 6).await;
    let (owner, admin, admin2, member, member2, outsider) =
        (&users[0], &users[1], &users[2], &users[3], &users[4], &users[5]);
    let group = create(&app, owner, json!({ "name": "Roles", "join_policy": "approval" })).await;
    for user in [admin, admin2, member, member2] {
        let invitation = call(
            &app,
            owner,
            Method::POST,
            &format!("/api/v1/groups/{group}/invitations"),
            Some(json!({ "user_id": user.id })),
        )
        .await;
        let id = invitation.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        assert_eq!(
            call(&app, user, Method::POST, &format!("/api/v1/group-invitations/{id}/accept"), None).await.status(),
            204
        );
    }
    for user in [admin, admin2] {
        let path = format!("/api/v1/groups/{group}/members/{}/role", user.id);
        assert_eq!(call(&app, owner, Method::PUT, &path, Some(json!({ "role": "admin" }))).await.status(), 204);
    }
    let g = format!("/api/v1/groups/{group}");
    let member_path = |user: &TestUser| format!("{g}/members/{}", user.id);
    let cases: Vec<RefusalCase> = vec![
        ("member renames", member, Method::PATCH, g.clone(), Some(json!({ "name": "Mine" })), 403, "insufficient_role"),
        ("outsider renames", outsider, Method::PATCH, g.clone(), Some(json!({ "name": "Mine" })), 403, "not_a_member"),
        (
            "admin changes policy",
            admin,
            Method::PATCH,
            g.clone(),
            Some(json!({ "join_policy": "open" })),
            403,
            "owner_only",
        ),
        (
            "admin changes limit",
            admin,
            Method::PATCH,
            g.clone(),
            Some(json!({ "member_limit": 10 })),
            403,
            "owner_only",
        ),
        ("admin kicks owner", admin, Method::DELETE, member_path(owner), None, 403, "insufficient_role"),
        ("admin kicks admin", admin, Method::DELETE, member_path(admin2), None, 403, "insufficient_role"),
        ("member kicks member", member, Method::DELETE, member_path(member2), None, 403, "insufficient_role"),
        ("outsider kicks member", outsider, Method::DELETE, member_path(member), None, 403, "not_a_member"),
        (
            "admin mutes admin",
            admin,
            Method::PUT,
            format!("{}/mute", member_path(admin2)),
            Some(json!({ "duration_secs": 600 })),
            403,
            "insufficient_role",
        ),
        (
            "member mutes member",
            member,
            Method::PUT,
            format!("{}/mute", member_path(member2)),
            Some(json!({ "duration_secs": 600 })),
            403,
            "insufficient_role",
        ),
        (
            "admin mutes owner",
            admin,
            Method::PUT,
            format!("{}/mute", member_path(owner)),
            Some(json!({ "duration_secs": 600 })),
            403,
            "insufficient_role",
        ),
        (
            "admin promotes",
            admin,
            Method::PUT,
            format!("{}/role", member_path(member)),
            Some(json!({ "role": "admin" })),
            403,
            "owner_only",
        ),
        (
            "member promotes self",
            member,
            Method::PUT,
            format!("{}/role", member_path(member)),
            Some(json!({ "role": "admin" })),
            403,
            "owner_only",
        ),
        (
            "owner demotes self",
            owner,
            Method::PUT,
            format!("{}/role", member_path(owner)),
            Some(json!({ "role": "member" })),
            403,
            "insufficient_role",
        ),
        (
            "owner makes an owner",
            owner,
            Method::PUT,
            format!("{}/role", member_path(member)),
            Some(json!({ "role": "owner" })),
            400,
            "invalid_body",
        ),
        (
            "admin transfers",
            admin,
            Method::POST,
            format!("{g}/transfer"),
            Some(json!({ "user_id": member.id })),
            403,
            "owner_only",
        ),
        (
            "owner transfers to outsider",
            owner,
            Method::POST,
            format!("{g}/transfer"),
            Some(json!({ "user_id": outsider.id })),
            400,
            "validation_failed",
        ),
        ("admin disbands", admin, Method::DELETE, g.clone(), None, 403, "owner_only"),
        (
            "member invites to approval group",
            member,
            Method::POST,
            format!("{g}/invitations"),
            Some(json!({ "user_id": outsider.id })),
            403,
            "insufficient_role",
        ),
        (
            "member lists join requests",
            member,
            Method::GET,
            format!("{g}/join-requests"),
            None,
            403,
            "insufficient_role",
        ),
        ("outsider leaves", outsider, Method::POST, format!("{g}/leave"), None, 403, "not_a_member"),
        (
            "mute too short",
            owner,
            Method::PUT,
            format!("{}/mute", member_path(member)),
            Some(json!({ "duration_secs": 5 })),
            400,
            "validation_failed",
        ),
        ("unknown member kicked", owner, Method::DELETE, format!("{g}/members/999999"), None, 404, "member_not_found"),
        (
            "oversize name",
            owner,
            Method::PATCH,
            g.clone(),
            Some(json!({ "name": "n".repeat(65) })),
            400,
            "validation_failed",
        ),
        (
            "oversize announcement",
            owner,
            Method::PATCH,
            g.clone(),
            Some(json!({ "announcement": "a".repeat(2001) })),
            400,
            "validation_failed",
        ),
        ("wrong type", owner, Method::PATCH, g.clone(), Some(json!({ "member_limit": "ten" })), 400, "invalid_body"),
        (
            "unknown policy",
            owner,
            Method::PATCH,
            g.clone(),
            Some(json!({ "join_policy": "anyone" })),
            400,
            "invalid_body",
        ),
        (
            "limit above server max",
            owner,
            Method::PATCH,
            g.clone(),
            Some(json!({ "member_limit": 100_000 })),
            400,
            "validation_failed",
        ),
        (
            "limit below members",
            owner,
            Method::PATCH,
            g.clone(),
            Some(json!({ "member_limit": 3 })),
            400,
            "validation_failed",
        ),
    ];
    let before = snapshot(&app, group).await;
    for (name, user, method, path, body, status, code) in cases {
        let response = call(&app, user, method, &path, body).await;
        assert_eq!(response.status().as_u16(), status, "{name}");
        assert_eq!(error_code(response, status).await, code, "{name}");
        assert_eq!(snapshot(&app, group).await, before, "{name} changed something");
    }
    let unknown = app.get_as(&owner.access_token, "/api/v1/groups/999999").await;
    assert_eq!(error_code(unknown, 404).await, "group_not_found");
}

#[tokio::test]
async fn allowed_moderation_works_and_a_kicked_member_loses_access_at_once() {
    let app = spawn_app().await;
    let users = app.seed_users("modok", 4).await;
    let (owner, admin, member, member2) = (&users[0], &users[1], &users[2], &users[3]);
    let group = open_group(&app, owner).await;
    for user in [admin, member, member2] {
        assert_eq!(join(&app, user, group).await.status(), 200);
    }
    let g = format!("/api/v1/groups/{group}");
    assert_eq!(
        call(&app, owner, Method::PUT, &format!("{g}/members/{}/role", admin.id), Some(json!({ "role": "admin" })))
            .await
            .status(),
        204
    );

    let muted = call(
        &app,
        admin,
        Method::PUT,
        &format!("{g}/members/{}/mute", member.id),
        Some(json!({ "duration_secs": 3600 })),
    )
    .await;
    assert_eq!(muted.status(), 200);
    assert!(muted.json::<Value>().await.unwrap()["muted_until"].is_string());
    assert_eq!(call(&app, admin, Method::DELETE, &format!("{g}/members/{}/mute", member.id), None).await.status(), 204);

    assert_eq!(call(&app, admin, Method::DELETE, &format!("{g}/members/{}", member2.id), None).await.status(), 204);
    let after = app.get_as(&member2.access_token, &format!("{g}/members")).await;
    assert_eq!(error_code(after, 403).await, "not_a_member");
    let count: i32 = sqlx::query_scalar("SELECT member_count FROM groups WHERE id = $1")
        .bind(group)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 3);

    assert_eq!(
        call(&app, owner, Method::DELETE, &format!("{g}/members/{}", admin.id), None).await.status(),
        204,
        "owners remove admins"
    );
    assert_eq!(call(&app, owner, Method::PATCH, &g, Some(json!({ "announcement": "v1" }))).await.status(), 200);
    assert_eq!(call(&app, owner, Method::PATCH, &g, Some(json!({ "announcement": "v2" }))).await.status(), 200);
    let history: Value = app.get_as(&member.access_token, &format!("{g}/announcements")).await.json().await.unwrap();
    let texts: Vec<&str> = history["items"].as_array().unwrap().iter().map(|a| a["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["v2", "v1"]);
}

#[tokio::test]
async fn fifty_concurrent_joins_fill_ten_free_places_exactly() {
    let app = spawn_app().await;
    let owner = app.register("crowd_owner").await;
    let group = create(&app, &owner, json!({ "name": "Small", "join_policy": "open", "member_limit": 11 })).await;
    let joiners = app.seed_users("crowd", 50).await;
    let results = futures_util::future::join_all(joiners.iter().map(|user| join(&app, user, group))).await;
    let mut joined = 0;
    for response in results {
        match response.status().as_u16() {
            200 => joined += 1,
            409 => assert_eq!(error_code(response, 409).await, "group_full"),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(joined, 10);
    let (count, rows): (i32, i64) = sqlx::query_as(
        "SELECT g.member_count, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id) FROM groups g WHERE g.id = $1",
    )
    .bind(group)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((count, rows), (11, 11));
}

#[tokio::test]
async fn a_group_always_has_exactly_one_owner_under_concurrent_transfer_and_leave() {
    let app = spawn_app().await;
    for round in 0..5 {
        let users = app.seed_users(&format!("own{round}_"), 3).await;
        let (owner, admin, member) = (&users[0], &users[1], &users[2]);
        let group = open_group(&app, owner).await;
        join(&app, admin, group).await;
        join(&app, member, group).await;
        let g = format!("/api/v1/groups/{group}");
        call(&app, owner, Method::PUT, &format!("{g}/members/{}/role", admin.id), Some(json!({ "role": "admin" })))
            .await;

        let (transfer_path, leave_path) = (format!("{g}/transfer"), format!("{g}/leave"));
        let (transfer, leave) = tokio::join!(
            call(&app, owner, Method::POST, &transfer_path, Some(json!({ "user_id": member.id }))),
            call(&app, owner, Method::POST, &leave_path, None),
        );
        let owners: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = $1 AND role = 'owner'")
                .bind(group)
                .fetch_all(&app.pool)
                .await
                .unwrap();
        assert_eq!(owners.len(), 1, "round {round}: {:?} / {:?}", transfer.status(), leave.status());
        assert_eq!(leave.status(), 204, "leaving always works");
        assert!(!owners.contains(&owner.id));
        if transfer.status() == 204 {
            assert_eq!(owners, [member.id], "transfer then leave: the new owner stays");
        } else {
            assert_eq!(owners, [admin.id], "leave first: the oldest admin inherits (round {round})");
        }
    }
}

#[tokio::test]
async fn the_last_member_leaving_disbands_and_disbanded_groups_refuse_changes() {
    let app = spawn_app().await;
    let users = app.seed_users("disb", 2).await;
    let (owner, member) = (&users[0], &users[1]);
    let solo = open_group(&app, owner).await;
    assert_eq!(call(&app, owner, Method::POST, &format!("/api/v1/groups/{solo}/leave"), None).await.status(), 204);
    let disbanded_at: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT disbanded_at FROM groups WHERE id = $1")
            .bind(solo)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(disbanded_at.is_some());

    let group = open_group(&app, owner).await;
    join(&app, member, group).await;
    assert_eq!(call(&app, owner, Method::DELETE, &format!("/api/v1/groups/{group}"), None).await.status(), 204);
    let rename =
        call(&app, owner, Method::PATCH, &format!("/api/v1/groups/{group}"), Some(json!({ "name": "x" }))).await;
    assert_eq!(error_code(rename, 410).await, "group_disbanded");
    assert_eq!(error_code(join(&app, &users[1], group).await, 410).await, "group_disbanded");
    let mine: Value = app.get_as(&member.access_token, "/api/v1/me/groups").await.json().await.unwrap();
    assert!(mine["items"].as_array().unwrap().is_empty(), "disbanded groups leave 'my groups'");
    assert_eq!(
        app.get_as(&member.access_token, &format!("/api/v1/groups/{group}/members")).await.status(),
        200,
        "still readable"
    );
    let conversation: Value =
        app.get_as(&member.access_token, &format!("/api/v1/groups/{group}/conversation")).await.json().await.unwrap();
    let path = format!("/api/v1/conversations/{}/messages", conversation["conversation_id"]);
    let message = json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": "anyone here?" });
    assert_eq!(error_code(call(&app, member, Method::POST, &path, Some(message)).await, 410).await, "group_disbanded");
    assert_eq!(
        app.get_as(&member.access_token, &path).await.status(),
        200,
        "its history stays readable to its members"
    );
}

#[tokio::test]
async fn the_database_itself_refuses_a_second_owner_no_owner_and_overfull_groups() {
    let app = spawn_app().await;
    let users = app.seed_users("dbrule", 3).await;
    let group = create(&app, &users[0], json!({ "name": "Rules", "join_policy": "open", "member_limit": 2 })).await;
    join(&app, &users[1], group).await;

    let second_owner = sqlx::query("UPDATE group_members SET role = 'owner' WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(users[1].id)
        .execute(&app.pool)
        .await;
    assert!(second_owner.is_err(), "unique index: at most one owner");

    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("UPDATE group_members SET role = 'member' WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(users[0].id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(tx.commit().await.is_err(), "deferred trigger: at least one owner at commit");

    let overfull = sqlx::query("INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, 'member')")
        .bind(group)
        .bind(users[2].id)
        .execute(&app.pool)
        .await;
    assert!(overfull.is_err(), "CHECK member_count <= member_limit");
    assert_eq!(snapshot(&app, group).await.len(), 3, "two members and the group row, unchanged");
}
