//! The managed local PostgreSQL: GOIM's default database when no `DATABASE_URL` is set.
//!
//! [`binaries`] finds an installed PostgreSQL, [`cluster`] initialises a cluster under the
//! data directory, runs `postgres` on a free loopback port (a child; on Windows started
//! through `pg_ctl`) and stops it again,
//! and [`os`] holds what differs between Unix and Windows (running as an unprivileged
//! user when GOIM is root, process liveness). The test harness starts its throwaway
//! cluster with this same code.
//!
//! Invariants: the cluster listens on 127.0.0.1 only, with password (SCRAM) auth and a
//! generated password kept in the data directory; one GOIM at a time owns a data
//! directory (an OS file lock); a `pg-guard` child stops the cluster if GOIM dies without
//! running its shutdown path.

pub mod binaries;
pub mod cluster;
pub mod guard;
mod os;

pub use binaries::find_bin_dir;
pub use cluster::{ClusterOptions, ManagedPostgres, SUPERUSER, cluster_dir};
pub use os::write_private;

use std::path::PathBuf;

/// Why the managed cluster could not be found, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{}", binaries::NOT_FOUND_HELP)]
    BinariesNotFound,
    #[error("PG_BIN={0} does not contain the PostgreSQL server binaries (initdb, pg_ctl, postgres)")]
    BadPgBin(PathBuf),
    #[error(
        "the cluster in {pgdata} was created by PostgreSQL {wanted}, and PostgreSQL cannot open a cluster of \
         another major version; {found}. Install PostgreSQL {wanted}'s server binaries beside the others (or set \
         PG_BIN to them), or upgrade the cluster with pg_upgrade"
    )]
    MajorVersionMissing { pgdata: PathBuf, wanted: String, found: String },
    #[error("{0}")]
    RunAsRoot(String),
    #[error("data directory {path} is in use by another GOIM process")]
    DataDirInUse { path: PathBuf },
    #[error("{tool} failed: {detail}")]
    Tool { tool: &'static str, detail: String },
    #[error("postgres did not become ready within {secs} s; last log lines:\n{log_tail}")]
    NotReady { secs: u64, log_tail: String },
    #[error(
        "the managed PostgreSQL rejected the password in {}: restore that file, or move {} away to start a new, empty cluster",
        password_file.display(),
        pgdata.display()
    )]
    PasswordRejected { password_file: PathBuf, pgdata: PathBuf },
    #[error("postgres exited during start-up; last log lines:\n{log_tail}")]
    ExitedEarly { log_tail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl PgError {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
        let context = context.into();
        move |source| PgError::Io { context, source }
    }
}
