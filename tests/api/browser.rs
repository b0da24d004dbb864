//! The built-in web client (`web/`, served at `/`), driven in real headless Chromium over
//! WebDriver: two people register, become friends, chat both ways with typing and read
//! receipts, edit, reply and recall, meet a third in a group (with @mentions, muting,
//! removing, handing over and disbanding from the member list), reload, and lose and
//! regain their connection without losing a message. A message's actions show on hover
//! and to the keyboard; on a phone-sized touch screen they open by a tap or a long press,
//! and the panes take turns; desktop notifications are asked for, shown and opened.
//! Images and files are attached, pasted and dropped, shown inline or as a download,
//! and refused uploads say why.
//!
//! Needs `chromium` and `chromedriver` (see `support::webdriver`); without them the test
//! fails with instructions. `GOIM_UPDATE_SCREENSHOT=1` rewrites `docs/screenshot.png`.

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use std::time::Duration;

use crate::support::{
    TestApp, befriend, open_direct, send_text, spawn_app, spawn_app_with,
    webdriver::{ChromeDriver, Session, keys},
};

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_real_browsers() {
    let app = spawn_app().await;
    let driver = ChromeDriver::start().await;
    let alice = driver.session(1200, 760).await;
    let bob = driver.session(1200, 760).await;

    // Registration: the API's error message is shown, then a valid account signs in.
    alice.goto(&app.url("/")).await;
    alice.click("[data-testid=auth-toggle]").await;
    alice.type_into("[data-testid=auth-username]", "al").await;
    alice.type_into("[data-testid=auth-password]", "short").await;
    alice.click("[data-testid=auth-submit]").await;
    let error = alice
        .wait_for(
            "the registration error",
            "const e = document.querySelector('.auth-form .notice.error'); return e && !e.hidden && e.textContent",
            vec![],
        )
        .await;
    assert!(error.as_str().unwrap().contains("username"), "unclear error: {error}");
    register(&alice, &app, "alice", "Alice").await;
    register(&bob, &app, "bob", "Bob").await;

    // Friends: Alice finds Bob and asks; Bob sees the request arrive and accepts; Alice
    // sees Bob online.
    alice.click("[data-testid=nav-friends]").await;
    alice.type_into("[data-testid=user-search]", "bob").await;
    alice.click("[data-testid=user-search-submit]").await;
    alice.click("[data-testid=add-friend-bob]").await;
    bob.wait_for(
        "the friend request badge",
        "return document.querySelector('[data-testid=requests-badge]:not([hidden])')?.textContent === '1'",
        vec![],
    )
    .await;
    bob.click("[data-testid=nav-friends]").await;
    bob.click("[data-testid=accept-alice]").await;
    alice
        .wait_for(
            "Bob online in the friends list",
            "return document.querySelector('[data-testid=person-bob] .presence.online')",
            vec![],
        )
        .await;

    // A direct chat, both ways.
    alice.click("[data-testid=message-bob]").await;
    send(&alice, "Hi Bob! Are we still on for Saturday?").await;
    wait_sent(&alice, "Hi Bob! Are we still on for Saturday?").await;
    let direct = alice
        .execute("return Number(document.querySelector('[data-testid=chat]').dataset.conversationId)", vec![])
        .await;
    let direct = direct.as_i64().expect("the chat names its conversation");
    bob.click("[data-testid=nav-chats]").await;
    let badge = format!("[data-testid=conversation-{direct}] [data-testid=unread]");
    bob.wait_for(
        "an unread badge of 1",
        "return document.querySelector(arguments[0])?.textContent === '1'",
        vec![json!(badge)],
    )
    .await;
    bob.click(&format!("[data-testid=conversation-{direct}]")).await;
    wait_message(&bob, "Hi Bob! Are we still on for Saturday?").await;
    let marked = bob
        .execute(
            "return document.querySelector('[data-testid=unread-marker]')?.nextElementSibling \
               ?.querySelector('[data-testid=message-body]')?.textContent",
            vec![],
        )
        .await;
    assert_eq!(marked, json!("Hi Bob! Are we still on for Saturday?"), "the New messages line above the first unread");
    bob.wait_for("the badge to clear", "return !document.querySelector(arguments[0])", vec![json!(badge)]).await;
    alice
        .wait_for(
            "Alice's read receipt",
            "return document.querySelector('.message.mine [data-testid=receipt]')?.textContent === 'Read'",
            vec![],
        )
        .await;

    // Typing, then Shift+Enter for a new line and Enter to send.
    bob.type_into("[data-testid=composer]", "Yes! Meet at the trailhead at 9?").await;
    alice
        .wait_for(
            "Bob typing",
            "return document.querySelector('[data-testid=typing]').textContent === 'Bob is typing…'",
            vec![],
        )
        .await;
    bob.type_into(
        "[data-testid=composer]",
        &format!("{}{}{}I'll bring coffee ☕{}", keys::SHIFT, keys::ENTER, keys::RELEASE, keys::ENTER),
    )
    .await;
    wait_message(&alice, "Yes! Meet at the trailhead at 9?\nI'll bring coffee ☕").await;
    alice
        .wait_for(
            "the typing line to clear",
            "return document.querySelector('[data-testid=typing]').textContent === ''",
            vec![],
        )
        .await;

    // A message's actions stay out of sight (and out of the pointer's way) until the
    // mouse is over the message, or the keyboard is in its toolbar (Escape leaves it).
    alice.hover("[data-testid=chat-title]").await;
    let first = ".message.mine[data-seq='1']";
    wait_actions(&alice, first, "hidden").await;
    alice.hover(&format!("{first} .bubble")).await;
    wait_actions(&alice, first, "shown").await;
    alice.hover("[data-testid=chat-title]").await;
    wait_actions(&alice, first, "hidden").await;
    alice.execute("document.querySelector('.messages').focus()", vec![]).await;
    alice.press(keys::TAB).await;
    let focused = alice
        .execute("return document.activeElement.closest('[data-seq]')?.dataset.seq + ' ' + document.activeElement.dataset.action", vec![])
        .await;
    assert_eq!(focused, json!("1 reply"), "Tab reaches the first message's actions");
    wait_actions(&alice, first, "shown").await;
    alice.press(keys::ESCAPE).await;
    wait_actions(&alice, first, "hidden").await;
    assert_eq!(
        alice.execute("return document.activeElement.classList.contains('messages')", vec![]).await,
        json!(true),
        "Escape hands the focus back to the message list"
    );

    // Edit, reply.
    act(&alice, first, "edit").await;
    clear(&alice, "[data-testid=composer]").await;
    send(&alice, "Hi Bob! Are we still on for the hike on Saturday?").await;
    wait_message(&bob, "Hi Bob! Are we still on for the hike on Saturday?").await;
    bob.wait_for("the edited mark", "return document.querySelector(\"[data-seq='1'] [data-testid=edited]\")", vec![])
        .await;
    act(&alice, "[data-seq='2']", "reply").await;
    send(&alice, "Perfect — see you there!").await;
    bob.wait_for(
        "the reply quote",
        "return [...document.querySelectorAll('[data-testid=reply-quote]')].some(q => q.textContent.includes('trailhead'))",
        vec![],
    )
    .await;

    // A photo: Bob attaches one with a caption; Alice sees it inline and reacts to it.
    let pictures = tempfile::tempdir().expect("a temporary directory");
    let photo = pictures.path().join("trailhead.png");
    std::fs::write(&photo, scene_png(480, 270)).expect("write the photo");
    let caption = "The view from the top last time";
    bob.type_into("[data-testid=composer]", caption).await;
    bob.choose_file("[data-testid=attach-input]", &photo).await;
    let shown = alice.wait_for("Bob's photo", IMAGE_SHOWN, vec![json!(caption)]).await;
    assert_eq!(shown["natural"], json!(320), "the thumbnail (480 × 270 → 320 × 180): {shown}");
    let photo_seq = shown["seq"].as_str().expect("a stored message").to_owned();
    let photo_message = format!(".message.theirs[data-seq='{photo_seq}']");
    act(&alice, &photo_message, "react").await;
    alice.click(&format!("{photo_message} [data-testid=\"pick-❤️\"]")).await;
    bob.wait_for(
        "Alice's reaction on the photo",
        "return document.querySelector(arguments[0])?.textContent === '❤️ 1'",
        vec![json!(format!("[data-seq='{photo_seq}'] [data-testid=\"reaction-❤️\"]"))],
    )
    .await;
    alice.hover("[data-testid=chat-title]").await;
    wait_actions(&alice, &photo_message, "hidden").await;
    send(&alice, "Wow, that light!").await;
    wait_message(&bob, "Wow, that light!").await;

    // The picture for the README: a real conversation with a photo and a reaction, with
    // Bob typing.
    bob.type_into("[data-testid=composer]", "Can't wait").await;
    alice
        .wait_for(
            "Bob typing again",
            "return document.querySelector('[data-testid=typing]').textContent !== ''",
            vec![],
        )
        .await;
    alice
        .wait_for(
            "the read receipt on the reply",
            "return document.querySelector('.message.last-own [data-testid=receipt]')?.textContent === 'Read'",
            vec![],
        )
        .await;
    alice.hover("[data-testid=chat-title]").await;
    alice
        .wait_for(
            "the reaction on the photo, with the photo in full view",
            "const m = document.querySelector(arguments[0]); const box = m?.getBoundingClientRect(); \
             const list = document.querySelector('.messages').getBoundingClientRect(); \
             return m?.querySelector('[data-testid=\"reaction-❤️\"]') && box.top >= list.top + 8 && box.bottom <= list.bottom",
            vec![json!(photo_message)],
        )
        .await;
    let png = alice.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG");
    if std::env::var("GOIM_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join("screenshot.png");
        std::fs::write(&path, &png).expect("write docs/screenshot.png");
    }
    bob.type_into("[data-testid=composer]", &format!("!{}", keys::ENTER)).await;
    wait_message(&alice, "Can't wait!").await;

    // Markup in a message is text, never markup; then Alice recalls it.
    let attack = "<img src=x onerror=alert(1)>";
    send(&alice, attack).await;
    wait_message(&bob, attack).await;
    let rendered = bob
        .execute(
            "const body = [...document.querySelectorAll('[data-testid=message-body]')].find(b => b.textContent === arguments[0]);
             return { children: body.children.length, images: document.querySelectorAll('[data-testid=messages] img:not([data-testid=message-image])').length };",
            vec![json!(attack)],
        )
        .await;
    assert_eq!(rendered, json!({ "children": 0, "images": 0 }), "a message became markup");
    let seq = alice
        .execute(
            "return [...document.querySelectorAll('[data-testid=message]')].find(m => m.querySelector('[data-testid=message-body]').textContent === arguments[0]).dataset.seq",
            vec![json!(attack)],
        )
        .await;
    act(&alice, &format!("[data-seq='{}']", seq.as_str().unwrap()), "recall").await;
    bob.wait_for("the recalled tombstone", "return document.querySelector(`[data-seq='${arguments[0]}'] [data-testid=message-body]`)?.textContent === 'Message recalled'", vec![seq.clone()]).await;
    assert_eq!(message_count(&bob, attack).await, 0);

    // A group with a third member (Carol, over REST). Alice creates it and announces;
    // Bob joins by its number and sees the announcement and the roles.
    let carol = app.register("carol").await;
    alice.click("[data-testid=nav-groups]").await;
    alice.type_into("[data-testid=group-name]", "Weekend hikers").await;
    alice.click("[data-testid=group-create]").await;
    let group = alice
        .wait_for("the new group's page", "return location.hash.match(/^#\\/groups\\/(\\d+)$/)?.[1]", vec![])
        .await;
    let group: i64 = group.as_str().unwrap().parse().unwrap();
    let joined =
        app.send_as(Method::POST, &carol.access_token, &format!("/api/v1/groups/{group}/join"), Some(&json!({}))).await;
    assert_eq!(joined.status(), 200, "carol joins the open group");
    alice
        .wait_for(
            "Carol among the members",
            "return document.querySelector('[data-testid=member-carol] .role')?.textContent === 'Member'",
            vec![],
        )
        .await;
    // The owner invites a friend from the group page; the friend sees the invitation.
    // Chosen and sent in one step: the list is re-rendered as members change.
    alice
        .wait_for(
            "Bob offered as a friend to invite",
            "const select = document.querySelector('[data-testid=invite-select]'); \
             const bob = [...(select?.options ?? [])].find((o) => o.textContent === 'Bob'); \
             if (bob) { select.value = bob.value; document.querySelector('[data-testid=invite-submit]').click(); } \
             return Boolean(bob)",
            vec![],
        )
        .await;
    alice
        .wait_for(
            "the invitation sent",
            "return [...document.querySelectorAll('.notice.ok')].some((n) => n.textContent === 'Invitation sent.')",
            vec![],
        )
        .await;
    bob.click("[data-testid=nav-groups]").await;
    bob.wait_for(
        "the invitation",
        "return document.querySelector('[data-testid=group-invitations]')?.textContent.includes('Weekend hikers')",
        vec![],
    )
    .await;
    let announcement = "Bring water & <b>snacks</b>";
    alice.type_into("[data-testid=announcement-input]", announcement).await;
    alice.click("[data-testid=announcement-save]").await;
    bob.click("[data-testid=nav-groups]").await;
    bob.type_into("[data-testid=join-group-id]", &group.to_string()).await;
    bob.click("[data-testid=join-group]").await;
    bob.wait_for(
        "the announcement",
        "return document.querySelector('[data-testid=announcement]')?.textContent === arguments[0]",
        vec![json!(announcement)],
    )
    .await;
    bob.wait_for(
        "Alice as the owner",
        "return document.querySelector('[data-testid=member-alice] .role')?.textContent === 'Owner'",
        vec![],
    )
    .await;

    // Group chat: Alice and Bob in the browser, Carol over REST.
    alice.click("[data-testid=open-group-chat]").await;
    send(&alice, "Hi hikers!").await;
    bob.click("[data-testid=open-group-chat]").await;
    wait_message(&bob, "Hi hikers!").await;
    let group_chat =
        bob.execute("return Number(document.querySelector('[data-testid=chat]').dataset.conversationId)", vec![]).await;
    send_text(&app, &carol, group_chat.as_i64().unwrap(), "Carol here").await;
    wait_message(&alice, "Carol here").await;
    wait_message(&bob, "Carol here").await;
    alice
        .wait_for(
            "Carol's name on her message",
            "return [...document.querySelectorAll('.message.theirs .author')].some(a => a.textContent === 'carol')",
            vec![],
        )
        .await;
    alice
        .wait_for(
            "a group read receipt",
            "return document.querySelector('.message.mine [data-testid=receipt]')?.textContent === 'Read by 1'",
            vec![],
        )
        .await;

    // Mentions: Bob opens the @ list (Escape closes it), picks Alice with the keyboard
    // and Carol with the mouse; the message carries both ids. Alice, in another chat,
    // sees an "@" badge on the group; there the message is highlighted for her.
    alice.click(&format!("[data-testid=conversation-{direct}]")).await;
    wait_message(&alice, "Can't wait!").await;
    let group_chat = group_chat.as_i64().unwrap();
    let mention_options = "return [...document.querySelectorAll('[data-testid=mention-list]:not([hidden]) [role=option]')] \
                           .map((o) => o.dataset.testid).sort().join(' ')";
    bob.type_into("[data-testid=composer]", "@").await;
    bob.wait_for(
        "Alice and Carol offered to mention",
        &format!("{mention_options} === 'mention-option-alice mention-option-carol'"),
        vec![],
    )
    .await;
    let active = "return document.querySelector('[data-testid=mention-list] [aria-selected=true]')?.dataset.testid";
    let first = bob.execute(active, vec![]).await;
    bob.type_into("[data-testid=composer]", keys::ARROW_DOWN).await;
    let second = bob.execute(active, vec![]).await;
    assert!(first != second && second.is_string(), "ArrowDown moves the choice: {first} → {second}");
    bob.type_into("[data-testid=composer]", keys::ARROW_UP).await;
    assert_eq!(bob.execute(active, vec![]).await, first, "ArrowUp moves it back");
    bob.type_into("[data-testid=composer]", keys::ESCAPE).await;
    bob.wait_for("the mention list closed", &format!("{mention_options} === ''"), vec![]).await;
    bob.type_into("[data-testid=composer]", "al").await;
    bob.wait_for("only Alice offered", &format!("{mention_options} === 'mention-option-alice'"), vec![]).await;
    bob.type_into("[data-testid=composer]", keys::ENTER).await;
    bob.type_into("[data-testid=composer]", "and @ca").await;
    bob.wait_for("only Carol offered", &format!("{mention_options} === 'mention-option-carol'"), vec![]).await;
    bob.click("[data-testid=mention-option-carol]").await;
    let composed = bob.execute("return document.querySelector('[data-testid=composer]').value", vec![]).await;
    assert_eq!(composed, json!("@Alice and @carol "), "the picks are written into the message");
    send(&bob, "lunch at the top?").await;
    let mentioned = "@Alice and @carol lunch at the top?";
    wait_sent(&bob, mentioned).await;
    let mentions: Vec<i64> = sqlx::query_scalar("SELECT unnest(mentions) FROM messages WHERE body = $1 ORDER BY 1")
        .bind(mentioned)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(mentions, [alice_id(&app).await, carol.id], "the message names whom it mentions");
    let mention_badge = format!("[data-testid=conversation-{group_chat}] [data-testid=mention-badge]");
    alice
        .wait_for(
            "the @ badge beside the unread count",
            "const item = document.querySelector(arguments[0]); \
             return item?.textContent === '@' && item.nextElementSibling?.dataset.testid === 'unread'",
            vec![json!(mention_badge)],
        )
        .await;
    assert_eq!(
        bob.execute("return document.querySelectorAll('[data-testid=mention-badge]').length", vec![]).await,
        json!(0),
        "the sender has nothing to be told"
    );
    alice.click(&format!("[data-testid=conversation-{group_chat}]")).await;
    alice
        .wait_for(
            "the mention highlighted for Alice",
            "const li = document.querySelector('.message.mentioned[data-mentioned=true]'); \
             return li?.querySelector('[data-testid=message-body]').textContent === arguments[0] \
               && li.querySelector('[data-testid=mention].me')?.textContent === '@Alice' \
               && li.querySelector('.sender-picture .avatar') !== null",
            vec![json!(mentioned)],
        )
        .await;
    alice
        .wait_for("the @ badge gone", "return !document.querySelector(arguments[0])", vec![json!(mention_badge)])
        .await;
    assert_eq!(
        alice.execute("return document.querySelectorAll('.message.mentioned').length", vec![]).await,
        json!(1),
        "only the message that names Alice is highlighted"
    );

    // A reload keeps the session (this tab's refresh token) and shows the history, with
    // a separator above each day's first message (the first one is made 3 days old).
    sqlx::query("UPDATE messages SET created_at = now() - interval '3 days' WHERE conversation_id = $1 AND seq = 1")
        .bind(group_chat)
        .execute(&app.pool)
        .await
        .unwrap();
    alice.execute("location.reload()", vec![]).await;
    wait_online(&alice, "Alice after the reload").await;
    wait_message(&alice, "Hi hikers!").await;
    wait_message(&alice, "Carol here").await;
    let days = alice
        .wait_for(
            "a day separator above each day",
            "const days = [...document.querySelectorAll('[data-testid=day-separator]')].map((d) => d.textContent); \
             return days.length === 2 && days",
            vec![],
        )
        .await;
    assert_eq!(days[1], "Today");
    assert_ne!(days[0], "Today", "{days}");

    // Connection lost: a message sent meanwhile arrives once after the reconnect.
    alice.click(&format!("[data-testid=conversation-{direct}]")).await;
    wait_message(&alice, "Can't wait!").await;
    // A reaction from the message's picker, shown with its count, taken back by a click.
    let seq = alice
        .execute(
            "return [...document.querySelectorAll('[data-testid=message]')] \
               .find((li) => li.querySelector('[data-testid=message-body]')?.textContent === \"Can't wait!\").dataset.seq",
            vec![],
        )
        .await;
    act(&alice, &format!("[data-seq='{}']", seq.as_str().unwrap()), "react").await;
    alice.click("[data-testid=\"pick-👍\"]").await;
    alice
        .wait_for(
            "the reaction under the message",
            "const chip = document.querySelector('[data-testid=\"reaction-👍\"]'); \
             return chip?.textContent === '👍 1' && chip.getAttribute('aria-pressed') === 'true'",
            vec![],
        )
        .await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM message_reactions WHERE conversation_id = $1 AND emoji = '👍'")
            .bind(direct)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "the reaction is stored");
    alice.click("[data-testid=\"reaction-👍\"]").await;
    alice
        .wait_for(
            "the reaction taken back",
            "return document.querySelector('[data-testid=\"reaction-👍\"]') === null",
            vec![],
        )
        .await;
    alice
        .wait_for(
            "Bob shown online",
            "return document.querySelector('[data-testid=chat-subtitle]')?.textContent === 'online'",
            vec![],
        )
        .await;
    alice.execute("window.goim.dropConnection()", vec![]).await;
    alice
        .wait_for(
            "Alice's connection to show offline",
            "return document.querySelector('[data-testid=connection]').dataset.state === 'offline'",
            vec![],
        )
        .await;
    // Cut off, Alice cannot know whether Bob is still online: no stale "online".
    alice
        .wait_for(
            "Bob's presence shown as unknown",
            "return document.querySelector('[data-testid=chat-subtitle]')?.textContent === '@bob'",
            vec![],
        )
        .await;
    bob.click("[data-testid=nav-chats]").await;
    bob.click(&format!("[data-testid=conversation-{direct}]")).await;
    send(&bob, "Did you get the map?").await;
    wait_sent(&bob, "Did you get the map?").await;
    assert_eq!(message_count(&alice, "Did you get the map?").await, 0, "the socket was supposed to be down");
    // Written quickly while cut off, Alice's messages are stored in the order she wrote them.
    for text in ["first while away", "second while away", "third while away"] {
        send(&alice, text).await;
    }
    alice.execute("window.goim.restoreConnection()", vec![]).await;
    wait_online(&alice, "Alice after the reconnect").await;
    wait_message(&alice, "Did you get the map?").await;
    assert_eq!(message_count(&alice, "Did you get the map?").await, 1, "caught-up message shown twice");
    wait_sent(&alice, "third while away").await;
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT body FROM messages WHERE conversation_id = $1 AND body LIKE '%while away' ORDER BY seq",
    )
    .bind(direct)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, ["first while away", "second while away", "third while away"]);

    // A message elsewhere shows in the tab's title; its URL is a link that opens apart.
    send_text(&app, &carol, group_chat, "Route: https://example.com/map?trail=2. Bring boots").await;
    alice.wait_for("the unread count in the title", "return /^\\(\\d+\\) GOIM$/.test(document.title)", vec![]).await;
    alice.click(&format!("[data-testid=conversation-{group_chat}]")).await;
    let link = alice
        .wait_for(
            "the link in Carol's message",
            "const a = [...document.querySelectorAll('[data-testid=message-link]')].pop(); \
             return a && [a.getAttribute('href'), a.getAttribute('rel'), a.getAttribute('target')]",
            vec![],
        )
        .await;
    assert_eq!(link, json!(["https://example.com/map?trail=2", "noopener noreferrer nofollow", "_blank"]));
    alice.wait_for("the title without unread", "return document.title === 'GOIM'", vec![]).await;

    // Message search from the list pane: the result opens its conversation at the message.
    alice.click("[data-testid=nav-chats]").await;
    alice.type_into("[data-testid=message-search]", &format!("get the map{}", keys::ENTER)).await;
    alice
        .wait_for(
            "the search result",
            "return document.querySelectorAll('[data-testid=search-result]').length === 1",
            vec![],
        )
        .await;
    alice.click("[data-testid=search-result]").await;
    alice
        .wait_for(
            "the found message, focused",
            "return document.querySelector('.message.focused [data-testid=message-body]')?.textContent === arguments[0] \
               && location.hash.startsWith(`#/chats/${arguments[1]}/m/`)",
            vec![json!("Did you get the map?"), json!(direct)],
        )
        .await;

    // Muting the conversation from its header is stored for Alice.
    alice.click("[data-testid=mute-toggle]").await;
    alice
        .wait_for(
            "the Unmute button",
            "return document.querySelector('[data-testid=mute-toggle]')?.textContent === 'Unmute'",
            vec![],
        )
        .await;
    let login = |password: &'static str| {
        let body = json!({ "username": "alice", "password": password });
        app.client.post(app.url("/api/v1/auth/login")).json(&body).send()
    };
    let other: Value = login(PASSWORD).await.unwrap().json().await.unwrap();
    let other_token = other["access_token"].as_str().unwrap().to_owned();
    let listed: Value = app.get_as(&other_token, "/api/v1/conversations").await.json().await.unwrap();
    let muted = listed["items"].as_array().unwrap().iter().find(|c| c["id"] == json!(direct)).unwrap()["muted"].clone();
    assert_eq!(muted, json!(true));

    // Blocking from a search result, and back: meanwhile Carol cannot reach Alice.
    alice.click("[data-testid=nav-friends]").await;
    alice.type_into("[data-testid=user-search]", "carol").await;
    alice.click("[data-testid=user-search-submit]").await;
    alice.execute("window.confirm = () => true", vec![]).await;
    alice.click("[data-testid=block-carol]").await;
    alice
        .wait_for(
            "Carol in the blocked list",
            "return Boolean(document.querySelector('[data-testid=unblock-carol]'))",
            vec![],
        )
        .await;
    let asked = app
        .send_as(
            Method::POST,
            &carol.access_token,
            "/api/v1/friend-requests",
            Some(&json!({ "to_user_id": alice_id(&app).await })),
        )
        .await;
    assert_eq!(asked.status(), 403, "a blocked user cannot ask");
    alice.click("[data-testid=unblock-carol]").await;
    alice
        .wait_for(
            "the blocked list empty",
            "return document.querySelector('[data-testid=blocked]')?.textContent === 'Nobody.'",
            vec![],
        )
        .await;

    // Alice's other device (the sign-in over REST above) is listed on her profile and
    // signed out from there; then she changes her password.
    alice.click("[data-testid=nav-profile]").await;
    alice
        .wait_for("the other device", "return document.querySelectorAll('[data-testid=device]').length === 1", vec![])
        .await;
    alice.click("[data-testid=device-sign-out]").await;
    alice
        .wait_for("no other device", "return document.querySelectorAll('[data-testid=device]').length === 0", vec![])
        .await;
    assert_eq!(app.get_as(&other_token, "/api/v1/me").await.status(), 401, "the other device is signed out");
    alice.type_into("[data-testid=password-current]", PASSWORD).await;
    alice.type_into("[data-testid=password-new]", "a brand new passphrase").await;
    alice.click("[data-testid=password-save]").await;
    alice
        .wait_for(
            "the password changed",
            "return document.querySelector('.notice.ok')?.textContent.startsWith('Password changed')",
            vec![],
        )
        .await;
    assert_eq!(login("a brand new passphrase").await.unwrap().status(), 200, "the new password signs in");
    assert_eq!(login(PASSWORD).await.unwrap().status(), 401, "the old one does not");

    // Group management from the member list. Alice (owner) mutes Bob for an hour: Bob's
    // open group chat closes its composer, and opens it again when she unmutes him.
    bob.click("[data-testid=nav-chats]").await;
    bob.click(&format!("[data-testid=conversation-{group_chat}]")).await;
    wait_message(&bob, mentioned).await;
    // Reading further up while Carol writes: a button offers the way down.
    for n in 1..=30 {
        send_text(&app, &carol, group_chat, &format!("trail note {n}")).await;
    }
    wait_message(&bob, "trail note 30").await;
    bob.execute("document.querySelector('.messages').scrollTop = 0", vec![]).await;
    send_text(&app, &carol, group_chat, "Summit!").await;
    wait_message(&bob, "Summit!").await;
    bob.wait_for(
        "the jump-to-latest button",
        "const b = document.querySelector('[data-testid=jump-latest]'); return !b.hidden && b.textContent === '1 new message ↓'",
        vec![],
    )
    .await;
    bob.click("[data-testid=jump-latest]").await;
    bob.wait_for(
        "the newest message in view, the button gone",
        "const s = document.querySelector('.messages'); \
         return s.scrollHeight - s.scrollTop - s.clientHeight < 40 && document.querySelector('[data-testid=jump-latest]').hidden",
        vec![],
    )
    .await;
    bob.wait_for(
        "the member count in the chat header",
        "return document.querySelector('[data-testid=chat-subtitle]')?.textContent === '3 members'",
        vec![],
    )
    .await;
    alice.execute(&format!("location.hash = '#/groups/{group}'"), vec![]).await;
    alice
        .wait_for(
            "the member count",
            "return document.querySelector('[data-testid=member-count]')?.textContent === 'Members (3)'",
            vec![],
        )
        .await;
    alice.click("[data-testid=mute-bob]").await;
    let choices = alice
        .execute(
            "return [...document.querySelectorAll('[data-testid=mute-duration] option')].map((o) => o.textContent)",
            vec![],
        )
        .await;
    assert_eq!(choices, json!(["1 hour", "8 hours", "1 day", "1 week"]));
    alice.click("[data-testid=mute-submit]").await;
    alice
        .wait_for(
            "Bob shown muted",
            "return document.querySelector('[data-testid=member-bob][data-muted=true] [data-testid=muted-until]') !== null \
               && document.querySelector('[data-testid=unmute-bob]') !== null",
            vec![],
        )
        .await;
    let muted_for: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM muted_until - now())::float8 FROM group_members WHERE group_id = $1 AND user_id = (SELECT id FROM users WHERE username = 'bob')",
    )
    .bind(group)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!((3500.0..=3600.0).contains(&muted_for), "muted for an hour, not {muted_for} s");
    bob.wait_for(
        "Bob's composer closed while muted",
        "const lock = document.querySelector('[data-testid=composer-locked]'); \
         return !lock.hidden && lock.textContent.startsWith('An admin muted you until') \
           && document.querySelector('[data-testid=composer]').disabled",
        vec![],
    )
    .await;
    alice.click("[data-testid=unmute-bob]").await;
    bob.wait_for(
        "Bob's composer open again",
        "return document.querySelector('[data-testid=composer-locked]').hidden \
           && !document.querySelector('[data-testid=composer]').disabled",
        vec![],
    )
    .await;

    // Alice removes Carol (after a confirmation) and hands the group to Bob, who sees it
    // live; Bob disbands it, and Alice's page and chat say so.
    alice.execute("window.confirm = () => true", vec![]).await;
    alice.click("[data-testid=kick-carol]").await;
    alice
        .wait_for(
            "Carol gone from the members",
            "return !document.querySelector('[data-testid=member-carol]') \
               && document.querySelector('[data-testid=member-count]').textContent === 'Members (2)'",
            vec![],
        )
        .await;
    let seen: Value = app.get_as(&carol.access_token, &format!("/api/v1/groups/{group}")).await.json().await.unwrap();
    assert_eq!(seen["my_role"], Value::Null, "Carol is no longer a member");
    bob.wait_for(
        "the header's member count following",
        "return document.querySelector('[data-testid=chat-subtitle]')?.textContent === '2 members'",
        vec![],
    )
    .await;
    alice.click("[data-testid=transfer-bob]").await;
    alice
        .wait_for(
            "Bob the owner, Alice an admin",
            "return document.querySelector('[data-testid=member-bob] .role')?.textContent === 'Owner' \
               && document.querySelector('[data-testid=member-alice] .role')?.textContent === 'Admin' \
               && document.querySelector('[data-testid=disband-group]').hidden",
            vec![],
        )
        .await;
    bob.click(".chat-head a[href^='#/groups/']").await;
    bob.wait_for(
        "Bob's page as the owner",
        "return document.querySelector('[data-testid=group-facts]')?.textContent.includes('you are Owner') \
           && !document.querySelector('[data-testid=disband-group]').hidden",
        vec![],
    )
    .await;
    bob.execute("window.confirm = () => true", vec![]).await;
    bob.click("[data-testid=disband-group]").await;
    alice
        .wait_for(
            "the group shown disbanded to Alice",
            "return document.querySelector('[data-testid=group-facts]')?.textContent.includes('disbanded')",
            vec![],
        )
        .await;
    let disbanded: i64 = sqlx::query_scalar("SELECT count(*) FROM groups WHERE id = $1 AND disbanded_at IS NOT NULL")
        .bind(group)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(disbanded, 1);
    alice.click("[data-testid=open-group-chat]").await;
    alice
        .wait_for(
            "the composer closed in the disbanded group",
            "const lock = document.querySelector('[data-testid=composer-locked]'); \
             return !lock.hidden && lock.textContent === 'This group was disbanded.'",
            vec![],
        )
        .await;

    alice.close().await;
    bob.close().await;
}

