//! User search, measured by query class: through `GET /api/v1/users` with a valid
//! token, and — the same-run reference — the same queries through
//! [`db::users::search`] on the pool directly, so the cost of HTTP, authentication
//! (one session lookup per request) and JSON is what separates the two.

use anyhow::Context;
use goim::{db, domain::UserId};
use rand::{Rng, rngs::StdRng, seq::SliceRandom};
use serde::Deserialize;
use sqlx::PgPool;

use super::seed;
use crate::{
    BenchServer,
    cpu::CpuMeter,
    phase,
    stats::{FigureKey, Figures, Path},
};

/// The page size clients use by default.
const PAGE: i64 = 20;

/// The kinds of query a person types into a search box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryClass {
    /// One or two characters, typed so far: many matches, few trigrams.
    ShortPrefix,
    /// Three to five characters of a name.
    Prefix,
    /// A complete username, `bench_<i>`.
    Username,
    /// A nickname or its start, Chinese and accented Latin included.
    Nickname,
    /// A misspelt name, found only by trigram similarity.
    Typo,
    /// The second page of a one-letter query, through its `next_cursor`.
    SecondPage,
}

impl QueryClass {
    pub const ALL: [QueryClass; 6] = [
        QueryClass::ShortPrefix,
        QueryClass::Prefix,
        QueryClass::Username,
        QueryClass::Nickname,
        QueryClass::Typo,
        QueryClass::SecondPage,
    ];

    pub fn id(self) -> &'static str {
        match self {
            QueryClass::ShortPrefix => "prefix_1_2",
            QueryClass::Prefix => "prefix_3_5",
            QueryClass::Username => "username",
            QueryClass::Nickname => "nickname",
            QueryClass::Typo => "typo",
            QueryClass::SecondPage => "page_2",
        }
    }

    /// `n` queries of this class.
    fn queries(self, rng: &mut StdRng, users: u32, n: usize) -> Vec<String> {
        const SHORT: &[&str] = &["a", "m", "j", "jo", "ma", "an", "so", "é", "小", "王", "李", "zo"];
        // Second pages only exist for prefixes shared by more than a page of users.
        const COMMON_SHORT: &[&str] = &["a", "j", "m"];
        const PREFIX: &[&str] =
            &["ali", "mari", "garc", "müll", "john", "chlo", "kowal", "nguy", "søre", "schr", "tana", "luk"];
        const NICKNAME: &[&str] = &[
            "王芳",
            "小明",
            "李小红",
            "张伟",
            "陈浩然",
            "maría garcía",
            "alice smith",
            "zoë",
            "émile dubois",
            "søren kim",
            "łukasz nowak",
            "josé núñez",
        ];
        const TYPO: &[&str] = &[
            "alicee",
            "mariaa",
            "garcia",
            "smiht",
            "jonh smith",
            "chloe dubois",
            "kowalsky",
            "fransois",
            "muller",
            "tomas",
            "izabella",
            "hanah",
        ];
        let pick = |rng: &mut StdRng, list: &[&str]| list.choose(rng).map_or_else(String::new, |q| (*q).to_owned());
        (0..n)
            .map(|_| match self {
                QueryClass::ShortPrefix => pick(rng, SHORT),
                QueryClass::SecondPage => pick(rng, COMMON_SHORT),
                QueryClass::Prefix => pick(rng, PREFIX),
                QueryClass::Username => seed::username(rng.gen_range(1..=users)),
                QueryClass::Nickname => pick(rng, NICKNAME),
                // One typo in four is in a username (two letters swapped).
                QueryClass::Typo if rng.gen_ratio(1, 4) => format!("bnech_{}", rng.gen_range(1..=users)),
                QueryClass::Typo => pick(rng, TYPO),
            })
            .collect()
    }
}

/// One query to run: the text and, for a second page, where the first page ended.
struct Task {
    query: String,
    cursor: Option<String>,
    after: Option<(f32, UserId)>,
}

#[derive(Deserialize)]
struct SearchResponse {
    items: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

/// Everything one run of the search measurements needs.
pub struct SearchRun<'a> {
    pub server: &'a BenchServer,
    pub client: &'a reqwest::Client,
    pub pool: &'a PgPool,
    pub cpu: &'a CpuMeter,
    pub token: &'a str,
    pub users: u32,
    pub searches: usize,
    pub concurrency: &'a [u32],
}

