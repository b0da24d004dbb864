//! Files and images: stored in PostgreSQL in chunks, typed by their bytes, served so no
//! browser runs them, readable only by whoever can read a message that names them.

use std::io::Cursor;

use reqwest::{Method, header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::support::{TestApp, TestUser, befriend, call, error_code, open_direct, spawn_app, spawn_app_with};

pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

async fn upload(app: &TestApp, user: &TestUser, name: &str, bytes: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/uploads"))
        .query(&[("name", name)])
        .bearer_auth(&user.access_token)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

pub async fn uploaded(app: &TestApp, user: &TestUser, name: &str, bytes: Vec<u8>) -> Value {
    let response = upload(app, user, name, bytes).await;
    assert_eq!(response.status(), 201, "upload {name}");
    response.json().await.unwrap()
}

async fn fetch(app: &TestApp, user: &TestUser, path: &str) -> reqwest::Response {
    app.get_as(&user.access_token, path).await
}

async fn send(app: &TestApp, user: &TestUser, conversation: i64, body: Value) -> reqwest::Response {
    call(app, user, Method::POST, &format!("/api/v1/conversations/{conversation}/messages"), Some(body)).await
}

fn attachment(kind: &str, upload_id: &Value) -> Value {
    json!({ "client_msg_id": Uuid::new_v4(), "kind": kind, "body": "have a look", "content": { "upload_id": upload_id } })
}

async fn pair(app: &TestApp, prefix: &str) -> (TestUser, TestUser, i64) {
    let (ann, bob) = (app.register(&format!("{prefix}_ann")).await, app.register(&format!("{prefix}_bob")).await);
    befriend(app, &ann, &bob).await;
    let conversation = open_direct(app, &ann, &bob).await;
    (ann, bob, conversation)
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&app.pool).await.unwrap()
}

/// Uploads and chunks left once refused uploads are cleaned up: a refused upload's row
/// is removed by a task started as its request ends, which may run just after the
/// response. Waits up to 5 s for none to be left.
async fn uploads_left_after_refusals(app: &TestApp) -> (i64, i64) {
    let mut left = (0, 0);
    for _ in 0..50 {
        left = (count(app, "uploads").await, count(app, "upload_chunks").await);
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    left
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn an_image_reaches_the_other_member_with_its_facts_and_a_thumbnail_and_nobody_else() {
    let app = spawn_app().await;
    let (ann, bob, conversation) = pair(&app, "pic").await;
    let eve = app.register("pic_eve").await;
    let bytes = png(1280, 640);
    // The client's claimed type is ignored; the bytes say PNG.
    let response = app
        .client
        .post(app.url("/api/v1/uploads?name=C%3A%5Cphotos%5Cbeach.png"))
        .bearer_auth(&ann.access_token)
        .header(header::CONTENT_TYPE, "text/html")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["name"], "beach.png", "only the last path component");
    assert_eq!(stored["mime"], "image/png");
    assert_eq!((stored["width"].as_i64(), stored["height"].as_i64()), (Some(1280), Some(640)));
    assert_eq!(stored["size"], bytes.len());
    assert_eq!(stored["has_thumbnail"], true);

    let sent = send(&app, &ann, conversation, attachment("image", &stored["id"])).await;
    assert_eq!(sent.status(), 201);
    let history: Value =
        fetch(&app, &bob, &format!("/api/v1/conversations/{conversation}/messages")).await.json().await.unwrap();
    let content = &history["items"][0]["content"];
    assert_eq!(content["upload_id"], stored["id"]);
    assert_eq!((content["name"].as_str(), content["mime"].as_str()), (Some("beach.png"), Some("image/png")));
    assert_eq!(
        (content["width"].as_i64(), content["height"].as_i64(), content["size"].as_u64()),
        (Some(1280), Some(640), Some(bytes.len() as u64))
    );

    let path = format!("/api/v1/uploads/{}", stored["id"].as_str().unwrap());
    let got = fetch(&app, &bob, &path).await;
    assert_eq!(got.status(), 200);
    assert_eq!(header(&got, "content-type"), "image/png");
    assert_eq!(header(&got, "x-content-type-options"), "nosniff");
    assert!(header(&got, "content-security-policy").contains("sandbox"));
    assert!(header(&got, "content-disposition").starts_with("inline; "), "{}", header(&got, "content-disposition"));
    let etag = header(&got, "etag").to_owned();
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice(), "the same bytes back");
    let again = app.client.get(app.url(&path)).bearer_auth(&bob.access_token).header(header::IF_NONE_MATCH, &etag);
    assert_eq!(again.send().await.unwrap().status(), 304);

    let thumbnail = fetch(&app, &bob, &format!("{path}/thumbnail")).await;
    assert_eq!(thumbnail.status(), 200);
    assert_eq!(header(&thumbnail, "content-type"), "image/jpeg");
    let small = image::load_from_memory(&thumbnail.bytes().await.unwrap()).unwrap();
    assert_eq!((small.width(), small.height()), (320, 160));

    // Someone who is not in the conversation learns nothing, not even that it exists.
    assert_eq!(error_code(fetch(&app, &eve, &path).await, 404).await, "upload_not_found");
    assert_eq!(error_code(fetch(&app, &eve, &format!("{path}/thumbnail")).await, 404).await, "upload_not_found");
    assert_eq!(
        error_code(fetch(&app, &eve, &format!("/api/v1/uploads/{}", Uuid::new_v4())).await, 404).await,
        "upload_not_found"
    );
    // Nor can they send it as their own.
    let (eve_chat_partner, eve_conversation) = {
        let friend = app.register("pic_fay").await;
        befriend(&app, &eve, &friend).await;
        let conversation = open_direct(&app, &eve, &friend).await;
        (friend, conversation)
    };
    let stolen = send(&app, &eve, eve_conversation, attachment("image", &stored["id"])).await;
    assert_eq!(error_code(stolen, 400).await, "validation_failed");
    assert_eq!(error_code(fetch(&app, &eve_chat_partner, &path).await, 404).await, "upload_not_found");

    // A recall takes the file away from the other member; its uploader keeps it.
    let recall =
        call(&app, &ann, Method::DELETE, &format!("/api/v1/conversations/{conversation}/messages/1"), None).await;
    assert_eq!(recall.status(), 204);
    assert_eq!(error_code(fetch(&app, &bob, &path).await, 404).await, "upload_not_found");
    assert_eq!(fetch(&app, &ann, &path).await.status(), 200);
}

#[tokio::test]
async fn html_dressed_as_a_png_is_text_served_as_an_attachment_and_cannot_be_an_image_message() {
    let app = spawn_app().await;
    let (ann, bob, conversation) = pair(&app, "disguise").await;
    let page = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/me')</script></body></html>".to_vec();
    let stored = uploaded(&app, &ann, "cute-cat.png", page.clone()).await;
    assert_eq!(stored["mime"], "text/plain");
    assert!(stored.get("width").is_none());
    assert_eq!(stored["has_thumbnail"], false);

    let as_image = send(&app, &ann, conversation, attachment("image", &stored["id"])).await;
    assert_eq!(error_code(as_image, 400).await, "validation_failed");
    assert_eq!(count(&app, "messages").await, 0, "a refused message is not stored");
    assert_eq!(send(&app, &ann, conversation, attachment("file", &stored["id"])).await.status(), 201);

    let path = format!("/api/v1/uploads/{}", stored["id"].as_str().unwrap());
    let got = fetch(&app, &bob, &path).await;
    assert_eq!(got.status(), 200);
    let content_type = header(&got, "content-type").to_owned();
    assert_eq!(content_type, "text/plain; charset=utf-8");
    assert!(!content_type.contains("html"));
    assert!(header(&got, "content-disposition").starts_with("attachment; filename=\"cute-cat.png\""));
    assert_eq!(header(&got, "x-content-type-options"), "nosniff");
    assert_eq!(header(&got, "content-security-policy"), "default-src 'none'; sandbox");
    assert_eq!(got.bytes().await.unwrap().as_ref(), page.as_slice());
    let thumbnail = fetch(&app, &bob, &format!("{path}/thumbnail")).await;
    assert_eq!(error_code(thumbnail, 404).await, "thumbnail_not_found");
}

#[tokio::test]
async fn a_large_file_is_stored_in_chunks_and_comes_back_whole() {
    let app = spawn_app().await;
    let (ann, bob, conversation) = pair(&app, "chunks").await;
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let stored = uploaded(&app, &ann, "data.bin", bytes.clone()).await;
    assert_eq!(stored["mime"], "application/octet-stream");
    let chunks: Vec<i32> = sqlx::query_scalar("SELECT octet_length(data) FROM upload_chunks ORDER BY n")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(chunks, [262_144, 262_144, 175_712], "256 KiB chunks");
    assert_eq!(send(&app, &ann, conversation, attachment("file", &stored["id"])).await.status(), 201);
    let list: Value = fetch(&app, &bob, "/api/v1/conversations").await.json().await.unwrap();
    let last = &list["items"][0]["last_message"];
    assert_eq!((last["kind"].as_str(), last["name"].as_str()), (Some("file"), Some("data.bin")), "{list}");
    let got = fetch(&app, &bob, &format!("/api/v1/uploads/{}", stored["id"].as_str().unwrap())).await;
    assert_eq!(header(&got, "content-length"), "700000");
    assert!(header(&got, "content-disposition").starts_with("attachment"));
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

/// A request written by hand: `Transfer-Encoding: chunked` when no length is declared.
async fn raw_upload(app: &TestApp, user: &TestUser, declared: Option<usize>, body: &[u8]) -> (u16, String) {
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let length = match declared {
        Some(length) => format!("Content-Length: {length}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_owned(),
    };
    let head = format!(
        "POST /api/v1/uploads?name=big.bin HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n{length}Connection: close\r\n\r\n",
        user.access_token
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before the whole body is written.
    let written = if declared.is_some() {
        socket.write_all(body).await
    } else {
        let mut result = Ok(());
        for piece in body.chunks(16 * 1024) {
            result = socket.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await;
            if result.is_ok() {
                result = socket.write_all(piece).await;
            }
            if result.is_ok() {
                result = socket.write_all(b"\r\n").await;
            }
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = socket.write_all(b"0\r\n\r\n").await;
        }
        result
    };
    let _ = written;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn the_size_limit_holds_with_and_without_a_declared_length_and_the_quota_counts() {
    let app = spawn_app_with(|config| {
        config.uploads.upload_max_bytes = 100_000;
        config.uploads.upload_quota_bytes = 250_000;
    })
    .await;
    let ann = app.register("limit_ann").await;
    let over = vec![7u8; 100_001];

    let declared = upload(&app, &ann, "big.bin", over.clone()).await;
    assert_eq!(error_code(declared, 413).await, "payload_too_large");
    let (status, answer) = raw_upload(&app, &ann, None, &over).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // Refused from the declared length alone, by hand as well.
    let (status, answer) = raw_upload(&app, &ann, Some(over.len()), &over).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(uploads_left_after_refusals(&app).await, (0, 0), "nothing kept");

    let (status, answer) = raw_upload(&app, &ann, None, &over[..100_000]).await;
    assert_eq!(status, 201, "exactly the limit, chunked: {answer}");
    uploaded(&app, &ann, "second.bin", vec![1u8; 100_000]).await;
    let third = upload(&app, &ann, "third.bin", vec![2u8; 60_000]).await;
    assert_eq!(error_code(third, 413).await, "upload_quota_exceeded");
    assert_eq!(count(&app, "uploads").await, 2);
}

/// A client that goes away halfway leaves nothing behind, and its quota is free again.
#[tokio::test]
async fn an_upload_broken_off_midway_is_removed_at_once() {
    let app = spawn_app().await;
    let ann = app.register("gone_ann").await;
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/uploads?name=half.bin HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Length: 900000\r\n\r\n",
        ann.access_token
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&vec![5u8; 400_000]).await.unwrap();
    // Wait until the first chunk is stored, then vanish.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(&app, "upload_chunks").await == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(&app, "upload_chunks").await, 1, "the first chunk is stored as it arrives");
    drop(socket);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(&app, "uploads").await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!((count(&app, "uploads").await, count(&app, "upload_chunks").await), (0, 0));
}

/// Parallel uploads cannot each take the same room left in the quota.
#[tokio::test]
async fn parallel_uploads_stay_within_the_quota() {
    let app = spawn_app_with(|config| config.uploads.upload_quota_bytes = 250_000).await;
    let ann = app.register("race_ann").await;
    let names: Vec<String> = (0..6).map(|i| format!("part{i}.bin")).collect();
    let attempts = names.iter().enumerate().map(|(i, name)| upload(&app, &ann, name, vec![i as u8; 100_000]));
    let statuses: Vec<u16> =
        futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 413).count(), 4, "{statuses:?}");
    let stored: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(size), 0)::bigint FROM uploads").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored, 200_000);
}

#[tokio::test]
async fn bad_uploads_and_bad_references_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (ann, _bob, conversation) = pair(&app, "badup").await;
    let no_name =
        app.client.post(app.url("/api/v1/uploads")).bearer_auth(&ann.access_token).body("x").send().await.unwrap();
    assert_eq!(error_code(no_name, 400).await, "invalid_query");
    assert_eq!(error_code(upload(&app, &ann, "dir/", b"x".to_vec()).await, 400).await, "validation_failed");
    assert_eq!(error_code(upload(&app, &ann, "a\u{7}b.txt", b"x".to_vec()).await, 400).await, "validation_failed");
    assert_eq!(error_code(upload(&app, &ann, "empty.txt", Vec::new()).await, 400).await, "validation_failed");
    let anonymous = app.client.post(app.url("/api/v1/uploads?name=a.txt")).body("x").send().await.unwrap();
    assert_eq!(error_code(anonymous, 401).await, "missing_token");
    assert_eq!(error_code(fetch(&app, &ann, "/api/v1/uploads/not-a-uuid").await, 400).await, "invalid_path");
    assert_eq!(uploads_left_after_refusals(&app).await, (0, 0), "refused uploads leave nothing behind");

    for content in [
        json!({ "upload_id": Uuid::new_v4() }),
        json!({ "upload_id": "nope" }),
        json!({ "url": "https://cdn.example/a.png", "mime": "image/png", "size": 1, "width": 1, "height": 1 }),
    ] {
        let body = json!({ "client_msg_id": Uuid::new_v4(), "kind": "file", "content": content });
        let refused = send(&app, &ann, conversation, body).await;
        assert_eq!(error_code(refused, 400).await, "validation_failed", "{content}");
    }
    assert_eq!(count(&app, "messages").await, 0);
}

