//! `EXPLAIN (ANALYZE, BUFFERS)` of the user-search query for a few representative
//! queries, as evidence of which indexes serve which kind of query.
//!
//! The statement is prepared with `PREPARE` and explained through `EXECUTE`, twice: on
//! its first execution (a custom plan for these values) and on its seventh, after five
//! more on the same connection, because that is when PostgreSQL's plan cache may switch
//! to a generic plan — which is what the application's cached statements then run.
//!
//! The statement is [`goim::db::users::SEARCH_SQL`] itself, with the arguments of the
//! tier at which `db::users::search` stops for that query (the earlier, cheaper tiers
//! run first and cost a fraction of it). Before explaining, each case checks that the
//! statement returns exactly what `db::users::search` returns, so drifted arguments stop
//! the bench instead of explaining another query.

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool, Row};

use super::search::normalise;
use goim::db;

use goim::db::users::{SEARCH_CANDIDATES, SEARCH_SQL, SearchArguments, SearchTier};

const STATEMENT: &str = "goim_bench_search";

/// The first page the service asks for: 20 rows plus one to detect a next page.
const LIMIT: i64 = 21;

#[derive(Debug, Serialize)]
pub struct Explained {
    pub label: String,
    pub query: String,
    /// The tier the search stopped at, whose statement is explained.
    pub tier: String,
    /// The plan on the statement's first execution (custom plan for these values).
    pub first_execution: Vec<String>,
    /// The plan on its seventh execution on the same connection.
    pub seventh_execution: Vec<String>,
}

impl Explained {
    /// Whether the plan cache settled on a plan of a different shape: other nodes, or
    /// other indexes (timings, buffers and parameter values aside).
    pub fn plan_changed(&self) -> bool {
        let shape = |plan: &[String]| -> Vec<String> {
            plan.iter().filter_map(|line| line.split_once("  (cost=").map(|(node, _)| node.to_owned())).collect()
        };
        shape(&self.first_execution) != shape(&self.seventh_execution)
    }
}

/// Explains the search for each `(label, query)`.
pub async fn explain_all(pool: &PgPool, cases: &[(String, String)]) -> anyhow::Result<Vec<Explained>> {
    let mut conn = pool.acquire().await?.detach();
    let mut explained = Vec::with_capacity(cases.len());
    for (label, query) in cases {
        let query = normalise(query);
        let (arguments, tier) = checked_arguments(&mut conn, pool, &query).await?;
        sqlx::raw_sql(&format!(
            "PREPARE {STATEMENT} (text, text, text, real, bigint, bigint, bigint, boolean) AS {SEARCH_SQL}"
        ))
        .execute(&mut conn)
        .await
        .context("PREPARE the search")?;
        let execute = format!("EXECUTE {STATEMENT} ({})", literals(&arguments));
        let first_execution = plan(&mut conn, &execute).await?;
        for _ in 0..5 {
            sqlx::raw_sql(&execute).execute(&mut conn).await?;
        }
        let seventh_execution = plan(&mut conn, &execute).await?;
        sqlx::raw_sql(&format!("DEALLOCATE {STATEMENT}")).execute(&mut conn).await?;
        explained.push(Explained {
            label: label.clone(),
            query,
            tier: format!("{tier:?}"),
            first_execution,
            seventh_execution,
        });
    }
    conn.close().await?;
    Ok(explained)
}

async fn plan(conn: &mut PgConnection, execute: &str) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::raw_sql(&format!("EXPLAIN (ANALYZE, BUFFERS) {execute}")).fetch_all(&mut *conn).await?;
    rows.iter().map(|row| row.try_get::<String, _>(0).context("EXPLAIN row")).collect()
}

/// The tier `db::users::search` stops at for `query` and its arguments; fails when
/// [`SEARCH_SQL`] with them returns other rows than the search.
async fn checked_arguments(
    conn: &mut PgConnection,
    pool: &PgPool,
    query: &str,
) -> anyhow::Result<(SearchArguments, SearchTier)> {
    let (hits, tier) = db::users::search(pool, query, None, LIMIT).await?;
    let expected: Vec<i64> = hits.iter().map(|hit| hit.id.0).collect();
    let arguments = SearchArguments::new(query, tier);
    let copy: Vec<i64> = sqlx::query_scalar(&format!(r#"SELECT "id!: UserId" FROM ({SEARCH_SQL}) AS copy"#))
        .bind(&arguments.query)
        .bind(&arguments.prefix)
        .bind(&arguments.contains)
        .bind(None::<f32>)
        .bind(None::<i64>)
        .bind(LIMIT)
        .bind(SEARCH_CANDIDATES)
        .bind(arguments.similar)
        .fetch_all(&mut *conn)
        .await?;
    anyhow::ensure!(
        copy == expected,
        "SEARCH_SQL with the {tier:?} tier's arguments returns other rows than db::users::search for {query:?}"
    );
    Ok((arguments, tier))
}

/// The `EXECUTE` arguments, as the service binds them, as literals.
fn literals(arguments: &SearchArguments) -> String {
    let contains = arguments.contains.as_deref().map_or_else(|| "NULL".to_owned(), literal);
    format!(
        "{}, {}, {contains}, NULL, NULL, {LIMIT}, {SEARCH_CANDIDATES}, {}",
        literal(&arguments.query),
        literal(&arguments.prefix),
        arguments.similar
    )
}

/// A string literal (standard_conforming_strings is on, the default since 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_arguments_are_quoted_literals() {
        let prefix = SearchArguments::new("o'", SearchTier::Prefix);
        assert_eq!(literals(&prefix), "'o''', 'o''%', NULL, NULL, NULL, 21, 200, false");
        let similar = SearchArguments::new("bench_1", SearchTier::Similar);
        assert_eq!(literals(&similar), r"'bench_1', 'bench\_1%', '%bench\_1%', NULL, NULL, 21, 200, true");
    }

    #[test]
    fn only_other_nodes_or_indexes_count_as_another_plan() {
        let plan = |index: &str, ms: &str| -> Vec<String> {
            vec![
                format!("Limit  (cost=1..2 rows=21 width=66) (actual time={ms}..{ms} rows=21 loops=1)"),
                format!("  ->  Bitmap Index Scan on {index}  (cost=0.00..4.43 rows=1 width=0) (actual time=0.1..0.1)"),
                "Planning:".to_owned(),
                format!("Execution Time: {ms} ms"),
            ]
        };
        let explained = |first, seventh| Explained {
            label: String::new(),
            tier: String::new(),
            query: String::new(),
            first_execution: first,
            seventh_execution: seventh,
        };
        assert!(!explained(plan("users_nickname_prefix", "3.1"), plan("users_nickname_prefix", "2.9")).plan_changed());
        assert!(explained(plan("users_nickname_prefix", "3.1"), plan("users_nickname_trgm", "3.1")).plan_changed());
    }
}
