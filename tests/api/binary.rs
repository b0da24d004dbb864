//! The real `goim` binary: configuration errors, the managed cluster's first and second
//! start, and shutdown by signal.

use std::time::Duration;

use crate::support::{
    binary::{RunningGoim, goim_command},
    new_data_dir,
};

/// JSON over HTTP to a `goim` process, for the synchronous tests of this file.
struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    address: String,
}

/// A response's status, `Retry-After` header and JSON body (null when it has none).
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: serde_json::Value,
}

impl Http {
    fn new(address: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { runtime, client, address: address.to_owned() }
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Answer {
        self.runtime.block_on(async {
            let mut request = self.client.request(method, format!("{}{path}", self.address));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("an answer, not a hang");
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response.json().await.unwrap_or(serde_json::Value::Null);
            Answer { status, retry_after, body }
        })
    }

    fn sign_in(&self, path: &str, username: &str) -> String {
        let body = serde_json::json!({ "username": username, "password": "correct horse battery" });
        let answer = self.call(reqwest::Method::POST, path, None, Some(body));
        answer.body["access_token"].as_str().unwrap_or_else(|| panic!("{path}: {}", answer.body)).to_owned()
    }

    /// Registers `username` with a group of their own; their token and the group's
    /// conversation.
    fn user_with_group(&self, username: &str) -> (String, i64) {
        let token = self.sign_in("/api/v1/auth/register", username);
        let group = serde_json::json!({ "name": "Group", "join_policy": "open" });
        let group = self.call(reqwest::Method::POST, "/api/v1/groups", Some(&token), Some(group)).body;
        let path = format!("/api/v1/groups/{}/conversation", group["id"]);
        let conversation = self.call(reqwest::Method::GET, &path, Some(&token), None).body;
        (token, conversation["conversation_id"].as_i64().expect("conversation_id"))
    }
}

fn run_with_env(vars: &[(&str, &str)]) -> (i32, String) {
    let dir = new_data_dir();
    let mut cmd = goim_command(&dir);
    cmd.env("GOIM_DATA_DIR", &dir);
    for (key, value) in vars {
        cmd.env(key, value);
    }
    let output = cmd.output().expect("goim runs");
    std::fs::remove_dir_all(&dir).ok();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn an_invalid_setting_stops_the_start_with_one_line_naming_it() {
    for (var, value) in [
        ("GOIM_BIND", "not-an-address"),
        ("GOIM_DB_MAX_CONNECTIONS", "0"),
        ("GOIM_LOG_FORMAT", "xml"),
        ("GOIM_SHUTDOWN_TIMEOUT_SECS", "soon"),
        ("GOIM_JWT_SECRET", "too-short"),
    ] {
        let (code, stderr) = run_with_env(&[(var, value)]);
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{var}={value}: not one line: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: setting not named: {stderr}");
    }
}

#[test]
fn settings_that_conflict_are_reported_by_name() {
    let (code, stderr) = run_with_env(&[("GOIM_DB_MIN_CONNECTIONS", "50"), ("GOIM_DB_MAX_CONNECTIONS", "10")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("GOIM_DB_MIN_CONNECTIONS"), "{stderr}");
}

#[test]
fn a_bad_pg_bin_is_reported_with_the_folder() {
    let (code, stderr) = run_with_env(&[("PG_BIN", "/nonexistent/pg/bin")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/pg/bin"), "{stderr}");
}

#[test]
fn flags_win_over_the_environment() {
    let (code, stderr) = {
        let dir = new_data_dir();
        let output = goim_command(&dir)
            .env("GOIM_BIND", "127.0.0.1:1")
            .args(["--bind", "nonsense", "migrate"])
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    assert_eq!(code, Some(2));
    assert!(stderr.contains("\"nonsense\""), "the flag's value is the one checked: {stderr}");
}

#[test]
fn dot_env_is_read_but_the_environment_wins() {
    let dir = new_data_dir();
    std::fs::write(dir.join(".env"), "GOIM_LOG_FORMAT=xml\nGOIM_BIND=bad-from-dotenv\n").unwrap();
    let output = goim_command(&dir).env("GOIM_LOG_FORMAT", "json").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("bad-from-dotenv"), ".env was read: {stderr}");
    assert!(!stderr.contains("xml"), "the environment beat .env: {stderr}");
}

#[cfg(target_os = "linux")]
mod signals {
    use nix::sys::signal::Signal;

    use super::*;
    use crate::support::binary::{postmaster_pid, send_signal, wait_process_gone};

    fn readyz_status(address: &str) -> u16 {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{address}/readyz"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    }

    #[test]
    fn sigterm_exits_0_and_leaves_no_postgres_and_a_restart_reuses_the_cluster() {
        let dir = new_data_dir();
        let mut goim = RunningGoim::start(&dir);
        assert!(goim.has_logged("initialising a new PostgreSQL cluster"));
        assert_eq!(readyz_status(&goim.address), 200);
        let postmaster = goim.postmaster_pid();

        send_signal(&goim.child, Signal::SIGTERM);
        let status = goim.wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "logs: {:?}", goim.logs);
        assert!(wait_process_gone(postmaster, Duration::from_secs(5)), "postgres {postmaster} still runs");
        assert!(postmaster_pid(&dir).is_none(), "postmaster.pid removed by a clean stop");
        drop(goim);

        let mut again = RunningGoim::start(&dir);
        assert!(!again.has_logged("initialising a new PostgreSQL cluster"), "second start reuses the cluster");
        assert_eq!(readyz_status(&again.address), 200);
        send_signal(&again.child, Signal::SIGINT);
        assert_eq!(again.wait_exit(Duration::from_secs(30)).code(), Some(0));
        drop(again);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `Type=notify` units: READY=1 once it serves, STOPPING=1 when SIGTERM starts the
    /// drain (docs/operations.md, "Under systemd").
    #[test]
    fn under_systemd_it_reports_ready_and_stopping() {
        use std::os::unix::net::UnixDatagram;
        let dir = new_data_dir();
        let socket_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let mut goim = RunningGoim::start_with(&dir, &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
        let mut buffer = [0u8; 64];
        let length = socket.recv(&mut buffer).expect("a notification");
        assert_eq!(&buffer[..length], b"READY=1");
        assert_eq!(readyz_status(&goim.address), 200, "ready means /readyz answers 200");

        send_signal(&goim.child, Signal::SIGTERM);
        let length = socket.recv(&mut buffer).expect("a second notification");
        assert_eq!(&buffer[..length], b"STOPPING=1");
        assert_eq!(goim.wait_exit(Duration::from_secs(30)).code(), Some(0));
        drop(goim);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// PostgreSQL processes stopped with SIGSTOP; thawed when dropped, also when an
    /// assertion fails.
    struct Frozen(Vec<u32>);

    impl Frozen {
        fn stop(pids: Vec<u32>) -> Self {
            for pid in &pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), Signal::SIGSTOP);
            }
            Self(pids)
        }
    }

    impl Drop for Frozen {
        fn drop(&mut self) {
            for pid in &self.0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), Signal::SIGCONT);
            }
        }
    }

    /// The postmaster and every process it started (the backends), from /proc.
    #[cfg(target_os = "linux")]
    fn postgres_tree(postmaster: u32) -> Vec<u32> {
        let mut tree = vec![postmaster];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // After the command name in parentheses: state, then the parent's pid.
            let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if parent.and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
                tree.push(pid);
            }
        }
        tree
    }