/// On a phone (390×844 CSS pixels, a touch screen): one pane at a time, from the list to
/// a conversation and back; the composer in view; nothing wider than the screen; a
/// message's actions opened by a tap or a long press and closed by a tap elsewhere; a
/// shared link shows its address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_sized_client_works_by_touch() {
    let app = spawn_app().await;
    let dana = app.register("dana").await;
    let erin = app.register("erin").await;
    befriend(&app, &dana, &erin).await;
    let direct = open_direct(&app, &erin, &dana).await;
    send_text(&app, &erin, direct, "Morning! Tea at 10?").await;
    send_text(&app, &dana, direct, "Sounds good").await;
    let link = json!({
        "client_msg_id": uuid::Uuid::new_v4(),
        "kind": "link",
        "body": "the menu",
        "content": { "url": "https://example.com/tea-house/menu", "title": "The Tea House" },
    });
    let sent = app
        .send_as(Method::POST, &erin.access_token, &format!("/api/v1/conversations/{direct}/messages"), Some(&link))
        .await;
    assert_eq!(sent.status(), 201, "the link message is stored");

    let driver = ChromeDriver::start().await;
    let phone = driver.phone_session(390, 844).await;
    sign_in(&phone, &app, "dana").await;
    let size = phone.execute("return [innerWidth, innerHeight, matchMedia('(hover: none)').matches]", vec![]).await;
    assert_eq!(size, json!([390, 844, true]), "a phone-sized touch screen");
    let fonts = phone.execute("return getComputedStyle(document.querySelector('.app')).fontFamily", vec![]).await;
    for emoji in ["Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji"] {
        assert!(fonts.as_str().unwrap().contains(emoji), "no {emoji} in the font stack: {fonts}");
    }
    let fits = "return document.documentElement.scrollWidth <= innerWidth \
                && document.body.scrollWidth <= innerWidth";
    let shown = "const e = document.querySelector(arguments[0]); return Boolean(e && e.offsetParent !== null)";

    // The list alone fills the screen.
    let item = format!("[data-testid=conversation-{direct}]");
    phone.wait_for("the conversation in the list", shown, vec![json!(item)]).await;
    assert_eq!(phone.execute(shown, vec![json!("main.main")]).await, json!(false), "the list and a page side by side");
    phone.wait_for("the list to fit the width", fits, vec![]).await;

    // A tap opens the conversation in place of the list, with the composer in view.
    phone.click(&item).await;
    wait_message(&phone, "Morning! Tea at 10?").await;
    assert_eq!(phone.execute(shown, vec![json!("aside.side")]).await, json!(false), "the list stays beside the chat");
    let composer = phone
        .execute(
            "const input = document.querySelector('[data-testid=composer]').getBoundingClientRect(); \
             const send = document.querySelector('[data-testid=send]').getBoundingClientRect(); \
             return input.width > 150 && input.top >= 0 && input.bottom <= innerHeight \
               && send.left >= input.right && send.right <= innerWidth && send.bottom <= innerHeight",
            vec![],
        )
        .await;
    assert_eq!(composer, json!(true), "the composer and its button are on the screen");
    phone.wait_for("the chat to fit the width", fits, vec![]).await;

    // A shared link shows where it goes, not only its title.
    let shared = phone
        .wait_for(
            "the link message",
            "const card = document.querySelector('[data-testid=link-card]'); \
             return card && [card.querySelector('.link-title')?.textContent, \
               card.querySelector('[data-testid=link-url]')?.textContent, \
               card.querySelector('[data-testid=link-url]')?.getAttribute('href')]",
            vec![],
        )
        .await;
    assert_eq!(
        shared,
        json!(["The Tea House", "https://example.com/tea-house/menu", "https://example.com/tea-house/menu"])
    );

    // Actions: hidden; a tap on the bubble opens them, a tap elsewhere closes them.
    let theirs = ".message.theirs[data-seq='1']";
    let mine = ".message.mine[data-seq='2']";
    wait_actions(&phone, theirs, "hidden").await;
    wait_actions(&phone, mine, "hidden").await;
    phone.touch(&format!("{theirs} [data-testid=message-body]"), Duration::from_millis(40)).await;
    wait_actions(&phone, theirs, "shown").await;
    phone.wait_for("the open toolbar to fit the width", fits, vec![]).await;
    phone.touch(".chat-head", Duration::from_millis(40)).await;
    wait_actions(&phone, theirs, "hidden").await;
    // A long press opens them too, and they stay open when the finger lifts.
    phone.touch(&format!("{mine} [data-testid=message-body]"), Duration::from_millis(700)).await;
    wait_actions(&phone, mine, "shown").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_actions(&phone, mine, "shown").await;
    assert_eq!(
        phone.execute("return document.querySelectorAll('.message.actions-open').length", vec![]).await,
        json!(1),
        "one message's actions open at a time"
    );
    // React from there: the picker, then the reaction under the message.
    phone.click(&format!("{mine} [data-action=react]")).await;
    phone.wait_for("the reaction picker", shown, vec![json!(format!("{mine} [data-testid=reaction-picker]"))]).await;
    phone.wait_for("the picker to fit the width", fits, vec![]).await;
    phone.click(&format!("{mine} [data-testid=\"pick-🎉\"]")).await;
    phone
        .wait_for(
            "the reaction on Dana's message",
            "return document.querySelector(arguments[0])?.textContent === '🎉 1'",
            vec![json!(format!("{mine} [data-testid=\"reaction-🎉\"]"))],
        )
        .await;
    wait_actions(&phone, mine, "hidden").await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM message_reactions WHERE conversation_id = $1 AND emoji = '🎉'")
            .bind(direct)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "the reaction is stored");

    // Back to the list.
    phone.click(".chat-head .back").await;
    phone.wait_for("the list again", shown, vec![json!(item)]).await;
    assert_eq!(phone.execute(shown, vec![json!("[data-testid=chat]")]).await, json!(false), "the chat is gone");
    phone.wait_for("the list to fit the width again", fits, vec![]).await;

    phone.close().await;
}

