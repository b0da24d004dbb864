//! What differs between operating systems when running PostgreSQL's tools: the
//! unprivileged user on Unix when GOIM is root, keeping children away from the
//! console's Ctrl+C / Ctrl+Break / close, owner-only files, and asking whether a
//! recorded postmaster PID is still ours.

use std::{path::Path, process::Command};

use super::PgError;

/// The account PostgreSQL's tools run as. `None` means "as GOIM itself".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    #[cfg(unix)]
    uid: u32,
    #[cfg(unix)]
    gid: u32,
}

/// PostgreSQL refuses to run as root, so a root GOIM runs it as `user` instead.
#[cfg(unix)]
pub fn run_as_for_user(user: &str) -> Result<Option<RunAs>, PgError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(account)) if !account.uid.is_root() => {
            Ok(Some(RunAs { uid: account.uid.as_raw(), gid: account.gid.as_raw() }))
        }
        _ => Err(PgError::RunAsRoot(format!(
            "GOIM is running as root and PostgreSQL refuses to run as root, so the managed \
             cluster runs as the unprivileged user '{user}', which does not exist. Create it \
             (`useradd --system --home-dir /var/lib/postgresql {user}`), set GOIM_PG_USER to \
             another unprivileged user, or run GOIM as a normal user"
        ))),
    }
}

#[cfg(not(unix))]
pub fn run_as_for_user(_user: &str) -> Result<Option<RunAs>, PgError> {
    // Windows has no account switch here: `initdb` and `pg_ctl` drop administrator
    // rights themselves (a restricted token), and `postgres` is only ever started
    // through `pg_ctl` (see `cluster::LAUNCHED_BY_PG_CTL`).
    Ok(None)
}

/// When GOIM is root, the account that owns an existing cluster directory.
#[cfg(unix)]
pub fn run_as_owner_of(pgdata: &Path) -> Option<RunAs> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let meta = std::fs::metadata(pgdata).ok()?;
    (meta.uid() != 0).then_some(RunAs { uid: meta.uid(), gid: meta.gid() })
}

#[cfg(not(unix))]
pub fn run_as_owner_of(_pgdata: &Path) -> Option<RunAs> {
    None
}

/// Makes `cmd` run as `run_as` and keeps it out of the terminal's process group, so a
/// Ctrl+C reaches GOIM alone and GOIM decides when PostgreSQL stops.
pub fn prepare(cmd: &mut Command, run_as: Option<RunAs>) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        if let Some(account) = run_as {
            cmd.uid(account.uid).gid(account.gid);
            // The inherited HOME (/root) is unreadable for the account; tools that
            // look for per-user files must not trip over it.
            cmd.env("HOME", "/tmp");
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        // A console of its own, without a window: Ctrl+Break and closing GOIM's console
        // window are delivered to every process attached to that console, which would
        // stop PostgreSQL behind GOIM's back (and kill the guard that should stop it).
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        let _ = run_as;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    }
}

