//! Own and public profiles.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{error_code, spawn_app};

#[tokio::test]
async fn a_partial_update_changes_only_the_given_fields_and_null_clears() {
    let app = spawn_app().await;
    let lily = app.register("lily").await;
    let (app_ref, token) = (&app, lily.access_token.as_str());
    let patch = |body: Value| async move { app_ref.send_as(Method::PATCH, token, "/api/v1/me", Some(&body)).await };

    let full = json!({ "nickname": "  Lily 🌸 ", "avatar_url": "https://img.example/l.png", "birthday": "1999-05-04", "bio": "hi\nthere" });
    let response = patch(full).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["nickname"], "Lily 🌸", "trimmed");
    assert_eq!(body["birthday"], "1999-05-04");

    let body: Value = patch(json!({ "bio": "only the bio" })).await.json().await.unwrap();
    assert_eq!(body["bio"], "only the bio");
    assert_eq!(body["nickname"], "Lily 🌸");
    assert_eq!(body["avatar_url"], "https://img.example/l.png");

    let body: Value = patch(json!({ "avatar_url": null, "birthday": null })).await.json().await.unwrap();
    assert!(body["avatar_url"].is_null());
    assert!(body["birthday"].is_null());
    assert_eq!(body["bio"], "only the bio");
}

#[tokio::test]
async fn invalid_profile_updates_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let max = app.register("max").await;
    let (app_ref, token) = (&app, max.access_token.as_str());
    let patch = |body: Value| async move { app_ref.send_as(Method::PATCH, token, "/api/v1/me", Some(&body)).await };
    patch(json!({ "nickname": "Max", "bio": "before" })).await;
    let before: Value = app.get_as(&max.access_token, "/api/v1/me").await.json().await.unwrap();

    let cases = [
        (json!({ "birthday": "2999-01-01" }), "validation_failed", Some("birthday")),
        (json!({ "avatar_url": "javascript:alert(1)" }), "validation_failed", Some("avatar_url")),
        (json!({ "avatar_url": "https://user:pw@x.example/a.png" }), "validation_failed", Some("avatar_url")),
        (json!({ "nickname": "n".repeat(65) }), "validation_failed", Some("nickname")),
        (json!({ "nickname": null }), "validation_failed", Some("nickname")),
        (json!({ "bio": "b".repeat(501) }), "validation_failed", Some("bio")),
        (json!({ "bio": "ok", "nickname": "bell\u{7}" }), "validation_failed", Some("nickname")),
        (json!({ "role": "admin" }), "invalid_body", None),
        (json!({ "birthday": "yesterday" }), "invalid_body", None),
        (json!({ "nickname": 42 }), "invalid_body", None),
    ];
    for (body, code, field) in cases {
        let response = patch(body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
        if let Some(field) = field {
            assert_eq!(error["error"]["field"], field, "{body}");
        }
    }
    let after: Value = app.get_as(&max.access_token, "/api/v1/me").await.json().await.unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_public_profile_hides_private_fields() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let oscar = app.register("oscar").await;
    app.send_as(
        Method::PATCH,
        &nina.access_token,
        "/api/v1/me",
        Some(&json!({ "birthday": "2000-01-01", "bio": "hello" })),
    )
    .await;
    let response = app.get_as(&oscar.access_token, &format!("/api/v1/users/{}", nina.id)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "nina");
    assert_eq!(body["bio"], "hello");
    assert!(body.get("birthday").is_none(), "birthday is private: {body}");
}

#[tokio::test]
async fn unknown_and_malformed_user_ids_and_anonymous_callers_are_refused() {
    let app = spawn_app().await;
    let pat = app.register("pat").await;
    assert_eq!(error_code(app.get_as(&pat.access_token, "/api/v1/users/999999").await, 404).await, "user_not_found");
    assert_eq!(error_code(app.get_as(&pat.access_token, "/api/v1/users/abc").await, 400).await, "invalid_path");
    assert_eq!(error_code(app.get(&format!("/api/v1/users/{}", pat.id)).await, 401).await, "missing_token");
}
