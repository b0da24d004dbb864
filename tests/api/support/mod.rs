//! Test harness: the throwaway cluster, `spawn_app`, and helpers for the real binary.

pub mod binary;
mod cluster;
pub mod receiver;
pub mod webdriver;
pub mod ws;

use std::time::Duration;

use goim::{config::Config, config::Secret, db, startup::Application};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use cluster::{cluster, new_data_dir, options as cluster_options};

/// Every network await in tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A pool on the app's database, for assertions about stored state.
    pub pool: PgPool,
    /// How to reach the app's database (for checks after the app closed its pool).
    #[allow(dead_code)]
    pub db_options: sqlx::postgres::PgConnectOptions,
    /// Handles into the server when it runs inside the test process; `None` for a
    /// `goim` binary in a process of its own (see [`binary::RunningGoim::app`]).
    pub in_process: Option<InProcess>,
}

/// What a test can reach inside a server that runs in the test process.
pub struct InProcess {
    /// The app's domain event bus.
    pub events: goim::events::EventBus,
    /// The app's login limits; tests move their clock instead of sleeping.
    pub rate_limits: std::sync::Arc<goim::auth::RateLimits>,
    /// The server task; ends after a graceful shutdown.
    #[allow(dead_code)]
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Cancelling it shuts the app down gracefully.
    #[allow(dead_code)]
    pub shutdown: CancellationToken,
}

/// A server on port 0 with default test settings and a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with the configuration adjusted first.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config();
    customise(&mut config);
    serve(config, cluster().create_database().await).await
}

/// Another GOIM instance on the same database as `app` (same secret, own port, own hub):
/// the shape of a multi-instance deployment.
pub async fn spawn_peer(app: &TestApp) -> TestApp {
    spawn_peer_with(app, |_| {}).await
}

/// Like [`spawn_peer`], with the configuration adjusted first.
pub async fn spawn_peer_with(app: &TestApp, customise: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config();
    customise(&mut config);
    let peer = serve(config, app.db_options.clone()).await;
    peer.wait_until_ready().await;
    peer
}

/// Runs the application with `config` on the database at `options`.
async fn serve(config: Config, options: sqlx::postgres::PgConnectOptions) -> TestApp {
    let pool = db::connect(&config, options.clone()).await.expect("test database accepts connections");
    let app = Application::build(config, pool.clone()).expect("application builds");
    let port = app.port();
    let shutdown = app.shutdown_token();
    let events = app.events();
    let rate_limits = app.rate_limits();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: test_client(),
        pool,
        db_options: options,
        in_process: Some(InProcess { events, rate_limits, server, shutdown }),
    }
}

pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(TIMEOUT).build().expect("reqwest client builds")
}

/// The value of the metric line `name <value>` in a `/metrics` text (0 when absent).
pub fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

impl TestApp {
    /// The handles of a server running in this process.
    pub fn local(&self) -> &InProcess {
        self.in_process.as_ref().expect("the app runs in the test process")
    }

    /// Waits until `/readyz` answers 200 (the relay listens), at most 10 s.
    pub async fn wait_until_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.get("/readyz").await.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} never became ready", self.address);
    }
}

/// Defaults with everything the tests rely on pinned, whatever the environment says.
pub fn test_config() -> Config {
    let mut config = Config::from_env().expect("the environment holds a valid GOIM configuration");
    config.server.bind = "127.0.0.1:0".parse().expect("valid address");
    config.database.database_url = None;
    config.auth.jwt_secret = Some(Secret::new("test-secret-".repeat(4)));
    config.database.db_max_connections = 5;
    config.database.db_min_connections = 0;
    config.server.max_request_bytes = 64 * 1024;
    config.server.http_workers = 1;
    config.server.shutdown_timeout = Duration::from_secs(5);
    config
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request completes")
    }

    #[allow(dead_code)]
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request completes")
    }
}

/// Asserts the standard error shape and returns the error code.
pub async fn error_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(content_type.starts_with("application/json"), "error is not JSON: {content_type}");
    let body: Value = response.json().await.expect("error body is JSON");
    let code = body["error"]["code"].as_str().expect("error.code is a string").to_owned();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error.message missing: {body}");
    assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "code is not snake_case: {code}");
    code
}

/// A registered user and their first session's tokens.
#[allow(dead_code)]
pub struct TestUser {
    pub id: i64,
    pub username: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    pub session_id: String,
}

pub const TEST_PASSWORD: &str = "correct horse battery";

