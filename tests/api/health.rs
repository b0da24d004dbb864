use serde_json::Value;

use crate::support::{error_code, spawn_app};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_answers_ready_while_the_database_is_reachable() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_answers_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.pool.close().await;
    let code = error_code(app.get("/readyz").await, 503).await;
    assert_eq!(code, "service_unavailable");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_show_the_pool() {
    let app = spawn_app().await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/no/such/path").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"goim_http_requests_total{method="GET",route="/healthz",status="200"} 2"#), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404"} 1"#), "{text}");
    assert!(text.contains("goim_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"goim_db_pool_connections{pool="main",state="max"} 5"#), "{text}");
    assert!(text.contains(r#"goim_db_pool_connections{pool="writer",state="max"}"#), "{text}");
    assert!(text.contains(r#"goim_build_info{version=""#), "{text}");
    assert!(text.contains("process_start_time_seconds"), "{text}");
    if cfg!(target_os = "linux") {
        let rss = crate::support::metric_value(&text, "process_resident_memory_bytes");
        assert!(rss > 1e6, "RSS reported: {text}");
        assert!(text.contains("process_cpu_seconds_total"), "{text}");
    }
}

#[tokio::test]
async fn migrations_applied_twice_are_a_no_op() {
    let app = spawn_app().await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let before = count().await;
    assert_eq!(before, goim::db::MIGRATOR.iter().count() as i64);
    goim::db::migrate(&app.pool).await.expect("second migration run succeeds");
    assert_eq!(count().await, before);
}
