//! The REST contract from outside: the served OpenAPI document is valid
//! (openapi-spec-validator) and the running server keeps it (schemathesis, every
//! check, fixed seed). Both tools come from PyPI through `scripts/contract-tools`; a
//! machine without them fails here saying so. Also the JSON rules REST and WebSocket
//! share (src/dto/strict_json.rs).

use std::{path::PathBuf, process::Stdio, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, call, error_code, spawn_app};

/// Enough cases to reach every operation in every phase, small enough for CI (~1 min).
const EXAMPLES_PER_OPERATION: &str = "20";
const SEED: &str = "1";
const TOOL_TIMEOUT: Duration = Duration::from_secs(600);

fn tool(name: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/contract-tools/bin");
    let path = std::env::var_os("GOIM_CONTRACT_TOOLS").map(PathBuf::from).unwrap_or(venv).join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/contract-tools once (it installs schemathesis and \
         openapi-spec-validator from PyPI into target/contract-tools), or point \
         GOIM_CONTRACT_TOOLS at a folder holding them",
        path.display()
    );
    path
}

async fn run(program: PathBuf, args: &[&str]) -> (bool, String) {
    // schemathesis keeps a cache in its working directory: keep it out of the checkout.
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let child = tokio::process::Command::new(&program)
        .args(args)
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
    let output = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {TOOL_TIMEOUT:?}", program.display()))
        .expect("tool output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn served_document(app: &TestApp) -> tempfile::NamedTempFile {
    let document = app.get("/api/openapi.json").await.text().await.expect("document");
    let file = tempfile::Builder::new().suffix(".json").tempfile().expect("temp file");
    std::fs::write(file.path(), document).expect("write document");
    file
}

#[tokio::test]
async fn the_served_openapi_document_is_valid() {
    let app = spawn_app().await;
    let document = served_document(&app).await;
    let (ok, output) = run(tool("openapi-spec-validator"), &[document.path().to_str().expect("utf-8 path")]).await;
    assert!(ok, "openapi-spec-validator refused the served document:\n{output}");
}

#[tokio::test]
async fn the_running_server_keeps_its_openapi_contract() {
    let app = spawn_app().await;
    let user = app.register("contract_user").await;
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    let auth = format!("Authorization: Bearer {}", user.access_token);
    let url = app.url("/api/openapi.json");
    let (ok, output) = run(
        tool("schemathesis"),
        &[
            "--config-file",
            config.to_str().expect("utf-8 path"),
            "run",
            &url,
            "--header",
            &auth,
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            // Signing out or revoking the current session (the stateful phase finds its
            // id in the session list) would end the run's own session and leave every
            // later case a 401; both have tests of their own.
            "--exclude-operation-id",
            "logout",
            "--exclude-operation-id",
            "revoke_session",
            // PostgreSQL cannot store NUL; GOIM refuses it with a documented 400
            // (`invalid_text`), which positive data must not contain.
            "--generation-allow-x00",
            "false",
            "--no-color",
        ],
    )
    .await;
    assert!(ok, "schemathesis found the server breaking its contract:\n{output}");
    assert!(output.contains("passed"), "schemathesis ran no case:\n{output}");
    assert!(!output.contains("401 Unauthorized ("), "the run lost its session midway:\n{output}");
}

#[tokio::test]
async fn rest_bodies_follow_the_shared_json_rules() {
    let app = spawn_app().await;
    let user = app.register("strict_rest").await;
    let patch_me = |body: &'static str| {
        app.client
            .patch(app.url("/api/v1/me"))
            .bearer_auth(&user.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let repeated = patch_me(r#"{"nickname":"one","nickname":"two"}"#).await.unwrap();
    assert_eq!(error_code(repeated, 400).await, "invalid_body", "a repeated key");
    let array = patch_me("[]").await.unwrap();
    assert_eq!(error_code(array, 400).await, "invalid_body", "a body that is not an object");
    let me: Value = app.get_as(&user.access_token, "/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["nickname"], "strict_rest", "nothing changed");

    // 5.0 is the integer 5: a mute of 3600.0 seconds works like one of 3600.
    let group: Value =
        call(&app, &user, Method::POST, "/api/v1/groups", Some(json!({ "name": "G", "join_policy": "open" })))
            .await
            .json()
            .await
            .unwrap();
    let other = app.register("strict_other").await;
    let group_id = group["id"].as_i64().unwrap();
    // The join body is optional, but one that is there must be right.
    let broken =
        call(&app, &other, Method::POST, &format!("/api/v1/groups/{group_id}/join"), Some(json!({ "message": false })))
            .await;
    assert_eq!(error_code(broken, 400).await, "invalid_body");
    let members: Value =
        app.get_as(&user.access_token, &format!("/api/v1/groups/{group_id}/members")).await.json().await.unwrap();
    assert_eq!(members["items"].as_array().map(Vec::len), Some(1), "the broken join changed nothing");
    assert_eq!(call(&app, &other, Method::POST, &format!("/api/v1/groups/{group_id}/join"), None).await.status(), 200);
    let mute_path = format!("/api/v1/groups/{group_id}/members/{}/mute", other.id);
    let mute = |body: &'static str| {
        app.client
            .put(app.url(&mute_path))
            .bearer_auth(&user.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(mute(r#"{"duration_secs":3600.0}"#).await.unwrap().status(), 200);
    let fractional = mute(r#"{"duration_secs":3600.5}"#).await.unwrap();
    assert_eq!(error_code(fractional, 400).await, "invalid_body");
}

#[tokio::test]
async fn websocket_frames_follow_the_same_json_rules() {
    let app = spawn_app().await;
    let user = app.register("strict_ws").await;
    let mut ws = app.connect(&user).await;
    let replies = [
        (r#"{"id":"1","type":"ping","type":"ping"}"#, None, "malformed_frame"),
        (r#"{"id":7,"type":"ping"}"#, None, "malformed_frame"),
        (r#"[]"#, None, "malformed_frame"),
        (r#"{"id":"2","type":"read","conversation_id":1,"seq":1,"extra":true}"#, Some("2"), "invalid_request"),
    ];
    for (frame, id, code) in replies {
        ws.send_raw(tokio_tungstenite::tungstenite::Message::text(frame)).await;
        let reply = ws.any_reply().await;
        assert_eq!((reply["id"].as_str(), reply["error"]["code"].as_str()), (id, Some(code)), "{frame}");
    }
    // An integral float is an integer here too: the conversation id 1.0 is looked up
    // (and is not the caller's), rather than refused as a wrong type.
    ws.send_raw(tokio_tungstenite::tungstenite::Message::text(r#"{"id":"3","type":"receipts","conversation_id":1.0}"#))
        .await;
    let reply = ws.any_reply().await;
    assert_eq!(reply["error"]["code"], "conversation_not_found");
}

#[tokio::test]
async fn probes_answer_head_and_small_rules_hold() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/api/openapi.json", "/metrics"] {
        let response = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "HEAD {path}");
        assert!(response.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }

    let (ann, bob) = (app.register("small_ann").await, app.register("small_bob").await);
    crate::support::befriend(&app, &ann, &bob).await;
    let conversation = crate::support::open_direct(&app, &ann, &bob).await;
    let messages = format!("/api/v1/conversations/{conversation}/messages");
    let send = |body: Value| call(&app, &ann, Method::POST, &messages, Some(body));
    // A link that shows one host and goes to another is refused, as avatar URLs are.
    let deceptive = send(json!({
        "client_msg_id": uuid::Uuid::new_v4(), "kind": "link",
        "content": { "url": "http://bank.example@evil.example/" }
    }))
    .await;
    assert_eq!(error_code(deceptive, 400).await, "validation_failed");
    // CRLF from Windows clients is stored as LF.
    let ack: Value =
        send(json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": "one\r\ntwo" })).await.json().await.unwrap();
    let history: Value = app
        .get_as(&ann.access_token, &format!("/api/v1/conversations/{conversation}/messages"))
        .await
        .json()
        .await
        .unwrap();
    let stored = history["items"].as_array().unwrap().iter().find(|m| m["seq"] == ack["seq"]).unwrap();
    assert_eq!(stored["body"], "one\ntwo");
    // A lone CR is still a control character.
    let lone = send(json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": "one\rtwo" })).await;
    assert_eq!(error_code(lone, 400).await, "validation_failed");
}
