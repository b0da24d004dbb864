//! Workload "chat" (W1, 1:1 durable chat): `pairs` sender→receiver pairs, all online
//! over the real WebSocket protocol, each sender sending `messages` messages of ~100
//! bytes with at most `in_flight` unacknowledged. Reports delivered messages/s, send→ack
//! and send→receive latency, CPU per message, and checks that every message was
//! received exactly once, in order, and stored.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use goim::{
    auth::TokenKeys,
    config::Config,
    domain::{SessionId, UserId},
};
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use super::{
    BenchServer, Machine,
    cpu::{CpuMeter, CpuPerOp},
    http_client, load_average,
    stats::Latencies,
    wait_until_indexed, write_json,
};
use crate::{
    args::ChatBenchArgs,
    client::{ServerFrame, next_text, send_request, take_room},
    text::ChatText,
};

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    machine: Machine,
    load_before: Option<String>,
    load_after: Option<String>,
    pairs: u32,
    instances: u32,
    /// `in-process` (client and server in the bench process) or `separate`.
    server: &'static str,
    messages_per_sender: u32,
    in_flight: u32,
    /// The paced total send rate, when `--rate` was given.
    rate: Option<u32>,
    delivered: u64,
    stored: i64,
    wall_seconds: f64,
    delivered_per_sec: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    receive_p50_ms: f64,
    receive_p99_ms: f64,
    cpu_us_per_message: Option<f64>,
    /// Of `cpu_us_per_message`: GOIM's share (the whole bench process when in-process).
    goim_cpu_us_per_message: Option<f64>,
    /// Of `cpu_us_per_message`: PostgreSQL's share, when its processes are visible.
    postgres_cpu_us_per_message: Option<f64>,
    /// The load generator's own CPU per message (not in `cpu_us_per_message`), when the
    /// server runs in its own process.
    client_cpu_us_per_message: Option<f64>,
    duplicates_or_out_of_order: u64,
    /// How long after the last delivery every message was in a search block (`None`:
    /// the server has no search blocks, or they were not done within 30 s).
    search_indexed_ms_after_last_delivery: Option<f64>,
}

/// Where the application under test runs.
pub(crate) enum Target {
    InProcess(BenchServer),
    Separate(String),
}

impl Target {
    pub(crate) fn url(&self, path: &str) -> String {
        match self {
            Target::InProcess(server) => server.url(path),
            Target::Separate(base) => format!("{}{path}", base.trim_end_matches('/')),
        }
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        match self {
            Target::InProcess(server) => server.stop().await,
            Target::Separate(_) => Ok(()),
        }
    }
}

