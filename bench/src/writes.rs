//! Workload "writes": the durable write path, against PostgreSQL's own ceiling.
//!
//! For 1, 16 and 64 concurrent senders, over many conversations (each sender has its
//! own 16) and over 10 hot conversations that every sender shares, it measures:
//! - **writer**: senders calling the batching [`MessageWriter`] directly, each waiting
//!   for its ack (= its commit) before sending again;
//! - **pgbench** (the reference, same run, same database, same tables and indexes): a
//!   plain script storing one message per transaction — bump the conversation's
//!   counters, insert the message, commit.
//!
//! Both are durable (`synchronous_commit` as configured, on by default). Then, at 64
//! senders, a paced run at half the writer's maximum rate gives the ack latency an
//! operator would see under load. Figures are medians over `--runs`.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context;
use goim::{
    config::Config,
    domain::{ConversationId, MessageInput, NewMessage, UserId},
    events::EventBus,
    writer::{MessageWriter, PendingMessage},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::task::TaskTracker;

use super::{
    Machine,
    cpu::CpuMeter,
    load_average,
    stats::{Latencies, median},
    write_json,
};
use crate::args::WritesBenchArgs;

const SENDERS: i64 = 64;
const CONVERSATIONS_PER_SENDER: i64 = 16;
const HOT_CONVERSATIONS: i64 = 10;
const BODY: &str = "The quick brown fox jumps over the lazy dog; the five boxing wizards jump quickly. 0123456789";

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    machine: Machine,
    load_before: Option<String>,
    load_after: Option<String>,
    seconds_per_measurement: u64,
    runs: u32,
    figures: Vec<Figure>,
    paced: Option<Paced>,
}

#[derive(Serialize, Clone)]
struct Figure {
    scenario: &'static str,
    path: &'static str,
    senders: u32,
    /// Medians across runs.
    messages_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_message: Option<f64>,
    per_run_messages_per_sec: Vec<f64>,
}

#[derive(Serialize)]
struct Paced {
    senders: u32,
    target_per_sec: f64,
    achieved_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

struct Scenario {
    name: &'static str,
    /// Per sender: the conversations it may write to.
    conversations: Vec<Vec<i64>>,
    senders: Vec<i64>,
    /// Contiguous id range of the scenario's conversations (for pgbench's random()).
    conversation_range: (i64, i64),
}

pub async fn run(config: Config, pool: PgPool, args: &WritesBenchArgs) -> anyhow::Result<()> {
    let load_before = load_average();
    let machine = Machine::probe(&pool).await?;
    println!("machine: {}", machine.describe());
    let (spread, hot) = seed(&pool).await?;
    let pgbench = find_pgbench(&config)?;
    let password = database_password(&config)?;
    let connect = pool.connect_options();
    let target = PgTarget {
        host: connect.get_host().to_owned(),
        port: connect.get_port(),
        user: connect.get_username().to_owned(),
        database: connect.get_database().unwrap_or("goim").to_owned(),
        password,
    };
    let seconds = Duration::from_secs(args.seconds.into());
    let meter = CpuMeter::new(&pool).await;
    let tasks = TaskTracker::new();
    let writer = MessageWriter::start(
        pool.clone(),
        EventBus::new(),
        std::sync::Arc::new(goim::metrics::Metrics::new()),
        &tasks,
        config.database.writer_lanes as usize,
        config.database.writer_queue as usize,
        // The seeded conversations have no friendships behind them; with `anyone` the
        // batch still reads and decides every policy fact, as a send does.
        std::sync::Arc::new(goim::service::messages::SendAdmission::new(goim::config::DirectMessagePolicy::Anyone)),
        None,
    );

    let mut figures = Vec::new();
    for scenario in [&spread, &hot] {
        for &senders in &args.senders {
            let mut writer_runs = Vec::new();
            let mut pgbench_runs = Vec::new();
            for _ in 0..args.runs {
                writer_runs.push(measure_writer(&writer, scenario, senders, seconds, &meter, None).await?);
                pgbench_runs.push(measure_pgbench(&pgbench, &target, scenario, senders, seconds, &meter)?);
            }
            let writer_figure = summarise(scenario.name, "writer", senders, &writer_runs);
            let pgbench_figure = summarise(scenario.name, "pgbench", senders, &pgbench_runs);
            println!("{}", line(&writer_figure, Some(&pgbench_figure)));
            println!("{}", line(&pgbench_figure, None));
            figures.push(writer_figure);
            figures.push(pgbench_figure);
        }
    }

    let max_spread = figures
        .iter()
        .filter(|f| f.scenario == "spread" && f.path == "writer")
        .map(|f| (f.senders, f.messages_per_sec))
        .max_by_key(|(senders, _)| *senders);
    let paced = match max_spread {
        Some((senders, max_rate)) if max_rate > 0.0 => {
            let target_rate = max_rate / 2.0;
            let run = measure_writer(&writer, &spread, senders, seconds, &meter, Some(target_rate)).await?;
            let paced = Paced {
                senders,
                target_per_sec: target_rate,
                achieved_per_sec: run.rate,
                p50_ms: run.p50_ms,
                p99_ms: run.p99_ms,
            };
            println!(
                "paced spread writer c={senders}: target {:.0}/s achieved {:.0}/s  ack p50 {:.2} ms  p99 {:.2} ms",
                paced.target_per_sec, paced.achieved_per_sec, paced.p50_ms, paced.p99_ms
            );
            Some(paced)
        }
        _ => None,
    };
    writer.shutdown();
    tasks.close();
    tasks.wait().await;

    let report = Report {
        workload: "writes",
        machine,
        load_before,
        load_after: load_average(),
        seconds_per_measurement: args.seconds.into(),
        runs: args.runs,
        figures,
        paced,
    };
    write_json(&args.out, &report)?;
    println!("results written to {}", args.out.display());
    Ok(())
}

struct RunFigures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: Option<f64>,
}

