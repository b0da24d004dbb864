//! One managed PostgreSQL cluster: `initdb` on first start, `postgres` on a free
//! loopback port, recovery from an unclean previous run, and a clean stop.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use rand::{Rng, distributions::Alphanumeric};
use sqlx::{Connection, postgres::PgConnectOptions};

use super::{
    PgError,
    binaries::executable,
    os::{self, RunAs},
};
use crate::config::Secret;

/// The cluster's superuser; GOIM connects as it.
pub const SUPERUSER: &str = "goim";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

/// On Windows `postgres` is started through `pg_ctl start`, as PostgreSQL's own tools
/// do there: `postgres.exe` refuses to run with administrative rights (an elevated
/// prompt, the built-in Administrator, a service account), and `pg_ctl` launches it
/// under a restricted token. Elsewhere it is GOIM's direct child, which needs no
/// shell and lets GOIM see it exit.
const LAUNCHED_BY_PG_CTL: bool = cfg!(windows);

/// How to run the managed cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// GOIM's data directory; the cluster lives in its `postgres/` folder.
    pub data_dir: PathBuf,
    pub bin_dir: PathBuf,
    /// The account PostgreSQL runs as when GOIM is root.
    pub pg_user: String,
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// fsync and friends off: only for throwaway test clusters.
    pub unsafe_fast: bool,
    /// The `goim` executable, started as `goim pg-guard` so that a GOIM that dies
    /// without shutting down still stops its cluster. `None`: no guard.
    pub guard_exe: Option<PathBuf>,
    /// The guard deletes the whole data directory after stopping the cluster.
    pub remove_on_exit: bool,
}

/// A running managed cluster. Call [`ManagedPostgres::stop`] at shutdown; if the value
/// is dropped instead, the guard process (when configured) stops the cluster.
pub struct ManagedPostgres {
    pgdata: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
    password: Secret,
    postmaster: Option<Child>,
    guard: Option<(Child, ChildStdin)>,
    /// Held for the cluster's lifetime: one GOIM per data directory.
    _data_dir_lock: File,
}

impl ManagedPostgres {
    /// Initialises the cluster if needed, starts it and waits until it accepts
    /// connections.
    pub async fn start(options: ClusterOptions) -> Result<Self, PgError> {
        let started = Instant::now();
        let prepared = {
            let options = options.clone();
            tokio::task::spawn_blocking(move || Prepared::new(&options))
                .await
                .map_err(|e| PgError::Tool { tool: "start-up task", detail: e.to_string() })??
        };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_loopback_port()?;
            let log_offset = log_len(&prepared.log_path);
            let mut child = prepared.spawn_postgres(&options, port)?;
            match wait_until_ready(&mut child, port, &prepared, log_offset).await {
                Ok(()) => {
                    let guard = match &options.guard_exe {
                        Some(exe) => Some(spawn_guard(exe, &prepared, &options)?),
                        None => None,
                    };
                    tracing::info!(
                        port,
                        pgdata = %prepared.pgdata.display(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "managed PostgreSQL is ready"
                    );
                    return Ok(Self {
                        pgdata: prepared.pgdata,
                        bin_dir: prepared.bin_dir,
                        run_as: prepared.run_as,
                        port,
                        password: prepared.password,
                        postmaster: Some(child),
                        guard,
                        _data_dir_lock: prepared.lock,
                    });
                }
                Err(PgError::ExitedEarly { log_tail }) if is_port_clash(&log_tail) => {
                    // Another process took the port between our probe and postgres'
                    // bind; a new port fixes that.
                    last_error = Some(PgError::ExitedEarly { log_tail });
                }
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if LAUNCHED_BY_PG_CTL {
                        // The child was pg_ctl; the server it launched may still run.
                        let _ = pg_ctl_stop(&prepared.bin_dir, &prepared.pgdata, prepared.run_as);
                    }
                    return Err(error);
                }
            }
        }
        Err(last_error.unwrap_or(PgError::Tool { tool: "postgres", detail: "could not start".into() }))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// The PID of the postmaster, while it runs.
    pub fn pid(&self) -> Option<u32> {
        if LAUNCHED_BY_PG_CTL {
            let recorded = std::fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
            return recorded.lines().next()?.trim().parse().ok();
        }
        self.postmaster.as_ref().map(Child::id)
    }

