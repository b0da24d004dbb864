//! Workload "history" (W4): 10 million messages over 100k direct conversations, then
//! the latest page of 50, a page of 50 deep in the past, the conversation list of a
//! user in 1,000 conversations, and message search — over HTTP as that user, and (the
//! same-run reference) through the same `db` functions on the pool. After the runs,
//! `EXPLAIN (ANALYZE, BUFFERS)` of each statement shows which indexes serve it.
//!
//! The data set: users `w4_0` … `w4_1000`; `w4_0` (the hub) talks to every other one,
//! and the rest of the conversations pair the others. Every hundredth conversation is
//! long (together they hold half of the messages: 5,000 each by default); the others
//! share the other half evenly (about 50 each). Messages are inserted round-robin — the
//! first message of every conversation, then the second… — so one conversation's
//! messages are spread over the table as a real history's are, rather than packed in
//! neighbouring pages. Bodies are 3–10 words drawn from English and Chinese word lists;
//! one message in ten thousand also holds a rare word. One message in twenty has a
//! reaction.
//!
//! Seeding is one transaction (a half-seeded set is never reused), with the messages'
//! secondary indexes dropped and rebuilt from their own definitions around the bulk
//! insert. The hub's `bio` records the parameters, so a second invocation with the same
//! ones reuses the data and one with other ones stops.

use std::time::Instant;

use anyhow::Context;
use goim::{
    auth::PasswordHasher,
    config::Config,
    db::{
        self,
        message_search::{RECENT_CONVERSATIONS, RECENT_WINDOW, SearchPlan},
        messages::Window,
    },
    domain::{ConversationId, Password, UserId},
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    BenchServer, Machine,
    accounts::{login, seed::DEVICE_NAME, seed::PASSWORD},
    cpu::CpuMeter,
    http_client, load_average, phase,
    stats::{self, Figure, FigureKey, Figures, Path},
    write_json,
};
use crate::args::HistoryBenchArgs;

/// Users besides the hub: the hub is in this many conversations.
const PEERS: u32 = 1_000;
/// Every `LONG_EVERY`th conversation is a long one.
const LONG_EVERY: u32 = 100;
/// The page size of every history and list request (the API's default for history).
const PAGE: i64 = 50;
const SEARCH_PAGE: i64 = 20;
/// One message in this many carries [`RARE_WORD`].
const RARE_ONE_IN: i64 = 10_000;
const RARE_WORD: &str = "zephyrine";

const ENGLISH: &[&str] = &[
    "hello", "thanks", "meeting", "tomorrow", "project", "lunch", "coffee", "weekend", "deadline", "review", "release",
    "budget", "travel", "ticket", "photo", "music", "movie", "dinner", "office", "client", "design", "report",
    "update", "schedule", "question", "answer", "great", "sure", "maybe", "later", "today", "morning", "evening",
    "happy", "birthday", "game", "football", "weather", "rain", "sunny", "train", "flight", "hotel", "book", "library",
    "garden", "kitchen", "family",
];
const CHINESE: &[&str] = &[
    "你好",
    "谢谢",
    "会议",
    "明天",
    "项目",
    "午饭",
    "咖啡",
    "周末",
    "没问题",
    "电影",
    "北京",
    "上海",
    "天气",
    "工作",
    "朋友",
    "晚安",
];

/// What a search request looks for.
const SEARCHES: &[(&str, &str)] = &[
    // A word in about one message in seven: pages fill from the newest messages.
    ("common_word", "meeting"),
    // Ten or so hits among the hub's messages, a thousand in the whole set.
    ("rare_word", RARE_WORD),
    // Three CJK characters: trigram-indexable.
    ("cjk_3", "没问题"),
    // Two CJK characters, the usual length of a Chinese word: too short for a trigram.
    ("cjk_2", "你好"),
    // In no message at all.
    ("absent", "xylophone"),
    // Two characters in no message: no trigram, so every message the hub can see is read.
    ("absent_2", "qz"),
];

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    started_at: String,
    load_before: Option<String>,
    load_after: Option<String>,
    settings: Settings,
    machine: Machine,
    dataset: Dataset,
    figures: Vec<Figure>,
    explain: Vec<(String, Vec<String>)>,
}