fn summarise(scenario: &'static str, path: &'static str, senders: u32, runs: &[RunFigures]) -> Figure {
    Figure {
        scenario,
        path,
        senders,
        messages_per_sec: median(runs.iter().map(|r| r.rate)).unwrap_or(f64::NAN),
        p50_ms: median(runs.iter().map(|r| r.p50_ms)).unwrap_or(f64::NAN),
        p99_ms: median(runs.iter().map(|r| r.p99_ms)).unwrap_or(f64::NAN),
        cpu_us_per_message: median(runs.iter().filter_map(|r| r.cpu_us)),
        per_run_messages_per_sec: runs.iter().map(|r| r.rate).collect(),
    }
}

fn line(figure: &Figure, reference: Option<&Figure>) -> String {
    let mut text = format!(
        "{:<7} {:<8} c={:<3} {:>9.0} msg/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        figure.scenario, figure.path, figure.senders, figure.messages_per_sec, figure.p50_ms, figure.p99_ms
    );
    if let Some(cpu) = figure.cpu_us_per_message {
        text.push_str(&format!("  cpu {cpu:.0} µs/msg"));
    }
    if let Some(reference) = reference {
        text.push_str(&format!("  ×{:.2} of pgbench", figure.messages_per_sec / reference.messages_per_sec));
    }
    text
}