/// Desktop notifications: asked for only from the profile page's switch, remembered,
/// shown for a message in a conversation that is not on screen and not muted, never
/// for the open one or one's own; a click on one opens its conversation. Where the
/// browser has no Notification API, or refuses, the switch says so. The browser's
/// `Notification` is replaced by a recorder (headless Chromium shows none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_notifications_for_conversations_not_on_screen() {
    let app = spawn_app().await;
    let fay = app.register("fay").await;
    let gus = app.register("gus").await;
    let hal = app.register("hal").await;
    befriend(&app, &fay, &gus).await;
    befriend(&app, &fay, &hal).await;
    let with_gus = open_direct(&app, &gus, &fay).await;
    let with_hal = open_direct(&app, &hal, &fay).await;
    send_text(&app, &gus, with_gus, "hello from gus").await;
    send_text(&app, &hal, with_hal, "hello from hal").await;

    let driver = ChromeDriver::start().await;
    let browser = driver.session(1200, 760).await;
    sign_in(&browser, &app, "fay").await;
    const RECORDER: &str = "window.asked = 0; window.shown = []; \
        class Recorder { \
          constructor(title, options) { this.title = title; this.body = options.body; window.shown.push(this); } \
          close() { this.closed = true; } \
        } \
        Recorder.permission = arguments[0]; \
        Recorder.requestPermission = async () => { window.asked += 1; Recorder.permission = arguments[1]; return arguments[1]; }; \
        window.Notification = Recorder;";
    let switch =
        "const t = document.querySelector('[data-testid=notifications-toggle]'); return [t.checked, t.disabled]";

    // No API: the switch says so and cannot be turned on.
    browser.execute("window.Notification = undefined", vec![]).await;
    open_profile(&browser, "unsupported").await;
    assert_eq!(browser.execute(switch, vec![]).await, json!([false, true]));

    // Opening the page asks nothing; the click does. Refused: the switch says so.
    browser.execute(RECORDER, vec![json!("default"), json!("denied")]).await;
    open_profile(&browser, "off").await;
    assert_eq!(browser.execute("return window.asked", vec![]).await, json!(0), "asked before any click");
    browser.click("[data-testid=notifications-toggle]").await;
    notifications_are(&browser, "denied").await;
    assert_eq!(browser.execute("return window.asked", vec![]).await, json!(1));
    assert_eq!(browser.execute(switch, vec![]).await, json!([false, true]));
    let blocked =
        browser.execute("return document.querySelector('[data-testid=notifications-state]').textContent", vec![]).await;
    assert!(blocked.as_str().unwrap().starts_with("Blocked"), "{blocked}");

    // Allowed: on, and remembered in this browser.
    browser.execute(RECORDER, vec![json!("default"), json!("granted")]).await;
    open_profile(&browser, "off").await;
    browser.click("[data-testid=notifications-toggle]").await;
    notifications_are(&browser, "on").await;
    assert_eq!(browser.execute("return window.asked", vec![]).await, json!(1));
    assert_eq!(browser.execute(switch, vec![]).await, json!([true, false]));
    assert_eq!(browser.execute("return localStorage.getItem('goim.notifications')", vec![]).await, json!("on"));

    // With Gus's chat open, a message from Hal is notified; one from Gus is not.
    browser.execute(&format!("location.hash = '#/chats/{with_gus}'"), vec![]).await;
    wait_message(&browser, "hello from gus").await;
    send_text(&app, &hal, with_hal, "are you coming?").await;
    let shown = browser
        .wait_for(
            "a notification",
            "return window.shown.length === 1 && [window.shown[0].title, window.shown[0].body]",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(["hal", "are you coming?"]));
    send_text(&app, &gus, with_gus, "in the open chat").await;
    wait_message(&browser, "in the open chat").await;
    // Fay's own message, from another device, is not notified either.
    send_text(&app, &fay, with_hal, "on my way").await;
    let preview = format!("[data-testid=conversation-{with_hal}] .preview");
    browser
        .wait_for(
            "Fay's own message in the list",
            "return document.querySelector(arguments[0])?.textContent.includes('on my way')",
            vec![json!(preview)],
        )
        .await;
    assert_eq!(browser.execute("return window.shown.length", vec![]).await, json!(1), "notified needlessly");

    // A click on the notification opens Hal's chat.
    browser.execute("window.shown[0].onclick()", vec![]).await;
    browser
        .wait_for(
            "Hal's chat opened by the notification",
            "return location.hash === `#/chats/${arguments[0]}` \
               && document.querySelector('[data-testid=chat-title]')?.textContent === 'hal' && window.shown[0].closed",
            vec![json!(with_hal)],
        )
        .await;

    // Muted: Hal's messages are not notified while another chat is open.
    browser.click("[data-testid=mute-toggle]").await;
    browser
        .wait_for(
            "the Unmute button",
            "return document.querySelector('[data-testid=mute-toggle]')?.textContent === 'Unmute'",
            vec![],
        )
        .await;
    browser.execute(&format!("location.hash = '#/chats/{with_gus}'"), vec![]).await;
    wait_message(&browser, "in the open chat").await;
    send_text(&app, &hal, with_hal, "muted news").await;
    browser
        .wait_for(
            "Hal's muted message in the list",
            "return document.querySelector(arguments[0])?.textContent.includes('muted news')",
            vec![json!(preview)],
        )
        .await;
    assert_eq!(browser.execute("return window.shown.length", vec![]).await, json!(1), "a muted chat notified");

    browser.close().await;
}