#[derive(Serialize)]
struct Settings {
    runs: u32,
    requests: u32,
    concurrency: Vec<u32>,
    page: i64,
    search_page: i64,
}

/// The shape of the seeded data.
#[derive(Debug, Clone, Serialize)]
struct Shape {
    conversations: u32,
    peers: u32,
    long_conversations: u32,
    long_length: i64,
    short_length: i64,
}

impl Shape {
    fn new(conversations: u32, messages: u64) -> anyhow::Result<Self> {
        let peers = conversations.min(PEERS);
        // Pairs of peers at offsets 1, 2, … stay distinct while the offset is below half.
        let pairs = u64::from(conversations - peers);
        let max_pairs = u64::from(peers) * u64::from(peers / 2).saturating_sub(1);
        anyhow::ensure!(pairs <= max_pairs, "at most {} conversations", u64::from(peers) + max_pairs);
        let long_conversations = conversations.div_ceil(LONG_EVERY);
        let long_length = i64::try_from(messages / 2 / u64::from(long_conversations))?.max(1);
        let rest = i64::try_from(messages)? - long_length * i64::from(long_conversations);
        let short_length = (rest / i64::from(conversations - long_conversations).max(1)).max(1);
        Ok(Self { conversations, peers, long_conversations, long_length, short_length })
    }

    fn marker(&self) -> String {
        format!(
            "W4 data set: {} conversations, {} long × {} messages, the rest × {}",
            self.conversations, self.long_conversations, self.long_length, self.short_length
        )
    }
}

#[derive(Debug, Serialize)]
struct Dataset {
    shape: Shape,
    seeded_now: bool,
    seed_seconds: f64,
    messages: i64,
    messages_table_bytes: i64,
    messages_index_bytes: i64,
    hub_conversations: usize,
    hub_messages: i64,
}

pub async fn run(config: Config, pool: PgPool, args: &HistoryBenchArgs) -> anyhow::Result<()> {
    let started_at = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let machine = Machine::probe(&pool).await?;
    let shape = Shape::new(args.conversations, args.messages)?;
    println!("goim-bench history: {}; {}", shape.marker(), machine.describe());
    let (seeded_now, seed_seconds) = seed(&pool, &shape).await?;
    let hub = hub_id(&pool).await?;
    let conversations = hub_conversations(&pool, hub).await?;
    let dataset = describe(&pool, shape, seeded_now, seed_seconds, hub, conversations.len()).await?;

    let cpu = CpuMeter::new(&pool).await;
    let load_before = load_average();
    let server = BenchServer::start(config, pool.clone())?;
    let measured = async {
        let client = http_client()?;
        let mut figures = Figures::default();
        let mut rng = StdRng::from_entropy();
        for run in 1..=args.runs {
            // A fresh login per run: one run can outlast an access token (15 min).
            let token = login(&server, &client, &hub_username()).await?;
            let bench = Bench { server: &server, client: &client, pool: &pool, cpu: &cpu, token: &token, hub };
            let started = Instant::now();
            bench.measure(&mut rng, &conversations, args, &mut figures).await?;
            println!(
                "run {run}/{}: {:.1} s (load average {})",
                args.runs,
                started.elapsed().as_secs_f64(),
                load_average().unwrap_or_default()
            );
        }
        anyhow::Ok(figures.finish())
    }
    .await;
    let cleaned = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND device_name = $2")
        .bind(hub)
        .bind(DEVICE_NAME)
        .execute(&pool)
        .await;
    let explain = explain(&pool, hub, &conversations).await;
    server.stop().await?;
    let load_after = load_average();
    let figures = measured?;
    cleaned.context("removing the bench's sessions")?;
    let explain = explain?;

    for (name, plan) in &explain {
        println!("\nEXPLAIN (ANALYZE, BUFFERS) {name}:");
        for line in plan {
            println!("    {line}");
        }
    }
    stats::print_figures(&figures, args.runs);
    let report = Report {
        workload: "history (W4)",
        started_at,
        load_before,
        load_after,
        settings: Settings {
            runs: args.runs,
            requests: args.requests,
            concurrency: args.concurrency.clone(),
            page: PAGE,
            search_page: SEARCH_PAGE,
        },
        machine,
        dataset,
        figures,
        explain,
    };
    write_json(&args.out, &report)
}

