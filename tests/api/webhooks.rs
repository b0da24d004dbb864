//! Webhooks for offline delivery (src/webhooks/, docs/operations.md "Webhooks"): a test
//! HTTP receiver gets exactly one signed POST per offline recipient and endpoint, none
//! for connected ones, retries after a failure, dead letters after the last attempt, and
//! nothing is lost across a restart between store and delivery.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{
    TestApp, TestUser, befriend, call, metric_value, open_direct,
    receiver::{Delivery, Receiver},
    send_text, spawn_app, spawn_app_with, spawn_peer_with,
};

const SECRET: &str = "webhook-test-secret-0123456789abcdef";

fn with_webhooks(urls: &[&str], backoff_ms: u64, max_attempts: u32) -> impl FnOnce(&mut goim::config::Config) {
    let urls = goim::config::WebhookUrls::parse(&urls.join(",")).unwrap();
    move |config| {
        config.webhooks.webhook_urls = urls;
        config.webhooks.webhook_secret = Some(goim::config::Secret::new(SECRET.into()));
        config.webhooks.webhook_backoff_ms = backoff_ms;
        config.webhooks.webhook_max_attempts = max_attempts;
    }
}

/// Checks `Goim-Signature: t=…,v1=…` the way a receiver would: HMAC-SHA256 of
/// "<t>.<body>" under the shared secret, and a timestamp close to now.
fn assert_signed(delivery: &Delivery) {
    let header = delivery.header("goim-signature");
    let mut parts = header.split(',');
    let t = parts.next().and_then(|p| p.strip_prefix("t=")).expect("t= first");
    let v1 = parts.next().and_then(|p| p.strip_prefix("v1=")).expect("v1= second");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&delivery.body);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1, "the signature matches the body");
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - t.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "the timestamp is the time of sending: {age} s ago");
}

async fn open_group(app: &TestApp, owner: &TestUser, members: &[&TestUser]) -> i64 {
    let body = json!({ "name": "Hooks", "join_policy": "open" });
    let response = call(app, owner, Method::POST, "/api/v1/groups", Some(body)).await;
    assert_eq!(response.status(), 201, "create group");
    let group = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for member in members {
        let joined = call(app, member, Method::POST, &format!("/api/v1/groups/{group}/join"), None).await;
        assert!(joined.status().is_success(), "{} joins", member.username);
    }
    let response = call(app, owner, Method::GET, &format!("/api/v1/groups/{group}/conversation"), None).await;
    response.json::<Value>().await.unwrap()["conversation_id"].as_i64().unwrap()
}