#[tokio::test]
async fn a_member_who_cannot_see_the_message_cannot_fetch_its_file() {
    let app = spawn_app().await;
    let users = app.seed_users("seen", 3).await;
    let (owner, early, late) = (&users[0], &users[1], &users[2]);
    let group: Value = call(
        &app,
        owner,
        Method::POST,
        "/api/v1/groups",
        Some(json!({ "name": "Pics", "join_policy": "open", "history_visibility": "since_join" })),
    )
    .await
    .json()
    .await
    .unwrap();
    let group_id = group["id"].as_i64().unwrap();
    let conversation: Value =
        app.get_as(&owner.access_token, &format!("/api/v1/groups/{group_id}/conversation")).await.json().await.unwrap();
    let conversation = conversation["conversation_id"].as_i64().unwrap();
    let join = format!("/api/v1/groups/{group_id}/join");
    assert_eq!(call(&app, early, Method::POST, &join, None).await.status(), 200);
    let stored = uploaded(&app, owner, "before.png", png(10, 10)).await;
    assert_eq!(send(&app, owner, conversation, attachment("image", &stored["id"])).await.status(), 201);
    assert_eq!(call(&app, late, Method::POST, &join, None).await.status(), 200);
    let path = format!("/api/v1/uploads/{}", stored["id"].as_str().unwrap());
    assert_eq!(fetch(&app, early, &path).await.status(), 200);
    assert_eq!(error_code(fetch(&app, late, &path).await, 404).await, "upload_not_found", "sent before they joined");
}