fn hub_username() -> String {
    "w4_0".to_owned()
}

/// Seeds the data set unless this shape is already there; returns whether it seeded
/// and how long that took.
async fn seed(pool: &PgPool, shape: &Shape) -> anyhow::Result<(bool, f64)> {
    let existing: Option<String> = sqlx::query_scalar("SELECT bio FROM users WHERE lower(username) = $1")
        .bind(hub_username())
        .fetch_optional(pool)
        .await?;
    match existing {
        Some(marker) if marker == shape.marker() => return Ok((false, 0.0)),
        Some(marker) => anyhow::bail!(
            "this database holds another history data set ({marker}); use the same parameters or another GOIM_DATA_DIR"
        ),
        None => {}
    }
    let started = Instant::now();
    let password = Password::parse_any(PASSWORD.to_owned(), "password").map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = PasswordHasher::new(1).hash(&password).await?;
    // A connection of its own: the bulk statements outlast the pool's statement timeout.
    let mut conn = pool.acquire().await?.detach();
    sqlx::raw_sql("SET statement_timeout = 0; SET maintenance_work_mem = '1GB'; SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    let mut tx = conn.begin().await?;
    seed_in(&mut tx, shape, &hash).await?;
    tx.commit().await.context("committing the seeded data")?;
    println!("seeding: committed after {:.0} s; VACUUM (ANALYZE)", started.elapsed().as_secs_f64());
    // Sets the visibility map (index-only scans) and the planner statistics.
    for table in
        ["messages", "conversations", "conversation_members", "message_reactions", "users", "message_search_blocks"]
    {
        sqlx::raw_sql(&format!("VACUUM (ANALYZE) {table}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("VACUUM (ANALYZE) {table}"))?;
    }
    conn.close().await?;
    let seconds = started.elapsed().as_secs_f64();
    println!("seeding: done in {seconds:.0} s");
    Ok((true, seconds))
}

async fn seed_in(conn: &mut PgConnection, shape: &Shape, hash: &str) -> anyhow::Result<()> {
    let base = OffsetDateTime::now_utc() - time::Duration::days(30);
    let step = Instant::now();
    let progress = |what: &str| println!("seeding: {what} ({:.0} s)", step.elapsed().as_secs_f64());

    sqlx::query(
        "INSERT INTO users (username, nickname, password_hash)
         SELECT 'w4_' || i, 'History ' || i, $1 FROM generate_series(0, $2::int) AS i",
    )
    .bind(hash)
    .bind(i32::try_from(shape.peers)?)
    .execute(&mut *conn)
    .await
    .context("seeding users (is another history data set half there?)")?;

    // Conversation c: the hub and peer c + 1 for c < peers; then peer a and the peer k
    // places after it (k = 1, 2, …).
    sqlx::query(
        "CREATE TEMP TABLE w4_plan ON COMMIT DROP AS
         SELECT c::bigint AS c, a.id AS ua, b.id AS ub, CASE WHEN c % $3 = 0 THEN $4::bigint ELSE $5::bigint END AS len,
                NULL::bigint AS id
           FROM generate_series(0, $1::int - 1) AS c
          CROSS JOIN LATERAL (
                SELECT CASE WHEN c < $2 THEN 0 ELSE (c - $2) % $2 + 1 END AS ia,
                       CASE WHEN c < $2 THEN c + 1 ELSE ((c - $2) % $2 + (c - $2) / $2 + 1) % $2 + 1 END AS ib) AS pick
           JOIN users a ON lower(a.username) = 'w4_' || pick.ia
           JOIN users b ON lower(b.username) = 'w4_' || pick.ib",
    )
    .bind(i32::try_from(shape.conversations)?)
    .bind(i32::try_from(shape.peers)?)
    .bind(i32::try_from(LONG_EVERY)?)
    .bind(shape.long_length)
    .bind(shape.short_length)
    .execute(&mut *conn)
    .await
    .context("planning conversations")?;
    sqlx::raw_sql(
        "INSERT INTO conversations (kind, user_low, user_high, created_at)
         SELECT 'direct', least(ua, ub), greatest(ua, ub), now() - interval '31 days' FROM w4_plan ORDER BY c;
         UPDATE w4_plan p SET id = c.id FROM conversations c
          WHERE c.kind = 'direct' AND c.user_low = least(p.ua, p.ub) AND c.user_high = greatest(p.ua, p.ub);
         INSERT INTO conversation_members (conversation_id, user_id, last_read_seq, last_delivered_seq)
         SELECT id, ua, greatest(len - c % 5, 0), len FROM w4_plan
         UNION ALL
         SELECT id, ub, len, len FROM w4_plan;
         ANALYZE w4_plan;",
    )
    .execute(&mut *conn)
    .await
    .context("seeding conversations")?;
    progress("conversations and members");

    let secondary: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename = 'messages' AND indexname <> 'messages_pkey'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, _) in &secondary {
        sqlx::raw_sql(&format!("DROP INDEX {name}")).execute(&mut *conn).await?;
    }

    // Round-robin: every conversation's message s before any message s + 1 (the ORDER BY
    // within a statement too), one seq (or, past the short conversations' length, fifty)
    // per statement.
    let longest = shape.long_length.max(shape.short_length);
    let mut low = 1;
    while low <= longest {
        let high = if low <= shape.short_length { low } else { (low + 49).min(longest) };
        sqlx::query(
            "INSERT INTO messages (conversation_id, seq, version, sender_id, client_msg_id, request_hash, kind, body, created_at)
             SELECT p.id, s, s, CASE WHEN (p.c + s) % 2 = 0 THEN p.ua ELSE p.ub END,
                    md5(p.c || ':' || s)::uuid, decode(md5(s || ':' || p.c), 'hex'), 'text',
                    (SELECT string_agg(
                              CASE WHEN w % 3 = 0 THEN ($4::text[])[1 + (hashint8(p.c * 1000003 + s * 17 + w) & 2147483647) % cardinality($4::text[])]
                                   ELSE ($3::text[])[1 + (hashint8(p.c * 1000033 + s * 29 + w) & 2147483647) % cardinality($3::text[])] END,
                              ' ')
                       FROM generate_series(1, 3 + ((p.c * 7 + s) % 8)::int) AS w)
                    || CASE WHEN (hashint8(p.c * 31 + s) & 2147483647) % $5 = 0 THEN ' ' || $6 ELSE '' END,
                    $7::timestamptz + s * interval '1 minute' + p.c * interval '1 millisecond'
               FROM generate_series($1::bigint, $2::bigint) AS s
               JOIN w4_plan p ON s <= p.len
              ORDER BY s, p.c",
        )
        .bind(low)
        .bind(high)
        .bind(ENGLISH)
        .bind(CHINESE)
        .bind(RARE_ONE_IN)
        .bind(RARE_WORD)
        .bind(base)
        .execute(&mut *conn)
        .await
        .with_context(|| format!("seeding messages {low}..={high}"))?;
        if low % 10 == 0 || high == longest {
            progress(&format!("messages up to seq {high}"));
        }
        low = high + 1;
    }
    sqlx::query(
        "UPDATE conversations c
            SET last_seq = p.len, last_version = p.len,
                last_message_at = $1::timestamptz + p.len * interval '1 minute' + p.c * interval '1 millisecond'
           FROM w4_plan p WHERE c.id = p.id",
    )
    .bind(base)
    .execute(&mut *conn)
    .await?;
    sqlx::raw_sql(
        "INSERT INTO message_reactions (conversation_id, seq, user_id, emoji)
         SELECT p.id, s, CASE WHEN (p.c + s) % 2 = 0 THEN p.ub ELSE p.ua END, '👍'
           FROM w4_plan p, generate_series(20, p.len, 20) AS s",
    )
    .execute(&mut *conn)
    .await?;
    progress("messages and reactions");
    for (name, definition) in &secondary {
        sqlx::raw_sql(&definition.clone()).execute(&mut *conn).await.with_context(|| format!("rebuilding {name}"))?;
        progress(&format!("rebuilt {name}"));
    }
    // Every message in a search block, as GOIM's indexer would leave them; the blocks'
    // trigram index is rebuilt around the bulk insert too.
    let (blocks_index,): (String,) =
        sqlx::query_as("SELECT indexdef FROM pg_indexes WHERE indexname = 'message_search_blocks_trgm'")
            .fetch_one(&mut *conn)
            .await?;
    sqlx::raw_sql("DROP INDEX message_search_blocks_trgm").execute(&mut *conn).await?;
    sqlx::raw_sql("SELECT * FROM message_search_index((SELECT array_agg(id) FROM conversations), 1::bigint << 40)")
        .execute(&mut *conn)
        .await
        .context("building the search blocks")?;
    sqlx::raw_sql(&blocks_index).execute(&mut *conn).await.context("rebuilding the search blocks' index")?;
    progress("search blocks");
    sqlx::query("UPDATE users SET bio = $1 WHERE lower(username) = $2")
        .bind(shape.marker())
        .bind(hub_username())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn hub_id(pool: &PgPool) -> anyhow::Result<UserId> {
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE lower(username) = $1")
        .bind(hub_username())
        .fetch_one(pool)
        .await?;
    Ok(UserId(id))
}

/// The hub's conversations and their last seq.
async fn hub_conversations(pool: &PgPool, hub: UserId) -> anyhow::Result<Vec<(ConversationId, i64)>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT c.id, c.last_seq FROM conversation_members cm JOIN conversations c ON c.id = cm.conversation_id
          WHERE cm.user_id = $1 ORDER BY c.id",
    )
    .bind(hub)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id, last_seq)| (ConversationId(id), last_seq)).collect())
}

