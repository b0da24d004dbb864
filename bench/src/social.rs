//! Workload "social" (W6): a graph of N users (100k by default) with a skewed degree
//! distribution averaging ~50 friends, then mutual friends, friend suggestions and the
//! friends-list page, each through the same `db::friends` functions the API calls,
//! timed per call (p50/p99), with `EXPLAIN (ANALYZE, BUFFERS)` of each to show the plans
//! use the primary key.

use std::time::{Duration, Instant};

use anyhow::Context;
use goim::{db::friends, domain::UserId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use sqlx::PgPool;

use super::{Machine, load_average, stats::Latencies, write_json};
use crate::args::SocialBenchArgs;

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    machine: Machine,
    load_before: Option<String>,
    load_after: Option<String>,
    users: i64,
    friendship_rows: i64,
    mean_degree: f64,
    max_degree: i64,
    figures: Vec<Figure>,
    explain: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Figure {
    operation: &'static str,
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(pool: PgPool, args: &SocialBenchArgs) -> anyhow::Result<()> {
    let load_before = load_average();
    let machine = Machine::probe(&pool).await?;
    println!("machine: {}", machine.describe());
    let users = seed(&pool, i64::from(args.users)).await?;
    let (rows, max_degree): (i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(max(d), 0) FROM (SELECT user_id, count(*) AS d FROM friendships WHERE user_id = ANY($1) GROUP BY 1) t",
    )
    .bind(&users)
    .fetch_one(&pool)
    .await
    .map(|(d, m): (i64, i64)| (d, m))
    .or_else(|_| Ok::<_, sqlx::Error>((0, 0)))?;
    let friendship_rows: i64 = sqlx::query_scalar(
        "SELECT sum(d)::bigint FROM (SELECT count(*) AS d FROM friendships WHERE user_id = ANY($1) GROUP BY user_id) t",
    )
    .bind(&users)
    .fetch_one(&pool)
    .await
    .unwrap_or(rows);
    let mean_degree = friendship_rows as f64 / users.len().max(1) as f64;
    println!(
        "graph: {} users, {friendship_rows} friendship rows (both directions), mean degree {mean_degree:.1}, max {max_degree}",
        users.len()
    );

    let mut rng = StdRng::from_entropy();
    let mut pick = || UserId(users[rng.gen_range(0..users.len())]);
    let mut mutual = Latencies::default();
    let mut suggestions = Latencies::default();
    let mut list = Latencies::default();
    for _ in 0..args.samples {
        let (a, b) = (pick(), pick());
        let started = Instant::now();
        friends::mutual(&pool, a, b, None, 21).await?;
        mutual.record(started.elapsed());
        let started = Instant::now();
        friends::suggestions(&pool, a, None, 21).await?;
        suggestions.record(started.elapsed());
        let started = Instant::now();
        friends::list(&pool, a, None, 21).await?;
        list.record(started.elapsed());
    }
    let figure = |operation, l: &Latencies| Figure {
        operation,
        samples: l.len(),
        p50_ms: l.percentile(0.5).map_or(f64::NAN, |d: Duration| d.as_secs_f64() * 1e3),
        p99_ms: l.percentile(0.99).map_or(f64::NAN, |d: Duration| d.as_secs_f64() * 1e3),
    };
    let figures =
        vec![figure("mutual_friends", &mutual), figure("suggestions", &suggestions), figure("friends_page", &list)];
    for f in &figures {
        println!("{:<16} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms", f.operation, f.samples, f.p50_ms, f.p99_ms);
    }

    let hub = sqlx::query_scalar::<_, i64>(
        "SELECT user_id FROM friendships WHERE user_id = ANY($1) GROUP BY user_id ORDER BY count(*) DESC LIMIT 1",
    )
    .bind(&users)
    .fetch_one(&pool)
    .await?;
    let (a, b) = (users[0], users[users.len() / 2]);
    let mut explain = Vec::new();
    for (name, sql) in [
        (
            "mutual_friends",
            format!(
            "SELECT u.id FROM friendships fa JOIN friendships fb ON fb.user_id = {b} AND fb.friend_id = fa.friend_id
               JOIN users u ON u.id = fa.friend_id WHERE fa.user_id = {a} ORDER BY fa.friend_id LIMIT 21"),
        ),
        (
            "suggestions (the best-connected user)",
            format!(
                "SELECT f2.friend_id, count(*) FROM friendships f1 JOIN friendships f2 ON f2.user_id = f1.friend_id
              WHERE f1.user_id = {hub} AND f2.friend_id <> {hub}
                AND NOT EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = {hub} AND f.friend_id = f2.friend_id)
              GROUP BY f2.friend_id ORDER BY count(*) DESC, f2.friend_id LIMIT 21"
            ),
        ),
    ] {
        let lines: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")).fetch_all(&pool).await?;
        println!("\nEXPLAIN ANALYZE {name}:\n{}", lines.join("\n"));
        explain.push((name.to_owned(), lines.join("\n")));
    }
    let report = Report {
        workload: "social (W6)",
        machine,
        load_before,
        load_after: load_average(),
        users: users.len() as i64,
        friendship_rows,
        mean_degree,
        max_degree,
        figures,
        explain,
    };
    write_json(&args.out, &report)
}

/// `social50_<i>` users with friendships: user i befriends the users at offsets drawn
/// from a skewed distribution (many users with few friends, a few with hundreds).
/// Idempotent: an existing graph is reused.
async fn seed(pool: &PgPool, n: i64) -> anyhow::Result<Vec<i64>> {
    let existing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE username LIKE 'social50\\_%'").fetch_one(pool).await?;
    let started = Instant::now();
    if existing < n {
        sqlx::query(
            "INSERT INTO users (username, nickname, password_hash)
             SELECT 'social50_' || i, 'Social ' || i, 'bench-no-login' FROM generate_series($1 + 1, $2) AS i
             ON CONFLICT DO NOTHING",
        )
        .bind(existing)
        .bind(n)
        .execute(pool)
        .await?;
    }
    let has_edges: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM friendships f JOIN users u ON u.id = f.user_id WHERE u.username LIKE 'social50\\_%')",
    )
    .fetch_one(pool)
    .await?;
    if !has_edges {
        // Each user starts ~25 friendships (so ~50 each, counting both ends), the count
        // skewed by a power of a uniform draw; partners cluster near the user's index
        // so friends share friends, as in real graphs.
        sqlx::query(
            "WITH ids AS (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM users WHERE username LIKE 'social50\\_%'),
                  n AS (SELECT count(*) AS total FROM ids),
                  edges AS (
                    SELECT a.id AS a, b.id AS b
                      FROM ids a, n,
                           LATERAL generate_series(1, 1 + floor(49 * power(random(), 2.5) * 2.2)::int + (a.rn * 0)::int) AS k,
                           LATERAL (SELECT 1 + ((a.rn + k + floor(power(random(), 3) * 2000)::bigint) % n.total) AS rn) AS pick
                      JOIN ids b ON b.rn = pick.rn
                     WHERE b.id <> a.id)
             INSERT INTO friendships (user_id, friend_id)
             SELECT a, b FROM edges UNION SELECT b, a FROM edges
             ON CONFLICT DO NOTHING",
        )
        .execute(pool)
        .await
        .context("seeding friendships")?;
        sqlx::query("VACUUM (ANALYZE) friendships").execute(pool).await?;
        println!("seeded the social graph in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(sqlx::query_scalar("SELECT id FROM users WHERE username LIKE 'social50\\_%' ORDER BY id LIMIT $1")
        .bind(n)
        .fetch_all(pool)
        .await?)
}