/// Senders each loop: send one message, wait for its ack. With `pace`, the senders
/// together aim at that many messages per second (open loop per sender).
async fn measure_writer(
    writer: &MessageWriter,
    scenario: &Scenario,
    senders: u32,
    duration: Duration,
    meter: &CpuMeter,
    pace: Option<f64>,
) -> anyhow::Result<RunFigures> {
    let before = meter.snapshot();
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::new();
    for sender_index in 0..senders as usize {
        let writer = writer.clone();
        let sender = UserId(scenario.senders[sender_index % scenario.senders.len()]);
        let conversations = scenario.conversations[sender_index % scenario.conversations.len()].clone();
        let interval = pace.map(|rate| Duration::from_secs_f64(f64::from(senders) / rate));
        handles.push(tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut latencies = Latencies::default();
            let mut next_at = Instant::now();
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next_at.into()).await;
                    next_at += interval;
                }
                let conversation = ConversationId(conversations[rng.gen_range(0..conversations.len())]);
                let message = NewMessage::parse(
                    MessageInput {
                        client_msg_id: uuid::Uuid::new_v4(),
                        kind: None,
                        body: Some(BODY.to_owned()),
                        content: None,
                        reply_to_seq: None,
                        mentions: None,
                        mention_all: None,
                    },
                    16 * 1024,
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                let sent = Instant::now();
                writer
                    .submit(PendingMessage { conversation_id: conversation, sender_id: sender, message })
                    .await
                    .map_err(|e| anyhow::anyhow!("send failed: {e}"))?;
                latencies.record(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Latencies::default();
    for handle in handles {
        all.merge(handle.await.context("sender task")??);
    }
    let wall = started.elapsed();
    let cpu = before.per_op(&meter.snapshot(), all.len()).map(|c| c.goim_us + c.postgres_us.unwrap_or(0.0));
    Ok(RunFigures {
        rate: all.len() as f64 / wall.as_secs_f64(),
        p50_ms: all.percentile(0.5).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        p99_ms: all.percentile(0.99).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        cpu_us: cpu,
    })
}

struct PgTarget {
    host: String,
    port: u16,
    user: String,
    database: String,
    password: Option<String>,
}

/// The same durable work as one stored message, one message per transaction.
fn measure_pgbench(
    pgbench: &PathBuf,
    target: &PgTarget,
    scenario: &Scenario,
    senders: u32,
    duration: Duration,
    meter: &CpuMeter,
) -> anyhow::Result<RunFigures> {
    let dir = TempDir::new()?;
    let script = dir.path().join("one_message.sql");
    let (low, high) = scenario.conversation_range;
    let (sender_low, sender_high) = (scenario.senders[0], scenario.senders[scenario.senders.len() - 1]);
    std::fs::write(
        &script,
        format!(
            "\\set conversation random({low}, {high})\n\
             \\set sender random({sender_low}, {sender_high})\n\
             BEGIN;\n\
             UPDATE conversations SET last_seq = last_seq + 1, last_version = last_version + 1, last_message_at = now() WHERE id = :conversation RETURNING last_seq AS seq \\gset\n\
             INSERT INTO messages (conversation_id, seq, version, sender_id, client_msg_id, request_hash, kind, body) VALUES (:conversation, :seq, :seq, :sender, gen_random_uuid(), '\\x00', 'text', '{BODY}');\n\
             COMMIT;\n"
        ),
    )?;
    let before = meter.snapshot();
    let mut command = Command::new(pgbench);
    command
        .args(["-n", "-M", "prepared", "-l", "--log-prefix"])
        .arg(dir.path().join("log"))
        .args(["-c", &senders.to_string(), "-j", &senders.clamp(1, 4).to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string(), "-f"])
        .arg(&script)
        .args(["-h", &target.host, "-p", &target.port.to_string(), "-U", &target.user, &target.database]);
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().context("cannot run pgbench")?;
    if !output.status.success() {
        anyhow::bail!("pgbench failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rate: f64 = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .context("no tps in pgbench output")?;
    let mut latencies = Latencies::default();
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log")) {
            continue;
        }
        for log_line in std::fs::read_to_string(&path)?.lines() {
            // client_id transaction_no time_us script_no epoch epoch_us
            if let Some(us) = log_line.split_whitespace().nth(2).and_then(|t| t.parse::<u64>().ok()) {
                latencies.record(Duration::from_micros(us));
            }
        }
    }
    let transactions = latencies.len().max(1);
    // pgbench's own CPU is not in our process; PostgreSQL's is, like for the writer.
    let cpu = before.per_op(&meter.snapshot(), transactions).and_then(|c| c.postgres_us);
    Ok(RunFigures {
        rate,
        p50_ms: latencies.percentile(0.5).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        p99_ms: latencies.percentile(0.99).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        cpu_us: cpu,
    })
}

/// A scratch folder for pgbench's script and logs, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("goim-pgbench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_pgbench(config: &Config) -> anyhow::Result<PathBuf> {
    let pgdata = goim::pg::cluster_dir(&config.managed.data_dir);
    let dir = goim::pg::find_bin_dir(config.managed.pg_bin.as_deref(), &pgdata)?;
    let path = goim::pg::binaries::executable(&dir, "pgbench");
    anyhow::ensure!(path.is_file(), "pgbench not found next to initdb in {}", dir.display());
    Ok(path)
}

/// The password for pgbench: from `DATABASE_URL`, or the managed cluster's file.
fn database_password(config: &Config) -> anyhow::Result<Option<String>> {
    match &config.database.database_url {
        Some(url) => Ok(url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned))),
        None => {
            let path = config.managed.data_dir.join("postgres-password");
            Ok(Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned(),
            ))
        }
    }
}

