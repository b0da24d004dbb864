//! Workload "accounts": login latency and user-search latency over N users (100k by
//! default), for the "fast at 100k users".
//!
//! Per run: sequential logins of random seeded users over HTTP, next to one bare
//! Argon2id verification each (login is dominated by it); then user search by query
//! class at each concurrency level, over HTTP and — the reference — the same queries
//! through `db::users::search` on the pool. After the runs, `EXPLAIN (ANALYZE, BUFFERS)`
//! of the search shows which indexes serve which queries.

mod explain;
mod search;
pub(super) mod seed;

use std::time::Instant;

use anyhow::Context;
use goim::{auth::PasswordHasher, config::Config, domain::Password};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use sqlx::PgPool;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub(super) use self::search::login;
use self::{explain::Explained, search::SearchRun, seed::Seeded};
use super::{
    BenchServer, Machine,
    cpu::CpuMeter,
    http_client, load_average,
    stats::{self, Figure, FigureKey, Figures, Latencies, Path, RunResult},
    write_json,
};
use crate::args::AccountsBenchArgs;

#[derive(Serialize)]
struct Report {
    workload: &'static str,
    started_at: String,
    /// Load averages (1, 5, 15 min) before and after the measurements: the box is shared.
    load_before: Option<String>,
    load_after: Option<String>,
    settings: Settings,
    machine: Machine,
    dataset: Seeded,
    figures: Vec<Figure>,
    explain: Vec<Explained>,
}

#[derive(Serialize)]
struct Settings {
    users: u32,
    runs: u32,
    logins_per_run: u32,
    searches_per_class_per_run: u32,
    concurrency: Vec<u32>,
    search_page_size: u32,
}

pub async fn run(config: Config, pool: PgPool, args: &AccountsBenchArgs) -> anyhow::Result<()> {
    let started_at = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let machine = Machine::probe(&pool).await?;
    println!("goim-bench accounts: {} users, {} runs; {}", args.users, args.runs, machine.describe());
    let dataset = seed::ensure_users(&pool, args.users).await?;
    let cpu = CpuMeter::new(&pool).await;
    let load_before = load_average();
    let server = BenchServer::start(config, pool.clone())?;
    let measured = measure(&server, &pool, &cpu, args).await;
    let cleaned = seed::remove_sessions(&pool).await;
    server.stop().await?;
    let load_after = load_average();
    let (figures, explain) = measured?;
    cleaned.context("removing the bench's sessions")?;

    println!();
    for explained in &explain {
        print_plan(explained);
    }
    stats::print_figures(&figures, args.runs);
    let report = Report {
        workload: "accounts",
        started_at,
        load_before,
        load_after,
        settings: Settings {
            users: args.users,
            runs: args.runs,
            logins_per_run: args.logins,
            searches_per_class_per_run: args.searches,
            concurrency: args.concurrency.clone(),
            search_page_size: 20,
        },
        machine,
        dataset,
        figures,
        explain,
    };
    write_json(&args.out, &report)?;
    println!("results written to {}", args.out.display());
    Ok(())
}

async fn measure(
    server: &BenchServer,
    pool: &PgPool,
    cpu: &CpuMeter,
    args: &AccountsBenchArgs,
) -> anyhow::Result<(Vec<Figure>, Vec<Explained>)> {
    let client = http_client()?;
    let password = Password::parse_any(seed::PASSWORD.to_owned(), "password").map_err(|e| anyhow::anyhow!("{e}"))?;
    let stored_hash = seed::stored_hash(pool).await?;
    let hasher = PasswordHasher::new(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let searches = usize::try_from(args.searches)?;

    // Warm-up, not recorded: opens the pool's and the client's connections (at the
    // highest concurrency, so no measured request waits for a new one) and brings the
    // indexes into the cache, so run 1 is not the odd one out.
    let max_concurrency = args.concurrency.iter().copied().max().unwrap_or(1);
    let token = search::login(server, &client, &seed::username(1)).await?;
    let warm_up = SearchRun {
        server,
        client: &client,
        pool,
        cpu,
        token: &token,
        users: args.users,
        searches: searches.min(10),
        concurrency: &[max_concurrency],
    };
    warm_up.measure(&mut StdRng::seed_from_u64(0), &mut Figures::default()).await?;

    let mut figures = Figures::default();
    let login_http =
        FigureKey { operation: "login", class: None, path: Path::Http, concurrency: 1, reference_for: None };
    let login_argon2 =
        FigureKey { path: Path::Argon2Verify, reference_for: Some(Box::new(login_http.clone())), ..login_http.clone() };
    for run in 1..=args.runs {
        let run_started = Instant::now();
        // The same queries and users in every run, so runs differ only by noise.
        let mut rng = StdRng::seed_from_u64(u64::from(run));

        let mut latencies = Latencies::default();
        let before = cpu.snapshot();
        let started = Instant::now();
        for _ in 0..args.logins {
            let username = seed::username(rng.gen_range(1..=args.users));
            let request = Instant::now();
            search::login(server, &client, &username).await?;
            latencies.record(request.elapsed());
        }
        let cpu_per_op = before.per_op(&cpu.snapshot(), latencies.len());
        figures.record(login_http.clone(), RunResult::new(&latencies, started.elapsed(), None, cpu_per_op));

        let mut latencies = Latencies::default();
        let before = cpu.snapshot();
        let started = Instant::now();
        for _ in 0..args.logins {
            let verify = Instant::now();
            let matches = hasher.verify(&password, Some(&stored_hash)).await?;
            latencies.record(verify.elapsed());
            anyhow::ensure!(matches, "the seeded password does not verify against bench_1's hash");
        }
        let cpu_per_op = before.per_op(&cpu.snapshot(), latencies.len());
        figures.record(login_argon2.clone(), RunResult::new(&latencies, started.elapsed(), None, cpu_per_op));

        // A fresh token per run: access tokens expire (15 minutes by default).
        let token = search::login(server, &client, &seed::username(1)).await?;
        let searches = SearchRun {
            server,
            client: &client,
            pool,
            cpu,
            token: &token,
            users: args.users,
            searches,
            concurrency: &args.concurrency,
        };
        searches.measure(&mut rng, &mut figures).await?;
        let load = load_average().unwrap_or_default();
        println!("run {run}/{}: {:.1} s (load average {load})", args.runs, run_started.elapsed().as_secs_f64());
    }

    let cases: Vec<(String, String)> = [
        ("2-char prefix", "ma".to_owned()),
        ("4-char prefix", "mari".to_owned()),
        ("typo", "alicee".to_owned()),
        ("full username", seed::username(args.users.div_ceil(2))),
    ]
    .into_iter()
    .map(|(label, query)| (label.to_owned(), query))
    .collect();
    let explain = explain::explain_all(pool, &cases).await?;
    Ok((figures.finish(), explain))
}

fn print_plan(explained: &Explained) {
    println!(
        "EXPLAIN (ANALYZE, BUFFERS) search, {} (q = {:?}; stops at the {} tier), first execution:",
        explained.label, explained.query, explained.tier
    );
    for line in &explained.first_execution {
        println!("    {line}");
    }
    if explained.plan_changed() {
        println!("  seventh execution (the plan cache switched plans):");
        for line in &explained.seventh_execution {
            println!("    {line}");
        }
    } else if let Some(time) = explained.seventh_execution.iter().find(|l| l.starts_with("Execution Time")) {
        println!("  seventh execution: same plan; {time}");
    }
}