async fn describe(
    pool: &PgPool,
    shape: Shape,
    seeded_now: bool,
    seed_seconds: f64,
    hub: UserId,
    hub_conversations: usize,
) -> anyhow::Result<Dataset> {
    let (messages, messages_table_bytes, messages_index_bytes, hub_messages): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT reltuples::bigint FROM pg_class WHERE oid = 'messages'::regclass),
                pg_table_size('messages'), pg_indexes_size('messages'),
                (SELECT COALESCE(sum(c.last_seq), 0)::bigint FROM conversation_members cm
                   JOIN conversations c ON c.id = cm.conversation_id WHERE cm.user_id = $1)",
    )
    .bind(hub)
    .fetch_one(pool)
    .await?;
    let dataset = Dataset {
        shape,
        seeded_now,
        seed_seconds,
        messages,
        messages_table_bytes,
        messages_index_bytes,
        hub_conversations,
        hub_messages,
    };
    println!(
        "data set: about {} messages ({:.0} MiB + {:.0} MiB of indexes); the hub is in {} conversations with {} messages",
        dataset.messages,
        dataset.messages_table_bytes as f64 / 1_048_576.0,
        dataset.messages_index_bytes as f64 / 1_048_576.0,
        dataset.hub_conversations,
        dataset.hub_messages
    );
    Ok(dataset)
}

