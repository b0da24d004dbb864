//! Registration, login, tokens, refresh rotation, sessions, password change, rate limits.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TEST_PASSWORD, TestApp, error_code, spawn_app, spawn_app_with};

async fn user_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap()
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/login", &json!({ "username": username, "password": password })).await
}

#[tokio::test]
async fn registering_returns_the_own_profile_and_working_tokens() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({ "username": "Alice", "password": TEST_PASSWORD, "device_name": "laptop" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["username"], "Alice");
    assert_eq!(body["user"]["nickname"], "Alice", "nickname defaults to the username");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let me = app.get_as(body["access_token"].as_str().unwrap(), "/api/v1/me").await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], body["user"]["id"]);
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(&app.pool).await.unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "stored as an Argon2id PHC string: {hash}");
    assert!(!hash.contains(TEST_PASSWORD));
}

#[tokio::test]
async fn a_username_taken_in_another_case_is_refused() {
    let app = spawn_app().await;
    app.register("alice").await;
    let response =
        app.post_json("/api/v1/auth/register", &json!({ "username": "ALICE", "password": TEST_PASSWORD })).await;
    assert_eq!(error_code(response, 409).await, "username_taken");
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn invalid_usernames_and_passwords_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    let long_password = "x".repeat(1025);
    let long_username = "a".repeat(33);
    let cases = [
        (json!({ "username": "ab", "password": TEST_PASSWORD }), "username"),
        (json!({ "username": long_username, "password": TEST_PASSWORD }), "username"),
        (json!({ "username": "robert'); DROP TABLE users;--", "password": TEST_PASSWORD }), "username"),
        (json!({ "username": "名字名字", "password": TEST_PASSWORD }), "username"),
        (json!({ "username": "with space", "password": TEST_PASSWORD }), "username"),
        (json!({ "username": "shortpw", "password": "1234567" }), "password"),
        (json!({ "username": "longpw", "password": long_password }), "password"),
        (json!({ "username": "badnick", "password": TEST_PASSWORD, "nickname": "   " }), "nickname"),
    ];
    for (body, field) in cases {
        let response = app.post_json("/api/v1/auth/register", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "validation_failed", "{body}");
        assert_eq!(error["error"]["field"], field, "{body}");
    }
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn malformed_json_wrong_types_unknown_fields_and_oversize_bodies_are_refused() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/auth/register");
    let raw =
        |body: &'static str| app.client.post(url.clone()).header("content-type", "application/json").body(body).send();
    assert_eq!(error_code(raw(r#"{"username": "bob", "#).await.unwrap(), 400).await, "malformed_json");
    assert_eq!(error_code(raw(r#"{"username": 123, "password": "x"}"#).await.unwrap(), 400).await, "invalid_body");
    assert_eq!(
        error_code(raw(r#"{"username": "bob", "password": "12345678", "admin": true}"#).await.unwrap(), 400).await,
        "invalid_body"
    );
    let not_json = app.client.post(url.clone()).header("content-type", "text/plain").body("hi").send().await.unwrap();
    assert_eq!(error_code(not_json, 415).await, "unsupported_media_type");
    let huge = json!({ "username": "bob", "password": "x".repeat(70 * 1024) });
    assert_eq!(error_code(app.post_json("/api/v1/auth/register", &huge).await, 413).await, "payload_too_large");
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn login_fails_identically_for_an_unknown_user_and_a_wrong_password() {
    let app = spawn_app().await;
    app.register("carol").await;
    let ok = login(&app, "CAROL", TEST_PASSWORD).await;
    assert_eq!(ok.status(), 200, "login is case-insensitive on the username");

    let wrong: Value = login(&app, "carol", "wrong password").await.json().await.unwrap();
    let unknown: Value = login(&app, "nobody-here", "wrong password").await.json().await.unwrap();
    assert_eq!(wrong["error"]["code"], "invalid_credentials");
    assert_eq!(wrong, unknown, "no hint whether the account exists");
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sessions, 2, "register and one successful login; failures create nothing");
}

fn craft_token(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_tampered_foreign_and_unsigned_tokens_are_refused() {
    let app = spawn_app().await;
    let dave = app.register("dave").await;
    let secret = crate::support::test_config().auth.jwt_secret.unwrap().expose().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |iat: i64, exp: i64, aud: &str, iss: &str| json!({ "sub": dave.id.to_string(), "sid": dave.session_id, "iat": iat, "exp": exp, "aud": aud, "iss": iss });

    let valid = craft_token(&claims(now, now + 600, "goim-api", "goim"), &secret);
    assert_eq!(app.get_as(&valid, "/api/v1/me").await.status(), 200, "the crafting itself is right");

    let expired = craft_token(&claims(now - 3600, now - 1800, "goim-api", "goim"), &secret);
    assert_eq!(error_code(app.get_as(&expired, "/api/v1/me").await, 401).await, "token_expired");

    let wrong_audience = craft_token(&claims(now, now + 600, "someone-else", "goim"), &secret);
    assert_eq!(error_code(app.get_as(&wrong_audience, "/api/v1/me").await, 401).await, "invalid_token");

    let wrong_issuer = craft_token(&claims(now, now + 600, "goim-api", "evil"), &secret);
    assert_eq!(error_code(app.get_as(&wrong_issuer, "/api/v1/me").await, 401).await, "invalid_token");

    let other_key = craft_token(&claims(now, now + 600, "goim-api", "goim"), &"z".repeat(48));
    assert_eq!(error_code(app.get_as(&other_key, "/api/v1/me").await, 401).await, "invalid_token");

    // Tampered: the payload claims another user, the signature is the original one.
    let mut parts: Vec<String> = dave.access_token.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value = serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
    payload["sub"] = json!((dave.id + 1).to_string());
    parts[1] = engine.encode(payload.to_string());
    assert_eq!(error_code(app.get_as(&parts.join("."), "/api/v1/me").await, 401).await, "invalid_token");

    // alg: none with no signature.
    let header = engine.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = engine.encode(claims(now, now + 600, "goim-api", "goim").to_string());
    assert_eq!(error_code(app.get_as(&format!("{header}.{body}."), "/api/v1/me").await, 401).await, "invalid_token");

    assert_eq!(error_code(app.get_as("garbage", "/api/v1/me").await, 401).await, "invalid_token");
    assert_eq!(error_code(app.get("/api/v1/me").await, 401).await, "missing_token");
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": token })).await
}

#[tokio::test]
async fn refresh_rotates_and_reusing_an_old_refresh_token_revokes_the_session() {
    let app = spawn_app().await;
    let erin = app.register("erin").await;

    let first = refresh(&app, &erin.refresh_token).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let rotated = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, erin.refresh_token);
    assert_eq!(first["session_id"].as_str().unwrap(), erin.session_id, "same session");
    let new_access = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(&new_access, "/api/v1/me").await.status(), 200);

    // The original token is replayed (stolen): the whole session goes.
    assert_eq!(error_code(refresh(&app, &erin.refresh_token).await, 401).await, "refresh_token_reused");
    assert_eq!(error_code(refresh(&app, &rotated).await, 401).await, "session_revoked");
    assert_eq!(error_code(app.get_as(&new_access, "/api/v1/me").await, 401).await, "session_revoked");
    assert_eq!(error_code(refresh(&app, "not-a-token").await, 401).await, "invalid_refresh_token");
}

#[tokio::test]
async fn logout_stops_the_sessions_tokens_at_once() {
    let app = spawn_app().await;
    let frank = app.register("frank").await;
    let response = app.send_as(Method::POST, &frank.access_token, "/api/v1/auth/logout", None).await;
    assert_eq!(response.status(), 204);
    assert_eq!(error_code(app.get_as(&frank.access_token, "/api/v1/me").await, 401).await, "session_revoked");
    assert_eq!(error_code(refresh(&app, &frank.refresh_token).await, 401).await, "session_revoked");
}

#[tokio::test]
async fn sessions_are_listed_and_revocable_but_not_someone_elses() {
    let app = spawn_app().await;
    let gina = app.register("gina").await;
    let phone: Value = login(&app, "gina", TEST_PASSWORD).await.json().await.unwrap();
    let phone_token = phone["access_token"].as_str().unwrap();
    let hank = app.register("hank").await;

    let sessions: Value = app.get_as(&gina.access_token, "/api/v1/me/sessions").await.json().await.unwrap();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"].as_str().unwrap(), gina.session_id);

    // Hank cannot sign Gina's phone out, and learns nothing from trying.
    let path = format!("/api/v1/me/sessions/{}", phone["session_id"].as_str().unwrap());
    let response = app.send_as(Method::DELETE, &hank.access_token, &path, None).await;
    assert_eq!(error_code(response, 404).await, "session_not_found");
    assert_eq!(app.get_as(phone_token, "/api/v1/me").await.status(), 200);

    let response = app.send_as(Method::DELETE, &gina.access_token, &path, None).await;
    assert_eq!(response.status(), 204);
    assert_eq!(error_code(app.get_as(phone_token, "/api/v1/me").await, 401).await, "session_revoked");
    assert_eq!(app.get_as(&gina.access_token, "/api/v1/me").await.status(), 200);

    let bad = app.send_as(Method::DELETE, &gina.access_token, "/api/v1/me/sessions/not-a-uuid", None).await;
    assert_eq!(error_code(bad, 400).await, "invalid_path");
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_other_sessions() {
    let app = spawn_app().await;
    let ivy = app.register("ivy").await;
    let other: Value = login(&app, "ivy", TEST_PASSWORD).await.json().await.unwrap();
    let other_token = other["access_token"].as_str().unwrap();
    let change = |current: &str, new: &str| json!({ "current_password": current, "new_password": new });

    let wrong = app
        .send_as(
            Method::POST,
            &ivy.access_token,
            "/api/v1/auth/password",
            Some(&change("not it", "brand new password")),
        )
        .await;
    assert_eq!(error_code(wrong, 403).await, "wrong_password");
    let weak = app
        .send_as(Method::POST, &ivy.access_token, "/api/v1/auth/password", Some(&change(TEST_PASSWORD, "short")))
        .await;
    assert_eq!(error_code(weak, 400).await, "validation_failed");
    assert_eq!(app.get_as(other_token, "/api/v1/me").await.status(), 200, "failed attempts change nothing");

    let ok = app
        .send_as(
            Method::POST,
            &ivy.access_token,
            "/api/v1/auth/password",
            Some(&change(TEST_PASSWORD, "brand new password")),
        )
        .await;
    assert_eq!(ok.status(), 204);
    assert_eq!(error_code(app.get_as(other_token, "/api/v1/me").await, 401).await, "session_revoked");
    assert_eq!(app.get_as(&ivy.access_token, "/api/v1/me").await.status(), 200, "the current session stays");
    assert_eq!(login(&app, "ivy", TEST_PASSWORD).await.status(), 401);
    assert_eq!(login(&app, "ivy", "brand new password").await.status(), 200);
}

#[tokio::test]
async fn login_attempts_are_rate_limited_and_recover() {
    let app = spawn_app_with(|config| {
        config.auth.auth_rate_burst = 2;
        // One attempt back per second: slow enough that three quick attempts cannot
        // refill in between, even with Argon2 on a loaded machine.
        config.auth.auth_rate_per_minute = 60;
    })
    .await;
    app.register("jack").await;
    assert_eq!(login(&app, "jack", "wrong-password").await.status(), 401);
    // The register call used the per-IP registration budget, not the login one.
    assert_eq!(login(&app, "jack", "wrong-password").await.status(), 401);
    let limited = login(&app, "jack", TEST_PASSWORD).await;
    assert_eq!(limited.headers().get("retry-after").unwrap(), "1");
    assert_eq!(error_code(limited, 429).await, "rate_limited");

    app.local().rate_limits.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(login(&app, "jack", TEST_PASSWORD).await.status(), 200, "the budget refills");
}

#[tokio::test]
async fn registrations_are_rate_limited_per_ip() {
    let app = spawn_app_with(|config| {
        config.auth.auth_rate_burst = 1;
        config.auth.auth_rate_per_minute = 1;
    })
    .await;
    app.register("kate").await;
    let response =
        app.post_json("/api/v1/auth/register", &json!({ "username": "kate2", "password": TEST_PASSWORD })).await;
    assert_eq!(error_code(response, 429).await, "rate_limited");
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget_and_others_cannot_pick_theirs() {
    let app = spawn_app_with(|config| {
        config.auth.auth_rate_burst = 1;
        config.auth.auth_rate_per_minute = 1;
        config.auth.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let register_from = |client: &'static str, username: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/register"))
            .header("x-forwarded-for", client)
            .json(&json!({ "username": username, "password": TEST_PASSWORD }))
            .send()
    };
    assert_eq!(register_from("198.51.100.1", "proxied_a").await.unwrap().status(), 201);
    assert_eq!(register_from("198.51.100.2", "proxied_b").await.unwrap().status(), 201, "another client, own budget");
    let again = register_from("198.51.100.1", "proxied_c").await.unwrap();
    assert_eq!(error_code(again, 429).await, "rate_limited", "the first client's budget is spent");

    // Without the setting the header is only a claim: everyone shares the peer's budget.
    let direct = spawn_app_with(|config| {
        config.auth.auth_rate_burst = 1;
        config.auth.auth_rate_per_minute = 1;
    })
    .await;
    let first = direct.client.post(direct.url("/api/v1/auth/register")).header("x-forwarded-for", "198.51.100.1");
    let first = first.json(&json!({ "username": "direct_a", "password": TEST_PASSWORD })).send().await.unwrap();
    assert_eq!(first.status(), 201);
    let forged = direct.client.post(direct.url("/api/v1/auth/register")).header("x-forwarded-for", "198.51.100.2");
    let forged = forged.json(&json!({ "username": "direct_b", "password": TEST_PASSWORD })).send().await.unwrap();
    assert_eq!(error_code(forged, 429).await, "rate_limited");
}

#[tokio::test]
async fn password_changes_spend_the_accounts_guessing_budget() {
    let app = spawn_app_with(|config| {
        config.auth.auth_rate_burst = 2;
        config.auth.auth_rate_per_minute = 1;
    })
    .await;
    let user = app.register("guessed").await;
    let change = |current: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/password"))
            .bearer_auth(&user.access_token)
            .json(&json!({ "current_password": current, "new_password": "another long password" }))
            .send()
    };
    assert_eq!(error_code(change("guess one").await.unwrap(), 403).await, "wrong_password");
    assert_eq!(error_code(change("guess two").await.unwrap(), 403).await, "wrong_password");
    let limited = change(TEST_PASSWORD).await.unwrap();
    assert_eq!(error_code(limited, 429).await, "rate_limited", "even the right password waits");
    assert_eq!(login(&app, "guessed", TEST_PASSWORD).await.status(), 200, "the password did not change");
}

#[tokio::test]
async fn the_openapi_document_describes_the_auth_flow() {
    let app = spawn_app().await;
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/me", "/api/v1/users"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}
