//! `goim-bench`: the real binary seeds, measures and reports small workloads against
//! its own managed cluster.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{binary::clean_command, new_data_dir};

/// The `goim-bench` binary of this build. It belongs to another package of the
/// workspace, so cargo gives no `CARGO_BIN_EXE_` for it here; it lands in the same folder
/// as `goim` whenever `cargo test` runs at the workspace root.
fn bench_binary() -> PathBuf {
    let goim = PathBuf::from(env!("CARGO_BIN_EXE_goim"));
    let bench = goim.with_file_name(format!("goim-bench{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bench.is_file(),
        "{} is missing: run `cargo test` at the workspace root so goim-bench is built",
        bench.display()
    );
    bench
}

/// Runs `goim-bench <args> --out <file>` on a new data directory with its own managed
/// cluster; returns the JSON report and the terminal output.
fn run_bench(args: &[&str]) -> (Value, String) {
    let bench = bench_binary();
    let dir = new_data_dir();
    let out = dir.join("report.json");
    let output = clean_command(&bench, &dir)
        .env("GOIM_DATA_DIR", &dir)
        .env("GOIM_PG_UNSAFE_FAST", "true")
        .env("GOIM_LOG", "warn")
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("goim-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "goim-bench failed: {}\n{stdout}\n{stderr}", output.status);
    let report: Value = serde_json::from_slice(&std::fs::read(&out).expect("the JSON report exists")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (report, stdout)
}

#[test]
fn the_accounts_bench_reports_every_figure_with_samples_and_ordered_percentiles() {
    let (report, stdout) =
        run_bench(&["accounts", "--users", "500", "--runs", "1", "--logins", "5", "--searches", "5"]);

    assert_eq!(report["dataset"]["inserted"], 500, "a new data dir is seeded: {}", report["dataset"]);
    let figures = report["figures"].as_array().expect("figures");
    let ids: Vec<&str> = figures.iter().map(|f| f["id"].as_str().expect("id")).collect();
    for expected in [
        "login.c1.http",
        "login.c1.argon2",
        "search.prefix_1_2.c1.http",
        "search.prefix_1_2.c1.sql",
        "search.prefix_3_5.c4.http",
        "search.username.c1.http",
        "search.nickname.c4.sql",
        "search.typo.c1.http",
        "search.page_2.c1.http",
        "search.page_2.c4.sql",
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    for figure in figures {
        let (p50, p99) = (figure["p50_ms"].as_f64().unwrap(), figure["p99_ms"].as_f64().unwrap());
        assert!(figure["samples"].as_u64().unwrap() > 0, "{figure}");
        assert!(p50 > 0.0 && p50 <= p99, "p50 {p50} > p99 {p99}: {figure}");
        let concurrency = figure["concurrency"].as_u64().unwrap();
        assert!(stdout.contains(&format!("c={concurrency:<2} p50")), "no summary line: {stdout}");
    }
    let plans = report["explain"].as_array().expect("explain");
    assert!(plans.len() >= 3, "{plans:?}");
    for plan in plans {
        let lines = plan["first_execution"].as_array().expect("plan lines");
        assert!(lines.iter().any(|l| l.as_str().unwrap().starts_with("Execution Time")), "{plan}");
    }
}

#[test]
fn the_history_bench_seeds_its_conversations_and_explains_every_statement() {
    let (report, _) = run_bench(&[
        "history",
        "--conversations",
        "30",
        "--messages",
        "3000",
        "--runs",
        "1",
        "--requests",
        "4",
        "--concurrency",
        "1,2",
    ]);

    let dataset = &report["dataset"];
    assert_eq!(dataset["seeded_now"], true, "{dataset}");
    // One long conversation of 1,500 messages and 29 of 51: 2,979.
    assert_eq!(dataset["hub_messages"], 2979, "{dataset}");
    assert_eq!(dataset["hub_conversations"], 30, "{dataset}");
    let figures = report["figures"].as_array().expect("figures");
    let ids: Vec<&str> = figures.iter().map(|f| f["id"].as_str().expect("id")).collect();
    for expected in [
        "history_latest.c1.http",
        "history_latest.c1.sql",
        "history_deep.c2.http",
        "conversation_list.c1.http",
        "message_search.common_word.c1.http",
        "message_search.cjk_2.c2.sql",
        "message_search.absent.c1.http",
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    for figure in figures.iter().filter(|f| f["operation"].as_str().unwrap().starts_with("history")) {
        assert_eq!(figure["mean_hits"], 50.0, "a full page of 50 every time: {figure}");
    }
    let plans = report["explain"].as_array().expect("explain");
    let names: Vec<&str> = plans.iter().map(|p| p[0].as_str().unwrap()).collect();
    assert_eq!(plans.len(), 9, "{names:?}");
    let latest = plans[0][1].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(latest.contains("using messages_pkey"), "the latest page reads the primary key: {latest}");
}

/// W2: every member of a group receives every message once, in order, and the figures
/// count exactly those deliveries.
#[test]
fn the_fanout_bench_delivers_every_message_to_every_member_once_in_order() {
    let (report, stdout) = run_bench(&["fanout", "--members", "20", "--senders", "2", "--messages", "15"]);

    assert_eq!(report["sent"], 30, "{report}");
    assert_eq!(report["deliveries"], 600, "every member got every message: {report}");
    assert_eq!(report["expected_deliveries"], 600);
    assert_eq!(report["duplicates_or_out_of_order"], 0);
    let (p50, p99) = (report["fanout_p50_ms"].as_f64().unwrap(), report["fanout_p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "p50 {p50} > p99 {p99}");
    assert!(stdout.contains("W2 (in-process): 20 members, 2 senders × 15 msgs"), "{stdout}");
}

/// W1 against a `goim` in a process of its own (`--url`): the client's CPU is not the
/// server's, which is read from the server's `/metrics`, and is reported apart. Paced
/// to last past the server's ping interval, which once ended the client's readers (the
/// run then waited forever for acks).
#[tokio::test]
async fn the_chat_bench_drives_a_separate_goim_and_reads_its_cpu_from_metrics() {
    let peer = crate::support::spawn_app().await;
    let database_url = crate::support::cluster().database_url(&peer.db_options);
    let secret = crate::support::test_config().auth.jwt_secret.expect("test secret");
    let work_dir = new_data_dir();
    let goim = crate::support::binary::RunningGoim::start_with(
        &work_dir,
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("GOIM_JWT_SECRET", secret.expose()),
            ("GOIM_WS_RATE_PER_SEC", "100000"),
            ("GOIM_WS_RATE_BURST", "100000"),
            ("GOIM_WS_PING_SECS", "1"),
        ],
    );
    goim.app(&peer).wait_until_ready().await;
    let out = work_dir.join("chat.json");
    let mut bench = clean_command(&bench_binary(), &work_dir);
    bench
        .env("DATABASE_URL", &database_url)
        .env("GOIM_JWT_SECRET", secret.expose())
        .env("GOIM_LOG", "warn")
        .args(["chat", "--pairs", "3", "--messages", "30", "--rate", "30", "--url", &goim.address, "--out"])
        .arg(&out);
    // A client that stops reading waits forever: bounded here so that it fails instead.
    let run = tokio::process::Command::from(bench).kill_on_drop(true).output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the run ends within two minutes (3 seconds of paced sends)")
        .expect("goim-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["server"], "separate");
    assert_eq!(report["delivered"], 90);
    assert_eq!(report["duplicates_or_out_of_order"], 0);
    let goim_cpu = report["goim_cpu_us_per_message"].as_f64().expect("the server's CPU from its /metrics");
    assert!(goim_cpu >= 0.0, "{report}");
    assert!(report["client_cpu_us_per_message"].as_f64().is_some_and(|client| client > 0.0), "{report}");
    assert!(report["wall_seconds"].as_f64().is_some_and(|wall| wall > 2.0), "paced past two pings: {report}");
    drop(goim);
    std::fs::remove_dir_all(&work_dir).ok();
}
