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
    assert_eq!(response.headers().get("allow").unwrap(), "GET");
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