    /// A database that stops answering (every PostgreSQL process frozen) is 503 within
    /// the acquire and statement timeouts, never a 500 or a hang; once it answers again,
    /// a retry with the same `client_msg_id` is stored exactly once.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_frozen_database_is_503_within_the_timeouts_and_a_retry_lands_once() {
        let dir = new_data_dir();
        let goim = RunningGoim::start_with(
            &dir,
            &[("GOIM_DB_ACQUIRE_TIMEOUT_SECS", "2"), ("GOIM_DB_STATEMENT_TIMEOUT_SECS", "2")],
        );
        let http = Http::new(&goim.address);
        let (token, conversation) = http.user_with_group("frozen_ann");
        let frozen = Frozen::stop(postgres_tree(goim.postmaster_pid()));
        let message = serde_json::json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": "into the freeze" });
        let path = format!("/api/v1/conversations/{conversation}/messages");
        let send = || http.call(reqwest::Method::POST, &path, Some(&token), Some(message.clone()));
        let started = std::time::Instant::now();
        let during = send();
        let waited = started.elapsed();
        drop(frozen);
        assert_eq!(during.status, 503, "a frozen database is unavailability, not a bug");
        assert!(during.retry_after.is_some());
        assert!(waited < Duration::from_secs(12), "answered after {waited:?}");

