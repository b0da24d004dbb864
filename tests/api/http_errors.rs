use crate::support::{error_code, spawn_app};

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let app = spawn_app().await;
    let code = error_code(app.get("/api/v1/nothing-here").await, 404).await;
    assert_eq!(code, "not_found");
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let app = spawn_app().await;
    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers().get("allow").unwrap(), "GET, HEAD");
    let code = error_code(response, 405).await;
    assert_eq!(code, "method_not_allowed");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let first = app.get("/healthz").await;
    let second = app.get("/does-not-exist").await;
    let id = |r: &reqwest::Response| r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    let (a, b) = (id(&first), id(&second));
    assert_eq!(a.len(), 36, "a UUID: {a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn a_plain_incoming_request_id_is_kept_and_an_unsafe_one_replaced() {
    let app = spawn_app().await;
    let kept = app.client.get(app.url("/healthz")).header("x-request-id", "lb-1234.abc").send().await.unwrap();
    assert_eq!(kept.headers().get("x-request-id").unwrap(), "lb-1234.abc");
    let replaced =
        app.client.get(app.url("/healthz")).header("x-request-id", "evil id\twith spaces").send().await.unwrap();
    assert_ne!(replaced.headers().get("x-request-id").unwrap(), "evil id\twith spaces");
}

/// A NUL character anywhere a client can put text (PostgreSQL cannot store it) is a
/// 400, never a 500, and changes nothing.
#[tokio::test]
async fn a_nul_character_in_any_text_is_a_400() {
    use reqwest::Method;
    use serde_json::json;

    use crate::support::{befriend, call, open_direct, spawn_app};

    let app = spawn_app().await;
    let (sam, tia) = (app.register("nul_sam").await, app.register("nul_tia").await);
    befriend(&app, &sam, &tia).await;
    let conversation = open_direct(&app, &sam, &tia).await;
    let nul = "a\u{0}b";
    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, "/api/v1/users?q=a%00b".into(), None),
        (Method::GET, "/api/v1/messages/search?q=a%00b".into(), None),
        (Method::PATCH, "/api/v1/me".into(), Some(json!({ "nickname": nul }))),
        (Method::PATCH, "/api/v1/me".into(), Some(json!({ "bio": nul }))),
        (Method::POST, "/api/v1/groups".into(), Some(json!({ "name": nul }))),
        (
            Method::POST,
            format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": nul })),
        ),
        (
            Method::POST,
            format!("/api/v1/conversations/{conversation}/messages"),
            Some(json!({ "client_msg_id": uuid::Uuid::new_v4(), "kind": "image", "content": { "url": nul } })),
        ),
    ];
    for (method, path, body) in attempts {
        let response = call(&app, &sam, method.clone(), &path, body.clone()).await;
        let status = response.status().as_u16();
        assert!(
            status == 400 || status == 422,
            "{method} {path} {body:?}: {status} {}",
            response.text().await.unwrap()
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored, 0);
}