/// Senders `wbench_s1..64`, partners, 16 conversations per sender ("spread") and 10
/// conversations every sender belongs to ("hot"). Reused by later runs.
async fn seed(pool: &PgPool) -> anyhow::Result<(Scenario, Scenario)> {
    let partners = SENDERS * CONVERSATIONS_PER_SENDER;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE username = 'wbench_s1')").fetch_one(pool).await?;
    if !exists {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO users (username, nickname, password_hash)
             SELECT 'wbench_s' || i, 'wbench sender ' || i, 'bench-no-login' FROM generate_series(1, $1) AS i",
        )
        .bind(SENDERS)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO users (username, nickname, password_hash)
             SELECT 'wbench_p' || i, 'wbench partner ' || i, 'bench-no-login' FROM generate_series(1, $1) AS i",
        )
        .bind(partners)
        .execute(&mut *tx)
        .await?;
        // Direct conversations: sender s with partners (s-1)*16+1 .. s*16; then the hot
        // ten, shared by all senders.
        sqlx::query(
            "INSERT INTO conversations (kind, user_low, user_high)
             SELECT 'direct', least(s.id, p.id), greatest(s.id, p.id)
               FROM generate_series(1, $1) AS i
               JOIN users s ON s.username = 'wbench_s' || ((i - 1) / $2 + 1)
               JOIN users p ON p.username = 'wbench_p' || i
              ORDER BY i",
        )
        .bind(partners)
        .bind(CONVERSATIONS_PER_SENDER)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO conversation_members (conversation_id, user_id)
             SELECT c.id, u.id FROM conversations c JOIN users u ON u.id IN (c.user_low, c.user_high)
              WHERE u.username LIKE 'wbench\\_%'",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO conversations (kind, user_low, user_high)
             SELECT 'direct', least(p.id, q.id), greatest(p.id, q.id)
               FROM generate_series(1, $1) AS i
               JOIN users p ON p.username = 'wbench_p' || (2 * i - 1)
               JOIN users q ON q.username = 'wbench_p' || (2 * i)
              ORDER BY i
             ON CONFLICT DO NOTHING",
        )
        .bind(HOT_CONVERSATIONS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let senders: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username LIKE 'wbench\\_s%' ORDER BY id")
        .fetch_all(pool)
        .await?;
    let spread_rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT c.id, s.id FROM conversations c
           JOIN users s ON s.id IN (c.user_low, c.user_high) AND s.username LIKE 'wbench\\_s%'
          ORDER BY c.id",
    )
    .fetch_all(pool)
    .await?;
    let hot: Vec<i64> = sqlx::query_scalar(
        "SELECT c.id FROM conversations c
           JOIN users p ON p.id = c.user_low AND p.username LIKE 'wbench\\_p%'
           JOIN users q ON q.id = c.user_high AND q.username LIKE 'wbench\\_p%'
          ORDER BY c.id LIMIT $1",
    )
    .bind(HOT_CONVERSATIONS)
    .fetch_all(pool)
    .await?;
    // Every sender belongs to every hot conversation.
    sqlx::query(
        "INSERT INTO conversation_members (conversation_id, user_id)
         SELECT c, s FROM unnest($1::bigint[]) AS c, unnest($2::bigint[]) AS s ON CONFLICT DO NOTHING",
    )
    .bind(&hot)
    .bind(&senders)
    .execute(pool)
    .await?;
    let mut per_sender: std::collections::BTreeMap<i64, Vec<i64>> = std::collections::BTreeMap::new();
    for (conversation, sender) in &spread_rows {
        per_sender.entry(*sender).or_default().push(*conversation);
    }
    let spread_ids: Vec<i64> = spread_rows.iter().map(|(c, _)| *c).collect();
    anyhow::ensure!(!senders.is_empty() && !hot.is_empty() && !spread_ids.is_empty(), "seeding produced no data");
    let range = |ids: &[i64]| (ids.iter().copied().min().unwrap_or(0), ids.iter().copied().max().unwrap_or(0));
    anyhow::ensure!(
        range(&spread_ids).1 - range(&spread_ids).0 + 1 == spread_ids.len() as i64,
        "spread conversations are not contiguous; rerun on a new database (users are never deleted)"
    );
    Ok((
        Scenario {
            name: "spread",
            conversations: per_sender.into_values().collect(),
            senders: senders.clone(),
            conversation_range: range(&spread_ids),
        },
        Scenario { name: "hot", conversations: vec![hot.clone()], senders, conversation_range: range(&hot) },
    ))
}