    /// Options for connecting to `database` as the cluster's superuser.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&Ipv4Addr::LOCALHOST.to_string())
            .port(self.port)
            .username(SUPERUSER)
            .password(self.password.expose())
            .database(database)
    }

    /// The same as [`Self::connect_options`], as a `DATABASE_URL` for another process
    /// (the password is alphanumeric, so it needs no escaping).
    pub fn url(&self, database: &str) -> Secret {
        Secret::new(format!(
            "postgres://{SUPERUSER}:{}@{}:{}/{database}",
            self.password.expose(),
            Ipv4Addr::LOCALHOST,
            self.port
        ))
    }

    /// Stops the cluster with a fast shutdown (open transactions roll back, committed
    /// data is flushed) and waits for the postmaster and the guard to exit.
    pub async fn stop(mut self) -> Result<(), PgError> {
        let pgdata = self.pgdata.clone();
        let bin_dir = self.bin_dir.clone();
        let run_as = self.run_as;
        let postmaster = self.postmaster.take();
        let guard = self.guard.take();
        tokio::task::spawn_blocking(move || {
            let stopped = pg_ctl_stop(&bin_dir, &pgdata, run_as);
            if let Some(mut child) = postmaster {
                let _ = child.wait();
            }
            if let Some((mut child, stdin)) = guard {
                drop(stdin);
                let _ = child.wait();
            }
            stopped
        })
        .await
        .map_err(|e| PgError::Tool { tool: "pg_ctl stop", detail: e.to_string() })?
    }
}

/// Everything done before `postgres` starts: lock, run-as account, initdb, recovery.
struct Prepared {
    pgdata: PathBuf,
    password_path: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    password: Secret,
    log_path: PathBuf,
    lock: File,
}

impl Prepared {
    fn new(options: &ClusterOptions) -> Result<Self, PgError> {
        let data_dir = &options.data_dir;
        std::fs::create_dir_all(data_dir)
            .map_err(PgError::io(format!("cannot create data directory {}", data_dir.display())))?;
        let data_dir =
            std::path::absolute(data_dir).map_err(PgError::io(format!("cannot resolve {}", data_dir.display())))?;
        let lock = lock_data_dir(&data_dir)?;

        let pgdata = cluster_dir(&data_dir);
        let run_as = os::run_as_for_user(&options.pg_user)?;
        os::check_reachable(&pgdata, run_as)?;
        let password_path = data_dir.join("postgres-password");

        if !pgdata.join("PG_VERSION").is_file() {
            initdb(options, &pgdata, &password_path, run_as)?;
        } else {
            recover_previous_run(&options.bin_dir, &pgdata)?;
        }
        let password = read_password(&password_path)?;
        Ok(Self {
            password_path: password_path.clone(),
            run_as: os::run_as_owner_of(&pgdata).or(run_as),
            pgdata,
            bin_dir: options.bin_dir.clone(),
            password,
            log_path: data_dir.join("postgres.log"),
            lock,
        })
    }