/// Waits until the user's socket is recorded as present (presence is written just
/// after the handshake).
async fn wait_until_present(app: &TestApp, user: &TestUser) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let present: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instance_users WHERE user_id = $1)")
            .bind(user.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if present {
            return;
        }
        assert!(Instant::now() < deadline, "{} never showed as connected", user.username);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (pending, dead) rows in the outbox.
async fn outbox(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE dead_at IS NULL), count(*) FILTER (WHERE dead_at IS NOT NULL)
           FROM webhook_deliveries",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Waits until nothing is pending in the outbox: every delivery is settled, so no
/// further POST can come.
async fn wait_until_settled(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while outbox(app).await.0 > 0 {
        assert!(Instant::now() < deadline, "the outbox never emptied: {:?}", outbox(app).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn each_offline_member_gets_exactly_one_signed_post_and_connected_members_none() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(with_webhooks(&[&receiver.url], 1000, 10)).await;
    let ann = app.register("hook_ann").await;
    let (bob, cat, dan) =
        (app.register("hook_bob").await, app.register("hook_cat").await, app.register("hook_dan").await);
    let conversation = open_group(&app, &ann, &[&bob, &cat, &dan]).await;
    // Dan has a socket (and so does the sender, who never gets an event of their own).
    let _dan_socket = app.connect(&dan).await;
    let _ann_socket = app.connect(&ann).await;
    wait_until_present(&app, &dan).await;

    let ack = send_text(&app, &ann, conversation, "are you there?").await;
    let seq = ack["seq"].as_i64().unwrap();
    wait_until_settled(&app).await;

    let received = receiver.received();
    let mut recipients: Vec<i64> = received.iter().map(|d| d.json()["recipient_id"].as_i64().unwrap()).collect();
    recipients.sort();
    assert_eq!(recipients, vec![bob.id, cat.id], "one POST per offline member, none for Dan or Ann");
    for delivery in &received {
        assert_eq!(delivery.method, "POST");
        assert_eq!(delivery.path, "/hooks/goim");
        assert_eq!(delivery.header("content-type"), "application/json");
        assert_signed(delivery);
        let event = delivery.json();
        let recipient = event["recipient_id"].as_i64().unwrap();
        assert_eq!(event["type"], "message.created");
        assert_eq!(event["id"], format!("{conversation}-{seq}-{recipient}"));
        assert_eq!(delivery.header("goim-event-id"), event["id"].as_str().unwrap());
        assert_eq!(delivery.header("goim-delivery-attempt"), "1");
        assert_eq!(event["conversation_id"], conversation);
        assert_eq!(event["seq"], seq);
        assert_eq!(event["sender_id"], ann.id);
        assert_eq!(event["kind"], "text");
        assert_eq!(event["muted"], false);
        assert!(event["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{event}");
        // GOIM_WEBHOOK_PREVIEW defaults to none: nothing of what was said, nor by whom.
        assert_eq!(event["preview"], Value::Null);
        assert_eq!(event["sender_name"], Value::Null);
        assert!(!String::from_utf8_lossy(&delivery.body).contains("are you there"));
    }
    let text = metrics(&app).await;
    assert_eq!(metric_value(&text, "goim_webhook_queued_total"), 2.0, "{text}");
    assert_eq!(metric_value(&text, "goim_webhook_deliveries_total{outcome=\"delivered\"}"), 2.0, "{text}");
}

#[tokio::test]
async fn a_failed_post_is_retried_with_the_same_event_and_other_endpoints_are_not_sent_again() {
    let (flaky, steady) = (Receiver::start().await, Receiver::start().await);
    flaky.answer_next(&[500]);
    let app = spawn_app_with(|config| {
        with_webhooks(&[&flaky.url, &steady.url], 50, 10)(config);
        config.webhooks.webhook_preview = goim::config::WebhookPreview::Text;
    })
    .await;
    let (ann, bob) = (app.register("retry_ann").await, app.register("retry_bob").await);
    befriend(&app, &ann, &bob).await;
    let conversation = open_direct(&app, &ann, &bob).await;
    let long = "ü".repeat(150);
    send_text(&app, &ann, conversation, &long).await;

    flaky.wait_until(Duration::from_secs(15), |got| got.iter().any(|d| d.status == 200)).await;
    wait_until_settled(&app).await;
    let flaky_got = flaky.received();
    assert_eq!(flaky_got.len(), 2, "one 500, then one success");
    assert_eq!(flaky_got[0].status, 500);
    assert_eq!(flaky_got[0].header("goim-delivery-attempt"), "1");
    assert_eq!(flaky_got[1].header("goim-delivery-attempt"), "2");
    assert_eq!(flaky_got[0].json()["id"], flaky_got[1].json()["id"], "a retry is the same event");
    assert_signed(&flaky_got[1]);
    let steady_got = steady.received();
    assert_eq!(steady_got.len(), 1, "the endpoint that answered is not sent the event again");
    assert_eq!(steady_got[0].json()["id"], flaky_got[0].json()["id"]);
    // GOIM_WEBHOOK_PREVIEW=text: the nickname and the first 100 characters.
    let event = steady_got[0].json();
    assert_eq!(event["sender_name"], "retry_ann");
    assert_eq!(event["preview"], format!("{}…", "ü".repeat(100)));
    let text = metrics(&app).await;
    assert_eq!(metric_value(&text, "goim_webhook_deliveries_total{outcome=\"failed\"}"), 1.0, "{text}");
    assert_eq!(metric_value(&text, "goim_webhook_deliveries_total{outcome=\"delivered\"}"), 2.0, "{text}");
}

#[tokio::test]
async fn a_delivery_out_of_attempts_becomes_a_dead_letter_that_an_operator_can_requeue() {
    let receiver = Receiver::start().await;
    receiver.answer_always(503);
    let app = spawn_app_with(with_webhooks(&[&receiver.url], 20, 3)).await;
    let (ann, bob) = (app.register("dead_ann").await, app.register("dead_bob").await);
    befriend(&app, &ann, &bob).await;
    let conversation = open_direct(&app, &ann, &bob).await;
    send_text(&app, &ann, conversation, "nobody listens").await;

    let deadline = Instant::now() + Duration::from_secs(15);
    while outbox(&app).await != (0, 1) {
        assert!(Instant::now() < deadline, "no dead letter: {:?}", outbox(&app).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.received().len(), 3, "GOIM_WEBHOOK_MAX_ATTEMPTS attempts, then no more");
    let (attempts, last_error): (i32, String) =
        sqlx::query_as("SELECT attempts, last_error FROM webhook_deliveries").fetch_one(&app.pool).await.unwrap();
    assert_eq!((attempts, last_error.as_str()), (3, "HTTP 503"));
    let text = metrics(&app).await;
    assert_eq!(metric_value(&text, "goim_webhook_deliveries_total{outcome=\"failed\"}"), 2.0, "{text}");
    assert_eq!(metric_value(&text, "goim_webhook_deliveries_total{outcome=\"dead\"}"), 1.0, "{text}");
    // The outbox gauge is sampled every few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric_value(&metrics(&app).await, "goim_webhook_outbox{state=\"dead\"}") != 1.0 {
        assert!(Instant::now() < deadline, "the dead letter never showed in goim_webhook_outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The requeue statement from docs/operations.md.
    receiver.answer_always(200);
    sqlx::query(
        "UPDATE webhook_deliveries SET dead_at = NULL, attempts = 0, next_attempt_at = now() WHERE dead_at IS NOT NULL",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    receiver.wait_until(Duration::from_secs(15), |got| got.iter().any(|d| d.status == 200)).await;
    wait_until_settled(&app).await;
    assert_eq!(outbox(&app).await, (0, 0));
}

#[tokio::test]
async fn a_shutdown_during_a_post_stops_at_once_and_releases_the_delivery() {
    let receiver = Receiver::start().await;
    receiver.answer_always(0);
    let app = spawn_app_with(with_webhooks(&[&receiver.url], 1000, 10)).await;
    let (ann, bob) = (app.register("halt_ann").await, app.register("halt_bob").await);
    befriend(&app, &ann, &bob).await;
    let conversation = open_direct(&app, &ann, &bob).await;
    send_text(&app, &ann, conversation, "hold on").await;
    receiver.wait_until(Duration::from_secs(15), |got| !got.is_empty()).await;

    let started = Instant::now();
    app.local().shutdown.cancel();
    let local = app.in_process.as_ref().unwrap();
    while !local.server.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited for the endpoint");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Due again at once, and the abandoned attempt does not count against the limit.
    // (The app closed its pool on the way out.)
    let pool = sqlx::PgPool::connect_with(app.db_options.clone()).await.unwrap();
    let (attempts, due): (i32, bool) =
        sqlx::query_as("SELECT attempts, next_attempt_at <= now() FROM webhook_deliveries WHERE dead_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!((attempts, due), (0, true));
}

#[tokio::test]
async fn two_instances_deliver_every_event_exactly_once_between_them() {
    let receiver = Receiver::start().await;
    let a = spawn_app_with(with_webhooks(&[&receiver.url], 1000, 10)).await;
    a.wait_until_ready().await;
    let b = spawn_peer_with(&a, with_webhooks(&[&receiver.url], 1000, 10)).await;
    let ann = a.register("pair_ann").await;
    let (bob, cat) = (a.register("pair_bob").await, a.register("pair_cat").await);
    let conversation = open_group(&a, &ann, &[&bob, &cat]).await;
    for n in 0..20 {
        // Alternate instances, so both writers queue and both workers are nudged.
        let app = if n % 2 == 0 { &a } else { &b };
        send_text(app, &ann, conversation, &format!("m{n}")).await;
    }
    wait_until_settled(&a).await;
    let mut ids: Vec<String> =
        receiver.received().iter().map(|d| d.json()["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, 40, "20 messages x 2 offline members");
    assert_eq!(ids.len(), 40, "no event was posted twice");
}

/// The event of a message stored while the endpoint fails is still delivered after GOIM
/// stops and starts again: the outbox is in PostgreSQL, not in the process.
#[cfg(unix)]
#[tokio::test]
async fn an_event_queued_before_a_restart_is_delivered_after_it() {
    use crate::support::binary::{RunningGoim, send_signal};
    let receiver = Receiver::start().await;
    receiver.answer_always(503);
    let peer = spawn_app().await;
    let database_url = crate::support::cluster().database_url(&peer.db_options);
    let jwt = crate::support::test_config().auth.jwt_secret.expect("test secret");
    let dir = crate::support::new_data_dir();
    let settings = [
        ("DATABASE_URL", database_url.as_str()),
        ("GOIM_JWT_SECRET", jwt.expose()),
        ("GOIM_WEBHOOK_URLS", receiver.url.as_str()),
        ("GOIM_WEBHOOK_SECRET", SECRET),
        ("GOIM_WEBHOOK_BACKOFF_MS", "200"),
    ];
    let mut goim = RunningGoim::start_with(&dir, &settings);
    let app = goim.app(&peer);
    let (ann, bob) = (app.register("restart_ann").await, app.register("restart_bob").await);
    befriend(&app, &ann, &bob).await;
    let conversation = open_direct(&app, &ann, &bob).await;
    let seq = send_text(&app, &ann, conversation, "while you were out").await["seq"].as_i64().unwrap();
    receiver.wait_until(Duration::from_secs(15), |got| !got.is_empty()).await;

    send_signal(&goim.child, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(goim.wait_exit(Duration::from_secs(30)).code(), Some(0));
    assert!(receiver.received().iter().all(|d| d.status == 503), "nothing was delivered before the restart");
    assert_eq!(outbox(&peer).await, (1, 0), "the event waits in the outbox");

    receiver.answer_always(200);
    let _again = RunningGoim::start_with(&dir, &settings);
    let got = receiver.wait_until(Duration::from_secs(20), |got| got.iter().any(|d| d.status == 200)).await;
    wait_until_settled(&peer).await;
    let delivered: Vec<&Delivery> = got.iter().filter(|d| d.status == 200).collect();
    assert_eq!(delivered.len(), 1);
    assert_signed(delivered[0]);
    assert_eq!(delivered[0].json()["id"], format!("{conversation}-{seq}-{}", bob.id));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn webhook_urls_without_a_secret_or_a_bad_url_stop_the_start_with_one_line() {
    use crate::support::binary::goim_command;
    let dir = crate::support::new_data_dir();
    let run = |vars: &[(&str, &str)]| {
        let output = goim_command(&dir).envs(vars.iter().copied()).arg("migrate").output().expect("goim runs");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = run(&[("GOIM_WEBHOOK_URLS", "https://push.example.com/goim")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("GOIM_WEBHOOK_SECRET"), "{stderr}");
    let (code, stderr) = run(&[("GOIM_WEBHOOK_URLS", "ftp://push.example.com/"), ("GOIM_WEBHOOK_SECRET", SECRET)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("GOIM_WEBHOOK_URLS"), "{stderr}");
    let (code, stderr) = run(&[("GOIM_WEBHOOK_URLS", "https://push.example.com/"), ("GOIM_WEBHOOK_SECRET", "short")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("GOIM_WEBHOOK_SECRET"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn recalls_and_account_deletions_reach_events_still_waiting_in_the_outbox() {
    // Nothing listens on port 1: every event stays queued (the first retry is an hour away).
    let app = spawn_app_with(|config| {
        with_webhooks(&["http://127.0.0.1:1/hook"], 3_600_000, 10)(config);
        config.webhooks.webhook_preview = goim::config::WebhookPreview::Text;
    })
    .await;
    let (ann, bob, carol) = (app.register("ann").await, app.register("bob").await, app.register("carol").await);
    befriend(&app, &ann, &bob).await;
    befriend(&app, &ann, &carol).await;
    let to_bob = open_direct(&app, &ann, &bob).await;
    let to_carol = open_direct(&app, &ann, &carol).await;
    let recalled = send_text(&app, &ann, to_bob, "take this back").await;
    send_text(&app, &ann, to_bob, "for bob").await;
    send_text(&app, &ann, to_carol, "for carol").await;
    let queued = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, Option<String>, Option<String>)>(
                "SELECT recipient_id, seq, preview, sender_name FROM webhook_deliveries ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while queued(&app).await.len() < 3 {
        assert!(Instant::now() < deadline, "three events queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let path = format!("/api/v1/conversations/{to_bob}/messages/{}", recalled["seq"]);
    assert_eq!(call(&app, &ann, Method::DELETE, &path, None).await.status(), 204);
    let rows = queued(&app).await;
    assert_eq!(rows[0], (bob.id, recalled["seq"].as_i64().unwrap(), None, Some("ann".into())), "no recalled text");
    assert_eq!(rows[1].2.as_deref(), Some("for bob"));

    // Bob's account goes: so do the events for him. Ann's goes: her name leaves carol's.
    assert_eq!(delete_account(&app, &bob).await.status(), 204);
    let rows = queued(&app).await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [carol.id]);
    assert_eq!(delete_account(&app, &ann).await.status(), 204);
    let rows = queued(&app).await;
    assert_eq!(rows[0].3.as_deref(), Some("Deleted user"));
}

async fn delete_account(app: &TestApp, user: &TestUser) -> reqwest::Response {
    call(app, user, Method::DELETE, "/api/v1/me", Some(json!({ "password": user.password }))).await
}
