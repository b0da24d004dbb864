//! Running the real `goim` (and `goim-bench`) binaries: a clean environment, a private
//! working directory (so no developer `.env` leaks in), JSON logs parsed line by line.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::TestApp;

pub const GOIM: &str = env!("CARGO_BIN_EXE_goim");

/// `goim` with only PATH (and PG_BIN / GOIM_PG_USER, if set) from our environment.
pub fn goim_command(work_dir: &Path) -> Command {
    clean_command(Path::new(GOIM), work_dir)
}

/// `program` (`goim` or another binary of the workspace) in `work_dir`, with only PATH
/// (and PG_BIN / GOIM_PG_USER, if set) from our environment.
pub fn clean_command(program: &Path, work_dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().current_dir(work_dir);
    for var in ["PATH", "PG_BIN", "GOIM_PG_USER", "SystemRoot", "TEMP", "TMP"] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd
}

/// A running `goim serve` and its parsed log lines.
pub struct RunningGoim {
    pub child: Child,
    pub address: String,
    pub data_dir: PathBuf,
    pub logs: Vec<Value>,
    lines: Receiver<String>,
}

impl RunningGoim {
    /// Starts `goim` on a random port with `data_dir`, waiting for "GOIM is listening".
    pub fn start(data_dir: &Path) -> RunningGoim {
        Self::start_with(data_dir, &[])
    }

    /// Like [`Self::start`], with more settings in the environment.
    pub fn start_with(data_dir: &Path, settings: &[(&str, &str)]) -> RunningGoim {
        Self::spawn(goim_command(data_dir), data_dir, settings)
    }

    /// Like [`Self::start`], with the soft open-file limit lowered to `soft` first (as
    /// many systems start processes): through `sh`, whose `exec` leaves goim's pid.
    #[cfg(unix)]
    pub fn start_with_file_limit(data_dir: &Path, soft: u64) -> RunningGoim {
        let mut command = clean_command(Path::new("sh"), data_dir);
        command.args(["-c", &format!("ulimit -Sn {soft} && exec \"$0\" serve"), GOIM]);
        Self::spawn(command, data_dir, &[])
    }

    fn spawn(mut command: Command, data_dir: &Path, settings: &[(&str, &str)]) -> RunningGoim {
        let mut child = command
            .env("GOIM_DATA_DIR", data_dir)
            .env("GOIM_BIND", "127.0.0.1:0")
            .env("GOIM_LOG_FORMAT", "json")
            .env("GOIM_SHUTDOWN_TIMEOUT_SECS", "5")
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("goim starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running =
            RunningGoim { child, address: String::new(), data_dir: data_dir.to_path_buf(), logs: Vec::new(), lines };
        let listening = running.wait_for_log("GOIM is listening", Duration::from_secs(90));
        let address = listening["fields"]["address"].as_str().expect("address field").to_owned();
        running.address = format!("http://{address}");
        running
    }

    /// Reads log lines until one has `message`; panics on timeout or exit.
    pub fn wait_for_log(&mut self, message: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                    self.logs.push(parsed.clone());
                    if parsed["fields"]["message"] == message {
                        return parsed;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("goim exited with {status} before logging {message:?}; logs: {:?}", self.logs);
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no {message:?} log line within {timeout:?}; logs: {:?}",
                        self.logs
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("goim closed stdout before logging {message:?}; logs: {:?}", self.logs)
                }
            }
        }
    }

    pub fn has_logged(&self, message: &str) -> bool {
        self.logs.iter().any(|line| line["fields"]["message"] == message)
    }

    /// Waits for the process to exit, draining its log.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.logs.push(serde_json::from_str(&line).unwrap_or(Value::String(line)));
            }
            if let Some(status) = self.child.try_wait().expect("wait on goim") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("goim did not exit within {timeout:?}; logs: {:?}", self.logs);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A [`TestApp`] that talks to this process over HTTP, and to the database of `peer`
    /// (which this process must share) for assertions.
    pub fn app(&self, peer: &TestApp) -> TestApp {
        TestApp {
            address: self.address.clone(),
            client: super::test_client(),
            pool: peer.pool.clone(),
            db_options: peer.db_options.clone(),
            in_process: None,
        }
    }

    /// The postmaster PID the managed cluster recorded.
    pub fn postmaster_pid(&self) -> u32 {
        postmaster_pid(&self.data_dir).expect("postmaster.pid exists while goim runs")
    }
}

impl Drop for RunningGoim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    let contents = std::fs::read_to_string(data_dir.join("postgres").join("postmaster.pid")).ok()?;
    contents.lines().next()?.trim().parse().ok()
}

/// Whether a process with `pid` exists (zombies count as gone).
#[cfg(target_os = "linux")]
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Polls until `pid` is gone or the timeout passes; returns whether it is gone.
#[cfg(target_os = "linux")]
pub fn wait_process_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !process_alive(pid)
}

#[cfg(unix)]
pub fn send_signal(child: &Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
    nix::sys::signal::kill(pid, signal).expect("signal delivered");
}