impl TestApp {
    /// Registers `username` with [`TEST_PASSWORD`].
    pub async fn register(&self, username: &str) -> TestUser {
        let response = self
            .post_json("/api/v1/auth/register", &serde_json::json!({ "username": username, "password": TEST_PASSWORD }))
            .await;
        assert_eq!(response.status(), 201, "register {username}");
        let body: Value = response.json().await.expect("register body");
        TestUser {
            id: body["user"]["id"].as_i64().expect("user.id"),
            username: username.to_owned(),
            password: TEST_PASSWORD.to_owned(),
            access_token: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh_token: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
            session_id: body["session_id"].as_str().expect("session_id").to_owned(),
        }
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request completes")
    }

    pub async fn send_as(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request completes")
    }
}

/// Logs `username` in with [`TEST_PASSWORD`] and returns the access token.
pub async fn login_token(app: &TestApp, username: &str) -> String {
    let response = app
        .post_json("/api/v1/auth/login", &serde_json::json!({ "username": username, "password": TEST_PASSWORD }))
        .await;
    assert_eq!(response.status(), 200, "login {username}");
    let body: Value = response.json().await.expect("login body");
    body["access_token"].as_str().expect("access_token").to_owned()
}

impl TestApp {
    /// `n` users created straight in the database with a session each, and access
    /// tokens signed with the test secret: for tests that need many users, where
    /// registering each through Argon2 would only add seconds.
    pub async fn seed_users(&self, prefix: &str, n: usize) -> Vec<TestUser> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO users (username, nickname, password_hash)
             SELECT $1 || i, $1 || i, 'seeded-no-login' FROM generate_series(1, $2) AS i
             RETURNING id, username",
        )
        .bind(prefix)
        .bind(n as i32)
        .fetch_all(&self.pool)
        .await
        .expect("seed users");
        let keys = goim::auth::TokenKeys::new(
            test_config().auth.jwt_secret.as_ref().expect("test secret"),
            Duration::from_secs(900),
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut users = Vec::with_capacity(rows.len());
        for (id, username) in rows {
            let session = uuid::Uuid::new_v4();
            sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, now() + interval '1 day')")
                .bind(session)
                .bind(id)
                .execute(&self.pool)
                .await
                .expect("seed session");
            let token =
                keys.issue(goim::domain::UserId(id), goim::domain::SessionId(session), now).expect("sign token");
            users.push(TestUser {
                id,
                username,
                password: String::new(),
                access_token: token,
                refresh_token: String::new(),
                session_id: session.to_string(),
            });
        }
        users
    }
}

/// `method path` as `user`, with an optional JSON body.
pub async fn call(
    app: &TestApp,
    user: &TestUser,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    app.send_as(method, &user.access_token, path, body.as_ref()).await
}

/// Makes two users friends through the public API: `a` asks, `b` accepts.
pub async fn befriend(app: &TestApp, a: &TestUser, b: &TestUser) {
    let body = serde_json::json!({ "to_user_id": b.id });
    let asked = call(app, a, reqwest::Method::POST, "/api/v1/friend-requests", Some(body)).await;
    assert_eq!(asked.status(), 201, "{} asks {}", a.username, b.username);
    let request: Value = asked.json().await.expect("friend request body");
    let id = request["request"]["id"].as_i64().expect("request.id");
    let path = format!("/api/v1/friend-requests/{id}/accept");
    assert_eq!(call(app, b, reqwest::Method::POST, &path, None).await.status(), 200, "{} accepts", b.username);
}

/// The direct conversation of `a` and `b`, opened by `a`.
pub async fn open_direct(app: &TestApp, a: &TestUser, b: &TestUser) -> i64 {
    let body = serde_json::json!({ "user_id": b.id });
    let response = call(app, a, reqwest::Method::POST, "/api/v1/conversations/direct", Some(body)).await;
    assert_eq!(response.status(), 200, "{} opens a conversation with {}", a.username, b.username);
    response.json::<Value>().await.expect("conversation body")["conversation_id"].as_i64().expect("conversation_id")
}

/// Sends `text` over REST as `user` and returns the ack; asserts it was stored (201).
pub async fn send_text(app: &TestApp, user: &TestUser, conversation: i64, text: &str) -> Value {
    let body = serde_json::json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": text });
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let response = call(app, user, reqwest::Method::POST, &path, Some(body)).await;
    assert_eq!(response.status(), 201, "{} sends {text:?}", user.username);
    response.json().await.expect("ack body")
}

/// Waits until `count` backends wait for a lock (the ones `connection` holds), at most
/// [`TIMEOUT`].
pub async fn wait_for_lock_waiters(connection: &mut sqlx::PgConnection, count: i64) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *connection)
        .await
        .expect("pg_stat_activity");
        if waiting >= count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{count} lock waiters never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