        let after = (0..50)
            .map(|_| {
                let answer = send();
                if answer.status == 503 {
                    std::thread::sleep(Duration::from_millis(200));
                }
                answer
            })
            .find(|answer| answer.status != 503)
            .expect("the database comes back");
        // 200 when the frozen attempt did commit after all (its 503 was not an ack).
        assert!(matches!(after.status, 200 | 201), "{}", after.status);
        let history = http.call(reqwest::Method::GET, &path, Some(&token), None).body;
        let copies = history["items"].as_array().unwrap().iter().filter(|m| m["body"] == "into the freeze").count();
        assert_eq!(copies, 1, "stored exactly once");
        drop(goim);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Authentication takes no connection of its own: against a frozen database, an
    /// authenticated read and a send each answer 503 after one acquire timeout, not after
    /// the extractor's acquire and then the handler's (issue #15: "one acquire per
    /// request").
    #[cfg(target_os = "linux")]
    #[test]
    fn an_authenticated_request_to_a_frozen_database_waits_for_one_acquire_only() {
        let dir = new_data_dir();
        let goim = RunningGoim::start_with(
            &dir,
            &[("GOIM_DB_ACQUIRE_TIMEOUT_SECS", "2"), ("GOIM_DB_STATEMENT_TIMEOUT_SECS", "2")],
        );
        let http = Http::new(&goim.address);
        let (token, conversation) = http.user_with_group("frozen_bea");
        let path = format!("/api/v1/conversations/{conversation}/messages");
        let frozen = Frozen::stop(postgres_tree(goim.postmaster_pid()));
        let message = serde_json::json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": "into the freeze" });
        let requests = [
            ("GET /api/v1/me", reqwest::Method::GET, "/api/v1/me".to_owned(), None),
            ("GET history", reqwest::Method::GET, path.clone(), None),
            ("POST a message", reqwest::Method::POST, path.clone(), Some(message)),
        ];
        let mut answers = Vec::new();
        for (what, method, path, body) in requests {
            let started = std::time::Instant::now();
            let answer = http.call(method, &path, Some(&token), body);
            answers.push((what, answer, started.elapsed()));
        }
        drop(frozen);
        for (what, answer, waited) in answers {
            assert_eq!(answer.status, 503, "{what}: {}", answer.body);
            assert_eq!(answer.body["error"]["code"], "service_unavailable", "{what}");
            assert!(answer.retry_after.is_some(), "{what}: Retry-After");
            // One 2 s acquire and some slack; two acquires would take 4 s.
            assert!(waited < Duration::from_millis(3500), "{what}: answered after {waited:?}");
        }
        drop(goim);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Started with the usual soft limit of 1,024 open files, GOIM raises it to the hard
    /// limit, so a few hundred idle sockets cannot starve its accept loop.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
        let dir = new_data_dir();
        let mut goim = RunningGoim::start_with_file_limit(&dir, 256);
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", goim.child.id())).unwrap();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
        let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
        assert_eq!(numbers[0], numbers[1], "soft limit equals the hard limit: {line}");
        assert_ne!(numbers[0], "256", "{line}");
        send_signal(&goim.child, Signal::SIGTERM);
        let status = goim.wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(0), "{status:?}; logs: {:?}", goim.logs);
        drop(goim);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A managed cluster whose password file no longer matches stops the start at the
    /// first rejected login, with one line that says what to do.
    #[test]
    fn a_wrong_cluster_password_stops_the_start_at_once_with_one_line() {
        let dir = new_data_dir();
        let mut goim = RunningGoim::start(&dir);
        send_signal(&goim.child, Signal::SIGTERM);
        assert_eq!(goim.wait_exit(Duration::from_secs(30)).code(), Some(0));
        drop(goim);
        std::fs::write(dir.join("postgres-password"), "not-the-password").unwrap();

        let started = std::time::Instant::now();
        let mut child = goim_command(&dir)
            .env("GOIM_DATA_DIR", &dir)
            .env("GOIM_BIND", "127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("goim kept trying with a wrong password");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_ne!(status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("rejected the password"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        if let Some(postmaster) = postmaster_pid(&dir) {
            assert!(wait_process_gone(postmaster, Duration::from_secs(10)), "postgres {postmaster} left running");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_killed_goim_leaves_no_postgres_behind_and_the_next_start_recovers() {
        let dir = new_data_dir();
        let mut goim = RunningGoim::start(&dir);
        let postmaster = goim.postmaster_pid();
        send_signal(&goim.child, Signal::SIGKILL);
        goim.wait_exit(Duration::from_secs(10));
        assert!(wait_process_gone(postmaster, Duration::from_secs(20)), "the guard stops postgres {postmaster}");
        drop(goim);

        let mut again = RunningGoim::start(&dir);
        assert_eq!(readyz_status(&again.address), 200);
        send_signal(&again.child, Signal::SIGTERM);
        assert_eq!(again.wait_exit(Duration::from_secs(30)).code(), Some(0));
        drop(again);
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// A `DATABASE_URL` whose host accepts connections and never answers stops the start
/// within the acquire timeout, with one line that says so.
#[test]
fn a_database_that_never_answers_stops_the_start_with_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let held = std::thread::spawn(move || {
        // Accept and hold, saying nothing, until the test ends.
        let mut accepted = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => accepted.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        accepted.len()
    });
    let started = std::time::Instant::now();
    let url = format!("postgres://goim@127.0.0.1:{port}/goim");
    let (code, stderr) = run_with_env(&[
        ("DATABASE_URL", url.as_str()),
        ("GOIM_JWT_SECRET", "a-secret-long-enough-for-the-test-only"),
        ("GOIM_DB_ACQUIRE_TIMEOUT_SECS", "2"),
    ]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_ne!(code, 0, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(stderr.contains("did not answer within 2 s"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(held.join().unwrap() >= 1, "goim did connect");
}

#[test]
fn options_work_after_the_subcommand_and_help_keeps_the_database_password() {
    let dir = new_data_dir();
    // After `migrate`, as before it: the value is read (and refused, being no URL).
    let output = goim_command(&dir).args(["migrate", "--database-url", "not-a-url"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "the option is accepted after the subcommand: {stderr}");

    let help = goim_command(&dir)
        .env("DATABASE_URL", "postgres://app:hunter2-secret@db.example/goim")
        .arg("--help")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8_lossy(&help.stdout);
    assert_eq!(help.status.code(), Some(0));
    assert!(text.contains("DATABASE_URL"), "the setting is still named: {text}");
    assert!(!text.contains("hunter2-secret"), "--help printed the password: {text}");
}

#[test]
fn goim_openapi_prints_the_served_document_without_a_database() {
    let dir = new_data_dir();
    let output = goim_command(&dir).env("DATABASE_URL", "postgres://127.0.0.1:1/none").arg("openapi").output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/api/v1/ws"]["get"].is_object(), "the WebSocket handshake is described");
    let events = document["components"]["schemas"]["Event"]["oneOf"].as_array().expect("event schemas");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["properties"]["type"]["enum"][0].as_str()).collect();
    assert!(kinds.contains(&"friend_request_received") && kinds.contains(&"group_member_joined"), "{kinds:?}");
    assert!(!kinds.contains(&"session_revoked"), "internal events stay out: {kinds:?}");
}

/// Removes a data directory whose GOIM was just killed, once its guard has stopped the
/// managed PostgreSQL (`postmaster`): removed sooner, the folder can be refilled by the
/// shutting-down server ("Directory not empty"), or lose the pid file the guard's
/// `pg_ctl stop` needs. Elsewhere than Linux the removal is retried instead.
fn remove_once_stopped(dir: &std::path::Path, postmaster: u32) {
    #[cfg(target_os = "linux")]
    assert!(
        crate::support::binary::wait_process_gone(postmaster, Duration::from_secs(30)),
        "the guard stops postgres {postmaster}"
    );
    #[cfg(not(target_os = "linux"))]
    let _ = postmaster;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(error) = std::fs::remove_dir_all(dir) {
        assert!(std::time::Instant::now() < deadline, "{} cannot be removed: {error}", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `goim backup` while GOIM runs, a lost data directory, `goim restore` into a new one:
/// the account, its group and every message are back.
#[test]
fn a_backup_taken_while_running_restores_into_a_new_data_directory() {
    let dir = new_data_dir();
    let goim = RunningGoim::start(&dir);
    let http = Http::new(&goim.address);
    let (token, conversation) = http.user_with_group("kept_ann");
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let bodies: Vec<String> = (1..=5).map(|i| format!("kept message {i}")).collect();
    for body in &bodies {
        let message = serde_json::json!({ "client_msg_id": uuid::Uuid::new_v4(), "body": body });
        assert_eq!(http.call(reqwest::Method::POST, &path, Some(&token), Some(message)).status, 201);
    }

    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("goim.dump");
    let backup = goim_command(&dir).env("GOIM_DATA_DIR", &dir).arg("backup").arg(&file).output().unwrap();
    assert!(backup.status.success(), "backup: {}", String::from_utf8_lossy(&backup.stderr));
    assert!(std::fs::metadata(&file).unwrap().len() > 1000, "the backup holds the database");
    let postmaster = goim.postmaster_pid();
    drop(goim);
    // The data directory is lost (disk, machine): a new one starts empty.
    remove_once_stopped(&dir, postmaster);
    let dir = new_data_dir();

    let restore = goim_command(&dir).env("GOIM_DATA_DIR", &dir).arg("restore").arg(&file).output().unwrap();
    assert!(restore.status.success(), "restore: {}", String::from_utf8_lossy(&restore.stderr));
    let goim = RunningGoim::start(&dir);
    let http = Http::new(&goim.address);
    let token = http.sign_in("/api/v1/auth/login", "kept_ann");
    let history = http.call(reqwest::Method::GET, &path, Some(&token), None).body;
    let restored: Vec<&str> = history["items"].as_array().unwrap().iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(restored, bodies, "every message, in order");
    drop(goim);
    std::fs::remove_dir_all(&dir).ok();
}

/// Load balancers and scrapers poll every few seconds for the life of the process; their
/// requests are logged at DEBUG, the others at INFO.
#[test]
fn probes_and_scrapes_stay_out_of_the_info_log() {
    let dir = new_data_dir();
    let mut goim = RunningGoim::start(&dir);
    let http = Http::new(&goim.address);
    for path in ["/healthz", "/readyz", "/metrics", "/healthz"] {
        assert_eq!(http.call(reqwest::Method::GET, path, None, None).status, 200, "{path}");
    }
    assert_eq!(http.call(reqwest::Method::GET, "/api/v1/me", None, None).status, 401);
    let first = goim.wait_for_log("request finished", Duration::from_secs(10));
    assert!(first.to_string().contains("/api/v1/me"), "the first request logged at INFO: {first}");
    drop(goim);
    std::fs::remove_dir_all(&dir).ok();
}

/// What the HTTP parser refuses is answered without an ERROR line in GOIM's log, and a
/// request target past 8 KiB gets 414 in the JSON error shape.
#[test]
fn a_broken_request_head_logs_no_error_and_a_long_target_is_414() {
    use std::io::{Read, Write};
    let dir = new_data_dir();
    let mut goim = RunningGoim::start(&dir);
    let authority = goim.address.trim_start_matches("http://").to_owned();
    let mut raw = std::net::TcpStream::connect(&authority).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let http = Http::new(&goim.address);
    let long = format!("/api/v1/users?q={}", "a".repeat(9000));
    let refused = http.call(reqwest::Method::GET, &long, None, None);
    assert_eq!(refused.status, 414);
    assert_eq!(refused.body["error"]["code"], "uri_too_long");
    // Just under the limit the request reaches its route (401: no token).
    let fits = format!("/api/v1/users?q={}", "a".repeat(8000));
    assert_eq!(http.call(reqwest::Method::GET, &fits, None, None).status, 401);
    goim.wait_for_log("request finished", Duration::from_secs(10));
    let errors: Vec<_> = goim.logs.iter().filter(|line| line["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "a client's broken request is not an error of the server: {errors:?}");
    drop(goim);
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(not(windows))]
#[test]
fn goim_service_names_the_systemd_unit_outside_windows() {
    let dir = new_data_dir();
    let output = goim_command(&dir).args(["service", "install"]).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Windows services only") && stderr.contains("systemd"), "{stderr}");
}

#[test]
fn a_windows_path_in_dot_env_gets_advice_and_the_quoted_form_works() {
    let dir = new_data_dir();
    std::fs::write(dir.join(".env"), "GOIM_DATA_DIR=C:\\goim\\data\n").unwrap();
    let refused = goim_command(&dir).arg("--bind=nonsense").output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr.contains("single quotes"), "{stderr}");
    // Single-quoted, it reads: the next complaint is about the bad --bind instead.
    std::fs::write(dir.join(".env"), "GOIM_DATA_DIR='C:\\goim\\data'\n").unwrap();
    let read = goim_command(&dir).arg("--bind=nonsense").output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&read.stderr);
    assert!(stderr.contains("GOIM_BIND"), "{stderr}");
}

/// With `DATABASE_URL`, backup and restore work on that database (another server's, in
/// practice): a row written before the backup is in the database restored into.
#[tokio::test]
async fn backup_and_restore_follow_database_url() {
    let source = crate::support::spawn_app().await;
    source.register("url_kept").await;
    let cluster = crate::support::cluster();
    let target = cluster.create_database().await;
    let dir = new_data_dir();
    let file = dir.join("url.dump");
    let run = |verb: &str, url: String| {
        let output = goim_command(&dir).env("DATABASE_URL", url).arg(verb).arg(&file).output().unwrap();
        assert!(output.status.success(), "{verb}: {}", String::from_utf8_lossy(&output.stderr));
    };
    run("backup", cluster.database_url(&source.db_options));
    run("restore", cluster.database_url(&target));
    let restored: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'url_kept'")
        .fetch_one(&mut sqlx::Connection::connect_with(&target).await.unwrap() as &mut sqlx::PgConnection)
        .await
        .unwrap();
    assert_eq!(restored, 1);
    std::fs::remove_dir_all(&dir).ok();
}
