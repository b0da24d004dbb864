//! User search: prefix and fuzzy, ranking, pagination, hostile input.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser, error_code, spawn_app};

async fn search(app: &TestApp, caller: &TestUser, query: &str) -> reqwest::Response {
    let url = format!("/api/v1/users?{query}");
    app.get_as(&caller.access_token, &url).await
}

fn usernames(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn exact_and_prefix_matches_rank_above_fuzzy_ones() {
    let app = spawn_app().await;
    let caller = app.register("searcher").await;
    for name in ["alicia", "alice", "malice", "bob"] {
        app.register(name).await;
    }
    let bob = crate::support::login_token(&app, "bob").await;
    app.send_as(Method::PATCH, &bob, "/api/v1/me", Some(&json!({ "nickname": "Alice Cooper" }))).await;

    let body: Value = search(&app, &caller, "q=ALICE").await.json().await.unwrap();
    let names = usernames(&body);
    assert_eq!(names[0], "alice", "the exact username first, ignoring case: {names:?}");
    assert_eq!(names[1], "bob", "then nickname prefixes: {names:?}");

    let body: Value = search(&app, &caller, "q=alic").await.json().await.unwrap();
    let names = usernames(&body);
    let mut prefixes = names[..2].to_vec();
    prefixes.sort();
    assert_eq!(prefixes, ["alice", "alicia"], "username prefixes first: {names:?}");
    assert_eq!(names[2], "bob", "then nickname prefixes: {names:?}");
    assert_eq!(names[3], "malice", "then substrings: {names:?}");
    assert!(!names.contains(&"searcher".to_owned()));

    let body: Value = search(&app, &caller, "q=alicee").await.json().await.unwrap();
    assert_eq!(usernames(&body)[0], "alice", "a typo still finds the name (trigram similarity)");
}

#[tokio::test]
async fn pages_follow_the_cursor_without_overlap() {
    let app = spawn_app().await;
    let caller = app.register("pager0").await;
    for i in 1..=4 {
        app.register(&format!("pager{i}")).await;
    }
    let mut seen = all_pages(&app, &caller, "pager", 2).await;
    seen.sort();
    assert_eq!(seen, ["pager0", "pager1", "pager2", "pager3", "pager4"]);
}

#[tokio::test]
async fn pages_run_from_prefixes_through_substrings_to_similar_names() {
    let app = spawn_app().await;
    let caller = app.register("seeker").await;
    for name in ["tiera", "tierb", "mytier", "tirer"] {
        app.register(name).await;
    }
    let body: Value = search(&app, &caller, "q=tier&limit=10").await.json().await.unwrap();
    let one_page = usernames(&body);
    assert_eq!(one_page.len(), 4, "{one_page:?}");
    assert_eq!(&one_page[2..], ["mytier", "tirer"], "prefixes, then the substring, then the typo: {one_page:?}");

    // One row per page: the first pages are filled by prefixes alone, the later ones
    // reach the substring and similarity tiers, and the order is the same.
    assert_eq!(all_pages(&app, &caller, "tier", 1).await, one_page);

    // A complete username is not a typo: no similar-name neighbours are added to it.
    let body: Value = search(&app, &caller, "q=tiera").await.json().await.unwrap();
    assert_eq!(usernames(&body), ["tiera"]);
    // Under three characters only prefixes count.
    let body: Value = search(&app, &caller, "q=ti").await.json().await.unwrap();
    let mut short = usernames(&body);
    short.sort();
    assert_eq!(short, ["tiera", "tierb", "tirer"]);
}

/// Every page of `q`, following the cursor: the usernames in order.
async fn all_pages(app: &TestApp, caller: &TestUser, q: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let query = match &cursor {
            Some(c) => format!("q={q}&limit={limit}&cursor={c}"),
            None => format!("q={q}&limit={limit}"),
        };
        let body: Value = search(app, caller, &query).await.json().await.unwrap();
        seen.extend(usernames(&body));
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return seen;
        }
    }
    panic!("search {q:?} did not end");
}

