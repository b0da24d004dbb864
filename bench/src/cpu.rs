//! CPU time spent on a phase, by GOIM's process and by PostgreSQL's processes, read from
//! `/proc/<pid>/stat` (Linux). Unlike a rate, CPU per operation barely moves when a
//! neighbour steals the machine, so it is the stable figure on a shared box.
//!
//! PostgreSQL's share is its postmaster and every child of it (backends, background
//! workers), plus what exited children left in the postmaster's `cutime`/`cstime`. The
//! postmaster is found from one of our own backends (`pg_backend_pid()` and its parent),
//! so this works for the managed cluster and for a `DATABASE_URL` on the same machine;
//! a remote server, or another OS, yields no PostgreSQL figure.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

/// CPU microseconds per operation over a phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuPerOp {
    /// The bench process: the in-process server and the load-generating client together.
    pub goim_us: f64,
    pub postgres_us: Option<f64>,
}

/// Reads CPU totals of this process and of the PostgreSQL server.
pub struct CpuMeter {
    postmaster: Option<u32>,
}

/// CPU consumed so far, as read at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    goim: Option<Duration>,
    postgres: Option<Duration>,
}

impl CpuMeter {
    pub async fn new(pool: &PgPool) -> Self {
        let backend: Option<i32> = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(pool).await.ok();
        let postmaster = backend.and_then(|pid| u32::try_from(pid).ok()).and_then(proc::parent_of);
        if postmaster.is_none() {
            tracing::info!("PostgreSQL's processes are not visible here; CPU figures cover GOIM only");
        }
        Self { postmaster }
    }

    pub fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot { goim: proc::own_cpu(), postgres: self.postmaster.and_then(proc::server_cpu) }
    }
}

impl CpuSnapshot {
    /// CPU per operation between `self` (taken first) and `later`.
    pub fn per_op(&self, later: &CpuSnapshot, ops: usize) -> Option<CpuPerOp> {
        let per_op = |from: Option<Duration>, to: Option<Duration>| {
            Some(to?.saturating_sub(from?).as_secs_f64() * 1e6 / ops.max(1) as f64)
        };
        Some(CpuPerOp { goim_us: per_op(self.goim, later.goim)?, postgres_us: per_op(self.postgres, later.postgres) })
    }
}

#[cfg(target_os = "linux")]
mod proc {
    use std::time::Duration;

    /// `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for user space
    /// whatever the kernel's own tick rate.
    const USER_HZ: u64 = 100;

    struct Stat {
        ppid: u32,
        /// utime + stime
        own_ticks: u64,
        /// cutime + cstime: reaped children
        children_ticks: u64,
    }

    fn stat(pid: &str) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold spaces: split after the last ')'.
        let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
        Some(Stat {
            ppid: u32::try_from(field(1)?).ok()?,
            own_ticks: field(11)? + field(12)?,
            children_ticks: field(13)? + field(14)?,
        })
    }

    fn ticks(ticks: u64) -> Duration {
        Duration::from_millis(ticks * 1000 / USER_HZ)
    }

    pub fn parent_of(pid: u32) -> Option<u32> {
        stat(&pid.to_string()).map(|s| s.ppid)
    }

    pub fn own_cpu() -> Option<Duration> {
        stat("self").map(|s| ticks(s.own_ticks))
    }

    pub fn server_cpu(postmaster: u32) -> Option<Duration> {
        let root = stat(&postmaster.to_string())?;
        let mut total = root.own_ticks + root.children_ticks;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
            if let Some(child) = stat(pid).filter(|s| s.ppid == postmaster) {
                total += child.own_ticks;
            }
        }
        Some(ticks(total))
    }
}

#[cfg(not(target_os = "linux"))]
mod proc {
    use std::time::Duration;

    pub fn parent_of(_pid: u32) -> Option<u32> {
        None
    }

    pub fn own_cpu() -> Option<Duration> {
        None
    }

    pub fn server_cpu(_postmaster: u32) -> Option<Duration> {
        None
    }
}