/// Gives `path` to `run_as`, so the unprivileged account can use what root created.
pub fn give_to(path: &Path, run_as: Option<RunAs>) -> Result<(), PgError> {
    #[cfg(unix)]
    if let Some(account) = run_as {
        std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
            .map_err(PgError::io(format!("cannot change the owner of {}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = (path, run_as);
    Ok(())
}

/// Writes a secret into a new file that is its owner's alone from the first byte (no
/// window in which another account could open it); replaces an older file.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // Windows: the new, still empty file gets its owner-only ACL before the secret is
    // written into it.
    #[cfg(windows)]
    restrict_to_owner(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Replaces the ACL of `path` with one entry: full control for the account GOIM runs as
/// (what 0600 means on Unix). `icacls` is part of every Windows since Vista.
#[cfg(windows)]
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    let account = current_account_sid()
        .map(|sid| format!("*{sid}"))
        .or_else(|| {
            let user = std::env::var("USERNAME").ok()?;
            Some(match std::env::var("USERDOMAIN") {
                Ok(domain) => format!("{domain}\\{user}"),
                Err(_) => user,
            })
        })
        .ok_or_else(|| std::io::Error::other("cannot tell which account GOIM runs as"))?;
    let output = Command::new("icacls")
        .arg(path)
        .args(["/inheritance:r", "/grant:r", &format!("{account}:F"), "/q"])
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "icacls could not restrict {} to {account}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stdout).trim()
    )))
}

/// The SID of the account this process runs as (`S-1-5-18` for LocalSystem), from
/// `whoami /user`, whose CSV line is `"domain\\user","S-1-5-…"`.
#[cfg(windows)]
fn current_account_sid() -> Option<String> {
    let output = Command::new("whoami").args(["/user", "/fo", "csv", "/nh"]).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(',')
        .map(|field| field.trim().trim_matches('"'))
        .find(|field| field.starts_with("S-1-"))
        .map(str::to_owned)
}

/// Restricts a directory or secret file to its owner, as PostgreSQL requires for its
/// data directory and as a password file deserves.
pub fn make_private(path: &Path) -> Result<(), PgError> {
    // Windows: PostgreSQL does not check its data directory's ACL, and the secrets are
    // restricted file by file (`write_private`).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(PgError::io(format!("cannot restrict permissions of {}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Fails with an exact instruction when the unprivileged account cannot reach `dir`
/// because some parent folder is closed to other users (e.g. a checkout under /root).
pub fn check_reachable(dir: &Path, run_as: Option<RunAs>) -> Result<(), PgError> {
    #[cfg(unix)]
    if let Some(account) = run_as {
        use std::os::unix::fs::MetadataExt;
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            let traversable = meta.mode() & 0o001 != 0
                || (meta.uid() == account.uid && meta.mode() & 0o100 != 0)
                || (meta.gid() == account.gid && meta.mode() & 0o010 != 0);
            if !traversable {
                return Err(PgError::RunAsRoot(format!(
                    "GOIM is running as root, so the managed cluster runs as an unprivileged \
                     user, which cannot enter {}. Set GOIM_DATA_DIR to a folder outside it \
                     (e.g. /var/lib/goim) or run GOIM as a normal user",
                    ancestor.display()
                )));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, run_as);
    Ok(())
}

/// Whether `pid` is a live PostgreSQL server of the cluster in `pgdata` (not a recycled
/// PID of something else: signalling that would be wrong).
#[cfg(unix)]
pub fn is_postmaster_of(pid: u32, pgdata: &Path, _bin_dir: &Path) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    if !alive {
        return false;
    }
    // Where /proc exists, a postmaster's working directory is its data directory.
    let proc_cwd = std::path::PathBuf::from(format!("/proc/{pid}/cwd"));
    if Path::new("/proc/self/cwd").exists() {
        return match (std::fs::read_link(&proc_cwd), std::fs::canonicalize(pgdata)) {
            (Ok(cwd), Ok(ours)) => cwd == ours,
            _ => false,
        };
    }
    true
}

/// Windows has no /proc and a process name proves nothing (any PostgreSQL on the
/// machine is called postgres.exe). Two checks that only our cluster's postmaster
/// passes: `pg_ctl status` finds `pid` alive *as a PostgreSQL server* (it answers on
/// PostgreSQL's per-PID signal pipe), and something accepts connections on the port
/// that this cluster's `postmaster.pid` records. Another cluster's server that got a
/// recycled PID listens on its own port.
#[cfg(not(unix))]
pub fn is_postmaster_of(pid: u32, pgdata: &Path, bin_dir: &Path) -> bool {
    let recorded = std::fs::read_to_string(pgdata.join("postmaster.pid")).unwrap_or_default();
    let mut lines = recorded.lines();
    let recorded_pid = lines.next().and_then(|line| line.trim().parse::<u32>().ok());
    let port = lines.nth(2).and_then(|line| line.trim().parse::<u16>().ok());
    let (Some(port), true) = (port, recorded_pid == Some(pid)) else {
        return false;
    };
    let mut status = Command::new(super::binaries::executable(bin_dir, "pg_ctl"));
    status.arg("status").arg("-D").arg(pgdata).stdin(std::process::Stdio::null());
    prepare(&mut status, None);
    let running = status.output().is_ok_and(|output| output.status.success());
    let address = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    running && std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)).is_ok()
}