#[tokio::test]
async fn pages_do_not_depend_on_the_page_size_when_more_users_match_than_a_tier_reads() {
    let app = spawn_app().await;
    let caller = &app.seed_users("seeker", 1).await[0];
    // 300 prefix matches of equal score (so ids break the ties), more than the prefix
    // branches read (the first 200 by name: ann100…ann299). The other 100 get ids spread
    // among theirs, so a later tier finding them would rank them between earlier pages.
    let names: Vec<String> = (0..300)
        .map(|i| if i % 3 == 2 { format!("ann{}", 300 + i / 3) } else { format!("ann{}", 100 + i - i / 3) })
        .collect();
    sqlx::query(
        "INSERT INTO users (username, nickname, password_hash)
         SELECT name, name, 'seeded-no-login' FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) ORDER BY i",
    )
    .bind(&names)
    .execute(&app.pool)
    .await
    .unwrap();
    let small = all_pages(&app, caller, "ann", 20).await;
    let large = all_pages(&app, caller, "ann", 50).await;
    assert_eq!(small, large, "the same results in the same order whatever the page size");
    let mut unique = small.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), small.len(), "no user twice");
    assert_eq!(small.len(), 200, "the 200 prefix candidates, and no later tier adds prefix matches");
}

#[tokio::test]
async fn like_wildcards_and_sql_in_the_query_match_literally() {
    let app = spawn_app().await;
    let caller = app.register("wild_card").await;
    app.register("other.user").await;
    let body: Value = search(&app, &caller, "q=%25").await.json().await.unwrap();
    assert_eq!(usernames(&body), Vec::<String>::new(), "% is not a wildcard");
    app.register("wildxcard").await;
    let body: Value = search(&app, &caller, "q=wild_").await.json().await.unwrap();
    assert_eq!(usernames(&body)[0], "wild_card", "_ is a literal underscore in the prefix");
    let body: Value = search(&app, &caller, "q=_").await.json().await.unwrap();
    assert_eq!(usernames(&body), Vec::<String>::new(), "no name starts with _");
    let response = search(&app, &caller, "q=%27%3B%20DROP%20TABLE%20users%3B%20--").await;
    assert_eq!(response.status(), 200);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn unicode_nicknames_are_found_by_prefix_and_case_insensitively() {
    let app = spawn_app().await;
    let caller = app.register("caller").await;
    let ming = app.register("ming").await;
    app.send_as(Method::PATCH, &ming.access_token, "/api/v1/me", Some(&json!({ "nickname": "小明同学" }))).await;
    let emile = app.register("emile").await;
    app.send_as(Method::PATCH, &emile.access_token, "/api/v1/me", Some(&json!({ "nickname": "Émile Zola" }))).await;

    let body: Value = search(&app, &caller, "q=%E5%B0%8F%E6%98%8E").await.json().await.unwrap();
    assert_eq!(usernames(&body), ["ming"]);
    let body: Value = search(&app, &caller, "q=%C3%A9mile").await.json().await.unwrap();
    assert_eq!(usernames(&body), ["emile"], "É folds to é");
}

#[tokio::test]
async fn bad_search_parameters_are_refused() {
    let app = spawn_app().await;
    let caller = app.register("strict").await;
    for (query, code) in [
        ("q=", "validation_failed"),
        ("q=a&limit=0", "validation_failed"),
        ("q=a&limit=51", "validation_failed"),
        ("q=a&limit=ten", "invalid_query"),
        ("q=a&cursor=%21%21", "invalid_cursor"),
        ("limit=5", "invalid_query"),
    ] {
        assert_eq!(error_code(search(&app, &caller, query).await, 400).await, code, "{query}");
    }
    let long = "x".repeat(65);
    assert_eq!(error_code(search(&app, &caller, &format!("q={long}")).await, 400).await, "validation_failed");
}