/// Opens the profile page afresh and waits for its notification switch to say `state`.
async fn open_profile(session: &Session, state: &str) {
    session.execute("location.hash = '#/chats'", vec![]).await;
    session.execute("location.hash = '#/profile'", vec![]).await;
    notifications_are(session, state).await;
}

async fn notifications_are(session: &Session, state: &str) {
    session
        .wait_for(
            &format!("notifications {state}"),
            "return document.querySelector('[data-testid=notifications-state]')?.dataset.state === arguments[0]",
            vec![json!(state)],
        )
        .await;
}

#[tokio::test]
async fn the_web_client_is_served_with_strict_headers() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let policy = header(&page, "content-security-policy");
    let host = app.address.trim_start_matches("http://");
    for directive in [
        "default-src 'self'".to_owned(),
        "script-src 'self'".to_owned(),
        "style-src 'self'".to_owned(),
        "img-src 'self' https: data: blob:".to_owned(),
        format!("connect-src 'self' ws://{host} wss://{host}"),
        "frame-ancestors 'none'".to_owned(),
    ] {
        assert!(policy.contains(&directive), "CSP lacks `{directive}`: {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");

    let html = page.text().await.unwrap();
    let script = html.split("src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script tag");
    assert!(script.starts_with("/assets/") && script.ends_with("/app.js"), "unexpected script path {script}");
    let asset = app.get(script).await;
    assert_eq!(asset.status(), 200);
    assert_eq!(header(&asset, "content-type"), "text/javascript; charset=utf-8");
    assert!(header(&asset, "cache-control").contains("max-age=31536000"));
    assert_eq!(header(&asset, "x-content-type-options"), "nosniff");
    let nested = script.replace("/app.js", "/views/chat.js");
    assert_eq!(app.get(&nested).await.status(), 200);
    let css = app.get(&script.replace("/app.js", "/style.css")).await;
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");

    let missing = app.get("/assets/nope.js").await;
    assert_eq!(crate::support::error_code(missing, 404).await, "not_found");
    assert_eq!(app.get("/assets/../Cargo.toml").await.status(), 404);
}

