#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The `goim-bench` command line, through the real binary: what it offers and how it
//! refuses bad input. No database is needed: everything here stops before opening one.
//! (The workloads themselves run in the server's tests, `tests/api/bench.rs`.)

use std::process::{Command, Output, Stdio};

const GOIM_BENCH: &str = env!("CARGO_BIN_EXE_goim-bench");

/// `goim-bench <args>` in an empty folder with a clean environment, so neither a
/// developer's `.env` nor their `GOIM_*` variables change the outcome.
fn goim_bench(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(GOIM_BENCH);
    cmd.env_clear().current_dir(dir.path()).args(args).stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.output().expect("goim-bench runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_workload_and_the_server_settings() {
    let output = goim_bench(&["--help"]);

    assert!(output.status.success(), "{output:?}");
    let help = stdout(&output);
    for workload in ["accounts", "writes", "chat", "fanout", "social", "history"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(workload)), "{workload} missing: {help}");
    }
    assert!(help.contains("--database-url"), "the server's settings are flattened in: {help}");
    assert!(help.contains("DATABASE_URL"), "with their environment variables: {help}");
    assert!(!help.contains("pg-guard"), "the internal guard stays hidden: {help}");
}

#[test]
fn a_workload_lists_its_own_arguments() {
    let output = goim_bench(&["history", "--help"]);

    assert!(output.status.success(), "{output:?}");
    let help = stdout(&output);
    for arg in ["--conversations", "--messages", "--runs", "--requests", "--concurrency", "--out"] {
        assert!(help.contains(arg), "{arg} missing: {help}");
    }
}

#[test]
fn an_unknown_workload_is_refused_in_one_line_with_status_2() {
    let output = goim_bench(&["teleport"]);

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    assert!(message.starts_with("goim-bench: "), "{message}");
    assert!(message.contains("teleport"), "names what was wrong: {message}");
}

#[test]
fn without_arguments_the_help_is_shown_with_status_2() {
    let output = goim_bench(&[]);

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let help = stderr(&output);
    assert!(help.contains("Usage: goim-bench"), "{help}");
    assert!(help.contains("history"), "{help}");
}

#[test]
fn settings_without_a_workload_are_refused_in_one_line_with_status_2() {
    let output = goim_bench(&["--log", "warn"]);

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    assert!(message.starts_with("goim-bench: ") && message.contains("subcommand"), "{message}");
}

#[test]
fn an_out_of_range_workload_argument_is_refused_in_one_line_with_status_2() {
    let output = goim_bench(&["accounts", "--users", "0"]);

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    assert!(message.starts_with("goim-bench: invalid configuration: --users = \"0\""), "{message}");
}

#[test]
fn an_invalid_server_setting_is_named_by_its_environment_variable() {
    let output = goim_bench(&["--db-max-connections", "0", "accounts"]);

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    assert!(
        message
            .starts_with("goim-bench: invalid configuration: GOIM_DB_MAX_CONNECTIONS (--db-max-connections) = \"0\""),
        "{message}"
    );
}

#[test]
fn settings_that_contradict_each_other_are_refused_before_any_database_is_opened() {
    let output = goim_bench(&["--db-min-connections", "20", "--db-max-connections", "10", "accounts"]);

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(stderr(&output).contains("GOIM_DB_MIN_CONNECTIONS (20) must not exceed"), "{output:?}");
}

/// The managed cluster starts its guard as `<current executable> pg-guard`; for a bench
/// that executable is `goim-bench`, so it must answer to the guard's command line.
#[test]
fn goim_bench_can_be_the_managed_clusters_guard() {
    let dir = tempfile::tempdir().unwrap();
    let pgdata = dir.path().join("postgres");
    let output =
        goim_bench(&["pg-guard", "--pgdata", pgdata.to_str().unwrap(), "--bin-dir", dir.path().to_str().unwrap()]);

    // Standard input is closed at once, and there is no cluster to stop.
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().exists(), "without --remove the folder stays");
}
