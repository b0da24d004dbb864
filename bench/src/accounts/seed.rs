//! The accounts workload's users: `bench_1` … `bench_N`, all with one known password,
//! with nicknames drawn from realistic given and family names (Latin with accents, and
//! Chinese) so that prefix and trigram search meet a realistic spread of names rather
//! than N copies of one string.
//!
//! Seeding is idempotent: the missing users are inserted by one set-based statement
//! (`generate_series`, `ON CONFLICT DO NOTHING`), so a second run reuses the data and
//! an interrupted one is completed. All users share one Argon2id hash computed once:
//! a login still verifies it in full, and hashing 100k passwords would take an hour.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgPool};

use goim::{auth::PasswordHasher, domain::Password};

/// The password of every seeded user.
pub const PASSWORD: &str = "goim-bench-password";

/// The device name of the sessions the bench opens, so they can be removed afterwards.
pub const DEVICE_NAME: &str = "goim-bench";

pub fn username(i: u32) -> String {
    format!("bench_{i}")
}

const LATIN_GIVEN: &[&str] = &[
    "Alice",
    "Alicia",
    "Ana",
    "Anna",
    "André",
    "Benjamin",
    "Björn",
    "Carlos",
    "Chloé",
    "Daniel",
    "David",
    "Élodie",
    "Émile",
    "Fatima",
    "François",
    "Hannah",
    "Hélène",
    "Ingrid",
    "Isabella",
    "James",
    "Jana",
    "João",
    "John",
    "Jonas",
    "José",
    "Julia",
    "Léa",
    "Lucía",
    "Łukasz",
    "Maria",
    "María",
    "Mark",
    "Mateo",
    "Mohammed",
    "Noël",
    "Olga",
    "Priya",
    "Renée",
    "Sofia",
    "Søren",
    "Thomas",
    "Yuki",
    "Zoë",
];

const LATIN_FAMILY: &[&str] = &[
    "Smith",
    "Johnson",
    "Brown",
    "Wilson",
    "García",
    "Martínez",
    "Fernández",
    "Núñez",
    "Müller",
    "Schmidt",
    "Schröder",
    "Dubois",
    "Lefèvre",
    "Rossi",
    "Bianchi",
    "Nguyen",
    "Kowalski",
    "Nowak",
    "Johansson",
    "Andersson",
    "Øvergaard",
    "Silva",
    "Santos",
    "Kim",
    "Tanaka",
    "Suzuki",
    "Patel",
    "Ivanova",
    "Novák",
    "O'Brien",
];

const CJK_GIVEN: &[&str] = &[
    "芳", "伟", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "小明", "小红", "浩然", "子涵", "欣怡", "雨桐", "梓萱",
    "宇轩",
];

const CJK_FAMILY: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙"];

/// What seeding found and did.
#[derive(Debug, Serialize)]
pub struct Seeded {
    /// `bench_*` users present before seeding.
    pub existing: i64,
    pub inserted: u64,
    pub seconds: f64,
    pub total_users: i64,
    pub table_bytes: i64,
    pub index_bytes: i64,
}

/// Makes sure `bench_1` … `bench_{users}` exist, then refreshes the planner statistics.
pub async fn ensure_users(pool: &PgPool, users: u32) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    // A connection of its own, closed afterwards: the bulk insert and VACUUM may outlast
    // the pool's statement timeout, which is lifted for this connection only.
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("SET statement_timeout = 0").execute(&mut conn).await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE lower(username) LIKE 'bench\\_%'")
        .fetch_one(&mut conn)
        .await?;
    let mut inserted = 0;
    if existing < i64::from(users) {
        println!("seeding: {existing} bench users found; inserting up to {}", i64::from(users) - existing);
        let password = Password::parse_any(PASSWORD.to_owned(), "password").map_err(|e| anyhow::anyhow!("{e}"))?;
        let hash = PasswordHasher::new(1).hash(&password).await?;
        inserted = insert_missing(&mut conn, users, &hash).await?;
        // VACUUM also merges the GIN indexes' pending lists, which a bulk insert fills
        // and which every search would otherwise scan linearly until autovacuum runs.
        sqlx::query("VACUUM (ANALYZE) users").execute(&mut conn).await.context("VACUUM ANALYZE users")?;
    } else {
        sqlx::query("ANALYZE users").execute(&mut conn).await.context("ANALYZE users")?;
    }
    let (total_users, table_bytes, index_bytes): (i64, i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM users), pg_table_size('users'), pg_indexes_size('users')")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    let seeded =
        Seeded { existing, inserted, seconds: started.elapsed().as_secs_f64(), total_users, table_bytes, index_bytes };
    println!(
        "seeding: {} inserted in {:.1} s; users table {} rows, {:.1} MiB + {:.1} MiB of indexes",
        seeded.inserted,
        seeded.seconds,
        seeded.total_users,
        seeded.table_bytes as f64 / 1_048_576.0,
        seeded.index_bytes as f64 / 1_048_576.0
    );
    Ok(seeded)
}

/// One statement for all missing users. A multiplicative hash of `i` picks the name
/// style (20 % Chinese family + given name, 10 % Chinese given name alone, 10 % Latin
/// given name alone, 60 % Latin given + family name) and the names, so neighbouring
/// ids do not share names.
async fn insert_missing(conn: &mut sqlx::PgConnection, users: u32, hash: &str) -> anyhow::Result<u64> {
    let users = i32::try_from(users).context("--users is too large")?;
    let result = sqlx::query(
        "INSERT INTO users (username, nickname, password_hash)
         SELECT 'bench_' || i,
                CASE WHEN h % 10 < 2 THEN $4[(1 + (h / 10) % cardinality($4))::int] || $3[(1 + (h / 1000) % cardinality($3))::int]
                     WHEN h % 10 = 2 THEN $3[(1 + (h / 10) % cardinality($3))::int]
                     WHEN h % 10 = 3 THEN $1[(1 + (h / 10) % cardinality($1))::int]
                     ELSE $1[(1 + (h / 10) % cardinality($1))::int] || ' ' || $2[(1 + (h / 1000) % cardinality($2))::int]
                END,
                $5
           FROM (SELECT i, (i::bigint * 2654435761) % 4294967296 AS h
                   FROM generate_series(1, $6::int) AS i) AS seq
         ON CONFLICT ((lower(username))) DO NOTHING",
    )
    .bind(LATIN_GIVEN)
    .bind(LATIN_FAMILY)
    .bind(CJK_GIVEN)
    .bind(CJK_FAMILY)
    .bind(hash)
    .bind(users)
    .execute(&mut *conn)
    .await
    .context("seeding the bench users")?;
    Ok(result.rows_affected())
}

/// The stored hash of a seeded user: what a login verifies, for the Argon2 reference.
pub async fn stored_hash(pool: &PgPool) -> anyhow::Result<String> {
    let credentials = goim::db::users::credentials(pool, &username(1)).await?;
    credentials.map(|c| c.password_hash).context("bench_1 is missing after seeding")
}

/// Removes the sessions the bench opened, so repeated runs do not grow the table.
pub async fn remove_sessions(pool: &PgPool) -> anyhow::Result<u64> {
    let result = sqlx::query(
        "DELETE FROM sessions
          WHERE device_name = $1
            AND user_id IN (SELECT id FROM users WHERE lower(username) LIKE 'bench\\_%')",
    )
    .bind(DEVICE_NAME)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
