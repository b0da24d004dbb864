//! Workload "fanout" (W2, group fan-out): one group of `members`, every member online
//! over its own WebSocket, `senders` of them sending `messages` each with at most
//! `in_flight` unacknowledged. Every member receives every message (the senders their
//! own too). Reports deliveries/s (events received by all members together), commit-to-
//! member latency p50/p99 as the members see it, server CPU per delivery, and checks that
//! every member got every message exactly once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use goim::{auth::TokenKeys, config::Config, domain::UserId};
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::{
    BenchServer, Machine,
    chat::{Target, connect, gather, goim_and_client_cpu, servers_cpu, wait_ready},
    cpu::CpuMeter,
    http_client, load_average,
    stats::Latencies,
    write_json,
};
use crate::{
    args::FanoutBenchArgs,
    client::{ServerFrame, next_text, send_request, take_room},
    text::ChatText,
};

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    machine: Machine,
    load_before: Option<String>,
    load_after: Option<String>,
    server: &'static str,
    members: u32,
    senders: u32,
    messages_per_sender: u32,
    in_flight: u32,
    sent: u64,
    deliveries: u64,
    expected_deliveries: u64,
    wall_seconds: f64,
    deliveries_per_sec: f64,
    fanout_p50_ms: f64,
    fanout_p99_ms: f64,
    goim_cpu_us_per_delivery: Option<f64>,
    postgres_cpu_us_per_delivery: Option<f64>,
    /// The load generator's own CPU per delivery, when the server runs in its own process.
    client_cpu_us_per_delivery: Option<f64>,
    duplicates_or_out_of_order: u64,
}