/// One request of a phase.
enum Task {
    /// The page of history before `before` (`None`: the latest page).
    History {
        conversation: ConversationId,
        before: Option<i64>,
    },
    List,
    Search {
        query: &'static str,
    },
}

#[derive(Deserialize)]
struct Items {
    items: Vec<serde_json::Value>,
}

struct Bench<'a> {
    server: &'a BenchServer,
    client: &'a reqwest::Client,
    pool: &'a PgPool,
    cpu: &'a CpuMeter,
    token: &'a str,
    hub: UserId,
}

impl Bench<'_> {
    async fn measure(
        &self,
        rng: &mut StdRng,
        conversations: &[(ConversationId, i64)],
        args: &HistoryBenchArgs,
        figures: &mut Figures,
    ) -> anyhow::Result<()> {
        let deep: Vec<_> = conversations.iter().filter(|(_, last)| *last > 4 * PAGE).copied().collect();
        let n = args.requests as usize;
        for &concurrency in &args.concurrency {
            let mut phases: Vec<(&'static str, Option<&'static str>, Vec<Task>)> = vec![
                (
                    "history_latest",
                    None,
                    (0..n)
                        .filter_map(|_| conversations.choose(rng))
                        .map(|&(conversation, _)| Task::History { conversation, before: None })
                        .collect(),
                ),
                ("history_deep", None, deep_tasks(rng, &deep, n)),
                ("conversation_list", None, (0..n).map(|_| Task::List).collect()),
            ];
            for &(class, query) in SEARCHES {
                phases.push(("message_search", Some(class), (0..n).map(|_| Task::Search { query }).collect()));
            }
            for (operation, class, tasks) in phases {
                if tasks.is_empty() {
                    continue;
                }
                let http = FigureKey { operation, class, path: Path::Http, concurrency, reference_for: None };
                let sql = FigureKey { path: Path::Sql, reference_for: Some(Box::new(http.clone())), ..http.clone() };
                let run = phase::timed(self.cpu, &tasks, concurrency, |task| self.over_http(task)).await?;
                figures.record(http, run);
                let run = phase::timed(self.cpu, &tasks, concurrency, |task| self.direct(task)).await?;
                figures.record(sql, run);
            }
        }
        Ok(())
    }

    async fn over_http(&self, task: &Task) -> anyhow::Result<usize> {
        let (path, params): (String, Vec<(&str, String)>) = match task {
            Task::History { conversation, before } => {
                let mut params = vec![("limit", PAGE.to_string())];
                if let Some(before) = before {
                    params.push(("before", before.to_string()));
                }
                (format!("/api/v1/conversations/{}/messages", conversation.0), params)
            }
            Task::List => ("/api/v1/conversations".to_owned(), vec![("limit", PAGE.to_string())]),
            Task::Search { query } => (
                "/api/v1/messages/search".to_owned(),
                vec![("q", (*query).to_owned()), ("limit", SEARCH_PAGE.to_string())],
            ),
        };
        let response = self.client.get(self.server.url(&path)).bearer_auth(self.token).query(&params).send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("GET {path} answered {status}: {body}");
        }
        Ok(response.json::<Items>().await.with_context(|| format!("GET {path}: unexpected body"))?.items.len())
    }

    /// The statements the service runs for the same request, without HTTP, the token
    /// and session check, the membership check and JSON.
    async fn direct(&self, task: &Task) -> anyhow::Result<usize> {
        Ok(match task {
            Task::History { conversation, before } => {
                let window = Window::Before(before.unwrap_or(i64::MAX));
                let rows = db::messages::history(self.pool, *conversation, 0, window, PAGE).await?;
                let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
                db::messages::reactions_for(self.pool, *conversation, &seqs, self.hub).await?;
                rows.len()
            }
            Task::List => db::conversations::list_for_user(self.pool, self.hub, false, None, PAGE + 1).await?.len(),
            Task::Search { query } => {
                db::message_search::search(self.pool, self.hub, query, None, None, SEARCH_PAGE + 1).await?.0.len()
            }
        })
    }
}