impl SearchRun<'_> {
    /// Every class at every concurrency: the HTTP phase, then its SQL reference with
    /// the same queries straight after, so both meet the same neighbours.
    pub async fn measure(&self, rng: &mut StdRng, figures: &mut Figures) -> anyhow::Result<()> {
        for &concurrency in self.concurrency {
            for class in QueryClass::ALL {
                let queries = class.queries(rng, self.users, self.searches);
                let tasks = self.tasks(class, queries).await?;
                if tasks.is_empty() {
                    continue;
                }
                let http = FigureKey {
                    operation: "search",
                    class: Some(class.id()),
                    path: Path::Http,
                    concurrency,
                    reference_for: None,
                };
                let sql = FigureKey { path: Path::Sql, reference_for: Some(Box::new(http.clone())), ..http.clone() };
                let run = phase::timed(self.cpu, &tasks, concurrency, |task| self.http_search(task)).await?;
                figures.record(http, run);
                let run = phase::timed(self.cpu, &tasks, concurrency, |task| self.sql_search(task)).await?;
                figures.record(sql, run);
            }
        }
        Ok(())
    }

    /// The tasks for `queries`; for second pages, the first page is fetched now, outside
    /// the timed phase (over HTTP for the cursor, and directly for the SQL keyset).
    async fn tasks(&self, class: QueryClass, queries: Vec<String>) -> anyhow::Result<Vec<Task>> {
        let mut tasks = Vec::with_capacity(queries.len());
        for query in queries {
            if class != QueryClass::SecondPage {
                tasks.push(Task { query, cursor: None, after: None });
                continue;
            }
            let first = self.http_page(&query, None).await?;
            let hits = db::users::search(self.pool, &normalise(&query), None, PAGE + 1).await?.0;
            let after = (hits.len() as i64 > PAGE).then(|| &hits[PAGE as usize - 1]).map(|last| (last.score, last.id));
            if let (Some(cursor), Some(after)) = (first.next_cursor, after) {
                tasks.push(Task { query, cursor: Some(cursor), after: Some(after) });
            }
        }
        Ok(tasks)
    }

    async fn http_search(&self, task: &Task) -> anyhow::Result<usize> {
        Ok(self.http_page(&task.query, task.cursor.as_deref()).await?.items.len())
    }

    async fn http_page(&self, query: &str, cursor: Option<&str>) -> anyhow::Result<SearchResponse> {
        let mut params = vec![("q", query.to_owned()), ("limit", PAGE.to_string())];
        if let Some(cursor) = cursor {
            params.push(("cursor", cursor.to_owned()));
        }
        let response = self
            .client
            .get(self.server.url("/api/v1/users"))
            .bearer_auth(self.token)
            .query(&params)
            .send()
            .await
            .with_context(|| format!("search {query:?}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("search {query:?} answered {status}: {body}");
        }
        response.json().await.with_context(|| format!("search {query:?}: unexpected body"))
    }

    /// What the service does after validation: the same normalisation, the same
    /// function, one extra row to learn whether a next page exists.
    async fn sql_search(&self, task: &Task) -> anyhow::Result<usize> {
        let hits = db::users::search(self.pool, &normalise(&task.query), task.after, PAGE + 1).await?.0;
        Ok(hits.len().min(PAGE as usize))
    }
}

/// The service trims and lower-cases the query before it reaches the database.
pub fn normalise(query: &str) -> String {
    query.trim().to_lowercase()
}

/// Logs in as `username` and returns the access token.
pub async fn login(server: &BenchServer, client: &reqwest::Client, username: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Tokens {
        access_token: String,
    }
    let response = client
        .post(server.url("/api/v1/auth/login"))
        .json(
            &serde_json::json!({ "username": username, "password": seed::PASSWORD, "device_name": seed::DEVICE_NAME }),
        )
        .send()
        .await
        .with_context(|| format!("login as {username}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("login as {username} answered {status}: {body}");
    }
    Ok(response.json::<Tokens>().await.context("login: unexpected body")?.access_token)
}