pub async fn run(config: Config, pool: PgPool, args: &FanoutBenchArgs) -> anyhow::Result<()> {
    let load_before = load_average();
    let machine = Machine::probe(&pool).await?;
    println!("machine: {}", machine.describe());
    let secret = config.auth.jwt_secret.clone().context("no JWT secret")?;
    let keys = TokenKeys::new(&secret, Duration::from_secs(3600));
    let (members, conversation) = seed(&pool, args.members).await?;
    let server = match &args.url {
        Some(url) => Target::Separate(url.clone()),
        None => {
            let mut server_config = config.clone();
            server_config.websocket.ws_rate_burst = 1_000_000;
            server_config.websocket.ws_rate_per_sec = 1_000_000;
            server_config.websocket.ws_outbound_queue = 4096;
            let own_pool = goim::db::connect(&server_config, (*pool.connect_options()).clone()).await?;
            Target::InProcess(BenchServer::start(server_config, own_pool)?)
        }
    };
    let servers = [server];
    wait_ready(&servers).await?;
    let http = http_client()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut sockets = Vec::with_capacity(members.len());
    for &member in &members {
        sockets.push(connect(&pool, &keys, &http, &servers[0], member, now).await?);
    }

    let total = u64::from(args.senders) * u64::from(args.messages);
    let meter = CpuMeter::new(&pool).await;
    let before = meter.snapshot();
    let servers_before = servers_cpu(&http, &servers).await?;
    let started = Instant::now();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = socket.split();
        let sending = index < args.senders as usize;
        // A sender's own socket reads both its acks and the group's events.
        let window = Arc::new(Semaphore::new(args.in_flight as usize));
        let reader_window = window.clone();
        receivers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut anomalies = 0u64;
            let mut last_seq = 0i64;
            while (latencies.len() as u64) < total {
                let Some(text) = next_text(&mut stream).await else { break };
                let Ok(frame) = ServerFrame::parse(&text) else { continue };
                if frame.r#type == "reply" {
                    reader_window.add_permits(1);
                    continue;
                }
                let Some(message) = frame.created() else { continue };
                if message.seq != last_seq + 1 {
                    anomalies += 1;
                }
                last_seq = message.seq;
                // The body starts with the send time, in microseconds since `started`.
                let sent_us = message.body.as_deref().and_then(|b| b.split(' ').next()?.parse::<u64>().ok());
                match sent_us {
                    Some(sent) => latencies.record(started.elapsed().saturating_sub(Duration::from_micros(sent))),
                    None => anomalies += 1,
                }
            }
            (latencies, anomalies)
        }));
        if sending {
            let messages = args.messages;
            let mut text = ChatText::new(senders.len() as u64);
            let mut rng = StdRng::seed_from_u64(senders.len() as u64);
            senders.push(tokio::spawn(async move {
                for i in 0..messages {
                    take_room(&window).await?;
                    let sent = started.elapsed().as_micros();
                    let frame = send_request(i, conversation, &mut rng, &format!("{sent} {}", text.message()))?;
                    sink.send(Message::text(frame)).await.context("send")?;
                }
                anyhow::Ok(sink)
            }));
        }
    }
    let mut sinks = Vec::new();
    for sender in senders {
        sinks.push(sender.await.context("sender task")??);
    }
    let (received, anomalies) = gather(receivers).await?;
    let wall = started.elapsed();
    drop(sinks);
    let deliveries = received.len() as u64;
    let measured = before.per_op(&meter.snapshot(), received.len());
    let servers_after = servers_cpu(&http, &servers).await?;
    let (goim_cpu, client_cpu) = goim_and_client_cpu(servers_before, servers_after, measured, received.len());
    let [server] = servers;
    server.stop().await?;

    let ms = |q: f64| received.percentile(q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let report = Report {
        workload: "fanout (W2)",
        machine,
        load_before,
        load_after: load_average(),
        server: if args.url.is_some() { "separate" } else { "in-process" },
        members: args.members,
        senders: args.senders,
        messages_per_sender: args.messages,
        in_flight: args.in_flight,
        sent: total,
        deliveries,
        expected_deliveries: total * u64::from(args.members),
        wall_seconds: wall.as_secs_f64(),
        deliveries_per_sec: deliveries as f64 / wall.as_secs_f64(),
        fanout_p50_ms: ms(0.5),
        fanout_p99_ms: ms(0.99),
        goim_cpu_us_per_delivery: goim_cpu,
        postgres_cpu_us_per_delivery: measured.and_then(|c| c.postgres_us),
        client_cpu_us_per_delivery: client_cpu,
        duplicates_or_out_of_order: anomalies,
    };
    println!(
        "W2 ({}): {} members, {} senders × {} msgs: {:.0} deliveries/s; send→member p50 {:.1} ms p99 {:.1} ms; cpu per delivery goim {:.1} µs, postgres {:.1} µs (client {:.1} µs); deliveries {} of {}, anomalies {}",
        report.server,
        report.members,
        report.senders,
        report.messages_per_sender,
        report.deliveries_per_sec,
        report.fanout_p50_ms,
        report.fanout_p99_ms,
        report.goim_cpu_us_per_delivery.unwrap_or(f64::NAN),
        report.postgres_cpu_us_per_delivery.unwrap_or(f64::NAN),
        report.client_cpu_us_per_delivery.unwrap_or(f64::NAN),
        report.deliveries,
        report.expected_deliveries,
        report.duplicates_or_out_of_order
    );
    write_json(&args.out, &report)?;
    anyhow::ensure!(report.deliveries == report.expected_deliveries, "not every member got every message");
    anyhow::ensure!(report.duplicates_or_out_of_order == 0, "messages arrived twice or out of order");
    Ok(())
}

/// `members` new users in one new open group (the first owns it), fresh for every run.
async fn seed(pool: &PgPool, members: u32) -> anyhow::Result<(Vec<UserId>, i64)> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("w2_{}_", &run[..8]);
    let mut tx = pool.begin().await?;
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, nickname, password_hash)
         SELECT $1 || i, 'W2 user ' || i, 'bench-no-login' FROM generate_series(1, $2) AS i
         RETURNING id",
    )
    .bind(&prefix)
    .bind(i64::from(members))
    .fetch_all(&mut *tx)
    .await?;
    ids.sort_unstable();
    let group: i64 =
        sqlx::query_scalar("INSERT INTO groups (name, join_policy, member_limit) VALUES ($1, 'open', $2) RETURNING id")
            .bind(format!("W2 {}", &run[..8]))
            .bind(i32::try_from(members).unwrap_or(i32::MAX).max(2))
            .fetch_one(&mut *tx)
            .await?;
    // Triggers mirror the members into the group's conversation.
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id, role)
         SELECT $1, id, CASE WHEN id = $3 THEN 'owner' ELSE 'member' END FROM unnest($2::bigint[]) AS id",
    )
    .bind(group)
    .bind(&ids)
    .bind(ids[0])
    .execute(&mut *tx)
    .await?;
    let conversation: i64 =
        sqlx::query_scalar("SELECT id FROM conversations WHERE group_id = $1").bind(group).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok((ids.into_iter().map(UserId).collect(), conversation))
}