/// Pages of 50 before a random seq in the oldest tenth of long conversations.
fn deep_tasks(rng: &mut StdRng, deep: &[(ConversationId, i64)], n: usize) -> Vec<Task> {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(&(conversation, last)) = deep.choose(rng) else { break };
        tasks.push(Task::History { conversation, before: Some(rng.gen_range(PAGE + 1..=last / 10 + PAGE + 1)) });
    }
    tasks
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the statements behind each figure, with the
/// arguments the application binds.
async fn explain(
    pool: &PgPool,
    hub: UserId,
    conversations: &[(ConversationId, i64)],
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let Some(&(longest, last_seq)) = conversations.iter().max_by_key(|(_, last)| *last) else {
        return Ok(Vec::new());
    };
    let mut plans = Vec::new();
    let history = format!("EXPLAIN (ANALYZE, BUFFERS) {}", db::messages::HISTORY_NEWEST_SQL);
    for (name, before) in [("history, latest page", i64::MAX), ("history, deep page", last_seq / 10 + PAGE + 1)] {
        let plan: Vec<String> = sqlx::query_scalar(&history)
            .bind(longest)
            .bind(0_i64)
            .bind(before)
            .bind(PAGE)
            .fetch_all(pool)
            .await
            .with_context(|| format!("EXPLAIN {name}"))?;
        plans.push((format!("{name} (conversation {}, {last_seq} messages)", longest.0), plan));
    }
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {}", db::conversations::LIST_SQL))
        .bind(hub)
        .bind(false)
        .bind(None::<bool>)
        .bind(None::<OffsetDateTime>)
        .bind(None::<i64>)
        .bind(PAGE + 1)
        .fetch_all(pool)
        .await
        .context("EXPLAIN the conversation list")?;
    plans.push((format!("conversation list ({} conversations)", conversations.len()), plan));
    for &(class, query) in SEARCHES {
        let (_, answered) = db::message_search::search(pool, hub, query, None, None, SEARCH_PAGE + 1).await?;
        let pattern = db::message_search::ilike_pattern(query);
        let sql = match answered {
            SearchPlan::Trigram => db::message_search::TRIGRAM_SQL,
            SearchPlan::Recent | SearchPlan::Everything => db::message_search::RECENT_SQL,
        };
        let (conversations, window) = match answered {
            SearchPlan::Recent => (RECENT_CONVERSATIONS, RECENT_WINDOW),
            _ => (i64::MAX / 4, i64::MAX / 4),
        };
        let explained = format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
        let mut statement = sqlx::query_scalar::<_, String>(&explained)
            .bind(hub)
            .bind(pattern)
            .bind(None::<i64>)
            .bind(None::<OffsetDateTime>)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(SEARCH_PAGE + 1);
        if answered != SearchPlan::Trigram {
            statement = statement.bind(conversations).bind(window);
        }
        let plan = statement.fetch_all(pool).await.with_context(|| format!("EXPLAIN message search {class}"))?;
        plans.push((format!("message search, {class} (q = {query:?}), answered by the {answered:?} step"), plan));
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_shape_holds_ten_million_messages_half_in_long_conversations() {
        let shape = Shape::new(100_000, 10_000_000).unwrap();
        assert_eq!((shape.peers, shape.long_conversations), (1_000, 1_000));
        assert_eq!(shape.long_length, 5_000);
        assert_eq!(shape.short_length, 50);
        let total = i64::from(shape.long_conversations) * shape.long_length
            + i64::from(shape.conversations - shape.long_conversations) * shape.short_length;
        assert!((9_900_000..=10_000_000).contains(&total), "{total}");
    }

    #[test]
    fn too_many_conversations_for_distinct_pairs_are_refused() {
        assert!(Shape::new(500_000, 1_000_000).is_ok());
        assert!(Shape::new(500_001, 1_000_000).is_err());
        let tiny = Shape::new(10, 1_000).unwrap();
        assert_eq!((tiny.peers, tiny.long_conversations, tiny.long_length), (10, 1, 500));
    }
}