async fn register(session: &Session, app: &TestApp, username: &str, nickname: &str) {
    session.goto(&app.url("/")).await;
    let registering = session
        .execute("return document.querySelector('[data-testid=auth-submit]')?.textContent === 'Create account'", vec![])
        .await;
    if registering != Value::Bool(true) {
        session.click("[data-testid=auth-toggle]").await;
    }
    session.type_into("[data-testid=auth-username]", username).await;
    session.type_into("[data-testid=auth-password]", PASSWORD).await;
    session.type_into("[data-testid=auth-nickname]", nickname).await;
    session.click("[data-testid=auth-submit]").await;
    wait_online(session, username).await;
}

/// Whether the toolbar of the message matching `arguments[0]` is `arguments[1]`:
/// `shown` (opaque, and what a click on its middle lands on) or `hidden` (transparent,
/// and clicks go through to what lies beneath).
const ACTIONS_ARE: &str = "const actions = document.querySelector(`${arguments[0]} .actions`); \
     const box = actions.getBoundingClientRect(); \
     const hit = actions.contains(document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2)); \
     const opacity = getComputedStyle(actions).opacity; \
     const now = opacity === '1' && hit ? 'shown' : opacity === '0' && !hit ? 'hidden' : 'between'; \
     return now === arguments[1];";