    fn spawn_postgres(&self, options: &ClusterOptions, port: u16) -> Result<Child, PgError> {
        let mut settings = vec![
            format!("port={port}"),
            "listen_addresses=127.0.0.1".to_owned(),
            format!("max_connections={}", options.max_connections),
        ];
        if !cfg!(windows) {
            // No Unix socket: the default socket folder (/var/run/postgresql on Debian)
            // is often not writable, and TCP on loopback works on every OS. (Windows
            // builds have none by default, and an empty value cannot pass through the
            // command line pg_ctl hands to cmd.exe.)
            settings.push("unix_socket_directories=".to_owned());
        }
        if options.unsafe_fast {
            settings.extend(["fsync=off", "synchronous_commit=off", "full_page_writes=off"].map(str::to_owned));
        }
        let mut cmd = if LAUNCHED_BY_PG_CTL {
            // pg_ctl has cmd.exe append the server's output to the log, and cmd.exe
            // cannot open a file another handle writes to ("Sharing violation"); so
            // pg_ctl's own complaints go to a file of their own. With -w it exits 0
            // once the server accepts connections, or non-zero if it died first.
            let launcher_log = File::create(self.launcher_log_path())
                .map_err(PgError::io(format!("cannot create {}", self.launcher_log_path().display())))?;
            let server_options: Vec<String> = settings.iter().map(|setting| format!("-c {setting}")).collect();
            let mut cmd = Command::new(executable(&self.bin_dir, "pg_ctl"));
            cmd.arg("start")
                .arg("-D")
                .arg(&self.pgdata)
                .arg("-l")
                .arg(&self.log_path)
                .args(["-w", "-t", &READY_TIMEOUT.as_secs().to_string(), "-s", "-o"])
                .arg(server_options.join(" "));
            cmd.stdout(Stdio::null()).stderr(launcher_log);
            cmd
        } else {
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .map_err(PgError::io(format!("cannot open {}", self.log_path.display())))?;
            let log_err = log.try_clone().map_err(PgError::io("cannot duplicate the log file handle"))?;
            let mut cmd = Command::new(executable(&self.bin_dir, "postgres"));
            cmd.arg("-D").arg(&self.pgdata);
            for setting in &settings {
                cmd.arg("-c").arg(setting);
            }
            cmd.stdout(log).stderr(log_err);
            cmd
        };
        cmd.stdin(Stdio::null());
        os::prepare(&mut cmd, self.run_as);
        cmd.spawn().map_err(PgError::io("cannot start postgres"))
    }
}

impl Prepared {
    /// Where `pg_ctl start` writes its own messages (Windows only).
    fn launcher_log_path(&self) -> PathBuf {
        self.log_path.with_file_name("pg_ctl.log")
    }

    /// The server log since `offset`, and what `pg_ctl` said, for start-up errors.
    fn start_up_report(&self, offset: u64) -> String {
        let mut report = log_tail(&self.log_path, offset);
        if LAUNCHED_BY_PG_CTL {
            let launcher = log_tail(&self.launcher_log_path(), 0);
            if !launcher.is_empty() {
                report = format!("{report}\npg_ctl: {launcher}");
            }
        }
        report
    }
}

fn lock_data_dir(data_dir: &Path) -> Result<File, PgError> {
    let path = data_dir.join("goim.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(PgError::io(format!("cannot open {}", path.display())))?;
    // A child forked by another thread of this process holds a copy of a just-closed
    // descriptor until it execs, and with it the lock; so a busy lock is retried briefly
    // before it counts as another GOIM's.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(PgError::DataDirInUse { path: data_dir.to_path_buf() });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(PgError::io(format!("cannot lock {}", path.display()))(e));
            }
        }
    }
}