/// CPU seconds the separate servers report in `/metrics` (`process_cpu_seconds_total`).
pub(crate) async fn servers_cpu(http: &reqwest::Client, servers: &[Target]) -> anyhow::Result<Option<f64>> {
    let mut total = 0.0;
    for server in servers {
        let Target::Separate(_) = server else { return Ok(None) };
        let metrics = http.get(server.url("/metrics")).send().await?.error_for_status()?.text().await?;
        let seconds = metrics
            .lines()
            .find_map(|line| line.strip_prefix("process_cpu_seconds_total "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .context("the server's /metrics has no process_cpu_seconds_total")?;
        total += seconds;
    }
    Ok(Some(total))
}

/// GOIM's CPU per operation and, when the servers run in their own processes, the
/// client's (this process) apart from it: with separate servers GOIM's figure is theirs
/// (`/metrics` before and after), otherwise the whole bench process's.
pub(crate) fn goim_and_client_cpu(
    servers_before: Option<f64>,
    servers_after: Option<f64>,
    measured: Option<CpuPerOp>,
    ops: usize,
) -> (Option<f64>, Option<f64>) {
    match (servers_before, servers_after) {
        (Some(before), Some(after)) => {
            (Some((after - before) * 1e6 / ops.max(1) as f64), measured.map(|own| own.goim_us))
        }
        _ => (measured.map(|own| own.goim_us), None),
    }
}

/// Waits until every instance's `/readyz` is 200 (its relay listens), at most 10 s.
pub(crate) async fn wait_ready(servers: &[Target]) -> anyhow::Result<()> {
    let http = http_client()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    for server in servers {
        loop {
            let ready = http.get(server.url("/readyz")).send().await.is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{} never became ready", server.url(""));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

pub async fn run(config: Config, pool: PgPool, args: &ChatBenchArgs) -> anyhow::Result<()> {
    let load_before = load_average();
    let machine = Machine::probe(&pool).await?;
    println!("machine: {}", machine.describe());
    let secret = config.auth.jwt_secret.clone().context("no JWT secret")?;
    let keys = TokenKeys::new(&secret, Duration::from_secs(3600));
    let pairs = seed(&pool, args.pairs).await?;
    let mut server_config = config.clone();
    server_config.websocket.ws_rate_burst = 1_000_000;
    server_config.websocket.ws_rate_per_sec = 1_000_000;
    server_config.websocket.ws_outbound_queue = 4096;
    let mut servers = Vec::new();
    if args.urls.is_empty() {
        for _ in 0..args.instances {
            // Each instance has its own pool, as separate processes would.
            let own_pool = goim::db::connect(&server_config, (*pool.connect_options()).clone()).await?;
            servers.push(Target::InProcess(BenchServer::start(server_config.clone(), own_pool)?));
        }
    } else {
        servers.extend(args.urls.iter().cloned().map(Target::Separate));
    }
    let instances = servers.len() as u32;
    wait_ready(&servers).await?;
    let http = http_client()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Connect every user first: W1 has everyone online before the first send.
    let mut sockets = Vec::new();
    for pair in &pairs {
        for (user, server) in [(pair.sender, &servers[0]), (pair.receiver, &servers[servers.len() - 1])] {
            let socket = connect(&pool, &keys, &http, server, user, now).await?;
            sockets.push(socket);
        }
    }

    let meter = CpuMeter::new(&pool).await;
    let before = meter.snapshot();
    let servers_before = servers_cpu(&http, &servers).await?;
    let started = Instant::now();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut sockets = sockets.into_iter();
    for pair in &pairs {
        let (Some(sender_socket), Some(receiver_socket)) = (sockets.next(), sockets.next()) else { break };
        let (messages, in_flight, conversation) = (args.messages, args.in_flight, pair.conversation);
        // Paced: each sender sends its share of `--rate` at even intervals (latency at a
        // chosen load rather than at saturation).
        let mut pace = args.rate.map(|rate| {
            let mut interval = tokio::time::interval(Duration::from_secs_f64(f64::from(args.pairs) / f64::from(rate)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        // When each of this pair's messages was sent, by its number: read by the sender's
        // ack reader and by the receiver, so neither waits on another pair's lock.
        let sent_at = SendTimes::new(messages);
        let (acks_sent_at, received_sent_at) = (sent_at.clone(), sent_at.clone());
        senders.push(tokio::spawn(async move {
            let (mut sink, mut stream) = sender_socket.split();
            let mut text = ChatText::new(conversation.unsigned_abs());
            let mut rng = StdRng::seed_from_u64(conversation.unsigned_abs());
            let window = Arc::new(Semaphore::new(in_flight as usize));
            let acks_window = window.clone();
            let reader = tokio::spawn(async move {
                let mut acks = Latencies::default();
                while acks.len() < messages as usize {
                    let Some(text) = next_text(&mut stream).await else { break };
                    let Ok(reply) = ServerFrame::parse(&text) else { continue };
                    let sent = reply.id.parse().ok().and_then(|i| acks_sent_at.get(i));
                    if let (Some(sent), "reply") = (sent, reply.r#type) {
                        acks.record(sent.elapsed());
                        acks_window.add_permits(1);
                    }
                }
                acks
            });
            for i in 0..messages {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                take_room(&window).await?;
                // The first word tells the receiver which send this is.
                let body = format!("m{conversation}x{i} {}", text.message());
                let frame = send_request(i, conversation, &mut rng, &body)?;
                sent_at.record(i);
                sink.send(Message::text(frame)).await.context("send")?;
            }
            anyhow::Ok(reader.await.context("ack reader")?)
        }));
        let sent_at = received_sent_at;
        receivers.push(tokio::spawn(async move {
            let (_, mut stream) = receiver_socket.split();
            let mut received = Latencies::default();
            let mut seen = vec![false; messages as usize];
            let mut last_seq = 0i64;
            let mut anomalies = 0u64;
            while received.len() < messages as usize {
                let Some(text) = next_text(&mut stream).await else { break };
                let Some(message) = ServerFrame::parse(&text).ok().and_then(ServerFrame::created) else {
                    continue;
                };
                if message.seq != last_seq + 1 {
                    anomalies += 1;
                }
                last_seq = message.seq;
                let number = message.body.as_deref().and_then(|body| send_number(body, conversation));
                let first =
                    number.and_then(|i| seen.get_mut(i as usize)).is_some_and(|seen| !std::mem::replace(seen, true));
                match number.and_then(|i| sent_at.get(i)) {
                    Some(sent) if first => received.record(sent.elapsed()),
                    _ => anomalies += 1,
                }
            }
            (received, anomalies)
        }));
    }
    let mut acks = Latencies::default();
    for sender in senders {
        acks.merge(sender.await.context("sender task")??);
    }
    let (received, anomalies) = gather(receivers).await?;
    let wall = started.elapsed();
    let conversations: Vec<i64> = pairs.iter().map(|p| p.conversation).collect();
    // Indexing for search runs after the commits: its CPU belongs to these messages too.
    let indexed_after = wait_until_indexed(&pool, &conversations).await;
    let measured = before.per_op(&meter.snapshot(), received.len());
    let servers_after = servers_cpu(&http, &servers).await?;
    let (goim_cpu, client_cpu) = goim_and_client_cpu(servers_before, servers_after, measured, received.len());
    let postgres_cpu = measured.and_then(|c| c.postgres_us);
    let cpu = goim_cpu.map(|goim| goim + postgres_cpu.unwrap_or(0.0));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE conversation_id = ANY($1)")
        .bind(&conversations)
        .fetch_one(&pool)
        .await?;
    for server in servers {
        server.stop().await?;
    }

    let ms = |l: &Latencies, q: f64| l.percentile(q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let report = Report {
        workload: "chat (W1)",
        machine,
        load_before,
        load_after: load_average(),
        pairs: args.pairs,
        instances,
        server: if args.urls.is_empty() { "in-process" } else { "separate" },
        messages_per_sender: args.messages,
        in_flight: args.in_flight,
        rate: args.rate,
        delivered: received.len() as u64,
        stored,
        wall_seconds: wall.as_secs_f64(),
        delivered_per_sec: received.len() as f64 / wall.as_secs_f64(),
        ack_p50_ms: ms(&acks, 0.5),
        ack_p99_ms: ms(&acks, 0.99),
        receive_p50_ms: ms(&received, 0.5),
        receive_p99_ms: ms(&received, 0.99),
        cpu_us_per_message: cpu,
        goim_cpu_us_per_message: goim_cpu,
        postgres_cpu_us_per_message: postgres_cpu,
        client_cpu_us_per_message: client_cpu,
        duplicates_or_out_of_order: anomalies,
        search_indexed_ms_after_last_delivery: indexed_after.map(|d| d.as_secs_f64() * 1e3),
    };
    println!(
        "{} ({} instance(s), {}): {} pairs × {} msgs: {:.0} msgs/s delivered; ack p50 {:.1} ms p99 {:.1} ms; receive p50 {:.1} ms p99 {:.1} ms; cpu {:.0} µs/msg (goim {:.0}, postgres {:.0}; client {:.0}); delivered {} stored {} anomalies {}; search-indexed {:.0} ms after the last delivery",
        if instances > 1 { "W5" } else { "W1" },
        instances,
        report.server,
        report.pairs,
        report.messages_per_sender,
        report.delivered_per_sec,
        report.ack_p50_ms,
        report.ack_p99_ms,
        report.receive_p50_ms,
        report.receive_p99_ms,
        report.cpu_us_per_message.unwrap_or(f64::NAN),
        report.goim_cpu_us_per_message.unwrap_or(f64::NAN),
        report.postgres_cpu_us_per_message.unwrap_or(f64::NAN),
        report.client_cpu_us_per_message.unwrap_or(f64::NAN),
        report.delivered,
        report.stored,
        report.duplicates_or_out_of_order,
        report.search_indexed_ms_after_last_delivery.unwrap_or(f64::NAN)
    );
    write_json(&args.out, &report)?;
    anyhow::ensure!(
        report.delivered as i64 == i64::from(args.pairs) * i64::from(args.messages)
            && report.stored >= report.delivered as i64,
        "not every message was delivered and stored"
    );
    anyhow::ensure!(report.duplicates_or_out_of_order == 0, "messages arrived twice or out of order");
    Ok(())
}

/// The send number in a body's first word (`m<conversation>x<number>`), if it is this
/// conversation's.
fn send_number(body: &str, conversation: i64) -> Option<u32> {
    let marker = body.split(' ').next()?.strip_prefix('m')?;
    let (from, number) = marker.split_once('x')?;
    (from.parse::<i64>().ok()? == conversation).then(|| number.parse().ok()).flatten()
}

/// One pair's send instants, by send number.
#[derive(Clone)]
struct SendTimes(Arc<std::sync::Mutex<Vec<Option<Instant>>>>);

impl SendTimes {
    fn new(messages: u32) -> Self {
        Self(Arc::new(std::sync::Mutex::new(vec![None; messages as usize])))
    }

    fn record(&self, number: u32) {
        if let Ok(mut times) = self.0.lock()
            && let Some(slot) = times.get_mut(number as usize)
        {
            *slot = Some(Instant::now());
        }
    }

    fn get(&self, number: u32) -> Option<Instant> {
        self.0.lock().ok()?.get(number as usize).copied().flatten()
    }
}

/// Every receiver's latencies and anomalies (duplicates, gaps, unknown messages), merged.
pub(crate) async fn gather(
    receivers: Vec<tokio::task::JoinHandle<(Latencies, u64)>>,
) -> anyhow::Result<(Latencies, u64)> {
    let mut received = Latencies::default();
    let mut anomalies = 0;
    for receiver in receivers {
        let (latencies, bad) = receiver.await.context("receiver task")?;
        received.merge(latencies);
        anomalies += bad;
    }
    Ok((received, anomalies))
}

/// A socket of `user` on `server`: a session inserted directly, an access token signed
/// with the shared secret, a ticket, the upgrade.
pub(crate) async fn connect(
    pool: &PgPool,
    keys: &TokenKeys,
    http: &reqwest::Client,
    server: &Target,
    user: UserId,
    now: i64,
) -> anyhow::Result<Socket> {
    let session = SessionId(uuid::Uuid::new_v4());
    sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, now() + interval '1 day')")
        .bind(session)
        .bind(user)
        .execute(pool)
        .await?;
    let token = keys.issue(user, session, now)?;
    let ticket: Value =
        http.post(server.url("/api/v1/ws/ticket")).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
    let ticket = ticket["ticket"].as_str().context("ticket")?;
    let url = format!("{}/api/v1/ws?ticket={ticket}", server.url("").replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("goim.v1"));
    let (socket, _) = tokio_tungstenite::connect_async(request).await.context("websocket connect")?;
    Ok(socket)
}

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Pair {
    sender: UserId,
    receiver: UserId,
    conversation: i64,
}

/// `pairs` new friend pairs with their direct conversation (fresh for every run, so
/// counts and order can be checked exactly).
async fn seed(pool: &PgPool, pairs: u32) -> anyhow::Result<Vec<Pair>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("w1_{}_", &run[..8]);
    let mut tx = pool.begin().await?;
    let users: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO users (username, nickname, password_hash)
         SELECT $1 || i, 'W1 user ' || i, 'bench-no-login' FROM generate_series(1, $2) AS i
         RETURNING id, username",
    )
    .bind(&prefix)
    .bind(i64::from(pairs) * 2)
    .fetch_all(&mut *tx)
    .await?;
    let mut ids: Vec<i64> = users.iter().map(|(id, _)| *id).collect();
    ids.sort();
    let mut result = Vec::new();
    for chunk in ids.chunks(2) {
        let [a, b] = chunk else { continue };
        sqlx::query("INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2), ($2, $1)")
            .bind(a)
            .bind(b)
            .execute(&mut *tx)
            .await?;
        let conversation: i64 = sqlx::query_scalar(
            "INSERT INTO conversations (kind, user_low, user_high) VALUES ('direct', $1, $2) RETURNING id",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO conversation_members (conversation_id, user_id) VALUES ($1, $2), ($1, $3)")
            .bind(conversation)
            .bind(a)
            .bind(b)
            .execute(&mut *tx)
            .await?;
        result.push(Pair { sender: UserId(*a), receiver: UserId(*b), conversation });
    }
    tx.commit().await?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_names_its_send_only_for_its_own_conversation() {
        assert_eq!(send_number("m12x34 hello there", 12), Some(34));
        assert_eq!(send_number("m12x34", 12), Some(34));
        assert_eq!(send_number("m12x34 hello", 13), None);
        assert_eq!(send_number("m-5x0 hi", -5), Some(0));
        assert_eq!(send_number("hello m12x34", 12), None);
        assert_eq!(send_number("m12x hello", 12), None);
        assert_eq!(send_number("", 12), None);
    }
}