async fn wait_actions(session: &Session, message: &str, state: &str) {
    session
        .wait_for(&format!("the actions of {message} {state}"), ACTIONS_ARE, vec![json!(message), json!(state)])
        .await;
}

/// Runs `action` on the message matching `message` as a mouse user does: over the
/// message, then a click on the action that appears.
async fn act(session: &Session, message: &str, action: &str) {
    session.hover(&format!("{message} .bubble")).await;
    wait_actions(session, message, "shown").await;
    session.click(&format!("{message} [data-action={action}]")).await;
}

/// Signs `username` (registered with [`PASSWORD`]) in from the page's form.
async fn sign_in(session: &Session, app: &TestApp, username: &str) {
    session.goto(&app.url("/")).await;
    let registering = session
        .wait_for(
            "the sign-in form",
            "const submit = document.querySelector('[data-testid=auth-submit]'); \
             return submit && (submit.textContent === 'Create account' ? 'register' : 'login')",
            vec![],
        )
        .await;
    if registering == json!("register") {
        session.click("[data-testid=auth-toggle]").await;
    }
    session.type_into("[data-testid=auth-username]", username).await;
    session.type_into("[data-testid=auth-password]", PASSWORD).await;
    session.click("[data-testid=auth-submit]").await;
    wait_online(session, username).await;
}

async fn wait_online(session: &Session, who: &str) {
    session
        .wait_for(
            &format!("{who}'s connection to be online"),
            "return document.querySelector('[data-testid=connection]')?.dataset.state === 'online'",
            vec![],
        )
        .await;
}

async fn clear(session: &Session, css: &str) {
    session
        .execute(
            "const e = document.querySelector(arguments[0]); e.value = ''; e.dispatchEvent(new Event('input'));",
            vec![json!(css)],
        )
        .await;
}

/// Types `text` into the composer and presses Enter.
async fn send(session: &Session, text: &str) {
    session.type_into("[data-testid=composer]", &format!("{text}{}", keys::ENTER)).await;
}

async fn wait_message(session: &Session, text: &str) {
    session
        .wait_for(
            &format!("the message {text:?}"),
            "return [...document.querySelectorAll('[data-testid=message-body]')].some(b => b.textContent === arguments[0])",
            vec![json!(text)],
        )
        .await;
}

/// Waits until the sender's copy of `text` is acknowledged by the server.
async fn wait_sent(session: &Session, text: &str) {
    session
        .wait_for(
            &format!("the ack of {text:?}"),
            "return [...document.querySelectorAll('[data-testid=message][data-status=sent]')]
                 .some(m => m.querySelector('[data-testid=message-body]').textContent === arguments[0])",
            vec![json!(text)],
        )
        .await;
}