fn initdb(options: &ClusterOptions, pgdata: &Path, password_path: &Path, run_as: Option<RunAs>) -> Result<(), PgError> {
    // A half-finished initdb (crash, full disk) leaves a folder without PG_VERSION;
    // initdb refuses non-empty folders, so start over.
    if pgdata.exists() {
        std::fs::remove_dir_all(pgdata)
            .map_err(PgError::io(format!("cannot clear incomplete cluster {}", pgdata.display())))?;
    }
    std::fs::create_dir_all(pgdata).map_err(PgError::io(format!("cannot create {}", pgdata.display())))?;
    os::make_private(pgdata)?;
    os::give_to(pgdata, run_as)?;

    let password: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    os::write_private(password_path, &password)
        .map_err(PgError::io(format!("cannot write {}", password_path.display())))?;
    os::give_to(password_path, run_as)?;

    tracing::info!(pgdata = %pgdata.display(), "initialising a new PostgreSQL cluster");
    let mut result = Err(PgError::Tool { tool: "initdb", detail: "no locale could be used".into() });
    for ctype in CTYPE_CANDIDATES {
        result = run_initdb(options, pgdata, password_path, run_as, ctype);
        match &result {
            Err(PgError::Tool { detail, .. }) if ctype.is_some() && detail.contains("locale") => {
                // This OS lacks that locale; initdb stopped before writing anything.
                let _ = clear_dir(pgdata, run_as);
            }
            _ => break,
        }
    }
    if result.is_err() {
        let _ = std::fs::remove_dir_all(pgdata);
    }
    result
}

/// Character classification locales to try, best first. Collation is always `C` (byte
/// order: fast and the same everywhere); the character type should understand UTF-8 so
/// that `lower()` and trigram search work for non-ASCII names (CJK nicknames split into
/// words only with a UTF-8 ctype). Plain `C` is the last resort.
const CTYPE_CANDIDATES: [Option<&str>; 3] = [Some("C.UTF-8"), Some("en_US.UTF-8"), None];

fn run_initdb(
    options: &ClusterOptions,
    pgdata: &Path,
    password_path: &Path,
    run_as: Option<RunAs>,
    ctype: Option<&str>,
) -> Result<(), PgError> {
    let mut cmd = Command::new(executable(&options.bin_dir, "initdb"));
    cmd.arg("-D")
        .arg(pgdata)
        .args(["-U", SUPERUSER])
        .arg(format!("--pwfile={}", password_path.display()))
        .arg("--auth=scram-sha-256")
        .args(["-E", "UTF8", "--locale=C"]);
    if let Some(ctype) = ctype {
        cmd.arg(format!("--lc-ctype={ctype}"));
    }
    if options.unsafe_fast {
        cmd.arg("--no-sync");
    }
    cmd.stdin(Stdio::null());
    os::prepare(&mut cmd, run_as);
    run_tool("initdb", cmd)
}

fn clear_dir(dir: &Path, run_as: Option<RunAs>) -> Result<(), PgError> {
    std::fs::remove_dir_all(dir).map_err(PgError::io(format!("cannot clear {}", dir.display())))?;
    std::fs::create_dir_all(dir).map_err(PgError::io(format!("cannot create {}", dir.display())))?;
    os::make_private(dir)?;
    os::give_to(dir, run_as)
}

/// After an unclean stop `postmaster.pid` remains. If its process is a live postgres
/// (GOIM was killed, the guard too), stop that orphan; otherwise the file is stale and
/// is removed, because a recycled PID would make postgres refuse to start.
fn recover_previous_run(bin_dir: &Path, pgdata: &Path) -> Result<(), PgError> {
    let pid_path = pgdata.join("postmaster.pid");
    let Ok(contents) = std::fs::read_to_string(&pid_path) else {
        return Ok(());
    };
    let pid = contents.lines().next().and_then(|line| line.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if os::is_postmaster_of(pid, pgdata, bin_dir) => {
            tracing::warn!(pid, "a postgres from an earlier GOIM run is still running; stopping it");
            pg_ctl_stop(bin_dir, pgdata, os::run_as_owner_of(pgdata))
        }
        _ => {
            tracing::warn!(?pid, "removing stale postmaster.pid left by an unclean shutdown");
            std::fs::remove_file(&pid_path).map_err(PgError::io(format!("cannot remove {}", pid_path.display())))
        }
    }
}