#[tokio::test]
async fn uploads_no_message_names_are_swept_and_sent_ones_stay() {
    let app = spawn_app().await;
    let (ann, _bob, conversation) = pair(&app, "orphan").await;
    let sent = uploaded(&app, &ann, "sent.txt", b"kept".to_vec()).await;
    let unsent = uploaded(&app, &ann, "unsent.txt", b"forgotten".to_vec()).await;
    let fresh = uploaded(&app, &ann, "fresh.txt", b"just now".to_vec()).await;
    assert_eq!(send(&app, &ann, conversation, attachment("file", &sent["id"])).await.status(), 201);
    let recalled = uploaded(&app, &ann, "recalled.txt", b"taken back".to_vec()).await;
    assert_eq!(send(&app, &ann, conversation, attachment("file", &recalled["id"])).await.status(), 201);
    let recall =
        call(&app, &ann, Method::DELETE, &format!("/api/v1/conversations/{conversation}/messages/2"), None).await;
    assert_eq!(recall.status(), 204);
    // An upload that broke off three hours ago, never finished; everything but the fresh
    // upload is due for the sweep.
    let broken = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO uploads (id, owner_id, name, mime, created_at, sweep_after)
         VALUES ($1, $2, 'broken', 'x/y', now() - interval '3 hours', now() - interval '1 hour')",
    )
    .bind(broken)
    .bind(ann.id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE uploads SET sweep_after = now() - interval '1 minute' WHERE name <> 'fresh.txt'")
        .execute(&app.pool)
        .await
        .unwrap();

    // A new instance sweeps as it starts.
    let _sweeper = crate::support::spawn_peer(&app).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let left = loop {
        let left: Vec<String> =
            sqlx::query_scalar("SELECT name FROM uploads ORDER BY name").fetch_all(&app.pool).await.unwrap();
        if left.len() <= 2 || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(left, ["fresh.txt", "sent.txt"]);
    let recheck: bool =
        sqlx::query_scalar("SELECT sweep_after > now() + interval '23 hours' FROM uploads WHERE name = 'sent.txt'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(recheck, "a named upload is looked at again a day later, not every minute");
    let _ = (unsent, fresh);
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM upload_chunks").fetch_one(&app.pool).await.unwrap();
    assert_eq!(chunks, 2, "chunks go with their upload");
}