async fn message_count(session: &Session, text: &str) -> i64 {
    session
        .execute(
            "return [...document.querySelectorAll('[data-testid=message-body]')].filter(b => b.textContent === arguments[0]).length",
            vec![json!(text)],
        )
        .await
        .as_i64()
        .unwrap()
}

async fn alice_id(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'").fetch_one(&app.pool).await.unwrap()
}

/// An image message whose caption is `arguments[0]`, stored and with its thumbnail
/// drawn: its seq, whether the picture is a `blob:` URL, the thumbnail's own width, the
/// size reserved for it before it arrived and the width it is shown at.
const IMAGE_SHOWN: &str = "const m = [...document.querySelectorAll('[data-testid=message][data-status=sent]')] \
       .find((m) => m.querySelector('[data-testid=caption]')?.textContent === arguments[0]); \
     const img = m && m.querySelector('img[data-testid=message-image]'); \
     return img && img.complete && img.naturalWidth > 0 && { seq: m.dataset.seq, blob: img.src.startsWith('blob:'), \
       natural: img.naturalWidth, width: img.getAttribute('width'), height: img.getAttribute('height'), \
       shown: Math.round(img.getBoundingClientRect().width) };";

/// The file message named `arguments[0]`, stored: its name, size and download button.
const FILE_SHOWN: &str = "const card = [...document.querySelectorAll('[data-testid=message][data-status=sent] [data-testid=file-card]')] \
       .find((c) => c.querySelector('[data-testid=file-name]')?.textContent === arguments[0]); \
     return card && [card.querySelector('[data-testid=file-name]').textContent, \
       card.querySelector('[data-testid=file-size]').textContent, \
       card.querySelector('[data-testid=download]')?.textContent ?? null];";

/// Images and files, from one browser to another: attached with the paperclip (with the
/// composer's text as the caption), pasted and dropped; shown inline from a thumbnail
/// fetched with the token (sized before it arrives), opened full size in an overlay, a
/// file with its name, size and a download that saves its bytes; the chat list says
/// "📷 Photo" / "📎 name"; a recalled image leaves the usual tombstone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_files_travel_between_browsers() {
    let app = spawn_app().await;
    let ivy = app.register("ivy").await;
    let jon = app.register("jon").await;
    befriend(&app, &ivy, &jon).await;
    let direct = open_direct(&app, &ivy, &jon).await;
    send_text(&app, &jon, direct, "Send me the photos from Sunday?").await;
    let files = tempfile::tempdir().expect("a temporary directory");
    let photo = files.path().join("summit.png");
    std::fs::write(&photo, scene_png(480, 300)).expect("write the photo");
    let notes = files.path().join("packing list.txt");
    let notes_text = "tent\n".repeat(300);
    std::fs::write(&notes, &notes_text).expect("write the notes");

    let driver = ChromeDriver::start().await;
    let ivy_b = driver.session(1200, 760).await;
    let jon_b = driver.session(1200, 760).await;
    sign_in(&ivy_b, &app, "ivy").await;
    sign_in(&jon_b, &app, "jon").await;
    let item = format!("[data-testid=conversation-{direct}]");
    ivy_b.click(&item).await;
    jon_b.click(&item).await;
    wait_message(&ivy_b, "Send me the photos from Sunday?").await;
    wait_message(&jon_b, "Send me the photos from Sunday?").await;

    // The paperclip has a name, and the picker takes an image: the composer's text goes
    // along as its caption and the composer is empty again.
    let label =
        ivy_b.execute("return document.querySelector('[data-testid=attach]').getAttribute('aria-label')", vec![]).await;
    assert_eq!(label, json!("Attach images or files"));
    ivy_b.type_into("[data-testid=composer]", "From the summit").await;
    ivy_b.choose_file("[data-testid=attach-input]", &photo).await;
    let shown = jon_b.wait_for("Ivy's photo at Jon", IMAGE_SHOWN, vec![json!("From the summit")]).await;
    assert_eq!(
        (&shown["blob"], &shown["natural"], &shown["width"], &shown["height"], &shown["shown"]),
        (&json!(true), &json!(320), &json!("320"), &json!("200"), &json!(320)),
        "a 320 × 200 thumbnail from a blob: URL, its room kept before it arrived: {shown}"
    );
    ivy_b.wait_for("Ivy's own photo", IMAGE_SHOWN, vec![json!("From the summit")]).await;
    assert_eq!(ivy_b.execute("return document.querySelector('[data-testid=composer]').value", vec![]).await, json!(""));
    let stored: (String, Option<String>) =
        sqlx::query_as("SELECT kind, body FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 1")
            .bind(direct)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, ("image".to_owned(), Some("From the summit".to_owned())), "sent as an image with its caption");

    // Opened, the whole image (480 pixels wide) over the page; Escape closes it.
    jon_b.click("[data-testid=open-image]").await;
    let full = jon_b
        .wait_for(
            "the full image",
            "const img = document.querySelector('[data-testid=lightbox-image]'); \
             return img && img.complete && img.naturalWidth > 0 && [img.naturalWidth, img.naturalHeight, img.src.startsWith('blob:')]",
            vec![],
        )
        .await;
    assert_eq!(full, json!([480, 300, true]));
    jon_b.press(keys::ESCAPE).await;
    jon_b.wait_for("the overlay closed", "return !document.querySelector('[data-testid=lightbox]')", vec![]).await;
    // The keyboard opens it too (Enter on the focused picture); its button closes it.
    jon_b.execute("document.querySelector('[data-testid=open-image]').focus()", vec![]).await;
    jon_b.press(keys::ENTER).await;
    jon_b
        .wait_for(
            "the overlay again",
            "return document.querySelector('[data-testid=lightbox-image]')?.naturalWidth === 480",
            vec![],
        )
        .await;
    // A modal keeps the focus: Tab does not wander into the chat behind it.
    jon_b.press(keys::TAB).await;
    jon_b.press(keys::TAB).await;
    let focused = jon_b.execute("return document.activeElement?.dataset?.testid ?? null", vec![]).await;
    assert_eq!(focused, json!("lightbox-close"));
    jon_b.click("[data-testid=lightbox-close]").await;
    jon_b
        .wait_for("the overlay closed again", "return !document.querySelector('[data-testid=lightbox]')", vec![])
        .await;

    // A file: its name, its size in words and a Download button that saves its bytes
    // under its name (the browser's download is caught at the link it clicks).
    ivy_b.choose_file("[data-testid=attach-input]", &notes).await;
    let card = jon_b.wait_for("the file at Jon", FILE_SHOWN, vec![json!("packing list.txt")]).await;
    assert_eq!(card, json!(["packing list.txt", "1.5 KB", "Download"]));
    jon_b
        .execute(
            "window.saved = []; window.blobs = new Map(); \
             const create = URL.createObjectURL; \
             URL.createObjectURL = (blob) => { const url = create(blob); window.blobs.set(url, blob); return url; }; \
             const click = HTMLAnchorElement.prototype.click; \
             HTMLAnchorElement.prototype.click = function () { \
               if (this.download) window.saved.push({ name: this.download, href: this.href }); else click.call(this); };",
            vec![],
        )
        .await;
    jon_b.click("[data-testid=download]").await;
    let saved = jon_b.wait_for("the download", "return window.saved[0]", vec![]).await;
    assert_eq!(saved["name"], json!("packing list.txt"));
    assert!(saved["href"].as_str().unwrap().starts_with("blob:"), "{saved}");
    let bytes = jon_b.execute("return window.blobs.get(window.saved[0].href).text()", vec![]).await;
    assert_eq!(bytes, json!(notes_text), "the download holds the file's bytes");
    let preview = format!("{item} .preview");
    let preview_is = "return document.querySelector(arguments[0])?.textContent === arguments[1]";
    jon_b.wait_for("the file in the chat list", preview_is, vec![json!(preview), json!("📎 packing list.txt")]).await;
    ivy_b.wait_for("the file in Ivy's list", preview_is, vec![json!(preview), json!("You: 📎 packing list.txt")]).await;

    // A pasted image (a screenshot on the clipboard) is sent as an image.
    let pasted = base64::engine::general_purpose::STANDARD.encode(scene_png(200, 120));
    let prevented = ivy_b
        .execute(
            "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0)); \
             const data = new DataTransfer(); data.items.add(new File([bytes], 'x.png', { type: 'image/png' })); \
             const paste = new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }); \
             document.querySelector('[data-testid=composer]').dispatchEvent(paste); \
             return paste.defaultPrevented;",
            vec![json!(pasted)],
        )
        .await;
    assert_eq!(prevented, json!(true), "the paste was taken as a file");
    let pasted_shown = jon_b
        .wait_for(
            "the pasted image at Jon",
            "const img = [...document.querySelectorAll('[data-status=sent] img[data-testid=message-image]')].find((i) => i.alt === 'x.png'); \
             return img && img.complete && img.naturalWidth > 0 && [img.naturalWidth, img.src.startsWith('blob:')]",
            vec![],
        )
        .await;
    assert_eq!(pasted_shown, json!([200, true]), "a 200 × 120 image is its own thumbnail");
    jon_b.wait_for("the photo in the chat list", preview_is, vec![json!(preview), json!("📷 Photo")]).await;

    // A file dropped on the chat: a hint while it is over it, then sent.
    let dropped = ivy_b
        .execute(
            "const data = new DataTransfer(); data.items.add(new File(['dropped here'], 'dropped notes.txt', { type: 'text/plain' })); \
             const target = document.querySelector('[data-testid=messages]'); \
             const hint = () => getComputedStyle(document.querySelector('[data-testid=drop-hint]')).display; \
             const before = hint(); \
             target.dispatchEvent(new DragEvent('dragenter', { dataTransfer: data, bubbles: true, cancelable: true })); \
             const over = new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }); \
             target.dispatchEvent(over); \
             const during = hint(); \
             const drop = new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }); \
             target.dispatchEvent(drop); \
             return [before, during, over.defaultPrevented, drop.defaultPrevented, hint()];",
            vec![],
        )
        .await;
    assert_eq!(dropped, json!(["none", "flex", true, true, "none"]), "hint, accepted drop, hint gone");
    let card = jon_b.wait_for("the dropped file at Jon", FILE_SHOWN, vec![json!("dropped notes.txt")]).await;
    assert_eq!(card, json!(["dropped notes.txt", "12 bytes", "Download"]));

    // Recalled, the photo is a tombstone like any message, and its picture is gone.
    let seq = shown["seq"].as_str().unwrap();
    act(&ivy_b, &format!(".message.mine[data-seq='{seq}']"), "recall").await;
    let gone = jon_b
        .wait_for(
            "the recalled photo",
            "const m = document.querySelector(`[data-seq='${arguments[0]}']`); \
             return m?.querySelector('[data-testid=message-body]')?.textContent === 'Message recalled' \
               && m.querySelectorAll('img').length === 0",
            vec![json!(seq)],
        )
        .await;
    assert_eq!(gone, json!(true));

    ivy_b.close().await;
    jon_b.close().await;
}