fn read_password(path: &Path) -> Result<Secret, PgError> {
    let password = std::fs::read_to_string(path).map_err(PgError::io(format!(
        "cannot read the cluster password {} (delete the data directory's postgres folder to start over)",
        path.display()
    )))?;
    Ok(Secret::new(password.trim().to_owned()))
}

/// `pg_ctl stop -m fast`, a no-op when no server runs.
pub(super) fn pg_ctl_stop(bin_dir: &Path, pgdata: &Path, run_as: Option<RunAs>) -> Result<(), PgError> {
    if !pgdata.join("postmaster.pid").exists() {
        return Ok(());
    }
    let mut cmd = Command::new(executable(bin_dir, "pg_ctl"));
    cmd.arg("stop").arg("-D").arg(pgdata).args(["-m", "fast", "-w", "-t", "60", "-s"]);
    cmd.stdin(Stdio::null());
    os::prepare(&mut cmd, run_as);
    run_tool("pg_ctl stop", cmd)
}

fn run_tool(tool: &'static str, mut cmd: Command) -> Result<(), PgError> {
    let output = cmd.output().map_err(|e| PgError::Tool { tool, detail: e.to_string() })?;
    if output.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    }
    Err(PgError::Tool { tool, detail: format!("{} ({})", detail, output.status) })
}

fn spawn_guard(exe: &Path, prepared: &Prepared, options: &ClusterOptions) -> Result<(Child, ChildStdin), PgError> {
    let mut cmd = Command::new(exe);
    cmd.arg("pg-guard").arg("--pgdata").arg(&prepared.pgdata).arg("--bin-dir").arg(&prepared.bin_dir);
    if options.remove_on_exit {
        cmd.arg("--remove");
    }
    // The guard reads nothing but EOF; its environment must not turn a leftover
    // .env or DATABASE_URL into a configuration error.
    cmd.env_remove("DATABASE_URL").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::inherit());
    os::prepare(&mut cmd, None);
    let mut child = cmd.spawn().map_err(PgError::io("cannot start the pg-guard process"))?;
    let stdin = child.stdin.take().ok_or_else(|| PgError::Tool { tool: "pg-guard", detail: "no stdin pipe".into() })?;
    Ok((child, stdin))
}

fn free_loopback_port() -> Result<u16, PgError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(PgError::io("cannot find a free port"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(PgError::io("cannot find a free port"))
}

async fn wait_until_ready(child: &mut Child, port: u16, prepared: &Prepared, log_offset: u64) -> Result<(), PgError> {
    let password = &prepared.password;
    let options = PgConnectOptions::new()
        .host(&Ipv4Addr::LOCALHOST.to_string())
        .port(port)
        .username(SUPERUSER)
        .password(password.expose())
        .database("postgres");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // pg_ctl exiting 0 means the server it launched is up; keep connecting.
        if let Ok(Some(status)) = child.try_wait()
            && !(LAUNCHED_BY_PG_CTL && status.success())
        {
            return Err(PgError::ExitedEarly { log_tail: prepared.start_up_report(log_offset) });
        }
        let attempt = tokio::time::timeout(Duration::from_secs(2), sqlx::PgConnection::connect_with(&options)).await;
        match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            // The server is up and says the password is wrong: retrying only fills its
            // log with failed logins.
            Ok(Err(sqlx::Error::Database(error)))
                if error.code().is_some_and(|code| code == "28P01" || code == "28000") =>
            {
                return Err(PgError::PasswordRejected {
                    password_file: prepared.password_path.clone(),
                    pgdata: prepared.pgdata.clone(),
                });
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(PgError::NotReady {
                secs: READY_TIMEOUT.as_secs(),
                log_tail: prepared.start_up_report(log_offset),
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn is_port_clash(log_tail: &str) -> bool {
    log_tail.contains("could not bind") || log_tail.contains("Address already in use")
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The last lines postgres wrote since `offset`, for start-up error messages.
fn log_tail(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Where the managed cluster lives inside GOIM's data directory.
pub fn cluster_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("postgres")
}