/// Uploads the server refuses: a file over `GOIM_UPLOAD_MAX_BYTES`, then one over the
/// quota, each stay as a failed bubble saying why (no Retry: the same bytes would fail
/// again; Remove takes it away), and nothing reaches the other person; a file that fits
/// still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_say_why_and_send_nothing() {
    let app = spawn_app_with(|config| {
        config.uploads.upload_max_bytes = 4000;
        config.uploads.upload_quota_bytes = 6000;
    })
    .await;
    let kim = app.register("kim").await;
    let lou = app.register("lou").await;
    befriend(&app, &kim, &lou).await;
    let direct = open_direct(&app, &kim, &lou).await;
    let files = tempfile::tempdir().expect("a temporary directory");
    let write = |name: &str, size: usize| {
        let path = files.path().join(name);
        std::fs::write(&path, "x".repeat(size)).expect("write a file");
        path
    };
    let (big, first, second) = (write("big.txt", 10_000), write("first.txt", 3000), write("second.txt", 3500));

    let driver = ChromeDriver::start().await;
    let browser = driver.session(1200, 760).await;
    sign_in(&browser, &app, "kim").await;
    browser.click(&format!("[data-testid=conversation-{direct}]")).await;
    browser.wait_for("the chat", "return document.querySelector('[data-testid=composer]')", vec![]).await;

    let failed = "const m = [...document.querySelectorAll('[data-testid=message][data-status=failed]')] \
           .find((m) => m.querySelector('[data-testid=file-name]')?.textContent === arguments[0]); \
         return m && [m.querySelector('[data-testid=message-status] span').textContent, \
           Boolean(m.querySelector('[data-testid=retry]')), Boolean(m.querySelector('[data-testid=discard]'))];";
    browser.choose_file("[data-testid=attach-input]", &big).await;
    let said = browser.wait_for("the too-large bubble", failed, vec![json!("big.txt")]).await;
    assert_eq!(said, json!(["Not sent: This file is too large to send (the limit is 4 KB).", false, true]));

    browser.choose_file("[data-testid=attach-input]", &first).await;
    browser.wait_for("the first file sent", FILE_SHOWN, vec![json!("first.txt")]).await;
    browser.choose_file("[data-testid=attach-input]", &second).await;
    let said = browser.wait_for("the over-quota bubble", failed, vec![json!("second.txt")]).await;
    assert_eq!(
        said,
        json!(["Not sent: Your storage for files is full: this file would go over your quota.", false, true])
    );

    // Only the file that fitted reached Lou.
    let page =
        app.send_as(Method::GET, &lou.access_token, &format!("/api/v1/conversations/{direct}/messages"), None).await;
    assert_eq!(page.status(), 200);
    let page: Value = page.json().await.unwrap();
    let names: Vec<&Value> = page["items"].as_array().unwrap().iter().map(|m| &m["content"]["name"]).collect();
    assert_eq!(names, vec![&json!("first.txt")], "what reached Lou: {page}");

    // Remove takes a refused bubble away.
    browser.click("[data-testid=message][data-status=failed]:has([data-testid=file-name]) [data-testid=discard]").await;
    browser
        .wait_for(
            "one refused bubble left",
            "return document.querySelectorAll('[data-testid=message][data-status=failed]').length === 1",
            vec![],
        )
        .await;

    browser.close().await;
}

/// A small picture for the image tests and the README screenshot: a dusk sky with a
/// low sun over two ranges of hills, mirrored in a lake (a scene, not noise).
fn scene_png(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as f32, height as f32);
    let horizon = h * 0.7;
    let (sun_x, sun_y, sun_r) = (w * 0.66, h * 0.42, h * 0.085);
    let mix = |a: [f32; 3], b: [f32; 3], t: f32| {
        let t = t.clamp(0.0, 1.0);
        [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t)
    };
    let sky = |x: f32, y: f32| {
        let base = mix([44.0, 62.0, 128.0], [252.0, 176.0, 112.0], (y / horizon).clamp(0.0, 1.0).powf(1.8));
        let d = ((x - sun_x).powi(2) + (y - sun_y).powi(2)).sqrt();
        if d < sun_r {
            return [255.0, 238.0, 186.0];
        }
        mix(base, [255.0, 214.0, 150.0], (-(d - sun_r) / (sun_r * 2.5)).exp() * 0.7)
    };
    let far = |x: f32| horizon - h * 0.17 - (x / w * 8.0).sin() * h * 0.05 - (x / w * 21.0 + 1.3).sin() * h * 0.018;
    let near = |x: f32| horizon - h * 0.05 - (x / w * 4.5 + 2.1).sin() * h * 0.06 - (x / w * 15.0).sin() * h * 0.012;
    let scene = |x: f32, y: f32| {
        if y >= near(x) {
            mix([70.0, 92.0, 84.0], [34.0, 50.0, 50.0], (y - near(x)) / (h * 0.12))
        } else if y >= far(x) {
            mix([124.0, 108.0, 156.0], [92.0, 86.0, 130.0], (y - far(x)) / (h * 0.15))
        } else {
            sky(x, y)
        }
    };
    let picture = image::RgbImage::from_fn(width, height, |px, py| {
        let (x, y) = (px as f32 + 0.5, py as f32 + 0.5);
        let color = if y < horizon {
            scene(x, y)
        } else {
            let depth = (y - horizon) / (h - horizon);
            let ripple = ((y - horizon) * 0.7).sin() * 0.8 * (1.0 + 2.0 * depth);
            mix(scene(x + ripple, 2.0 * horizon - y), [24.0, 36.0, 60.0], 0.35 + depth * 0.35)
        };
        image::Rgb(color.map(|c| c.round().clamp(0.0, 255.0) as u8))
    });
    let mut png = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut png, image::ImageFormat::Png).expect("the PNG encodes");
    png.into_inner()
}
